import { isDeepStrictEqual } from 'node:util';
import { resolveReferences } from '../../fhir/bundle/bundle-entry.js';
import type { ResourceReferrers } from '../../fhir/resource-referrers.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import { without, type Touched } from './processing.js';

/**
 * How many records one message moves at most, in one transaction (a long stay's results and
 * orders, a patient's whole chart, are thousands; more is a task for an operator, not a feed).
 */
const MAX_MOVED = 10_000;

/** The live records referring to `type/id`, refused (ERR 207) past MAX_MOVED. */
export async function recordsReferring(
  fhir: FhirService,
  referrers: ResourceReferrers,
  type: string,
  id: string,
  what: string,
): Promise<{ type: string; id: string }[]> {
  const records = await referrers.referrersOf(type, id, MAX_MOVED + 1);
  if (records.length > MAX_MOVED) {
    throw new Hl7ProcessingError(
      '207',
      `${what} has more than ${MAX_MOVED} records: too many to move in one message`,
    );
  }
  return records;
}

/**
 * Rewrites every reference to `from` (`Patient/1`), wherever it is in each record, to `to`, as
 * a Bundle's references are resolved; a record `stays` answers true for is left as it is.
 */
export async function moveRecords(
  fhir: FhirService,
  records: { type: string; id: string }[],
  { from, to }: { from: string; to: string },
  touched: Touched,
  stays?: (type: string, record: Record<string, unknown>) => Promise<boolean>,
): Promise<void> {
  const moved = new Map([[from, to]]);
  for (const { type, id } of records) {
    const current = without((await fhir.read(HL7_USER, type, id)).resource, 'meta');
    const next = resolveReferences(current, moved, `${type}/${id}`) as Record<string, unknown>;
    if (isDeepStrictEqual(next, current) || (await stays?.(type, current)) === true) continue;
    await fhir.update(HL7_USER, type, id, next);
    touched.entities.push(`${type}/${id}`);
  }
}
