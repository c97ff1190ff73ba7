/**
 * Letters NFKD leaves whole though people type them without their stroke or bar: Vietnamese đ
 * (Đặng typed Dang), Danish and Norwegian ø, Polish ł, Maltese ħ, Sami ŧ, Icelandic ð.
 */
const STROKED: Record<string, string> = { đ: 'd', ð: 'd', ø: 'o', ł: 'l', ħ: 'h', ŧ: 't' };

/**
 * The combining marks that are accents or optional vowel points, dropped from names: those of the
 * combining diacritical blocks (U+0300–036F, 1AB0–1AFF, 1DC0–1DFF, 20D0–20FF, FE20–FE2F: é, ü,
 * ñ, Greek tonos, Cyrillic ё, Vietnamese stacked accents), Hebrew points and cantillation,
 * Arabic harakat and Quranic marks (the marks whose scripts are Hebrew or Arabic; hamza and madda
 * on an alef too, which people often type as a bare alef), and variation selectors (葛 with or
 * without its ideographic variant). Every other mark spells: Devanagari, Bengali, Tamil and the
 * other Brahmic scripts write vowels and the virama as marks (राम Ram and रमा Rama were both रम),
 * Japanese kana their voicing (ガトウ Gatō was カトウ Katō), Thai its vowels and tones. The rule:
 * drop a mark where the same name is commonly written or typed without it, keep it where
 * dropping it makes another name, as a search that merges two names finds another patient.
 * (Cyrillic й still counts as и, its breve being of U+0300–036F, as before.)
 */
const OPTIONAL_MARKS =
  // eslint-disable-next-line no-misleading-character-class -- ranges of marks, each matched alone
  /(?=\p{M})[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\p{scx=Hebrew}\p{scx=Arabic}\p{Variation_Selector}]/gu;

/**
 * FHIR string matching is case- and accent-insensitive: compatibility forms and accents removed
 * (NFKD, then the optional marks dropped, OPTIONAL_MARKS; é typed as e + U+0301 is é), full case
 * folding (ß is ss, Turkish ı and İ are i, Greek final ς is σ, so a prefix of ΟΔΥΣΣΕΥΣ finds
 * Οδυσσευς), letters with a stroke as their base letter, invisible format characters dropped
 * (zero-width spaces and joiners, soft hyphens, the bidi marks pasted with Arabic or Hebrew
 * names) and so is the Arabic tatweel, and runs of spaces and punctuation collapsed to one
 * space. The marks that spell are kept, and the result is composed again (NFC): ｶﾞ and が are
 * one character as they are typed, and a Hangul syllable is one, not the two or three letters
 * (jamo) NFKD splits it into, so that prefixes count what people type.
 * Changing it changes the blind indexes: searches also look up `unmarkedNormalizeString`'s and
 * `legacyNormalizeString`'s forms while rows of older index versions may remain.
 */
export function normalizeString(value: string): string {
  return value
    .normalize('NFKD')
    .replace(OPTIONAL_MARKS, '')
    .replace(/[\p{Cf}\u0640]+/gu, '')
    .toUpperCase()
    .toLowerCase()
    .normalize('NFKD')
    .replace(OPTIONAL_MARKS, '')
    .replace(/[ςđðøłħŧ]/gu, (letter) => (letter === 'ς' ? 'σ' : STROKED[letter]!))
    .replace(/[\s\p{P}]+/gu, ' ')
    .trim()
    .normalize('NFC');
}

/**
 * The normalization of index rows written by index versions 3 to 5 (2026-12-07): every
 * combining mark dropped, and Hangul left in jamo. Searches look it up too while such rows may
 * remain (SearchIndexStatus.unmarkedForms), so that they are found as before `search:reindex`.
 */
export function unmarkedNormalizeString(value: string): string {
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
 * A search value's normalized forms: the current one first, then those it differs from that
 * rows of older index versions may hold: while rows indexed before version 6 may remain
 * (`unmarked`, SearchIndexStatus.unmarkedForms), the unmarked one; before 3 (`legacy`,
 * SearchIndexStatus.legacyForms), the legacy one.
 */
export function searchForms(value: string, legacy: boolean, unmarked = true): string[] {
  const forms = [normalizeString(value)];
  if (unmarked) forms.push(unmarkedNormalizeString(value));
  if (legacy) forms.push(legacyNormalizeString(value));
  return [...new Set(forms)];
}

/** Phone numbers compare by their digits alone (`+1 (555) 010-7788` is 15550107788). */
export function normalizePhone(value: string): string {
  return value.replace(/\D/g, '');
}
