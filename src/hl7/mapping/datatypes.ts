import { periodInOrder } from '../../fhir/period-order.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Repetition, V2Segment, V2Value } from '../message/v2-message.js';

/**
 * HL7 v2 data types to FHIR R4, after the v2-to-FHIR Implementation Guide's data type maps.
 * Each function takes one repetition and gives undefined when it carries nothing usable.
 */

/**
 * A URI component as encodeURIComponent wrote it, decoded; as it is when it is no such thing.
 * A system a FHIR client wrote by hand (`…:assigning-authority:100%`) may hold a `%` that
 * escapes nothing, and decodeURIComponent throws on it.
 */
export function decodedComponent(component: string): string {
  try {
    return decodeURIComponent(component);
  } catch {
    return component;
  }
}

/** Where CX-4 / HD names no OID, UUID or URI, its namespace id becomes a system under this. */
export const ASSIGNING_AUTHORITY_SYSTEM = 'urn:carevault:v2:assigning-authority:';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

export interface Identifier {
  use?: string;
  system?: string;
  value: string;
  type?: { coding: { system: string; code: string }[] };
  /** The authority's namespace id (HD-1), kept where HD-2 gave the system: see aliasSystem. */
  assigner?: { display: string };
}

/** The system an assigning authority's namespace id alone gives (see systemOfHd). */
export function namespaceSystem(namespace: string): string {
  return `${ASSIGNING_AUTHORITY_SYSTEM}${encodeURIComponent(namespace.trim())}`;
}

/**
 * The other system the identifier's authority is known by: an HD names one authority by its
 * namespace id and its universal id together, and a feed that sends the namespace alone
 * (`MRN^^^HOSPA`) means the authority another sends as `MRN^^^HOSPA&2.16.840.1.113883.19.5&ISO`.
 * Each gives its own system, so without this one patient became two, and the lab's results
 * were filed under a patient no one else knew.
 */
export function aliasSystem(identifier: Identifier): string | undefined {
  const namespace = identifier.assigner?.display;
  return namespace ? namespaceSystem(namespace) : undefined;
}

/** Identifier types of table 0203 (v2-0203): an order's placer (PLAC) and filler (FILL) numbers. */
export const IDENTIFIER_TYPES = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** An identifier with its table 0203 type, as the IG types order numbers. */
export function typedIdentifier(
  identifier: Identifier | undefined,
  code: 'PLAC' | 'FILL',
): Identifier | undefined {
  return identifier && { ...identifier, type: { coding: [{ system: IDENTIFIER_TYPES, code }] } };
}

/**
 * The same identifier: the same value from the same authority, whichever of its systems each
 * was given (see aliasSystem). The type is what the sender called it.
 */
export function sameIdentifier(a: Identifier, b: Identifier): boolean {
  return a.value === b.value && sameAuthority(a, b);
}

/** Identifiers of the same assigning authority, whichever of its systems each was given. */
export function sameAuthority(a: Identifier, b: Identifier): boolean {
  return a.system === b.system || aliasOf(a, b) || aliasOf(b, a);
}

/**
 * Whether `one` was named by the namespace whose system `other` has. Without an alias, none:
 * compared as undefined, it made an identifier of no system (as FHIR may store one) of every
 * authority, and a patient holding such a medical record number refused every new one.
 */
function aliasOf(one: Identifier, other: Identifier): boolean {
  const alias = aliasSystem(one);
  return alias !== undefined && alias === other.system;
}

/** An identifier's table 0203 type code (`MR`), if it has one. */
export function identifierType(identifier: Identifier): string | undefined {
  return identifier.type?.coding.find((coding) => coding.system === V2_0203)?.code;
}

/** HD (hierarchic designator) to a URI: OID, UUID, URI, or the namespace id under our prefix. */
export function systemOfHd(
  namespace: V2Value,
  universalId: V2Value,
  idType: V2Value,
): string | undefined {
  const type = idType?.toUpperCase();
  if (universalId && type === 'ISO' && /^[0-2](\.\d+)+$/.test(universalId))
    return `urn:oid:${universalId}`;
  if (universalId && type === 'UUID') return `urn:uuid:${universalId.toLowerCase()}`;
  if (universalId && (type === 'URI' || /^https?:\/\//.test(universalId))) return universalId;
  if (namespace) return namespaceSystem(namespace);
  return undefined;
}

/**
 * CX (extended composite id) to Identifier. An id without an assigning authority (CX-4) is
 * taken as the sender's own: `fallbackSystem` is the sending facility's system.
 */
export function identifierOf(cx: V2Repetition, fallbackSystem?: string): Identifier | undefined {
  const value = cx.value(1);
  if (!value) return undefined;
  const namespace = cx.value(4, 1)?.trim();
  const hdSystem = systemOfHd(namespace, cx.value(4, 2), cx.value(4, 3));
  const system = hdSystem ?? fallbackSystem;
  const typeCode = cx.value(5);
  // The namespace id of an authority named by its universal id too (see aliasSystem).
  const aliased = namespace && hdSystem && hdSystem !== namespaceSystem(namespace);
  return {
    ...(system ? { system } : {}),
    value,
    ...(typeCode ? { type: { coding: [{ system: V2_0203, code: typeCode }] } } : {}),
    ...(aliased ? { assigner: { display: namespace } } : {}),
  };
}

const NAME_USE: Record<string, string> = {
  L: 'official',
  D: 'usual',
  M: 'maiden',
  N: 'nickname',
  S: 'anonymous',
  B: 'old',
  BAD: 'old',
};

/** XPN (person name) to HumanName. */
export function humanNameOf(xpn: V2Repetition): Record<string, unknown> | undefined {
  const family = xpn.value(1, 1);
  const given = [xpn.value(2), xpn.value(3)].filter((part): part is string => !!part);
  const suffix = xpn.value(4);
  const prefix = xpn.value(5);
  if (!family && given.length === 0) return undefined;
  const use = NAME_USE[xpn.value(7)?.toUpperCase() ?? ''];
  const period = validityOf(xpn, 10, 12);
  return {
    ...(use ? { use } : {}),
    ...(family ? { family } : {}),
    ...(given.length > 0 ? { given } : {}),
    ...(prefix ? { prefix: [prefix] } : {}),
    ...(suffix ? { suffix: [suffix] } : {}),
    ...(period ? { period } : {}),
  };
}

/**
 * When a name or an address held (XPN-12/13, XAD-13/14: effective and expiration date; before
 * v2.5 the range at XPN-10, XAD-12), as the IG maps them to its period. Until 2026-12-07 they
 * were dropped, and a name or an address a sender had ended arrived as current.
 */
function validityOf(
  field: V2Repetition,
  range: number,
  effective: number,
): { start?: string; end?: string } | undefined {
  const start = dateTimeOf(field.value(effective) ?? field.value(range, 1));
  const end = dateTimeOf(field.value(effective + 1) ?? field.value(range, 2));
  if (!start && !end) return undefined;
  // Ending before it starts is no period (FHIR's per-1), and would fail the whole resource.
  // Compared by per-1's own rule: an end of a month or a year covers a start within it, which
  // Date.parse, reading `2020-06` as June 1st, took for an end before a start of June 15th.
  if (start && end && !periodInOrder(start, end)) return undefined;
  return { ...(start ? { start } : {}), ...(end ? { end } : {}) };
}

const ADDRESS_USE: Record<string, { use?: string; type?: string }> = {
  H: { use: 'home' },
  B: { use: 'work' },
  O: { use: 'work' },
  C: { use: 'temp' },
  BA: { use: 'old' },
  M: { type: 'postal' },
};

/** XAD (address) to Address. */
export function addressOf(xad: V2Repetition): Record<string, unknown> | undefined {
  const line = [xad.value(1, 1), xad.value(2)].filter((part): part is string => !!part?.trim());
  const fields = {
    city: xad.value(3)?.trim(),
    state: xad.value(4)?.trim(),
    postalCode: xad.value(5)?.trim(),
    country: xad.value(6)?.trim(),
  };
  const present = Object.fromEntries(Object.entries(fields).filter(([, value]) => !!value));
  if (line.length === 0 && Object.keys(present).length === 0) return undefined;
  const period = validityOf(xad, 12, 13);
  return {
    ...ADDRESS_USE[xad.value(7)?.toUpperCase() ?? ''],
    ...(line.length > 0 ? { line: line.map((part) => part.trim()) } : {}),
    ...present,
    ...(period ? { period } : {}),
  };
}

/**
 * XTN-3 equipment type (table 0202) to ContactPoint.system, as the IG's ConceptMap
 * table-hl70202-to-contact-point-system has it (a cell phone is a phone whose use is mobile).
 * `network` is an Internet address: an email, or a url (see networkSystem).
 */
const EQUIPMENT_SYSTEM: Record<string, string> = {
  PH: 'phone',
  CP: 'phone',
  FX: 'fax',
  BP: 'pager',
  MD: 'other',
  SAT: 'other',
  TDD: 'other',
  TTY: 'other',
  INTERNET: 'network',
  'X.400': 'email',
};

/**
 * Table 0202 has no code for a web address: FHIR's own ConceptMap cm-contact-point-system-v2
 * sends a url, as an email, as an Internet address, and so does CareVault's outbound ADT. The
 * IG reads an Internet address as an email; one that is no email address (a URI with a scheme
 * other than mailto, `https://…`, or a value without an `@`, `www.example.org`) is read as the
 * url it is, so that a url survives a round trip through v2.
 */
function networkSystem(address: string): 'email' | 'url' {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(address)?.[1]?.toLowerCase();
  return (scheme ? scheme !== 'mailto' : !address.includes('@')) ? 'url' : 'email';
}

/**
 * XTN (telecom) to ContactPoint, after the IG's XTN[ContactPoint] map; `use` is the field's
 * (home for PID-13, work for PID-14, as XTN-2's PRN and WPN say), mobile for a cell phone (XTN-3
 * CP) or a personal number (XTN-2 PRS). The system is XTN-3's; feeds that leave it empty (before
 * v2.3 it was often not sent) say a network address or a beeper by XTN-2 (NET, BPN).
 */
export function contactPointOf(
  xtn: V2Repetition,
  use: 'home' | 'work',
): Record<string, unknown> | undefined {
  const equipment = xtn.value(3)?.toUpperCase();
  const useCode = xtn.value(2)?.toUpperCase();
  const kind =
    EQUIPMENT_SYSTEM[equipment ?? ''] ??
    (useCode === 'NET' ? 'network' : useCode === 'BPN' ? 'pager' : 'phone');
  if (kind === 'network' || kind === 'email') {
    const address = xtn.value(4) ?? xtn.value(1);
    if (!address) return undefined;
    return { system: kind === 'email' ? kind : networkSystem(address), value: address, use };
  }
  const local = [xtn.value(6), xtn.value(7)].filter(Boolean).join(' ');
  const value = xtn.value(12) ?? (local || xtn.value(1));
  if (!value) return undefined;
  // The country code (XTN-5) and the extension (XTN-8) in the extensions the IG's XTN map
  // names, so that the value stays the number as dialled locally (and searched by its digits).
  const extension = [
    [CONTACT_POINT_COUNTRY, xtn.value(5)],
    [CONTACT_POINT_EXTENSION, xtn.value(8)],
  ].flatMap(([url, part]) => (part ? [{ url, valueString: part }] : []));
  return {
    system: kind,
    value,
    use: equipment === 'CP' || useCode === 'PRS' ? 'mobile' : use,
    ...(extension.length > 0 ? { extension } : {}),
  };
}

export const CONTACT_POINT_COUNTRY = 'http://hl7.org/fhir/StructureDefinition/contactpoint-country';
export const CONTACT_POINT_EXTENSION =
  'http://hl7.org/fhir/StructureDefinition/contactpoint-extension';

/**
 * DT/DTM to a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD), by the digits alone: a birth date must
 * never pass through a JavaScript Date, whose time zone can move it a day. The whole value must
 * be a DT or DTM: read as far as its digits went, `1980041` (a digit lost) was April 1980 and
 * `19800412X` the 12th, stored with no warning to the sender.
 */
export function dateOf(value: V2Value): string | undefined {
  const match = DT_OR_DTM.exec(value ?? '');
  if (!match) return undefined;
  const [, year, month, day] = match;
  if (month && (Number(month) < 1 || Number(month) > 12)) return undefined;
  // The days the month has (February 29th in leap years only): 20250231 is no date.
  const last = month ? new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate() : 31;
  if (day && (Number(day) < 1 || Number(day) > last)) return undefined;
  return [year, month, day].filter(Boolean).join('-');
}

/** A DT, or a DTM (its time's digits checked by the caller), with an optional UTC offset. */
const DT_OR_DTM =
  /^(\d{4})(?:(\d{2})(?:(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d+)?)?)?)?)?)?(?:[+-]\d{4})?$/;

/**
 * Whether a DTM's time of day is none (`20261206246000`: hour 24), which dateTimeOf drops,
 * keeping the date: a sender is told so (see resultTimeWarnings), never the value.
 */
export function hasInvalidTime(value: V2Value): boolean {
  const match = /^\d{8}(\d{2})(\d{2})?(\d{2})?/.exec(value ?? '');
  if (!match) return false;
  const [, hour, minute = '00', second = '00'] = match;
  return Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59;
}

/**
 * DTM to a FHIR dateTime. A time without a UTC offset is in the sender's local time: placed in
 * `timeZone` when the deployment names it (HL7_TIME_ZONE), else given as its date only rather
 * than at a guessed offset (FHIR requires one with a time).
 */
export function dateTimeOf(value: V2Value, timeZone?: string): string | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/.exec(
    value ?? '',
  );
  if (!match) return dateOf(value);
  const [, year, month, day, hour, minute = '00', second = '00', fraction = '', offset] = match;
  // A day the month lacks is no date at all; a time past 23:59:59 leaves the date alone.
  if (dateOf(`${year}${month}${day}`) === undefined) return undefined;
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return dateOf(value);
  const local = `${year}-${month}-${day}T${hour}:${minute}:${second}`;
  if (offset) {
    // An offset no place has (+1500, -0160) is no time either: FHIR's dateTime allows -14:00 to
    // +14:00, and the resource written with one failed validation.
    const minutes = Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3));
    if (Number(offset.slice(3)) > 59 || minutes > 14 * 60) return dateOf(value);
    return `${local}${fraction}${offset.slice(0, 3)}:${offset.slice(3)}`;
  }
  return timeZone ? `${local}${fraction}${offsetIn(timeZone, local)}` : dateOf(value);
}

/**
 * The UTC offset (`-05:00`) that a wall-clock time (`2025-01-10T09:30:00`) has in an IANA zone,
 * daylight saving included. A time the clocks skip or repeat when they change takes the offset
 * in force just before the change.
 */
export function offsetIn(timeZone: string, local: string): string {
  const wall = Date.parse(`${local}Z`);
  // The offsets in force a day before and a day after; the one (or, when the clocks go back,
  // the earlier of the two) at which the wall time exists, else the one before the change.
  const around = [minutesAhead(timeZone, wall - DAY), minutesAhead(timeZone, wall + DAY)];
  const fits = around.filter(
    (minutes) => minutesAhead(timeZone, wall - minutes * 60_000) === minutes,
  );
  const minutes = fits.length > 0 ? Math.max(...fits) : around[0]!;
  const sign = minutes < 0 ? '-' : '+';
  const hours = String(Math.floor(Math.abs(minutes) / 60)).padStart(2, '0');
  return `${sign}${hours}:${String(Math.abs(minutes) % 60).padStart(2, '0')}`;
}

const DAY = 86_400_000;
const zoneFormats = new Map<string, Intl.DateTimeFormat>();

/** Minutes a zone's clocks are ahead of UTC at an instant (negative west of Greenwich). */
function minutesAhead(timeZone: string, instant: number): number {
  let format = zoneFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    zoneFormats.set(timeZone, format);
  }
  const parts = format.formatToParts(instant);
  const at = (type: Intl.DateTimeFormatPartTypes): number =>
    Number(parts.find((part) => part.type === type)?.value);
  // Not Date.UTC, which reads the years 0 to 99 as 1900 to 1999 (an offset of 1,900 years).
  const wall = new Date(0);
  wall.setUTCFullYear(at('year'), at('month') - 1, at('day'));
  wall.setUTCHours(at('hour'), at('minute'), at('second'));
  return Math.round((wall.getTime() - instant) / 60_000);
}

/**
 * A dateTime with a time (as dateTimeOf gives it) moved by some minutes, at its own offset. A
 * duration (`field`) that ends past the year 9999 is the sender's error, named as such.
 */
export function plusMinutes(instant: string, minutes: number, field: string): string {
  const [, date, time, offset] = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(.*)$/.exec(instant)!;
  const moved = new Date(Date.parse(`${date}T${time}Z`) + minutes * 60_000);
  if (!(moved.getTime() < LAST_INSTANT)) {
    throw new Hl7ProcessingError('102', `${field} is a duration that ends after the year 9999`);
  }
  return `${moved.toISOString().slice(0, 19)}${offset}`;
}

/** 10000-01-01T00:00:00Z: FHIR dates have four-digit years. */
const LAST_INSTANT = Date.UTC(10_000, 0, 1);

/** Coding-system names of CWE/CE (table 0396) that have a FHIR system URI. */
const CODING_SYSTEMS: Record<string, string> = {
  LN: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  SNM: 'http://snomed.info/sct',
  UCUM: 'http://unitsofmeasure.org',
  I10: 'http://hl7.org/fhir/sid/icd-10',
  'I10-CM': 'http://hl7.org/fhir/sid/icd-10-cm',
  I9: 'http://hl7.org/fhir/sid/icd-9-cm',
  I9C: 'http://hl7.org/fhir/sid/icd-9-cm',
  I9CM: 'http://hl7.org/fhir/sid/icd-9-cm',
  RXNORM: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  C4: 'http://www.ama-assn.org/go/cpt',
  CPT: 'http://www.ama-assn.org/go/cpt',
  CVX: 'http://hl7.org/fhir/sid/cvx',
  NDC: 'http://hl7.org/fhir/sid/ndc',
  // The immunization feeds' (CDC IG): a route of RXR-1 and a funding source or eligibility
  // scope of an OBX, under the URIs HL7 Terminology (THO) gives NCI Thesaurus and the CDC
  // Local Coding System (PHIN VS, OID 2.16.840.1.114222.4.5.274). NIP001 and NIP002 have none
  // there, and stay local.
  NCIT: 'http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl',
  CDCPHINVS: 'https://phinvads.cdc.gov/vads/ViewCodeSystem.action?id=2.16.840.1.114222.4.5.274',
};

/** Where a coding system has no FHIR URI (local codes, 99zzz), its name under this. */
export const LOCAL_CODING_SYSTEM = 'urn:carevault:v2:coding-system:';

export function codingSystemOf(name: V2Value): string | undefined {
  if (!name) return undefined;
  const upper = name.toUpperCase();
  // HL7nnnn names an HL7-defined table, which FHIR publishes as a code system.
  const table = /^HL7(\d{4})$/.exec(upper)?.[1];
  if (table) return `http://terminology.hl7.org/CodeSystem/v2-${table}`;
  return CODING_SYSTEMS[upper] ?? `${LOCAL_CODING_SYSTEM}${encodeURIComponent(name)}`;
}

/** A coding system URI back to its CWE name (the inverse of codingSystemOf), when it has one. */
export function codingSystemName(system: string | undefined): string | undefined {
  if (!system) return undefined;
  const table = /^http:\/\/terminology\.hl7\.org\/CodeSystem\/v2-(\d{4})$/.exec(system)?.[1];
  if (table) return `HL7${table}`;
  if (system.startsWith(LOCAL_CODING_SYSTEM)) {
    return decodedComponent(system.slice(LOCAL_CODING_SYSTEM.length));
  }
  return Object.entries(CODING_SYSTEMS).find(([, uri]) => uri === system)?.[0];
}

/** CWE/CE (coded element) to CodeableConcept: the identifier and the alternate identifier. */
export function codeableConceptOf(
  cwe: V2Repetition | undefined,
): Record<string, unknown> | undefined {
  if (!cwe) return undefined;
  const coding = [1, 4]
    .map((at) => ({
      code: cwe.value(at),
      display: cwe.value(at + 1),
      system: codingSystemOf(cwe.value(at + 2)),
    }))
    .filter((part) => part.code)
    .map((part) => ({
      ...(part.system ? { system: part.system } : {}),
      code: part.code,
      ...(part.display ? { display: part.display } : {}),
    }));
  const text = cwe.value(9) ?? cwe.value(2) ?? cwe.value(5);
  if (coding.length === 0 && !text) return undefined;
  return { ...(coding.length > 0 ? { coding } : {}), ...(text ? { text } : {}) };
}

/**
 * A CWE of an HL7 table as a CodeableConcept: a code the sender gives without naming its coding
 * system is taken as the table's (`http://terminology.hl7.org/CodeSystem/v2-0270`...), when it
 * looks like one (a short token: not `NHS Provider-General (inc. A&E)`, which stays systemless).
 */
export function codeableConceptIn(
  cwe: V2Repetition | undefined,
  table: string,
): Record<string, unknown> | undefined {
  const concept = codeableConceptOf(cwe);
  const coding = concept?.['coding'] as { system?: string; code: string }[] | undefined;
  if (!concept || !coding?.[0] || coding[0].system) return concept;
  if (!/^[A-Za-z0-9][\w.-]{0,11}$/.test(coding[0].code)) return concept;
  const system = `http://terminology.hl7.org/CodeSystem/v2-${table}`;
  return { ...concept, coding: [{ system, ...coding[0] }, ...coding.slice(1)] };
}

/**
 * A Reference by identifier and display: v2 names organizations and practitioners without
 * giving what a FHIR resource for them would need, so they are referred to, not created.
 */
export type LogicalReference = { identifier?: Identifier; display?: string };

function logicalReference(
  identifier: Identifier | undefined,
  display: string | undefined,
): LogicalReference | undefined {
  if (!identifier && !display) return undefined;
  return { ...(identifier ? { identifier } : {}), ...(display ? { display } : {}) };
}

/** XON (organization name) to a logical Reference: XON-10 id (else XON-3), XON-6 authority. */
export function organizationOf(
  xon: V2Repetition | undefined,
  fallbackSystem?: string,
): LogicalReference | undefined {
  if (!xon) return undefined;
  const value = xon.value(10) ?? xon.value(3);
  const system = systemOfHd(xon.value(6, 1), xon.value(6, 2), xon.value(6, 3)) ?? fallbackSystem;
  return logicalReference(
    value ? { ...(system ? { system } : {}), value } : undefined,
    xon.value(1)?.trim() || undefined,
  );
}

/** XCN (person with an id) to a logical Reference: XCN-1 id, XCN-9 authority, the name as display. */
export function practitionerOf(
  xcn: V2Repetition | undefined,
  fallbackSystem?: string,
): LogicalReference | undefined {
  if (!xcn) return undefined;
  const value = xcn.value(1);
  const system = systemOfHd(xcn.value(9, 1), xcn.value(9, 2), xcn.value(9, 3)) ?? fallbackSystem;
  const display = [xcn.value(6), xcn.value(3), xcn.value(4), xcn.value(2, 1), xcn.value(5)]
    .filter((part): part is string => !!part?.trim())
    .join(' ');
  return logicalReference(
    value ? { ...(system ? { system } : {}), value } : undefined,
    display || undefined,
  );
}

/** NTE segments as Annotations: their comment (NTE-3), one per line sent. */
export function annotationsOf(notes: readonly V2Segment[]): { text: string }[] {
  return notes
    .flatMap((nte) => nte.repetitions(3).map((rep) => rep.value(1)))
    .filter((text): text is string => !!text)
    .map((text) => ({ text }));
}

/**
 * An OBX-5 of type ED (encapsulated data: ED-2 and ED-3 the media type, ED-4 the encoding, ED-5
 * the data) or RP (a reference pointer: RP-1 the URL, RP-3 and RP-4 the media type) as an
 * Attachment; undefined for other types, or an RP without its URL.
 */
export function attachmentOf(
  valueType: string,
  value: V2Repetition,
): Record<string, unknown> | undefined {
  if (valueType === 'ED') return encapsulated(value);
  const url = value.value(1);
  if (valueType !== 'RP' || !url) return undefined;
  const contentType = mediaType(value.value(3), value.value(4));
  return { ...(contentType ? { contentType } : {}), url };
}

function encapsulated(ed: V2Repetition): Record<string, unknown> {
  const contentType = mediaType(ed.value(2), ed.value(3)) ?? 'application/octet-stream';
  const data = ed.value(5);
  if (!data) return { contentType };
  const encoding = ed.value(4)?.toUpperCase();
  const bytes =
    encoding === 'BASE64'
      ? Buffer.from(data, 'base64')
      : encoding === 'HEX'
        ? Buffer.from(data, 'hex')
        : Buffer.from(data, 'utf8');
  return { contentType, data: bytes.toString('base64') };
}

/** Type of referenced data (table 0191) to a MIME top-level type; MIME names pass as they are. */
const TOP_LEVEL: Record<string, string> = {
  AP: 'application',
  AU: 'audio',
  IM: 'image',
  TEXT: 'text',
  TX: 'text',
  FT: 'text',
};

/** ED-2/ED-3 or RP-3/RP-4 (`AP^PDF`, or a MIME `application^pdf`) to a media type. */
function mediaType(
  type: string | null | undefined,
  subtype: string | null | undefined,
): string | undefined {
  if (!type || !subtype) return undefined;
  return `${TOP_LEVEL[type.toUpperCase()] ?? type}/${subtype}`.toLowerCase();
}
