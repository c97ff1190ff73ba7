/**
 * Whether a JavaScript number (an IEEE 754 double) holds the decimal written in `text` (or in
 * its `start`-`end` span: JSON's or HL7's `[+-]digits[.digits][e[+-]digits]`) as written: the number prints back as the same
 * value, or for an integer, it is at most 2^53 - 1. False for more significant digits than a
 * double keeps (`9007199254740993`, `0.1000000000000000055511151231257827`), for a value beyond
 * its range (`1e400`) and for one that underflows to 0 (`1e-400`). Trailing zeros are not a
 * difference: `1.10` is held as 1.1, the same value (written precision is lost; see README).
 */
export function holdsExactly(text: string, start = 0, end = text.length): boolean {
  let exponent = false;
  let point = false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x65 || c === 0x45) exponent = true;
    else if (c === 0x2e) point = true;
  }
  // At most 15 characters and no exponent: an integer below 10^15, or a decimal of at most 14
  // significant digits at or above 10^-13, which a double always prints back (DBL_DIG is 15).
  // Nearly every number sent is one, and is answered without a copy.
  if (end - start <= 15 && !exponent) return true;
  const written = text.slice(start, end);
  const value = Number(written);
  if (!Number.isFinite(value)) return false;
  if (!point && !exponent) return Number.isSafeInteger(value);
  // Most long decimals were printed from a double, as the shortest text that reads back as it.
  const printed = String(value);
  return printed === written || decimalKey(written) === decimalKey(printed);
}

/**
 * A decimal's value as text that two spellings of it share: its sign, its significant digits
 * and the power of ten of the first (`-0.0120e1` and `-1.2e-1` are both `-12e0`); `0` for zero.
 */
function decimalKey(text: string): string {
  let digits = '';
  let point = -1;
  let power = 0;
  let start = 0;
  const negative = text.startsWith('-');
  if (negative || text.startsWith('+')) start = 1;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (c === '.') {
      point = digits.length;
    } else if (c === 'e' || c === 'E') {
      power = Number(text.slice(i + 1));
      break;
    } else {
      digits += c;
    }
  }
  if (point === -1) point = digits.length;
  let first = 0;
  while (first < digits.length && digits[first] === '0') first++;
  let last = digits.length;
  while (last > first && digits[last - 1] === '0') last--;
  if (first === last) return '0';
  return `${negative ? '-' : ''}${digits.slice(first, last)}e${point - first + power}`;
}
