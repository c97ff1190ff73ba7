import { randomUUID } from 'node:crypto';

export interface PatientOptions {
  family?: string;
  given?: string;
  ssn?: string;
  mrn?: string;
  birthDate?: string;
  line?: string;
  city?: string;
  phone?: string;
}

/** A Patient with the direct identifiers a hospital record carries; values are unique per call. */
export function buildPatient(options: PatientOptions = {}): Record<string, unknown> {
  const tag = randomUUID().slice(0, 8);
  return {
    resourceType: 'Patient',
    identifier: [
      { system: 'http://hl7.org/fhir/sid/us-ssn', value: options.ssn ?? '123-45-6789' },
      { system: 'urn:oid:1.2.36.146.595.217.0.1', value: options.mrn ?? `MRN-${tag}` },
    ],
    active: true,
    name: [
      {
        use: 'official',
        family: options.family ?? `Family${tag}`,
        given: [options.given ?? 'Alexandra'],
      },
    ],
    telecom: [{ system: 'phone', value: options.phone ?? '+1 555 0100', use: 'home' }],
    gender: 'female',
    birthDate: options.birthDate ?? '1974-12-25',
    address: [
      {
        line: [options.line ?? '534 Erewhon St'],
        city: options.city ?? 'PleasantVille',
        postalCode: '3999',
        country: 'AU',
      },
    ],
  };
}

/** A final heart-rate Observation of the patient (LOINC 8867-4, 72 /min). */
export function heartRateObservation(patient: string): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/${patient}` },
    valueQuantity: { value: 72, unit: '/min' },
  };
}

/** A plain-text Binary whose securityContext is the patient: readable as the patient's record. */
export function patientBinary(patient: string): Record<string, unknown> {
  return {
    resourceType: 'Binary',
    contentType: 'text/plain',
    securityContext: { reference: `Patient/${patient}` },
    data: Buffer.from('a letter').toString('base64'),
  };
}

/**
 * A restricted letter of the patient's (confidentiality R): only break-glass opens it, and the
 * Binaries that name it as their securityContext with it. A patient-scoped list's SQL selects
 * those Binaries by their context; the check of each row read leaves them out.
 */
export function restrictedLetter(patient: string): Record<string, unknown> {
  return {
    resourceType: 'DocumentReference',
    meta: {
      security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
    },
    status: 'current',
    subject: { reference: `Patient/${patient}` },
    content: [{ attachment: { contentType: 'text/plain' } }],
  };
}
