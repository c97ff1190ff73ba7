/**
 * Conditional criteria (If-None-Exist, ifNoneExist, conditional update and delete, conditional
 * references) as one key per meaning: the query without a `Type?` prefix, which clients often
 * put in ifNoneExist though FHIR gives only the query there, and its parameters in a canonical
 * order, so `a=1&b=2` and `b=2&a=1` take the same lock and match each other.
 */
export function criteriaQuery(type: string, criteria: string): string {
  return criteria.startsWith(`${type}?`) ? criteria.slice(type.length + 1) : criteria;
}

/**
 * The key of the criteria's lock (hashed by PostgreSQL). A NUL (`%00`) stays escaped: as text
 * it failed the lock's statement, a 500 before the search could refuse the value with its 400.
 */
export function criteriaKey(type: string, criteria: string): string {
  const canonical = [...new URLSearchParams(criteriaQuery(type, criteria))]
    .map(([name, value]) => `${name}=${value}`.replaceAll('\0', '%00'))
    .sort()
    .join('&');
  return `${type}?${canonical}`;
}
