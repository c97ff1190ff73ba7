/**
 * Search parameters whose values are direct identifiers under HIPAA's safe-harbor list (names,
 * identifiers such as MRN and SSN, dates of birth and death, phone numbers, email addresses,
 * street address, city and postal code), and those whose values are other Identifiers under
 * another code (a specimen's accession number, an order's requisition: "any other unique
 * identifying number", 164.514(b)(2)(i)(R)). Whatever the resource type, they are indexed only as
 * keyed blind hashes; so are the codes of `PHI_PARAMETERS_OF_TYPE` on their types. Clinical codes, statuses, references to resource ids and clinical dates are
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
  // Identifier-typed tokens other than `identifier`: Specimen.accessionIdentifier and
  // container.identifier, ServiceRequest.requisition, the groupIdentifier of
  // CommunicationRequest, DeviceRequest, RequestGroup and Task, and the related document
  // identifiers of Composition and DocumentManifest.
  'accession',
  'container-id',
  'requisition',
  'group-identifier',
  'related-id',
  // Free text, which names whoever its writer named (a lab comment, a note): Observation's
  // value-string (valueString, and a valueCodeableConcept's text), List's notes, Condition's
  // onset-info and abatement-string.
  'value-string',
  'notes',
  'onset-info',
  'abatement-string',
]);

/**
 * PHI on these types only: the same codes elsewhere are a definition's text (a ValueSet's
 * `title` or `description` names no one), which stays plaintext and keeps :contains and sorting.
 */
const PHI_PARAMETERS_OF_TYPE: Readonly<Record<string, ReadonlySet<string>>> = {
  // Free text about one patient's documents, coverage and claims.
  DocumentReference: new Set(['description']),
  DocumentManifest: new Set(['description']),
  Composition: new Set(['title']),
  ClaimResponse: new Set(['disposition']),
  CoverageEligibilityResponse: new Set(['disposition']),
  ExplanationOfBenefit: new Set(['disposition']),
  // A dependent number and a plan's member group or number identify the member.
  Coverage: new Set(['dependent', 'class-value']),
  // A UDI carries the device's serial number, an identifier under 164.514(b)(2)(i)(M).
  Device: new Set(['udi-carrier', 'udi-di']),
};

/**
 * Whether `code` is a PHI parameter of `type`; of some type when `type` is undefined (a chain
 * whose target type is not named, checked in stored criteria).
 */
export function isPhiParameter(code: string, type: string | undefined): boolean {
  if (PHI_PARAMETERS.has(code)) return true;
  return type === undefined
    ? Object.values(PHI_PARAMETERS_OF_TYPE).some((codes) => codes.has(code))
    : (PHI_PARAMETERS_OF_TYPE[type]?.has(code) ?? false);
}

/** Starts-with search on PHI strings matches prefixes of 3 to 20 characters (README explains). */
export const PHI_PREFIX_MIN = 3;
export const PHI_PREFIX_MAX = 20;
