/**
 * Conditional criteria (If-None-Exist, ifNoneExist, conditional update and delete, conditional
 * references) as one key per meaning: the query without a `Type?` prefix, which clients often
 * put in ifNoneExist though FHIR gives only the query there, and its parameters in a canonical
 * order, so `a=1&b=2` and `b=2&a=1` match each other (a Bundle's conditional reference and
 * conditional create). Their lock is keyed coarser (criteriaLockKey).
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

/**
 * The key of the advisory lock conditional writes take on their criteria: coarser than
 * criteriaKey, so that criteria written differently that can match the same resource wait for
 * each other rather than both create. Parameters are sorted without their modifiers, each one's
 * comma-separated values (any of which matches) sorted, and a value stands for its last
 * `|`-part (a token's code or value, without the system: `identifier=sys|v` and
 * `identifier=v` match the same Patient), lower-cased (string searches ignore case). A coarser
 * key only makes more writers wait, never lets two through. What it cannot see: criteria on
 * other parameters that match one resource (`identifier=v` and `name=…&birthdate=…`), or
 * values that overlap without being equal (`name=smi` and `name=smith`, date prefixes).
 */
export function criteriaLockKey(type: string, criteria: string): string {
  const params = [...new URLSearchParams(criteriaQuery(type, criteria))].map(([name, value]) => {
    const values = value.split(/(?<!\\),/).map((one) => one.split(/(?<!\\)\|/).at(-1)!);
    const canonical = [...new Set(values.map((one) => one.toLowerCase()))].sort().join(',');
    return `${name.split(':')[0]!}=${canonical}`;
  });
  // A NUL (`%00`) stays escaped: as text it failed the lock's statement, a 500 before the
  // search could refuse the value with its 400.
  return `${type}?${[...new Set(params)].sort().join('&')}`.replaceAll('\0', '%00');
}
