import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { FhirService } from '../fhir.service.js';
import { ResourceRepository } from '../resource.repository.js';
import { SearchService } from '../search/search.service.js';
import { mayExport, type Cohort, type ExportRequest } from './export-job.js';
import { groupMembers } from './group-members.js';

/** Search parameters that narrow what a resource shows: no export honours them (see typeFilters). */
const CONTENT_PARAMETERS = new Set(['_elements', '_summary']);

/**
 * The kick-off's checks that read the database: the right to export at all, the `_typeFilter`
 * searches, and the patients a Patient- or Group-level export is confined to.
 */
@Injectable()
export class ExportCriteria {
  constructor(
    private readonly resources: ResourceRepository,
    private readonly fhir: FhirService,
    private readonly definitions: FhirDefinitions,
    private readonly searches: SearchService,
  ) {}

  /**
   * The export routes are open to anyone with the export right on some type (the routes of a
   * Patient or Group export require it on Patient): no right at all is a 403, as the permission
   * guard answers, before the job is looked for.
   */
  assertMayExport(user: AuthenticatedUser): void {
    if (!this.definitions.resourceTypes.some((type) => mayExport(user, type))) {
      throw AppError.forbidden('Access denied');
    }
  }

  /**
   * The `_typeFilter` queries by type, each a search of one type the export takes that the user
   * could run (else 400, 403).
   */
  async typeFilters(
    user: AuthenticatedUser,
    request: ExportRequest,
  ): Promise<Map<string, string[]>> {
    const byType = new Map<string, string[]>();
    for (const filter of request.typeFilters ?? []) {
      const question = filter.indexOf('?');
      const type = question === -1 ? filter : filter.slice(0, question);
      const query = question === -1 ? '' : filter.slice(question + 1);
      if (!this.definitions.isResourceType(type) || !query) {
        throw AppError.invalid('_typeFilter is a list of searches such as Observation?code=…', [
          '_typeFilter',
        ]);
      }
      if (request.types && !request.types.includes(type)) {
        throw AppError.invalid(`_typeFilter names ${type}, which _type leaves out`, [
          '_typeFilter',
        ]);
      }
      if (!mayExport(user, type)) throw AppError.forbidden(`You may not export ${type}`);
      // A search would narrow the resources' content; the export holds them whole, and a client
      // asking for less (minimum necessary) is told so rather than sent more than it asked.
      for (const name of new URLSearchParams(query).keys()) {
        if (CONTENT_PARAMETERS.has(name.split(':')[0]!)) {
          throw AppError.invalid(
            `_typeFilter selects resources, it does not narrow them: ${name} is not supported`,
            ['_typeFilter'],
          );
        }
      }
      await this.searches.assertCriteria(user, type, query);
      byType.set(type, [...(byType.get(type) ?? []), query]);
    }
    return byType;
  }

  /**
   * The patients an export is confined to: a Group's members are read (and checked) at kick-off,
   * those who are members at `now` (see groupMembers); `patient` narrows either level to the
   * patients it names. One not on this server, or not a member of the Group, is a 400 that
   * names it, as the Bulk Data IG asks, rather than an export quietly without them.
   */
  async cohort(user: AuthenticatedUser, request: ExportRequest, now: Date): Promise<Cohort> {
    if (request.level === 'system') return undefined;
    const named = request.patients && (await this.storedPatients(request.patients));
    if (request.level === 'patient') return named ?? 'any';
    const group = (await this.fhir.read(user, 'Group', request.groupId!)).resource;
    const members = new Set(groupMembers(group, now));
    if (!named) return members;
    const outside = [...named].filter((id) => !members.has(id));
    if (outside.length > 0) {
      throw AppError.invalid(
        `patient names ${references(outside)}, not a member of Group/${request.groupId!}`,
        ['patient'],
      );
    }
    return named;
  }

  /**
   * The patients named, each checked to be stored and not deleted. Not opened as a read would:
   * a restricted patient's record stays out of the files as it does from any export, while the
   * rest of their compartment (each record restricted on its own) goes in.
   */
  private async storedPatients(ids: string[]): Promise<Set<string>> {
    const missing: string[] = [];
    for (const id of ids) {
      const row = await this.resources.findCurrent('Patient', id);
      if (!row || row.deleted) missing.push(id);
    }
    if (missing.length > 0) {
      throw AppError.invalid(`patient names ${references(missing)}, not on this server`, [
        'patient',
      ]);
    }
    return new Set(ids);
  }
}

/** `Patient/a, Patient/b`: ids, never PHI. */
function references(ids: string[]): string {
  return ids.map((id) => `Patient/${id}`).join(', ');
}
