/**
 * The request bodies of the benchmarks, made the same way wherever they are sent from: the
 * service under test's process (seeding) or the load client's (bench/load-client.ts).
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const SYSTEM = 'urn:oid:2.16.840.1.113883.19.5';

/** A Patient of about 1 KB with five kinds of PHI: identifier, name, birth date, phone, address. */
export function patient(n: string): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    identifier: [
      {
        system: SYSTEM,
        value: `MRN-${n}`,
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
        },
      },
    ],
    active: true,
    name: [{ use: 'official', family: `Family${n}`, given: ['Alexandra', 'Marie'] }],
    telecom: [
      { system: 'phone', value: '+1 555 010 0199', use: 'home' },
      { system: 'email', value: `patient${n}@example.org` },
    ],
    gender: 'female',
    birthDate: '1970-01-31',
    address: [
      {
        use: 'home',
        line: ['1234 Evergreen Terrace', 'Apartment 56'],
        city: 'Springfield',
        state: 'IL',
        postalCode: '62701',
        country: 'US',
      },
    ],
    maritalStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }],
    },
    communication: [
      { language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US' }] }, preferred: true },
    ],
  };
}

/** A transaction Bundle: 1 Patient and 10 Observations that refer to it by its urn:uuid. */
export function transaction(n: string): Record<string, unknown> {
  const patientUrl = `urn:uuid:${randomUUID()}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: patientUrl, resource: patient(n), request: { method: 'POST', url: 'Patient' } },
      ...Array.from({ length: 10 }, (_, i) => ({
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: `2345-${i}` }] },
          subject: { reference: patientUrl },
          effectiveDateTime: '2024-01-01T08:30:00Z',
          valueQuantity: {
            value: 4 + i / 10,
            unit: 'mmol/L',
            system: 'http://unitsofmeasure.org',
            code: 'mmol/L',
          },
        },
        request: { method: 'POST', url: 'Observation' },
      })),
    ],
  };
}

/** Assigning authority of the patients the lab messages are about, and its FHIR system. */
const LAB_OID = '2.16.840.1.9';
export const LAB_SYSTEM = `urn:oid:${LAB_OID}`;

/**
 * ORU^R01 number `n` (1 PID, 1 OBR, 10 OBX) about lab patient `n % patients`. `tag` keeps
 * control ids unique across runs: a repeated message would be ACKed as a resend, unprocessed.
 */
export function labResult(tag: string, n: number, patients: number): Buffer {
  const patient = n % patients;
  const obx = Array.from(
    { length: 10 },
    (_, i) =>
      `OBX|${i + 1}|NM|${2000 + i}-${i}^Analyte ${i}^LN||${(4 + i / 10).toFixed(1)}|mmol/L^^UCUM|3.5-5.5|N|||F|||20240101083000+0000`,
  );
  return Buffer.from(
    [
      `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101090000+0000||ORU^R01^ORU_R01|${tag}-${n}|P|2.5.1`,
      `PID|1||P-${patient}^^^NORTH&${LAB_OID}&ISO^MR||Bench^Patient${patient}||19700101|F`,
      `OBR|1||F-${tag}-${n}^NORTH^${LAB_OID}^ISO|24323-8^Metabolic panel^LN|||20240101080000+0000||||||||||||||||F`,
      ...obx,
    ].join('\r'),
  );
}

/** The lab's patient `n`, as an admission feed would have registered it. */
export function labPatient(n: number): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    identifier: [
      {
        system: LAB_SYSTEM,
        value: `P-${n}`,
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
        },
        // PID-3's assigning authority (CX-4.1), which the feed keeps as the assigner's name.
        assigner: { display: 'NORTH' },
      },
    ],
    name: [{ family: 'Bench', given: [`Patient${n}`] }],
    birthDate: '1970-01-01',
    gender: 'female',
  };
}

/** ../shared/fhir-samples/synthea beside the repository. */
export const SYNTHEA = fileURLToPath(
  new URL('../../../shared/fhir-samples/synthea/', import.meta.url),
);

export interface SyntheaBundles {
  /** The Organization and Practitioner bundles the patient bundles refer to. */
  shared: string[];
  /** One transaction per patient with its whole history, and its entry count. */
  patients: { body: string; resources: number }[];
}

export async function syntheaBundles(): Promise<SyntheaBundles> {
  const files = (await readdir(SYNTHEA)).filter((file) => file.endsWith('.json')).sort();
  const bundles: SyntheaBundles = { shared: [], patients: [] };
  for (const file of files) {
    const body = await readFile(`${SYNTHEA}${file}`, 'utf8');
    if (/^(hospital|practitioner)Information/.test(file)) {
      bundles.shared.push(body);
    } else {
      const resources = (JSON.parse(body) as { entry: unknown[] }).entry.length;
      bundles.patients.push({ body, resources });
    }
  }
  return bundles;
}
