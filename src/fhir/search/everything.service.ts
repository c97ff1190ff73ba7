import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { canAccessFhir } from '../../auth/permissions.js';
import { scopesAllow } from '../../auth/smart-scopes.js';
import { AppError } from '../../common/errors/app-error.js';
import type { FhirResource } from '../fhir-types.js';
import { FhirService } from '../fhir.service.js';
import { SearchRepository } from './search.repository.js';
import type { SearchBundle } from './search.service.js';

/** The most resources one $everything answers with (a lifetime record can be large). */
const MAX_RESOURCES = 10_000;

/**
 * Patient/{id}/$everything: the patient and every resource in their compartment (the official
 * CompartmentDefinition), limited to the types the caller may read and to what they may see.
 */
@Injectable()
export class EverythingService {
  constructor(
    private readonly fhir: FhirService,
    private readonly repository: SearchRepository,
    private readonly compartment: PatientCompartment,
    private readonly access: ResourceAccess,
  ) {}

  async everything(user: AuthenticatedUser, id: string, baseUrl: string): Promise<SearchBundle> {
    const patient = (await this.fhir.read(user, 'Patient', id)).resource;
    const links = await this.repository.referencing('Patient', id, MAX_RESOURCES);
    const readable = (type: string): boolean =>
      canAccessFhir(user.roles, type, 'read') &&
      scopesAllow(user.scopes, user.patient !== undefined, type, 'read');
    const byType = new Map<string, Set<string>>();
    for (const link of links) {
      // Only the parameters that define the compartment count, not any reference to the patient.
      if (!this.compartment.paramsOf(link.type).includes(link.param) || !readable(link.type)) {
        continue;
      }
      const ids = byType.get(link.type) ?? new Set<string>();
      ids.add(link.id);
      byType.set(link.type, ids);
    }
    const resources: FhirResource[] = [patient];
    for (const [type, ids] of byType) {
      for (const row of await this.repository.load(type, [...ids])) {
        const resource = JSON.parse(row.content as string) as FhirResource;
        if (this.access.isListable(user, resource)) resources.push(resource);
      }
    }
    if (resources.length > MAX_RESOURCES) {
      throw AppError.of(
        400,
        'too-long',
        `More than ${MAX_RESOURCES} resources: use Bulk Data export`,
      );
    }
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      meta: { lastUpdated: new Date().toISOString() },
      type: 'searchset',
      total: resources.length,
      link: [{ relation: 'self', url: `${baseUrl}/Patient/${id}/$everything` }],
      entry: resources.map((resource) => ({
        fullUrl: `${baseUrl}/${resource.resourceType}/${String(resource.id)}`,
        resource,
        search: { mode: 'match' as const },
      })),
    };
  }
}
