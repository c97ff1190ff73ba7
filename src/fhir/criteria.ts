/**
 * Conditional criteria (If-None-Exist, ifNoneExist, conditional update and delete, conditional
 * references) as one key per meaning: the query without a `Type?` prefix, which clients often
 * put in ifNoneExist though FHIR gives only the query there, and its parameters in a canonical
 * order, so `a=1&b=2` and `b=2&a=1` match each other (a Bundle's conditional reference and
 * conditional create). Their locks are keyed otherwise (criteriaLocks).
 */
export function criteriaQuery(type: string, criteria: string): string {
  return criteria.startsWith(`${type}?`) ? criteria.slice(type.length + 1) : criteria;
}

/** The criteria's key: the same for criteria that differ only in parameter order or prefix. */
export function criteriaKey(type: string, criteria: string): string {
  const canonical = [...new URLSearchParams(criteriaQuery(type, criteria))]
    .map(([name, value]) => `${name}=${value}`.replaceAll('\0', '%00'))
    .sort()
    .join('&');
  return `${type}?${canonical}`;
}

/** One advisory lock a conditional write takes: exclusive, or shared with other writers. */
export interface CriteriaLock {
  key: string;
  shared: boolean;
}

/** What criteriaLocks needs to know of a parameter: its code (an alias's target) and type. */
export type ParamLookup = (code: string) => { code: string; type: string } | undefined;

/**
 * The advisory locks a conditional write takes before it searches, so that two writes whose
 * criteria could match one new resource wait for each other rather than both create (two
 * Patients with one MRN). One lock keyed on the criteria's text, as it was, let
 * `identifier=M-1` and `identifier=M-1&gender=female`, or `identifier=M-1,M-2`, take a lock
 * each, and both create. The keys are what a match must hold:
 *
 * - one parameter, the anchor, locks each of its values exclusively (a token by its code
 *   without the system, a reference by its id, lower-cased): a match holds one of them, so two
 *   criteria with the same anchor that can match one resource share a value, and so a lock.
 *   The anchor is the first of the criteria's token or reference parameters with plain values,
 *   `identifier` before references before other tokens (then by code): the same in every
 *   criteria that name it. One anchor, not every such parameter: locking each value of every
 *   parameter made a feed's `subject=…&code=…` upserts queue on the code (a LOINC code) across
 *   every patient, and two messages listing two codes in opposite orders deadlock.
 * - every parameter (string, date, number: values that overlap without being equal, as
 *   `name=smi` and `name=smith` do; a modifier; a chain; a token without a code) locks the
 *   whole parameter: exclusively in criteria without an anchor, so that they wait for every
 *   conditional write constraining that parameter of that type; shared otherwise, as those
 *   criteria contend through their anchor's values.
 *
 * So two criteria contend when their anchors share a value, or when they constrain a common
 * parameter and one of them has no anchor. The others do not: criteria on no common
 * parameter (`identifier=M-1` and `name=…&birthdate=…`), with different anchors
 * (`code=A` and `subject=1&code=A`), or whose anchor values differ (`identifier=M-1` and
 * `identifier=M-2`, a Patient holding both). Making them wait would take one lock per type,
 * serialising every conditional write of it (see the README, "Bundles and conditional
 * operations"). Every criteria also takes the type's lock shared, which criteria with no
 * parameter (matching every resource) take exclusively. Keys hold values (an MRN):
 * CriteriaLocks hashes them, keyed, before they reach the database.
 */
export function criteriaLocks(type: string, criteria: string, lookup: ParamLookup): CriteriaLock[] {
  const params = [...new URLSearchParams(criteriaQuery(type, criteria))].map(([name, value]) => {
    const [base, modifier] = name.split(':') as [string, string | undefined];
    const param = base.includes('.') ? undefined : lookup(base);
    const code = param?.code ?? base.split('.')[0]!;
    const values = exactValues(param?.type, modifier, value);
    return { code, key: `${type}?${code}`, values, rank: anchorRank(code, param?.type) };
  });
  const anchor = params
    .filter(({ values }) => values !== undefined)
    .sort((a, b) => a.rank - b.rank || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0))[0];
  const locks: CriteriaLock[] = [{ key: `${type}?`, shared: params.length > 0 }];
  for (const { key } of params) locks.push({ key, shared: anchor !== undefined });
  if (anchor?.values) {
    // The same parameter given twice (AND) matches resources holding a value of each list:
    // either list's values would do; both are locked, in CriteriaLocks' one order.
    for (const { key, values } of params.filter(({ code }) => code === anchor.code)) {
      for (const one of values ?? []) locks.push({ key: `${key}=${one}`, shared: false });
    }
  }
  return locks;
}

/** Which parameter anchors criteria's value locks: identifiers, then references, then tokens. */
function anchorRank(code: string, type: string | undefined): number {
  if (code === 'identifier') return 0;
  return type === 'reference' ? 1 : 2;
}

/**
 * The values a match must hold one of, as lock keys, or undefined when they cannot be told
 * (see criteriaLocks). A token's `|`-parts: its code is the last (`sys|code`, and `:of-type`'s
 * `type-system|type|value`); a reference's id is its last `/`-part (`Patient/1`, `1`, a URL;
 * `subject:Patient=1`; a versioned one is left coarse). Escaped commas and bars are part of a
 * value.
 */
function exactValues(
  type: string | undefined,
  modifier: string | undefined,
  value: string,
): string[] | undefined {
  const tokenModifier = modifier === undefined || modifier === 'of-type';
  const referenceModifier = modifier === undefined || /^[A-Z]/.test(modifier);
  let values: string[];
  if (type === 'token' && tokenModifier) {
    values = value.split(/(?<!\\),/).map((one) => one.split(/(?<!\\)\|/).at(-1)!);
  } else if (type === 'reference' && referenceModifier && !value.includes('/_history/')) {
    values = value.split(/(?<!\\),/).map((one) => one.split('/').at(-1)!);
  } else {
    return undefined;
  }
  if (values.some((one) => one === '')) return undefined;
  return [...new Set(values.map((one) => one.toLowerCase()))];
}
