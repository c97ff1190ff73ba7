import { RESTRICTED_LABEL } from '../../access/resource-access.js';
import type { V2Message, V2Repetition, V2Segment } from '../message/v2-message.js';
import {
  addressOf,
  aliasSystem,
  codeableConceptIn,
  codeableConceptOf,
  contactPointOf,
  dateOf,
  dateTimeOf,
  humanNameOf,
  identifierOf,
  identifierType,
  organizationOf,
  practitionerOf,
  sameAuthority,
  sameIdentifier,
  type Identifier,
} from './datatypes.js';

/**
 * Top-level Patient elements a message speaks about: a value replaces what is stored, null
 * (the field was `""`) removes it, and an element left out (the field was empty) is kept. An
 * element two fields feed, when one of them is left out, is a function of the stored value.
 */
export type PatientElements = Record<string, unknown>;

/** An element's new value computed from the stored one (null removes it). */
type ElementChange = (stored: unknown) => unknown;

type ContactPoint = Record<string, unknown>;

const GENDER: Record<string, string> = {
  M: 'male',
  F: 'female',
  O: 'other',
  A: 'other',
  U: 'unknown',
  N: 'unknown',
};

/** A field sent with a value the map cannot take, left out: for the ACK to warn of it. */
/** How a warning says a field's code is none of its HL7 table's (ERR 103, not 102). */
export const NOT_IN_TABLE = 'is not a code of HL7 table';

export interface FieldWarning {
  location: [segment: string, sequence: number, field: number];
  /** Names the field and why, never its value (PHI goes back only where it came from). */
  text: string;
}

/** The PID fields whose map leaves out a value not of the field's type, and how to say so. */
const PID_CHECKED: [field: number, name: string, reason: string, maps: (v: string) => boolean][] = [
  [7, 'birth date', 'is not a date (YYYY[MM[DD]])', (value) => dateOf(value) !== undefined],
  [
    8,
    'gender',
    'is not a code of table 0001',
    (value) => GENDER[value.toUpperCase()] !== undefined,
  ],
  [
    29,
    'death time',
    'is not a date and time (YYYYMMDD[HHMM[SS]][+ZZZZ])',
    (value) => dateTimeOf(value) !== undefined,
  ],
];

/**
 * The fields of the message's PIDs that patientFromPid leaves out for holding no value of
 * their type (a birth date `19801345`): the rest of the patient is taken, and the sender is
 * told which field, as a silent gap would never be corrected at the source.
 */
export function pidWarnings(message: V2Message): FieldWarning[] {
  return message.all('PID').flatMap((pid, i) =>
    PID_CHECKED.flatMap(([field, name, reason, maps]): FieldWarning[] => {
      const value = pid.value(field);
      if (value === null || value === undefined || maps(value)) return [];
      const which = i > 0 ? ` in PID #${i + 1}` : '';
      return [
        {
          location: ['PID', i + 1, field],
          text: `PID-${field} (${name})${which} ${reason} and was left out; the rest was taken`,
        },
      ];
    }),
  );
}

/**
 * PID to Patient elements (v2-to-FHIR segment map PID[Patient]); `senderSystem` stands in for
 * a missing assigning authority (see identifierOf).
 */
export function patientFromPid(
  pid: V2Segment,
  senderSystem?: string,
): { identifiers: Identifier[]; elements: PatientElements } {
  const identifiers = pid
    .repetitions(3)
    .map((cx) => identifierOf(cx, senderSystem))
    .filter((identifier): identifier is Identifier => identifier !== undefined);
  const elements: PatientElements = {};
  const set = (element: string, field: number, value: () => unknown): void => {
    const raw = pid.value(field);
    if (raw === null) elements[element] = null;
    else if (raw !== undefined) {
      const mapped = value();
      if (mapped !== undefined && !(Array.isArray(mapped) && mapped.length === 0)) {
        elements[element] = mapped;
      }
    }
  };
  set('name', 5, () => pid.repetitions(5).map(humanNameOf).filter(Boolean));
  set('birthDate', 7, () => dateOf(pid.value(7)));
  const birthTime = birthTimeOf(pid);
  if (birthTime) elements['_birthDate'] = birthTime;
  set('gender', 8, () => GENDER[pid.value(8)?.toUpperCase() ?? '']);
  set('address', 11, () => pid.repetitions(11).map(addressOf).filter(Boolean));
  // The language to speak with the patient (an interpreter's cue) and the marital status.
  set('communication', 15, () => {
    const language = codeableConceptOf(pid.repetitions(15)[0]);
    return language ? [{ language, preferred: true }] : undefined;
  });
  set('maritalStatus', 16, () => codeableConceptIn(pid.repetitions(16)[0], '0002'));
  const telecom = telecomOf(pid);
  if (telecom !== undefined) elements['telecom'] = telecom;
  const origins = originsOf(pid);
  if (origins) elements['extension'] = origins;
  // Multiple birth: the birth order (PID-25) when sent, else the indicator (PID-24).
  const order = pid.value(25)?.trim();
  const multiple = pid.value(24)?.toUpperCase();
  if (order && /^[1-9]\d{0,2}$/.test(order)) elements['multipleBirthInteger'] = Number(order);
  else if (multiple === 'Y' || multiple === 'N')
    elements['multipleBirthBoolean'] = multiple === 'Y';
  // PID-29 is a DTM: its time, fraction and offset are kept (a time without an offset is placed
  // in the sender's zone, as every v2 time is), and only a valid one says the patient died then;
  // else the indicator PID-30 says whether they did, as the IG maps it.
  const deceased = pid.value(30)?.toUpperCase();
  const deathTime = dateTimeOf(pid.value(29), pid.timeZone);
  if (deathTime) elements['deceasedDateTime'] = deathTime;
  else if (deceased === 'Y' || deceased === 'N') elements['deceasedBoolean'] = deceased === 'Y';
  else if (pid.value(30) === null) {
    // The death indicator cleared (a death recorded in error): neither form stays.
    elements['deceasedDateTime'] = null;
    elements['deceasedBoolean'] = null;
  }
  return { identifiers, elements };
}

const BIRTH_TIME = 'http://hl7.org/fhir/StructureDefinition/patient-birthTime';

interface BirthTime {
  url?: string;
  valueDateTime?: string;
}

/**
 * PID-7's time of day as the patient-birthTime extension on `birthDate`, as the IG's PID map
 * has it (a newborn's, dropped until 2026-12-06), placed in the sender's zone like every v2
 * time (one that cannot be placed is left out): a change of `_birthDate` replacing that
 * extension only. A birth date sent without a time is applyPatient's (see birthTimeOfDate).
 */
function birthTimeOf(pid: V2Segment): ElementChange | undefined {
  const time = dateTimeOf(pid.value(7), pid.timeZone);
  if (!time?.includes('T')) return undefined;
  return (stored) => {
    const { extension, ...rest } = (stored ?? {}) as { extension?: BirthTime[] };
    const kept = (extension ?? []).filter((one) => one.url !== BIRTH_TIME);
    return { ...rest, extension: [...kept, { url: BIRTH_TIME, valueDateTime: time }] };
  };
}

/**
 * `_birthDate` without a birth time that is not of the patient's birth date (changed, or
 * removed by `""`), null when nothing else is left. A date sent alone keeps the time known of
 * that date: the sender's field is only less precise.
 */
function birthTimeOfDate(patient: Record<string, unknown>): unknown {
  const stored = patient['_birthDate'] as { extension?: BirthTime[] } | undefined;
  if (!stored?.extension) return stored ?? null;
  const { extension, ...rest } = stored;
  const kept = extension.filter(
    (one) => one.url !== BIRTH_TIME || one.valueDateTime?.slice(0, 10) === patient['birthDate'],
  );
  const next = kept.length > 0 ? { ...rest, extension: kept } : rest;
  return Object.keys(next).length > 0 ? next : null;
}

/** One telecom field's ContactPoints: null for `""`, undefined when empty or none maps. */
function telecomField(pid: V2Segment, field: 13 | 14): ContactPoint[] | null | undefined {
  if (pid.value(field) === null) return null;
  const use = field === 13 ? 'home' : 'work';
  const points = pid
    .repetitions(field)
    .map((xtn) => contactPointOf(xtn, use))
    .filter((point): point is ContactPoint => point !== undefined);
  return points.length > 0 ? points : undefined;
}

export const US_CORE_RACE = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
export const US_CORE_ETHNICITY =
  'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity';
/** CDC's Race & Ethnicity code set, which PID-10 and PID-22 send as CDCREC (or HL70005). */
export const CDCREC = 'urn:oid:2.16.840.1.113883.6.238';
const OMB_RACES: ReadonlySet<string> = new Set(['1002-5', '2028-9', '2054-5', '2076-8', '2106-3']);
const OMB_ETHNICITIES: ReadonlySet<string> = new Set(['2135-2', '2186-5']);

/**
 * Race (PID-10) and ethnic group (PID-22) as US Core's extensions, which the IG's PID map and
 * US Core ask for and which were dropped until 2026-12-06: OMB categories and detailed CDC
 * codes, and the text as sent. A change of the patient's extensions that replaces these two
 * only: the others (a client's own) stay. `""` removes one; an empty field leaves it.
 */
function originsOf(pid: V2Segment): ElementChange | undefined {
  const fields = [
    { url: US_CORE_RACE, field: 10, omb: OMB_RACES, most: 5 },
    { url: US_CORE_ETHNICITY, field: 22, omb: OMB_ETHNICITIES, most: 1 },
  ].filter(({ field }) => pid.value(field) !== undefined);
  if (fields.length === 0) return undefined;
  const replaced = new Set(fields.map(({ url }) => url));
  const added = fields.flatMap(({ url, field, omb, most }) => {
    const extension = originExtension(url, pid.repetitions(field), omb, most);
    return pid.value(field) === null || !extension ? [] : [extension];
  });
  return (stored) => {
    const kept = ((stored as { url?: string }[] | undefined) ?? []).filter(
      (extension) => !replaced.has(extension.url ?? ''),
    );
    const next = [...kept, ...added];
    return next.length > 0 ? next : null;
  };
}

function originExtension(
  url: string,
  reps: V2Repetition[],
  omb: ReadonlySet<string>,
  most: number,
): Record<string, unknown> | undefined {
  const parts: Record<string, unknown>[] = [];
  const texts: string[] = [];
  let categories = 0;
  for (const rep of reps) {
    const code = rep.value(1);
    const display = rep.value(2);
    const system = rep.value(3)?.toUpperCase();
    if (display || code) texts.push(display ?? code!);
    if (!code || (system !== 'CDCREC' && system !== 'HL70005')) continue;
    const category = omb.has(code);
    if (category && categories >= most) continue;
    if (category) categories += 1;
    parts.push({
      url: category ? 'ombCategory' : 'detailed',
      valueCoding: { system: CDCREC, code, ...(display ? { display } : {}) },
    });
  }
  if (texts.length === 0) return undefined;
  return { url, extension: [...parts, { url: 'text', valueString: texts.join(', ') }] };
}

/**
 * PID-13 (home) and PID-14 (business) to `telecom`, one element fed by two fields. When one of
 * them is left out, what it gave before is kept: the stored ContactPoints of `use` work are
 * PID-14's, the others PID-13's (a mobile sent in PID-14 is taken for PID-13's, as a FHIR
 * ContactPoint does not say which field it came from). Replacing the whole list instead lost
 * the business phone of a message that sent only the home one, and a `""` alone cleared nothing.
 */
function telecomOf(pid: V2Segment): ContactPoint[] | null | ElementChange | undefined {
  const home = telecomField(pid, 13);
  const work = telecomField(pid, 14);
  if (home === undefined && work === undefined) return undefined;
  const list = (points: ContactPoint[]): ContactPoint[] | null =>
    points.length > 0 ? points : null;
  if (home !== undefined && work !== undefined) return list([...(home ?? []), ...(work ?? [])]);
  return (stored) => {
    const kept = Array.isArray(stored) ? (stored as ContactPoint[]) : [];
    const storedWork = kept.filter((point) => point['use'] === 'work');
    const storedHome = kept.filter((point) => point['use'] !== 'work');
    return home === undefined
      ? list([...storedHome, ...(work ?? [])])
      : list([...(home ?? []), ...storedWork]);
  };
}

/**
 * PD1 to Patient elements (v2-to-FHIR PD1[Patient]): the primary care provider (PD1-4) and
 * primary facility (PD1-3) become `generalPractitioner`, referred to by identifier and name.
 */
export function patientFromPd1(pd1: V2Segment, senderSystem?: string): PatientElements {
  if (pd1.value(3) === null && pd1.value(4) === null) return { generalPractitioner: null };
  const references = [
    ...pd1.repetitions(4).map((xcn) => practitionerOf(xcn, senderSystem)),
    ...pd1.repetitions(3).map((xon) => organizationOf(xon, senderSystem)),
  ].filter(Boolean);
  return references.length > 0 ? { generalPractitioner: references } : {};
}

/**
 * PD1-12 Protection Indicator (table 0136): `Y` asks that the patient's record be kept from
 * those without the authority, which is what a restricted Patient (meta.security R) is here.
 * Only `Y` says anything. A feed's `N` (many send it with every message), `""` or an empty
 * field never lifts a restriction: one that a clinician or privacy officer set, or that an
 * earlier message asked for, is lifted by someone who may label records, through the FHIR API,
 * not by whichever system next sends the patient.
 */
export function protectedByPd1(pd1: V2Segment | undefined): boolean {
  return pd1?.value(12)?.toUpperCase() === 'Y';
}

/**
 * A PID's identifiers, the Patient elements it and the PD1 give, and whether the PD1 asks for
 * the patient to be restricted (see protectedByPd1).
 */
export function patientFromSegments(
  pid: V2Segment,
  sender: string | undefined,
  pd1: V2Segment | undefined,
): { identifiers: Identifier[]; elements: PatientElements; restricted: boolean } {
  const fromPid = patientFromPid(pid, sender);
  return {
    identifiers: fromPid.identifiers,
    elements: { ...fromPid.elements, ...(pd1 ? patientFromPd1(pd1, sender) : {}) },
    restricted: protectedByPd1(pd1),
  };
}

/**
 * The stored Patient with a message's elements applied. Identifiers are merged, never dropped:
 * a message lists the ones its sender knows, not every one the patient has. The stored meta is
 * left out (the store keeps it for a feed's writes); `restrict` asks for the restricted label,
 * which the store adds to it.
 */
export function applyPatient(
  current: Record<string, unknown> | undefined,
  identifiers: Identifier[],
  elements: PatientElements,
  restrict = false,
): Record<string, unknown> {
  const next: Record<string, unknown> = { ...(current ?? { resourceType: 'Patient' }) };
  for (const [element, change] of Object.entries(elements)) {
    const value: unknown =
      typeof change === 'function' ? (change as ElementChange)(next[element]) : change;
    if (value === null) delete next[element];
    else next[element] = value;
  }
  // One type of a choice element at a time.
  if ('deceasedDateTime' in elements) delete next['deceasedBoolean'];
  if ('deceasedBoolean' in elements) delete next['deceasedDateTime'];
  if ('multipleBirthInteger' in elements) delete next['multipleBirthBoolean'];
  if ('multipleBirthBoolean' in elements) delete next['multipleBirthInteger'];
  if ('birthDate' in elements) {
    const birthTime = birthTimeOfDate(next);
    if (birthTime === null) delete next['_birthDate'];
    else next['_birthDate'] = birthTime;
  }
  // A merge hands over the prior patient's identifiers and MRG-1's, which name the same one.
  const merged = [...((current?.['identifier'] as Identifier[] | undefined) ?? [])];
  for (const identifier of identifiers) {
    const at = merged.findIndex((known) => sameIdentifier(known, identifier));
    if (at < 0) merged.push(identifier);
    // Known by its authority's namespace alone until now: the universal id names it better.
    else if (identifier.assigner && !merged[at]!.assigner)
      merged[at] = { ...merged[at]!, system: identifier.system!, assigner: identifier.assigner };
  }
  next['identifier'] = merged;
  delete next['meta'];
  if (restrict) next['meta'] = { security: [RESTRICTED_LABEL] };
  return next;
}

/**
 * Whether the identifiers a message sends for the patient it matched give that patient another
 * medical record number (type MR) of an authority than the one it holds here: one authority's
 * two numbers are two records there, and the message was matched on another identifier only
 * (an SSN two patients share, a placeholder, a typo). Taken, Bob's PID filed his results into
 * Alice's chart and wrote his name over hers. A message sending a new number beside one the
 * patient holds of that authority says they are one patient's, however many it holds there;
 * numbers a merge retired (`use: old`), and those a merge's MRG-1 names (`retiring`), are not
 * the patient's current ones.
 */
export function conflictingRecordNumber(
  stored: Identifier[],
  sent: Identifier[],
  retiring: Identifier[] = [],
): boolean {
  const current = stored.filter(
    (known) =>
      known.use !== 'old' &&
      identifierType(known) === 'MR' &&
      !retiring.some((prior) => sameIdentifier(prior, known)),
  );
  const vouching = current.filter((known) =>
    sent.some((identifier) => sameIdentifier(identifier, known)),
  );
  return sent.some(
    (identifier) =>
      identifierType(identifier) === 'MR' &&
      !stored.some((known) => sameIdentifier(known, identifier)) &&
      current.some((known) => sameAuthority(known, identifier)) &&
      !vouching.some((known) => sameAuthority(known, identifier)),
  );
}

/**
 * FHIR search criteria matching any of the identifiers (with a system: without one, a bare
 * value could match anyone's), under either system of an authority named both ways (see
 * aliasSystem).
 */
export function identifierCriteria(identifiers: Identifier[]): string | undefined {
  const terms = identifiers
    .flatMap((identifier) =>
      [identifier.system, aliasSystem(identifier)]
        .filter((system): system is string => !!system)
        .map((system) => `${escapeSearch(system)}|${escapeSearch(identifier.value)}`),
    )
    .sort();
  return terms.length > 0
    ? `identifier=${[...new Set(terms)].map(encodeURIComponent).join(',')}`
    : undefined;
}

/** FHIR search escapes for `,`, `|`, `$` and `\` inside a value. */
export function escapeSearch(value: string): string {
  return value.replace(/[\\,|$]/g, (char) => `\\${char}`);
}

/**
 * The id of the patient a merge (A40) made this one `replaced-by`, if any: the survivor, to
 * which the prior patient's records (whose references a merge leaves as they were) belong.
 */
export function replacedBy(patient: Record<string, unknown>): string | undefined {
  const links = (patient['link'] as { type?: string; other?: { reference?: string } }[]) ?? [];
  const reference = links.find((link) => link.type === 'replaced-by')?.other?.reference;
  return /^Patient\/([^/]+)$/.exec(reference ?? '')?.[1];
}
