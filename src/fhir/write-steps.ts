import type { OpenedFor, ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import type { FhirInteraction } from '../auth/permissions.js';
import { AppError } from '../common/errors/app-error.js';
import type { UnitOfWork } from '../database/unit-of-work.js';
import type { FhirResource } from './fhir-types.js';
import type { ResourceEntity } from './resource.entity.js';
import type { ResourceWrites } from './resource-writes.js';
import { parseContent } from './resource-versions.js';
import type { SecurityContexts } from './security-contexts.js';

// Steps that the interactions on stored resources share (FhirService's and FhirPatch's), as
// functions of the services they use.

/**
 * The 404 of a resource never stored. Its id names nothing, and may be an MRN or a name typed
 * in an id's place: the request's audit row leaves it out (see httpAuditEntry).
 */
export function notStored(access: ResourceAccess, type: string, id: string): AppError {
  access.notStored(`${type}/${id}`);
  return AppError.notFound(`${type} resource not found`);
}

/** A deleted record's answer: 410, or 404 to a caller that may not learn of the deletion. */
export function deletedAnswer(
  access: ResourceAccess,
  user: AuthenticatedUser,
  type: string,
  interaction: FhirInteraction,
): AppError {
  return access.maySeeDeletion(user, type, interaction)
    ? AppError.gone(`${type} resource was deleted`)
    : AppError.notFound(`${type} resource not found`);
}

/**
 * Access to the stored current version before it is changed or listed: outside a
 * patient-scoped token's compartment it does not exist (404), restricted needs break-glass.
 * Returns its content (undefined for a deletion).
 */
export async function openForWrite(
  access: ResourceAccess,
  contexts: SecurityContexts,
  user: AuthenticatedUser,
  current: ResourceEntity | null,
  interaction: OpenedFor,
): Promise<FhirResource | undefined> {
  if (!current || current.deleted) {
    return undefined;
  }
  const content = parseContent(current);
  await access.assertMayOpen(user, content, interaction, await contexts.ofOne(content));
  return content;
}

/** A write in one transaction with what its listeners record, when any listens. */
export function withListeners<T>(
  writes: ResourceWrites,
  unitOfWork: UnitOfWork,
  types: string[],
  work: () => Promise<T>,
): Promise<T> {
  return types.some((type) => writes.watches(type)) ? unitOfWork.run(work) : work();
}
