/**
 * Search parameters whose values are direct identifiers under HIPAA's safe-harbor list (names,
 * identifiers such as MRN and SSN, dates of birth and death, phone numbers, email addresses,
 * street address, city and postal code), and those whose values are other Identifiers under
 * another code (a specimen's accession number, an order's requisition: "any other unique
 * identifying number", 164.514(b)(2)(i)(R)). Whatever the resource type, they are indexed only as
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

export function isPhiParameter(code: string): boolean {
  return PHI_PARAMETERS.has(code);
}

/** Starts-with search on PHI strings matches prefixes of 3 to 20 characters (README explains). */
export const PHI_PREFIX_MIN = 3;
export const PHI_PREFIX_MAX = 20;
