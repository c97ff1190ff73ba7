import { isRestricted } from '../../access/resource-access.js';
import type { FhirResource } from '../../fhir/fhir-types.js';
import { DEFAULT_DELIMITERS as D, escapeText, hl7Timestamp } from '../message/ack.js';
import {
  ASSIGNING_AUTHORITY_SYSTEM,
  codingSystemName,
  CONTACT_POINT_COUNTRY,
  CONTACT_POINT_EXTENSION,
  decodedComponent,
  type Identifier,
} from '../mapping/datatypes.js';
import { CDCREC, US_CORE_ETHNICITY, US_CORE_RACE } from '../mapping/patient.js';
import { ended, inUseFirst, type Period } from './fhir-period.js';

/**
 * The outbound events: a registration (new patient), an update of patient information, the
 * deletion of a person's information (A29; A23 would delete a visit, not the patient), and a
 * merge of two patients' records (A40, merge patient - patient identifier list).
 */
export type AdtEvent = 'A04' | 'A08' | 'A29' | 'A40';

/** The message structure of each event (v2.5.1 table 0354). */
const STRUCTURE: Record<AdtEvent, string> = {
  A04: 'ADT_A01',
  A08: 'ADT_A01',
  A29: 'ADT_A21',
  A40: 'ADT_A39',
};

type Part = string | undefined;

/** Joins already-escaped parts with a delimiter, dropping the empty ones at the end. */
function join(parts: Part[], delimiter: string): string {
  const values = parts.map((part) => part ?? '');
  while (values.at(-1) === '') values.pop();
  return values.join(delimiter);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? escapeText(value, D) : undefined;
}

/**
 * A FHIR identifier system back to the HD it came from (see systemOfHd), as subcomponents,
 * with the authority's namespace id where one was sent with its universal id.
 */
function hdOf(system: string | undefined, namespace: string | undefined): string | undefined {
  if (!system) return undefined;
  if (system.startsWith(ASSIGNING_AUTHORITY_SYSTEM)) {
    return text(decodedComponent(system.slice(ASSIGNING_AUTHORITY_SYSTEM.length)));
  }
  const oid = /^urn:oid:(.+)$/.exec(system)?.[1];
  if (oid) return join([text(namespace), text(oid), 'ISO'], D.subcomponent);
  const uuid = /^urn:uuid:(.+)$/.exec(system)?.[1];
  if (uuid) return join([text(namespace), text(uuid), 'UUID'], D.subcomponent);
  return join([text(namespace), text(system), 'URI'], D.subcomponent);
}

function cxOf(identifier: Identifier): string | undefined {
  if (!identifier.value) return undefined;
  // A type may be text alone, without codings.
  const type = identifier.type?.coding?.find((coding) =>
    coding.system?.endsWith('/CodeSystem/v2-0203'),
  )?.code;
  return join(
    [
      text(identifier.value),
      '',
      '',
      hdOf(identifier.system, identifier.assigner?.display),
      text(type),
    ],
    D.component,
  );
}

interface CodeableConcept {
  coding?: { system?: string; code?: string; display?: string }[];
  text?: string;
}

/** CodeableConcept to CWE: its first coding (code, text, coding system), else its text alone. */
function cweOf(concept: CodeableConcept | undefined): string | undefined {
  const coding = concept?.coding?.find((candidate) => candidate.code);
  if (coding) {
    return join(
      [
        text(coding.code),
        text(coding.display ?? concept?.text),
        text(codingSystemName(coding.system)),
      ],
      D.component,
    );
  }
  return concept?.text ? join(['', text(concept.text)], D.component) : undefined;
}

interface Communication {
  language?: CodeableConcept;
  preferred?: boolean;
}

const NAME_USE: Record<string, string> = {
  official: 'L',
  usual: 'D',
  maiden: 'M',
  nickname: 'N',
  anonymous: 'S',
  old: 'BAD',
};

interface HumanName {
  period?: Period;
  use?: string;
  family?: string;
  given?: string[];
  prefix?: string[];
  suffix?: string[];
}

function xpnOf(name: HumanName): string {
  const [first, ...middle] = name.given ?? [];
  return join(
    [
      text(name.family),
      text(first),
      text(middle.join(' ')),
      text(name.suffix?.join(' ')),
      text(name.prefix?.join(' ')),
      '',
      NAME_USE[name.use ?? ''],
      // XPN-10, the validity range, is kept for backward compatibility only since v2.5: its
      // successors are XPN-12 and XPN-13, effective and expiration date.
      '',
      '',
      '',
      '',
      dtmOf(name.period?.start),
      dtmOf(name.period?.end),
    ],
    D.component,
  );
}

const ADDRESS_USE: Record<string, string> = { home: 'H', work: 'B', temp: 'C', old: 'BA' };

interface Address {
  period?: Period;
  use?: string;
  type?: string;
  line?: string[];
  city?: string;
  state?: string;
  postalCode?: string;
  country?: string;
}

function xadOf(address: Address): string {
  const [street, ...other] = address.line ?? [];
  return join(
    [
      text(street),
      text(other.join(' ')),
      text(address.city),
      text(address.state),
      text(address.postalCode),
      text(address.country),
      address.type === 'postal' ? 'M' : ADDRESS_USE[address.use ?? ''],
      // XAD-12, the validity range, is kept for backward compatibility only since v2.5: its
      // successors are XAD-13 and XAD-14, effective and expiration date.
      '',
      '',
      '',
      '',
      '',
      dtmOf(address.period?.start),
      dtmOf(address.period?.end),
    ],
    D.component,
  );
}

interface ContactPoint {
  period?: Period;
  system?: string;
  value?: string;
  use?: string;
  extension?: { url?: string; valueString?: string }[];
}

// An sms number is a cellular phone's (table 0202 has no text-only equipment).
const EQUIPMENT: Record<string, string> = { phone: 'PH', fax: 'FX', pager: 'BP', sms: 'CP' };

/**
 * ContactPoint to XTN (v2.5): email in XTN-4, a number as XTN-1 and unformatted in XTN-12, its
 * country code and extension (as contactPointOf keeps them) in XTN-5 and XTN-8.
 */
function xtnOf(point: ContactPoint): string | undefined {
  const value = text(point.value);
  if (!value) return undefined;
  const use = point.use === 'work' ? 'WPN' : 'PRN';
  // Table 0202 has no code for a web address: a url goes as an Internet address as an email
  // does (FHIR's ConceptMap cm-contact-point-system-v2), and the inbound map tells the two
  // apart by the value (see networkSystem in mapping/datatypes.ts).
  if (point.system === 'email' || point.system === 'url') {
    return join(['', 'NET', 'Internet', value], D.component);
  }
  const equipment = point.use === 'mobile' ? 'CP' : (EQUIPMENT[point.system ?? ''] ?? 'PH');
  const part = (url: string): string | undefined =>
    text(point.extension?.find((extension) => extension.url === url)?.valueString);
  const country = part(CONTACT_POINT_COUNTRY);
  const extension = part(CONTACT_POINT_EXTENSION);
  return join(
    [value, use, equipment, '', country, '', '', extension, '', '', '', value],
    D.component,
  );
}

const GENDER: Record<string, string> = { male: 'M', female: 'F', other: 'O', unknown: 'U' };

/** A FHIR date or dateTime to an HL7 DT/DTM, by its digits (no time zone arithmetic). */
function dtOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(value);
  return match ? match.slice(1).filter(Boolean).join('') : undefined;
}

/** PID-7: the birth date, with its time of day when the patient-birthTime extension gives it. */
function birthOf(patient: Record<string, unknown>): string | undefined {
  const date = patient['birthDate'];
  const extensions = (patient['_birthDate'] as { extension?: unknown[] } | undefined)?.extension;
  const time = (extensions as { url?: string; valueDateTime?: unknown }[] | undefined)?.find(
    (one) => one.url === 'http://hl7.org/fhir/StructureDefinition/patient-birthTime',
  )?.valueDateTime;
  return typeof time === 'string' && time.startsWith(`${String(date)}T`) ? dtmOf(time) : dtOf(date);
}

/**
 * A FHIR dateTime to an HL7 DTM by its digits: its time, fraction (to DTM's four digits) and
 * UTC offset kept as written (Z is +0000), a date alone as a date. Never through a Date: moved
 * to UTC, an evening death would fall on the next day for a receiver that keeps the date.
 */
function dtmOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const time = /T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(value);
  const date = dtOf(value);
  if (!time || !date) return date;
  const [, hour, minute, second = '', fraction = '', zone] = time;
  const offset = zone === undefined ? '' : zone === 'Z' ? '+0000' : zone.replace(':', '');
  return `${date}${hour}${minute}${second}${fraction.slice(0, 5)}${offset}`;
}

/** CX-4 of CareVault's own ids: the sending application's name (MSH-3), unless ownAuthority. */
const OWN_AUTHORITY = 'CAREVAULT';

/**
 * CX-4 of the resource id: MSH-4's HD (HL7_OUTBOUND_FACILITY) as subcomponents when it has a
 * universal id, which tells one CareVault's ids from another's at a receiver both feed; until
 * 2026-12-07 always CAREVAULT. A name alone is not unique, and stays CAREVAULT.
 */
function ownAuthority(facility: string): string {
  const [namespace, universalId, type] = facility.split('^');
  return universalId && type
    ? join([text(namespace), text(universalId), text(type)], D.subcomponent)
    : OWN_AUTHORITY;
}

function repeat(values: (string | undefined)[]): string {
  return values.filter((value): value is string => !!value).join(D.repetition);
}

/** The Patient elements each PID field pidOf fills is made from (PID-3 aside: it identifies). */
const SOURCES: Record<number, (patient: Record<string, unknown>, now: Date) => unknown[]> = {
  5: (patient) => [patient['name']],
  7: (patient) => [patient['birthDate']],
  8: (patient) => [patient['gender']],
  11: (patient) => [patient['address']],
  13: (patient, now) => [telecomOf(patient, now).filter((point) => point.use !== 'work')],
  14: (patient, now) => [telecomOf(patient, now).filter((point) => point.use === 'work')],
  15: (patient) => [patient['communication']],
  16: (patient) => [patient['maritalStatus']],
  10: (patient) => [originOf(patient, US_CORE_RACE)],
  22: (patient) => [originOf(patient, US_CORE_ETHNICITY)],
  24: (patient) => [patient['multipleBirthBoolean'], patient['multipleBirthInteger']],
  25: (patient) => [patient['multipleBirthInteger']],
  29: (patient) => [patient['deceasedDateTime']],
  30: (patient) => [patient['deceasedDateTime'], patient['deceasedBoolean']],
};

interface OriginPart {
  url?: string;
  valueCoding?: { system?: string; code?: string; display?: string };
}

/**
 * PID-10 (race) or PID-22 (ethnic group): the CDC codes of US Core's extension, as the CWEs
 * patientFromPid reads them (CDCREC), its categories and detailed codes both. Left out of the
 * outbound PID until 2026-12-06, though the inbound map keeps them.
 */
function originOf(patient: Record<string, unknown>, url: string): string | undefined {
  const extensions = (patient['extension'] as { url?: string; extension?: OriginPart[] }[]) ?? [];
  const parts = (extensions.find((extension) => extension.url === url)?.extension ?? []).filter(
    (part) =>
      (part.url === 'ombCategory' || part.url === 'detailed') &&
      part.valueCoding?.system === CDCREC &&
      part.valueCoding.code,
  );
  return parts.length > 0
    ? repeat(
        parts.map(({ valueCoding }) =>
          join([text(valueCoding!.code), text(valueCoding!.display), 'CDCREC'], D.component),
        ),
      )
    : undefined;
}

/**
 * The ContactPoints in use. One that is `old` (no longer in use) or whose period has ended has
 * no place in v2.5.1's XTN, which has no end date and no such use code: until 2026-12-07 it
 * went as a current number (PRN), and the receiver called a number the patient had given up.
 * Left out, an update clears it there when the Patient has no other.
 */
function telecomOf(patient: Record<string, unknown>, now: Date): ContactPoint[] {
  const telecom = (patient['telecom'] as ContactPoint[] | undefined) ?? [];
  return telecom.filter((point) => point.use !== 'old' && !ended(point, now));
}

function absent(value: unknown): boolean {
  return value === undefined || value === null || (Array.isArray(value) && value.length === 0);
}

/**
 * PID-3 (or MRG-1): the Patient's identifiers, and its resource id, type PI, as PID-3 is
 * required and a Patient may have no identifier. Not those a merge retired (`old`): they name
 * the duplicate record, not this patient, and a receiver still holding that record would find
 * two patients in one PID-3.
 */
function identifiersOf(patient: Record<string, unknown>, authority: string): string {
  const identifiers = (patient['identifier'] as Identifier[] | undefined) ?? [];
  const own =
    typeof patient['id'] === 'string'
      ? join([text(patient['id']), '', '', authority, 'PI'], D.component)
      : undefined;
  const cxs = [...identifiers.filter((id) => id.use !== 'old').map(cxOf), own];
  return repeat([...new Set(cxs)]);
}

/**
 * Patient to PID (the inverse of patientFromPid, v2-to-FHIR PID[Patient] read backwards). An
 * update (`clears`) says `""` for a mapped field whose Patient elements are absent: to a
 * receiver an empty field means "unchanged", so a phone or address removed here would stay
 * there. Only then: an element PID has no place for (a name or address given as text alone, a
 * ContactPoint without a value) leaves its field empty, as `""` would delete what the
 * receiver holds while the Patient still has it.
 */
export function pidOf(
  patient: Record<string, unknown>,
  now: Date,
  clears = false,
  authority = OWN_AUTHORITY,
): string {
  const names = (patient['name'] as HumanName[] | undefined) ?? [];
  const addresses = (patient['address'] as Address[] | undefined) ?? [];
  const telecom = telecomOf(patient, now);
  const deceased = patient['deceasedDateTime'] ?? patient['deceasedBoolean'];
  const fields: Part[] = [];
  fields[1] = '1';
  fields[3] = identifiersOf(patient, authority);
  fields[5] = repeat(inUseFirst(names, now).map(xpnOf));
  fields[7] = birthOf(patient);
  fields[8] = GENDER[String(patient['gender'])];
  fields[11] = repeat(inUseFirst(addresses, now).map(xadOf));
  fields[13] = repeat(telecom.filter((point) => point.use !== 'work').map(xtnOf));
  fields[14] = repeat(telecom.filter((point) => point.use === 'work').map(xtnOf));
  const languages = (patient['communication'] as Communication[] | undefined) ?? [];
  fields[15] = cweOf((languages.find((entry) => entry.preferred) ?? languages[0])?.language);
  fields[16] = cweOf(patient['maritalStatus'] as CodeableConcept | undefined);
  fields[10] = originOf(patient, US_CORE_RACE);
  fields[22] = originOf(patient, US_CORE_ETHNICITY);
  // Multiple birth: the indicator, and the birth order when the Patient gives it.
  const order = patient['multipleBirthInteger'];
  const multiple = typeof order === 'number' ? true : patient['multipleBirthBoolean'];
  fields[24] = multiple === true ? 'Y' : multiple === false ? 'N' : undefined;
  fields[25] = typeof order === 'number' ? String(order) : undefined;
  fields[29] = dtmOf(patient['deceasedDateTime']);
  fields[30] = deceased === undefined ? undefined : deceased === false ? 'N' : 'Y';
  if (clears) {
    for (const [field, source] of Object.entries(SOURCES)) {
      if (source(patient, now).every(absent)) fields[Number(field)] = '""';
    }
  }
  return join(['PID', ...fields.slice(1)], D.field);
}

/**
 * PD1-12 Protection Indicator (table 0136): `Y` for a restricted Patient (meta.security R), so
 * that the receiver keeps it from users without the authority, as break-glass does here. `N` in
 * an update of one that is not, to lift a `Y` the receiver may hold (an empty field would leave
 * it); a new or deleted patient without restriction has nothing to say, and gets no PD1.
 */
function pd1Of(patient: Record<string, unknown>, event: AdtEvent): string | undefined {
  const restricted = isRestricted(patient as FhirResource);
  if (!restricted && event !== 'A08') return undefined;
  return join(['PD1', ...Array<string>(11).fill(''), restricted ? 'Y' : 'N'], D.field);
}

/** A configured HD (`NAME^universal id^type`), its components escaped. */
function hd(value: string): string {
  return join(value.split('^').slice(0, 3).map(text), D.component);
}

/**
 * An ADT^A04 (new patient), ADT^A08 (patient changed), ADT^A29 (patient deleted) or ADT^A40
 * (`prior` merged into the patient, with an MRG) with the
 * Patient's PID (for an A29, as last stored, to find the patient by), and PD1 for its
 * protection, in UTF-8 (MSH-18), every value escaped. PV1 is required by both structures
 * (ADT_A01, ADT_A21); class N says there is no visit.
 */
export function adtOfPatient(
  patient: Record<string, unknown>,
  event: AdtEvent,
  header: {
    facility: string;
    /** MSH-11: P, T or D (HL7_OUTBOUND_PROCESSING_ID). */
    processingId: string;
    receivingApplication: string;
    receivingFacility: string;
    controlId: string;
    now: Date;
  },
  /** For an A40: the Patient merged into `patient`, as it was before the merge. */
  prior?: Record<string, unknown>,
): string {
  const msh = join(
    [
      'MSH',
      D.encoding,
      OWN_AUTHORITY,
      // HDs: `CAREVAULT`, or `CAREVAULT^2.16.840.1.113883.19.99^ISO` with the universal id
      // many receivers route on (until 2026-12-06 the ^ went out escaped, as text). MSH-5 and
      // MSH-6 name the receiver, empty unless its destination says (until 2026-12-06 always).
      hd(header.facility),
      hd(header.receivingApplication),
      hd(header.receivingFacility),
      hl7Timestamp(header.now),
      '',
      join(['ADT', event, STRUCTURE[event]], D.component),
      header.controlId,
      header.processingId,
      '2.5.1',
      // MSH-15 and MSH-16 empty: original-mode acknowledgement, one ACK after the receiver
      // has committed the message.
      '',
      '',
      '',
      '',
      '',
      'UNICODE UTF-8',
    ],
    D.field,
  );
  const evn = join(['EVN', event, hl7Timestamp(header.now)], D.field);
  const pd1 = pd1Of(patient, event);
  const authority = ownAuthority(header.facility);
  // ADT_A39: PID is the surviving patient and MRG-1 the identifiers the receiver knows the
  // merged one by (its resource id among them), for it to merge its two records as well. PV1
  // is optional there: a merge of patients concerns no visit.
  const segments = [
    msh,
    evn,
    pidOf(patient, header.now, event === 'A08', authority),
    ...(pd1 ? [pd1] : []),
    ...(event === 'A40' ? [join(['MRG', identifiersOf(prior ?? {}, authority)], D.field)] : []),
    ...(event === 'A40' ? [] : ['PV1|1|N']),
  ];
  return segments.join('\r') + '\r';
}
