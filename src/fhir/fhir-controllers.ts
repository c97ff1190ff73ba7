import { BundleController } from './bundle/bundle.controller.js';
import { CapabilityController } from './capability.controller.js';
import { HistoryController } from './history.controller.js';
import { OperationsController } from './operations.controller.js';
import { ResourceInstanceController } from './resource-instance.controller.js';
import { ResourceTypeController } from './resource-type.controller.js';
import { SearchController } from './search/search.controller.js';

/**
 * The FHIR REST API (`/fhir/…`), a controller per concern. Fastify's router prefers a literal
 * path segment to a parameter whatever the order (`/fhir/_history` is never read as a type,
 * `Patient/{id}/$everything` never as a compartment search), so this order is only the order
 * of the OpenAPI document.
 */
export const FHIR_REST_CONTROLLERS = [
  BundleController,
  CapabilityController,
  ResourceTypeController,
  SearchController,
  OperationsController,
  HistoryController,
  ResourceInstanceController,
];

/**
 * An OpenAPI operation id: Nest's `Controller_handler`, except that the FHIR REST controllers
 * keep the ids they had as one `FhirController` (`FhirController_read`): generated clients and
 * Swagger UI links (`#/Patient/Patient_FhirController_read`) name operations by them.
 */
export function operationId(controllerKey: string, methodKey: string): string {
  const rest = FHIR_REST_CONTROLLERS.some((controller) => controller.name === controllerKey);
  return `${rest ? 'FhirController' : controllerKey}_${methodKey}`;
}
