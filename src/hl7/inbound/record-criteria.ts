import type { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import type { FhirService } from '../../fhir/fhir.service.js';
import { normalizeString } from '../../fhir/search/normalize.js';
import { HL7_USER } from '../hl7-user.js';
import { escapeSearch } from '../mapping/patient.js';

/**
 * The patient's resource with the same first coding: a local code sent without a coding system
 * (an allergen `XYZallergen`) matches the same code without one (`|code`), so that it is not
 * added again with every message. None for a concept that is text only.
 */
export function codeCriteria(
  patientParam: string,
  patientId: string,
  resource: Record<string, unknown>,
  code: { element: string; param: string } = { element: 'code', param: 'code' },
): string | undefined {
  const byCode = codeParam(resource, code);
  return byCode && `${patientParam}=Patient/${patientId}&${byCode}`;
}

/** The search parameter for a resource's first coding (`code=system|code`); none without one. */
export function codeParam(
  resource: Record<string, unknown>,
  code: { element: string; param: string } = { element: 'code', param: 'code' },
): string | undefined {
  const concept = resource[code.element] as { coding?: { system?: string; code?: string }[] };
  const coding = concept.coding?.[0];
  if (!coding?.code) return undefined;
  const token = `${coding.system ? escapeSearch(coding.system) : ''}|${escapeSearch(coding.code)}`;
  return `${code.param}=${encodeURIComponent(token)}`;
}

/** How many of a patient's records that a text's start names are compared (see conceptMatch). */
const SAME_TEXT_CANDIDATES = 100;

/**
 * The one record of `type` in `scope` (the patient's criteria, of a category or a visit too)
 * with the resource's `code`: by its first coding (see codeCriteria), or, for a concept sent as
 * text alone (an allergen `^PENICILLIN`, a diagnosis in DG1-4 only), by that text and no
 * coding. Until 2026-12-06 such a record had no criteria, and every A08 repeating the patient's
 * list filed it again. Search's `:text` matches the start of a text (`PENICILLIN` finds
 * `PENICILLIN G`): the records it finds are compared here, under the lock of its criteria.
 */
export async function conceptMatch(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const byCode = codeParam(resource);
  if (byCode) return matches.uniqueMatch(HL7_USER, type, `${scope}&${byCode}`);
  return sameTextMatch(fhir, matches, type, scope, resource);
}

/**
 * The criteria that find a record as conceptMatch does, for the writes that take criteria
 * (keepListed): its code's, or, for a concept sent as text alone, the one record that text
 * names (`_id`), under the lock sameTextMatch took. None when there is neither (a new record).
 */
export async function conceptCriteria(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const byCode = codeParam(resource);
  if (byCode) return `${scope}&${byCode}`;
  const match = await sameTextMatch(fhir, matches, type, scope, resource);
  return match && `${scope}&_id=${match}`;
}

/** The record in `scope` whose concept is the resource's text alone, exactly (conceptMatch). */
async function sameTextMatch(
  fhir: FhirService,
  matches: CriteriaMatches,
  type: string,
  scope: string,
  resource: Record<string, unknown>,
): Promise<string | undefined> {
  const text = textOnly(resource['code']);
  if (text === undefined) return undefined;
  // A text of no letter or digit (`?`, `--`: a placeholder) has nothing :text indexes, so no
  // search by it finds its record: the scope's records are compared, as few as a patient has.
  const criteria =
    normalizeString(text) === ''
      ? scope
      : `${scope}&code:text=${encodeURIComponent(escapeSearch(text))}`;
  await matches.lockCriteria([{ type, criteria }]);
  for (const id of await matches.matchingIds(HL7_USER, type, criteria, SAME_TEXT_CANDIDATES)) {
    const stored = (await fhir.read(HL7_USER, type, id)).resource;
    if (textOnly(stored['code']) === text) return id;
  }
  return undefined;
}

/** A CodeableConcept's text when it has no coding. */
function textOnly(concept: unknown): string | undefined {
  const { coding, text } = (concept ?? {}) as { coding?: unknown[]; text?: string };
  return coding?.length ? undefined : text;
}

/**
 * When a record happened, as `<element>DateTime` or the start of `<element>Period` (a
 * procedure's `performed`, a charge's `occurrence`).
 */
export function startOf(resource: Record<string, unknown>, element: string): string | undefined {
  return (
    (resource[`${element}DateTime`] as string | undefined) ??
    (resource[`${element}Period`] as { start?: string } | undefined)?.start
  );
}

/** A date parameter's criteria for a record of that instant (its range contains it). */
export function atInstant(param: string, instant: string): string {
  const at = encodeURIComponent(instant);
  return `${param}=ge${at}&${param}=le${at}`;
}

/** A resource's code as one string: its first coding, else its text. */
export function codeKey(resource: Record<string, unknown>): string {
  const code = resource['code'] as { coding?: { system?: string; code?: string }[]; text?: string };
  const coding = code?.coding?.[0];
  return coding ? `${coding.system ?? ''}|${coding.code ?? ''}` : `text:${code?.text ?? ''}`;
}

/** The keys that come more than once. */
export function repeated(keys: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) twice.add(key);
    seen.add(key);
  }
  return twice;
}

/** The codes (codeKey) that more than one of these records has. */
export function repeatedCodes(resources: Record<string, unknown>[]): Set<string> {
  return repeated(resources.map(codeKey));
}

/**
 * The criteria for an observation no number names (an ADT feed's OBX, or a result's before any
 * OBR): the patient's of that code at that time, in that visit or in none. One of neither a
 * time nor a visit (a blood type an A31 carries) is the patient's one of that code and of no
 * time and no visit: until 2026-12-07 it had no criteria, and every A28/A31 repeating it filed
 * it again. Those of a time are never it, nor it one of them: two values of one code at two
 * times stay two.
 */
export function unnumberedObservation(
  observation: Record<string, unknown>,
  patientId: string,
  encounterId: string | undefined,
): string | undefined {
  const byCode = codeCriteria('subject', patientId, observation);
  return byCode && `${byCode}${unnumberedScope(observation, encounterId)}`;
}

/**
 * The time and visit criteria of unnumberedObservation: its time, else (of no visit either)
 * none (`:missing`); its visit, else none.
 */
function unnumberedScope(
  observation: Record<string, unknown>,
  encounterId: string | undefined,
): string {
  const at = observation['effectiveDateTime'] as string | undefined;
  // One of a visit and no time is the visit's of that code, as it was before 2026-12-07.
  const when = at ? `&${atInstant('date', at)}` : encounterId ? '' : '&date:missing=true';
  // One of no visit is never another visit's: those of a time are many, one per stay.
  const visit = encounterId ? `&encounter=Encounter/${encounterId}` : '&encounter:missing=true';
  return `${when}${visit}`;
}

/**
 * unnumberedObservation's criteria, and for an OBX-3 sent as text alone (`^Body weight`) the
 * patient's record of that exact text, time and visit (see conceptCriteria). Until 2026-12-07
 * such an observation had no criteria, and every A08 repeating it filed it again.
 */
export async function unnumberedObservationCriteria(
  fhir: FhirService,
  matches: CriteriaMatches,
  observation: Record<string, unknown>,
  patientId: string,
  encounterId: string | undefined,
): Promise<string | undefined> {
  const byCode = unnumberedObservation(observation, patientId, encounterId);
  if (byCode || codeParam(observation)) return byCode;
  const scope = `subject=Patient/${patientId}${unnumberedScope(observation, encounterId)}`;
  return conceptCriteria(fhir, matches, 'Observation', scope, observation);
}

/**
 * The criteria for a patient's Condition of that code in one category: a visit's diagnosis
 * (DG1) and a problem-list entry (PRB) of the same code are two records, never matched as one.
 */
export function conditionCriteria(
  patientId: string,
  category: 'encounter-diagnosis' | 'problem-list-item',
  resource: Record<string, unknown>,
): string | undefined {
  const byCode = codeCriteria('subject', patientId, resource);
  return byCode && `${byCode}&${conditionCategory(category)}`;
}

export function conditionCategory(category: 'encounter-diagnosis' | 'problem-list-item'): string {
  return `category=${encodeURIComponent(
    `http://terminology.hl7.org/CodeSystem/condition-category|${category}`,
  )}`;
}
