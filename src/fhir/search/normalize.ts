/**
 * FHIR string matching is case- and accent-insensitive: lower case, accents removed (NFD, then
 * combining marks dropped), runs of spaces and punctuation collapsed to one space.
 */
export function normalizeString(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[\s\p{P}]+/gu, ' ')
    .trim();
}

/** Phone numbers compare by digits (and a leading +). */
export function normalizePhone(value: string): string {
  const digits = value.replace(/[^\d+]/g, '');
  return digits.startsWith('+')
    ? `+${digits.slice(1).replace(/\+/g, '')}`
    : digits.replace(/\+/g, '');
}
