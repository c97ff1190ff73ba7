/**
 * Letters NFKD leaves whole though people type them without their stroke or bar: Vietnamese đ
 * (Đặng typed Dang), Danish and Norwegian ø, Polish ł, Maltese ħ, Sami ŧ, Icelandic ð.
 */
const STROKED: Record<string, string> = { đ: 'd', ð: 'd', ø: 'o', ł: 'l', ħ: 'h', ŧ: 't' };

/**
 * FHIR string matching is case- and accent-insensitive: compatibility forms and accents removed
 * (NFKD, then combining marks dropped; é typed as e + U+0301 is é), full case folding (ß is ss,
 * Turkish ı and İ are i, Greek final ς is σ, so a prefix of ΟΔΥΣΣΕΥΣ finds Οδυσσευς), letters
 * with a stroke as their base letter, invisible format characters dropped (zero-width spaces and
 * joiners, soft hyphens, the bidi marks pasted with Arabic or Hebrew names) and so is the Arabic
 * tatweel, and runs of spaces and punctuation collapsed to one space.
 * Changing it changes the blind indexes: searches also look up `legacyNormalizeString`'s form.
 */
export function normalizeString(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/[\p{M}\p{Cf}\u0640]+/gu, '')
    .toUpperCase()
    .toLowerCase()
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[ςđðøłħŧ]/gu, (letter) => (letter === 'ς' ? 'σ' : STROKED[letter]!))
    .replace(/[\s\p{P}]+/gu, ' ')
    .trim();
}

/**
 * The normalization of index rows written before 2026-12-07 (lower case, accents removed, spaces
 * and punctuation collapsed; no case folding beyond `toLowerCase`, format characters kept):
 * searches look it up too, so that rows not yet rewritten by `search:reindex` are found as
 * before.
 */
export function legacyNormalizeString(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[\s\p{P}]+/gu, ' ')
    .trim();
}

/**
 * A search value's normalized forms: the current one first, then, while rows indexed before
 * 2026-12-07 may remain (`legacy`, SearchIndexStatus.legacyForms), the legacy one if it differs.
 */
export function searchForms(value: string, legacy: boolean): string[] {
  const current = normalizeString(value);
  if (!legacy) return [current];
  const older = legacyNormalizeString(value);
  return older === current ? [current] : [current, older];
}

/** Phone numbers compare by their digits alone (`+1 (555) 010-7788` is 15550107788). */
export function normalizePhone(value: string): string {
  return value.replace(/\D/g, '');
}
