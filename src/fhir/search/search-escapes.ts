/**
 * FHIR search escaping (search.html#escaping): inside a value, `\,` `\|` `\$` and `\\` stand for
 * the character after the backslash. The values of a parameter are split at unescaped commas
 * first (splitValues, which resolves `\,`); a token's or a quantity's parts are then split at
 * their unescaped `|` only, and what is left is unescaped. Until 2026-12-06 only `\,` was
 * read, and an identifier or a code holding `|` or `$` could not be searched for.
 */
export function unescapeSearch(raw: string): string {
  return raw.replace(/\\([\\,|$])/g, '$1');
}

/** The value's parts between its unescaped separators, each unescaped. */
export function splitUnescaped(raw: string, separator: '|' | '$'): string[] {
  const parts: string[] = [];
  let from = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === separator) {
      parts.push(raw.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(raw.slice(from));
  return parts.map(unescapeSearch);
}

/**
 * A token (`system|code`, `|code`, `system|`, `code`) as its system (null when it has no
 * unescaped `|`) and code, unescaped: the first unescaped bar separates them.
 */
export function tokenParts(raw: string): { system: string | null; code: string } {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === '|') {
      return { system: unescapeSearch(raw.slice(0, i)), code: unescapeSearch(raw.slice(i + 1)) };
    }
  }
  return { system: null, code: unescapeSearch(raw) };
}
