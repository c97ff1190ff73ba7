import type { V2Segment } from '../message/v2-message.js';
import { codeableConceptOf, dateOf, dateTimeOf } from './datatypes.js';

const ALLERGY_CATEGORY: Record<string, string> = {
  DA: 'medication',
  MA: 'medication',
  FA: 'food',
  EA: 'environment',
  AA: 'environment',
  PA: 'environment',
  LA: 'environment',
};
const ALLERGY_SEVERITY: Record<string, { severity: string; criticality: string }> = {
  SV: { severity: 'severe', criticality: 'high' },
  MO: { severity: 'moderate', criticality: 'low' },
  MI: { severity: 'mild', criticality: 'low' },
};
const CLINICAL = 'http://terminology.hl7.org/CodeSystem/';

/** AL1 to an AllergyIntolerance (v2-to-FHIR AL1[AllergyIntolerance]); undefined without an allergen. */
export function allergyFromAl1(
  al1: V2Segment,
  patientId: string,
): Record<string, unknown> | undefined {
  const code = codeableConceptOf(al1.repetitions(3)[0]);
  if (!code) return undefined;
  const category = ALLERGY_CATEGORY[al1.value(2)?.toUpperCase() ?? ''];
  const severity = ALLERGY_SEVERITY[al1.value(4)?.toUpperCase() ?? ''];
  const manifestations = al1
    .repetitions(5)
    .map((rep) => rep.value(1))
    .filter((text): text is string => !!text)
    .map((text) => ({ text }));
  const identified = dateOf(al1.value(6));
  return {
    resourceType: 'AllergyIntolerance',
    clinicalStatus: {
      coding: [{ system: `${CLINICAL}allergyintolerance-clinical`, code: 'active' }],
    },
    ...(category ? { category: [category] } : {}),
    ...(severity ? { criticality: severity.criticality } : {}),
    code,
    patient: { reference: `Patient/${patientId}` },
    ...(identified ? { onsetDateTime: identified } : {}),
    ...(manifestations.length > 0
      ? {
          reaction: [
            { manifestation: manifestations, ...(severity ? { severity: severity.severity } : {}) },
          ],
        }
      : {}),
  };
}

const DIAGNOSIS_VERIFICATION: Record<string, string> = {
  F: 'confirmed',
  W: 'provisional',
  A: 'provisional',
};

/** DG1 to a Condition (v2-to-FHIR DG1[Condition]); undefined without a diagnosis. */
export function conditionFromDg1(
  dg1: V2Segment,
  patientId: string,
  encounterId: string | undefined,
): Record<string, unknown> | undefined {
  const code =
    codeableConceptOf(dg1.repetitions(3)[0]) ??
    (dg1.value(4) ? { text: dg1.value(4)! } : undefined);
  if (!code) return undefined;
  const verification = DIAGNOSIS_VERIFICATION[dg1.value(6)?.toUpperCase() ?? ''];
  const recorded = dateTimeOf(dg1.value(5));
  return {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: `${CLINICAL}condition-clinical`, code: 'active' }] },
    ...(verification
      ? {
          verificationStatus: {
            coding: [{ system: `${CLINICAL}condition-ver-status`, code: verification }],
          },
        }
      : {}),
    category: [
      { coding: [{ system: `${CLINICAL}condition-category`, code: 'encounter-diagnosis' }] },
    ],
    code,
    subject: { reference: `Patient/${patientId}` },
    ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
    ...(recorded ? { recordedDate: recorded } : {}),
  };
}
