import type { V2Segment } from '../message/v2-message.js';
import {
  annotationsOf,
  codeableConceptOf,
  dateTimeOf,
  identifierOf,
  practitionerOf,
  type Identifier,
} from './datatypes.js';
import { exactNumberOf } from './numeric.js';

/** A charge as FT1 gives it: what it is, and the transaction id (FT1-2) it is known by. */
export interface ChargeOfFt1 {
  identifier: Identifier | undefined;
  resource: Record<string, unknown>;
}

/**
 * The MO (money: quantity & denomination) first in a CP (composite price) field. An amount a
 * double cannot hold as written is an AE (see exactNumberOf): a charge billed rounded, or priced
 * by FT1-12 because FT1-11 was left out, is a wrong bill.
 */
function moneyOf(ft1: V2Segment, field: 11 | 12): { value: number; currency?: string } | undefined {
  const value = exactNumberOf(ft1.value(field, 1, 1), `FT1-${field}`);
  if (value === undefined) return undefined;
  const currency = ft1.value(field, 1, 2)?.toUpperCase();
  return { value, ...(currency && /^[A-Z]{3}$/.test(currency) ? { currency } : {}) };
}

/**
 * FT1 (a charge posted by a DFT message) to a ChargeItem, after R4's own ChargeItem-to-v2
 * mappings (identifier FT1-2, code FT1-7, quantity FT1-10, cost center FT1-13, subject and
 * context the message's patient and visit): the transaction date FT1-4 (a range in 2.5 and
 * later) as `occurrence[x]`, the posting date FT1-5 as `enteredDate`, the extended amount FT1-11
 * as `priceOverride` (else the unit amount FT1-12, for a single unit: R4 has no other element for
 * the amount charged, R5's totalPriceComponent came later), the diagnoses FT1-19 as
 * reasons, who performed it FT1-20 and who entered it FT1-24, the NDC FT1-29 as the product,
 * the NTE after it as notes. Undefined without a transaction code, which R4 requires. Only
 * charges are ChargeItems: the caller refuses credits, payments and adjustments (FT1-6).
 */
export function chargeFromFt1(
  ft1: V2Segment,
  notes: readonly V2Segment[],
  patientId: string,
  encounterId: string | undefined,
  sender: string | undefined,
): ChargeOfFt1 | undefined {
  const code = codeableConceptOf(ft1.repetitions(7)[0]);
  if (!code) return undefined;
  const transaction = ft1.repetitions(2)[0];
  const identifier = transaction && identifierOf(transaction, sender);
  const start = dateTimeOf(ft1.value(4, 1), ft1.timeZone);
  const end = dateTimeOf(ft1.value(4, 2), ft1.timeZone);
  const entered = dateTimeOf(ft1.value(5), ft1.timeZone);
  const quantity = exactNumberOf(ft1.value(10), 'FT1-10');
  const price =
    moneyOf(ft1, 11) ?? (quantity === undefined || quantity === 1 ? moneyOf(ft1, 12) : undefined);
  const department = codeableConceptOf(ft1.repetitions(13)[0]) as
    { coding?: { code: string }[]; text?: string } | undefined;
  const departmentCode = department?.coding?.[0]?.code;
  const reasons = ft1
    .repetitions(19)
    .map((cwe) => codeableConceptOf(cwe))
    .filter((reason) => reason !== undefined);
  const performers = ft1
    .repetitions(20)
    .map((xcn) => practitionerOf(xcn, sender))
    .filter((actor) => actor !== undefined)
    .map((actor) => ({ actor: { type: 'Practitioner', ...actor } }));
  const enterer = practitionerOf(ft1.repetitions(24)[0], sender);
  const product = codeableConceptOf(ft1.repetitions(29)[0]);
  const annotations = annotationsOf(notes);
  return {
    identifier,
    resource: {
      resourceType: 'ChargeItem',
      ...(identifier ? { identifier: [identifier] } : {}),
      status: 'billable',
      code,
      subject: { reference: `Patient/${patientId}` },
      ...(encounterId ? { context: { reference: `Encounter/${encounterId}` } } : {}),
      ...(start && end
        ? { occurrencePeriod: { start, end } }
        : start
          ? { occurrenceDateTime: start }
          : {}),
      ...(performers.length > 0 ? { performer: performers } : {}),
      ...(department
        ? {
            costCenter: {
              type: 'Organization',
              ...(departmentCode
                ? { identifier: { ...(sender ? { system: sender } : {}), value: departmentCode } }
                : {}),
              ...(department.text ? { display: department.text } : {}),
            },
          }
        : {}),
      ...(quantity !== undefined ? { quantity: { value: quantity } } : {}),
      ...(price ? { priceOverride: price } : {}),
      ...(enterer ? { enterer: { type: 'Practitioner', ...enterer } } : {}),
      ...(entered ? { enteredDate: entered } : {}),
      ...(reasons.length > 0 ? { reason: reasons } : {}),
      ...(product ? { productCodeableConcept: product } : {}),
      ...(annotations.length > 0 ? { note: annotations } : {}),
    },
  };
}
