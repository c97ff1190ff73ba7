/**
 * Search parameters whose values are direct identifiers under HIPAA's safe-harbor list (names,
 * identifiers such as MRN and SSN, dates of birth and death, phone numbers, email addresses,
 * street address, city and postal code). Whatever the resource type, they are indexed only as
 * keyed blind hashes. Clinical codes, statuses, references to resource ids and clinical dates are
 * plaintext index columns: they are needed for range and code searches, and without the
 * identifiers above they do not name anyone (README, security design).
 */
const PHI_PARAMETERS = new Set([
  'name',
  'family',
  'given',
  'phonetic',
  'identifier',
  'birthdate',
  'death-date',
  'phone',
  'email',
  'telecom',
  'address',
  'address-city',
  'address-postalcode',
]);

export function isPhiParameter(code: string): boolean {
  return PHI_PARAMETERS.has(code);
}

/** Starts-with search on PHI strings matches prefixes of 3 to 20 characters (README explains). */
export const PHI_PREFIX_MIN = 3;
export const PHI_PREFIX_MAX = 20;
