import { AppError } from '../../common/errors/app-error.js';
import { tokenParts } from './search-escapes.js';

/**
 * How a composite is indexed without a table of its own: its second value is a row of that
 * value's table (search_quantity for code-value-quantity) whose `param` names the composite
 * and the first value, a token, in two spellings: `code-value-quantity$http://loinc.org|8480-6`
 * for `system|code` (`$|8480-6` when the coding has no system), and
 * `code-value-quantity$*|8480-6` for the code in any system. A search then matches one key and
 * compares the value with the same SQL as a plain quantity (or token, date, string) search.
 */
export function compositeKeys(
  code: string,
  token: { system: string | null; code: string },
): string[] {
  return [`${code}$${token.system ?? ''}|${token.code}`, `${code}$*|${token.code}`];
}

/**
 * A composite search value (`http://loinc.org|8480-6$gt140`) as the key of its first part and
 * the raw second part.
 */
export function compositeSearchKey(code: string, raw: string): { key: string; value: string } {
  const dollar = unescapedDollar(raw, 0);
  if (dollar === -1 || unescapedDollar(raw, dollar + 1) !== -1) {
    throw AppError.invalid(
      `${code} takes a code and a value joined by $, such as http://loinc.org|8480-6$gt140`,
    );
  }
  const parts = tokenParts(raw.slice(0, dollar));
  // Left escaped: it is read as a value of the second part's type, which unescapes it.
  const value = raw.slice(dollar + 1);
  const system = parts.system ?? '*';
  const tokenCode = parts.code;
  if (tokenCode === '' || value === '') {
    throw AppError.invalid(
      `${code} needs a code and a value: system|code$value, |code$value or code$value`,
    );
  }
  return { key: `${code}$${system}|${tokenCode}`, value };
}

function unescapedDollar(raw: string, from: number): number {
  for (let i = from; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === '$') return i;
  }
  return -1;
}
