import { Injectable } from '@nestjs/common';
import { ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { entries } from '../bundle.js';
import type { FhirResource } from '../fhir-types.js';
import { ResourceRepository } from '../resource.repository.js';
import { ResourceValidator } from '../resource-validator.js';
import { MAX_MERGES, replacedBy } from '../retired-patients.js';
import { SearchService } from '../search/search.service.js';
import { withoutWriteOnly } from '../write-only-elements.js';
import { scoreMatch, type MatchGrade, type PatientFacts } from './match-score.js';

const MATCH_GRADE = 'http://hl7.org/fhir/StructureDefinition/match-grade';
const DEFAULT_COUNT = 10;
const MAX_COUNT = 100;
/** Each candidate search returns at most this many, and all of them at most MAX_CANDIDATES. */
const PER_SEARCH = 20;
const MAX_CANDIDATES = 100;

interface MatchRequest {
  patient: PatientFacts;
  onlyCertain: boolean;
  count: number;
}

interface Scored {
  resource: FhirResource;
  score: number;
  grade: MatchGrade;
}

/**
 * Patient/$match (FHIR R4): the patients that may be the one described, scored. Candidates are
 * found through the blind indexes, as searches (an identifier; family or given name with the
 * birth date; family and given name; a phone or email), so nothing is decrypted in bulk and the
 * caller's access rules apply; each is then scored by `scoreMatch`. Only the patients returned
 * are recorded as disclosed.
 */
@Injectable()
export class PatientMatchService {
  constructor(
    private readonly searches: SearchService,
    private readonly resources: ResourceRepository,
    private readonly access: ResourceAccess,
    private readonly validator: ResourceValidator,
  ) {}

  async match(user: AuthenticatedUser, body: unknown, baseUrl: string): Promise<unknown> {
    const request = matchRequest(body);
    // The Patient described is read as a Patient (names, identifiers, telecoms): one that is
    // not valid (an identifier value of 12345, a name that is no list) was a 500 until
    // 2026-12-06. Its 400 names the element, never the value.
    await this.validator.validate(request.patient as FhirResource);
    const ids = new Set<string>();
    for (const criteria of candidateSearches(request.patient)) {
      if (ids.size >= MAX_CANDIDATES) break;
      const found = await this.searches.matchingIds(user, 'Patient', criteria, PER_SEARCH, false);
      for (const id of found) ids.add(id);
    }
    // By the patient offered: a merged record's match is its survivor's, best score kept.
    const offered = new Map<string, Scored>();
    for (const id of ids) {
      const resource = await this.listable(user, id);
      if (!resource) continue;
      const match = scoreMatch(request.patient, resource as PatientFacts);
      if (!match || (request.onlyCertain && match.grade !== 'certain')) continue;
      const survivor = await this.survivorOf(user, resource);
      const best = survivor && offered.get(survivor.id!);
      if (survivor && !(best && best.score >= match.score)) {
        offered.set(survivor.id!, { resource: survivor, ...match });
      }
    }
    const scored = [...offered.values()];
    scored.sort((a, b) => b.score - a.score || a.resource.id!.localeCompare(b.resource.id!));
    const returned = scored.slice(0, request.count);
    for (const { resource } of returned) this.access.recordListed(resource);
    return this.bundle(returned, baseUrl);
  }

  /** The current Patient, if it exists and the caller may see it in a list. */
  private async listable(user: AuthenticatedUser, id: string): Promise<FhirResource | undefined> {
    const row = await this.resources.findCurrent('Patient', id);
    if (!row?.content) return undefined;
    // A Patient may contain a Subscription, whose header values are shown masked.
    const resource = withoutWriteOnly(JSON.parse(row.content) as FhirResource);
    return this.access.isListable(user, resource, false) ? resource : undefined;
  }

  /**
   * The patient to offer for a matched record: itself, or the survivor its `replaced-by` link
   * names, through a chain of merges. FHIR says a patient with that link "must no longer be
   * used": offered until 2026-12-07, the merged record (inactive, without its identifiers, which
   * the survivor took) was taken by clients, whose new records then went to it rather than to
   * the chart a clinician opens. A survivor deleted or not to be seen offers no one.
   */
  private async survivorOf(
    user: AuthenticatedUser,
    resource: FhirResource,
  ): Promise<FhirResource | undefined> {
    let current = resource;
    for (let merges = 0; merges < MAX_MERGES; merges++) {
      const next = replacedBy(current);
      if (!next) return current;
      const survivor = await this.listable(user, next);
      if (!survivor) return undefined;
      current = survivor;
    }
    return undefined;
  }

  private bundle(returned: Scored[], baseUrl: string): unknown {
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: returned.length,
      ...entries(
        returned.map(({ resource, score, grade }) => ({
          fullUrl: `${baseUrl}/Patient/${resource.id}`,
          resource,
          search: {
            extension: [{ url: MATCH_GRADE, valueCode: grade }],
            mode: 'match',
            score,
          },
        })),
      ),
    };
  }
}

/** The Parameters of $match: `resource` (a Patient), `onlyCertainMatches`, `count`. */
function matchRequest(body: unknown): MatchRequest {
  const parameters = (body as { resourceType?: unknown; parameter?: unknown } | null) ?? {};
  if (parameters.resourceType !== 'Parameters' || !Array.isArray(parameters.parameter)) {
    throw AppError.invalid('$match takes a Parameters resource with the Patient in "resource"');
  }
  const named = (name: string) =>
    (parameters.parameter as Record<string, unknown>[]).find((item) => item['name'] === name);
  const patient = named('resource')?.['resource'] as FhirResource | undefined;
  if (patient?.resourceType !== 'Patient') {
    throw AppError.invalid('$match needs a Patient in the "resource" parameter', [
      'Parameters.parameter.resource',
    ]);
  }
  const only = named('onlyCertainMatches')?.['valueBoolean'];
  const count = named('count')?.['valueInteger'] ?? DEFAULT_COUNT;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw AppError.invalid(`count is an integer from 1 to ${MAX_COUNT}`, ['Parameters.parameter']);
  }
  return { patient: patient as PatientFacts, onlyCertain: only === true, count };
}

/**
 * The searches that find candidates: each identifier, and the demographic pairs a match can be
 * made of, all through the blind indexes. A patient described by too little to match (a family
 * name alone) gives none, and is a 400.
 */
function candidateSearches(patient: PatientFacts): string[] {
  const value = (text: string) => encodeURIComponent(text.replace(/,/g, '\\,'));
  const searches: string[] = [];
  for (const id of patient.identifier ?? []) {
    if (id.value) {
      searches.push(`identifier=${value(id.system ? `${id.system}|${id.value}` : id.value)}`);
    }
  }
  const birth = patient.birthDate ? `&birthdate=${value(patient.birthDate)}` : undefined;
  for (const name of patient.name ?? []) {
    const family = name.family ? `family:exact=${value(name.family)}` : undefined;
    const given = name.given?.[0] ? `given:exact=${value(name.given[0])}` : undefined;
    if (family && birth) searches.push(family + birth);
    if (given && birth) searches.push(given + birth);
    if (family && given) searches.push(`${family}&${given}`);
  }
  for (const telecom of patient.telecom ?? []) {
    if (telecom.value && (telecom.system === 'phone' || telecom.system === 'email')) {
      searches.push(`${telecom.system}=${value(telecom.value)}`);
    }
  }
  if (searches.length === 0) {
    throw AppError.invalid(
      '$match needs an identifier, a name with a birth date, a family and a given name, or a phone or email',
      ['Parameters.parameter.resource'],
    );
  }
  return searches;
}
