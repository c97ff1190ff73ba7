import { holdsExactly } from '../../common/exact-decimal.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Value } from '../message/v2-message.js';

/** NM as HL7 writes it: an optional sign, then digits with an optional point; no exponent. */
const NM = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * An NM field (or component) as the number it writes; undefined when it is empty, `""` or no
 * number (`about 30`; `1e3` and `0x1E`, which `Number()` took, are not NM either), for the
 * caller to leave out as before. A number a JavaScript number cannot hold as written
 * (`30.0000000000000001` was taken as 30, `9007199254740993` as …992; see holdsExactly) is an
 * error for the message (AE, ERR 102) naming `field`, never the value, which may be a patient's:
 * a dose, a charge or a length of stay stored rounded reads as something nobody sent, and the
 * FHIR elements these fields fill (Quantity, Money, positiveInt) have no text to keep it as, as
 * OBX-5 has (valueString). The sender sees which field to correct and can resend.
 *
 * @param text - the field's value as V2Segment.value gives it
 * @param field - the field's name for the ERR text, as `FT1-11`
 */
export function exactNumberOf(text: V2Value, field: string): number | undefined {
  const trimmed = text?.trim();
  if (!trimmed || !NM.test(trimmed)) return undefined;
  if (!holdsExactly(trimmed)) {
    throw new Hl7ProcessingError(
      '102',
      `${field} holds a number with more digits than can be kept exactly`,
    );
  }
  return Number(trimmed);
}
