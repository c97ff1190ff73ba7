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

/** Phone numbers compare by their digits alone (`+1 (555) 010-7788` is 15550107788). */
export function normalizePhone(value: string): string {
  return value.replace(/\D/g, '');
}
