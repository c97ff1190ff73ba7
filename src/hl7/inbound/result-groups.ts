import { attachmentOf, codeableConceptOf, type Identifier } from '../mapping/datatypes.js';
import { reportFromObr } from '../mapping/observation.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { byIdentifier } from './processing.js';
import { atInstant, codeCriteria, codeParam } from './record-criteria.js';

/**
 * An OBX's identity within its report: the report's filler order number, the observation code
 * and the sub-id (OBX-4), so that a corrected result replaces the one it corrects. A child
 * report that shares its parent's number (a susceptibility panel under its culture) also has
 * its own code (OBR-4) in it: the same code and sub-id in both (an organism named in each) would
 * otherwise be one result, written over by the other. Only then: a child with a number of its
 * own (a reflex test) keeps the identifiers its results had before 2026-12-06, which a
 * correction finds them by.
 */
export function observationIdentifier(
  report: Identifier | undefined,
  obx: V2Segment,
  obr: V2Segment | undefined,
  sharedNumber: boolean,
): Identifier | undefined {
  const code = obx.value(3);
  if (!report || !code) return undefined;
  const subId = obx.value(4);
  const child = obr && sharedNumber && isChildReport(obr) ? obr.value(4) : undefined;
  return {
    ...(report.system ? { system: report.system } : {}),
    value: [report.value, ...(child ? [child] : []), code, ...(subId ? [subId] : [])].join('/'),
  };
}

/** A report under a parent result (OBR-26) or parent order (OBR-29): a susceptibility panel. */
export function isChildReport(obr: V2Segment): boolean {
  return Boolean(obr.value(26) || obr.value(29));
}

/**
 * Whether a child report's number is its parent's: OBR-29 names it (the parent's filler, else
 * placer number), or another report of the message has it too.
 */
export function sharesNumber(
  obr: V2Segment,
  report: Identifier | undefined,
  numbers: readonly (string | undefined)[],
): boolean {
  if (!report?.value || !isChildReport(obr)) return false;
  const parent = [obr.value(29, 2, 1), obr.value(29, 1, 1)];
  return parent.includes(report.value) || numbers.filter((n) => n === report.value).length > 1;
}

/**
 * A numbered report's criteria: its filler (else placer) order number and its code (OBR-4).
 * The IG makes a report of each ORDER_OBSERVATION group, and a culture and its susceptibility
 * panel share their order's number, told apart by OBR-4 (and linked by OBR-26, OBR-29): keyed
 * by the number alone until 2026-12-06, the second was written over the first. One without a
 * coded OBR-4 is known by its number alone.
 */
export function numberedReport(
  obr: V2Segment,
  identifier: Identifier | undefined,
  patientId: string,
): string | undefined {
  const byNumber = byIdentifier(identifier);
  const byCode = codeParam(reportFromObr(obr, patientId, undefined));
  return byNumber && byCode ? `${byNumber}&${byCode}` : byNumber;
}

/**
 * A report that has no number (OBR-3, OBR-2), as point-of-care devices and some labs send them:
 * known again by the patient, its code and the instant of OBR-7, so that the same results sent
 * again (a resent queue, under new control ids) are not filed twice. Without a time of day, or
 * a coded OBR-4, nothing tells two such reports apart: each is a new one.
 */
export function unnumberedReport(
  obr: V2Segment,
  patientId: string,
  effective: string | undefined,
): string | undefined {
  const byCode = codeCriteria('subject', patientId, reportFromObr(obr, patientId, undefined));
  return byCode && effective?.includes('T')
    ? `${byCode}&${atInstant('date', effective)}`
    : undefined;
}

/** An OBX's ED or RP values as Attachments titled by its code; none for other value types. */
export function formsOf(obx: V2Segment): Record<string, unknown>[] {
  const valueType = obx.value(2)?.toUpperCase() ?? '';
  if (valueType !== 'ED' && valueType !== 'RP') return [];
  const title = (codeableConceptOf(obx.repetitions(3)[0])?.['text'] as string | undefined) ?? '';
  return obx
    .repetitions(5)
    .map((value) => attachmentOf(valueType, value))
    .filter((attachment) => attachment?.['data'] || attachment?.['url'])
    .map((attachment) => ({ ...attachment, ...(title ? { title } : {}) }));
}

/** A report (OBR, with its ORC) or a specimen's own results, with its OBX (and notes) and SPM. */
export interface ResultGroup {
  orc?: V2Segment;
  obr?: V2Segment;
  /** The NTE right after the OBR: the report's own comments. */
  notes?: V2Segment[];
  obx: [V2Segment, V2Segment[]][];
  spm?: V2Segment;
}

/**
 * The message's results in their groups: OBX segments before the first OBR (some senders put
 * them there) become Observations outside any report rather than being lost. An OBX's notes are
 * the NTE segments right after it (its PRT participants may come between). The specimen (SPM)
 * of a report comes after its OBR in ORU and OUL^R24, before the OBRs it is for in OUL^R22 and
 * R23 (`specimenFirst`, with its own OBX, about the specimen, between).
 */
export function resultGroups(message: V2Message, specimenFirst: boolean): ResultGroup[] {
  const groups: ResultGroup[] = [{ obx: [] }];
  let notes: V2Segment[] | undefined;
  let specimen: V2Segment | undefined;
  // The ORC of an order comes before its OBR in ORU, right after it in OUL.
  let orc: V2Segment | undefined;
  let previous: V2Segment | undefined;
  for (const segment of message.segments()) {
    if (segment.name === 'OBX') {
      notes = [];
      groups.at(-1)!.obx.push([segment, notes]);
    } else if (segment.name === 'NTE') notes?.push(segment);
    else if (segment.name !== 'PRT') notes = undefined;
    if (segment.name === 'ORC' && previous?.name === 'OBR') groups.at(-1)!.orc = segment;
    else if (segment.name === 'ORC') orc = segment;
    if (segment.name === 'OBR') {
      const group: ResultGroup = { orc, obr: segment, notes: [], obx: [], spm: specimen };
      groups.push(group);
      notes = group.notes;
      orc = undefined;
    }
    previous = segment;
    if (segment.name === 'SPM' && specimenFirst) {
      specimen = segment;
      groups.push({ obx: [], spm: segment });
    } else if (segment.name === 'SPM') groups.at(-1)!.spm ??= segment;
  }
  return groups;
}
