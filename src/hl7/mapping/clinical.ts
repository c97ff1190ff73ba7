import type { V2Segment } from '../message/v2-message.js';
import {
  annotationsOf,
  codeableConceptOf,
  dateOf,
  dateTimeOf,
  plusMinutes,
  practitionerOf,
  type Identifier,
} from './datatypes.js';
import { identifierOfEi } from './observation.js';
import { exactNumberOf } from './numeric.js';

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

/**
 * IAM-17 allergy clinical status (table 0438) to the clinical and verification statuses. A
 * record in error has no clinical status (R4's ait-2); one not confirmed is still active.
 */
const ALLERGY_STATUS: Record<string, { clinical?: string; verification?: string }> = {
  C: { clinical: 'active', verification: 'confirmed' },
  U: { clinical: 'active', verification: 'unconfirmed' },
  P: { clinical: 'active', verification: 'unconfirmed' },
  S: { clinical: 'active', verification: 'unconfirmed' },
  I: { clinical: 'inactive' },
  E: { verification: 'entered-in-error' },
};

/** IAM-9 sensitivity to the causative agent (table 0436) to the AllergyIntolerance type. */
const ALLERGY_TYPE: Record<string, string> = { AL: 'allergy', IN: 'intolerance' };

export interface AllergyOfIam {
  /** IAM-7, the allergy's unique identifier, that later messages name it by. */
  identifier: Identifier | undefined;
  /** IAM-6 (table 0206/0323): D removes the allergy from the patient's list. */
  deletes: boolean;
  resource: Record<string, unknown>;
}

/**
 * IAM, with the IAR reactions and NTE notes after it, to an AllergyIntolerance (v2-to-FHIR
 * IAM[AllergyIntolerance]); undefined without an allergen (IAM-3, required by v2).
 */
export function allergyFromIam(
  iam: V2Segment,
  following: readonly V2Segment[],
  patientId: string,
  sender: string | undefined,
): AllergyOfIam | undefined {
  const code = codeableConceptOf(iam.repetitions(3)[0]);
  if (!code) return undefined;
  const identifier = identifierOfEi(iam.repetitions(7)[0], sender);
  const category = ALLERGY_CATEGORY[iam.value(2)?.toUpperCase() ?? ''];
  const type = ALLERGY_TYPE[iam.value(9)?.toUpperCase() ?? ''];
  const severity = ALLERGY_SEVERITY[iam.value(4)?.toUpperCase() ?? ''];
  const status = ALLERGY_STATUS[iam.value(17)?.toUpperCase() ?? ''] ?? { clinical: 'active' };
  const onset = dateOf(iam.value(11));
  const recorded = dateTimeOf(iam.value(13), iam.timeZone);
  const reactions = [
    ...iam
      .repetitions(5)
      .map((rep) => rep.value(1))
      .filter((text): text is string => !!text)
      .map((text) => ({
        manifestation: [{ text }],
        ...(severity ? { severity: severity.severity } : {}),
      })),
    ...following
      .filter((segment) => segment.name === 'IAR')
      .map((iar) => ({ manifestation: codeableConceptOf(iar.repetitions(1)[0]), iar }))
      .filter(({ manifestation }) => manifestation !== undefined)
      .map(({ manifestation, iar }) => {
        const reactionSeverity = ALLERGY_SEVERITY[iar.value(2)?.toUpperCase() ?? ''];
        return {
          manifestation: [manifestation],
          ...(reactionSeverity ? { severity: reactionSeverity.severity } : {}),
        };
      }),
  ];
  const notes = annotationsOf(following.filter((segment) => segment.name === 'NTE'));
  return {
    identifier,
    deletes: iam.value(6)?.toUpperCase() === 'D',
    resource: {
      resourceType: 'AllergyIntolerance',
      ...(identifier ? { identifier: [identifier] } : {}),
      ...(status.clinical
        ? {
            clinicalStatus: {
              coding: [{ system: `${CLINICAL}allergyintolerance-clinical`, code: status.clinical }],
            },
          }
        : {}),
      ...(status.verification
        ? {
            verificationStatus: {
              coding: [
                {
                  system: `${CLINICAL}allergyintolerance-verification`,
                  code: status.verification,
                },
              ],
            },
          }
        : {}),
      ...(type ? { type } : {}),
      ...(category ? { category: [category] } : {}),
      ...(severity ? { criticality: severity.criticality } : {}),
      code,
      patient: { reference: `Patient/${patientId}` },
      ...(onset ? { onsetDateTime: onset } : iam.value(12) ? { onsetString: iam.value(12) } : {}),
      ...(recorded ? { recordedDate: recorded } : {}),
      ...(notes.length > 0 ? { note: notes } : {}),
      ...(reactions.length > 0 ? { reaction: reactions } : {}),
    },
  };
}

/** What every Condition a feed makes has: its statuses, category, code and patient. */
function conditionOf(
  category: 'encounter-diagnosis' | 'problem-list-item',
  code: Record<string, unknown>,
  patientId: string,
  clinical: string,
  verification: string | undefined,
): Record<string, unknown> {
  return {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: `${CLINICAL}condition-clinical`, code: clinical }] },
    ...(verification
      ? {
          verificationStatus: {
            coding: [{ system: `${CLINICAL}condition-ver-status`, code: verification }],
          },
        }
      : {}),
    category: [{ coding: [{ system: `${CLINICAL}condition-category`, code: category }] }],
    code,
    subject: { reference: `Patient/${patientId}` },
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
  const recorded = dateTimeOf(dg1.value(5), dg1.timeZone);
  return {
    ...conditionOf('encounter-diagnosis', code, patientId, 'active', verification),
    ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
    ...(recorded ? { recordedDate: recorded } : {}),
  };
}

/** PRB-14 problem life cycle status to Condition.clinicalStatus (R4's codes, by name or letter). */
const PROBLEM_LIFE_CYCLE: Record<string, string> = {
  A: 'active',
  ACTIVE: 'active',
  I: 'inactive',
  INACTIVE: 'inactive',
  R: 'resolved',
  RESOLVED: 'resolved',
  REMISSION: 'remission',
  RECURRENCE: 'recurrence',
  RELAPSE: 'relapse',
};

/** PRB-13 problem confirmation status to Condition.verificationStatus. */
const PROBLEM_CONFIRMATION: Record<string, string> = {
  C: 'confirmed',
  CONFIRMED: 'confirmed',
  P: 'provisional',
  PROVISIONAL: 'provisional',
  D: 'differential',
  DIFFERENTIAL: 'differential',
  R: 'refuted',
  REFUTED: 'refuted',
  'RULED OUT': 'refuted',
};

export interface ProblemOfPrb {
  /** PRB-4, the problem instance id that later messages name it by. */
  identifier: Identifier | undefined;
  /** PRB-1 DE: the problem is taken off the list. */
  deletes: boolean;
  resource: Record<string, unknown>;
}

/**
 * PRB, with the NTE notes right after it, to a problem-list Condition (v2-to-FHIR
 * PRB[Condition]); undefined without a problem code (PRB-3, required by v2). A problem with a
 * resolution date (PRB-9) and no life cycle status (PRB-14) is resolved, else active.
 */
export function problemFromPrb(
  prb: V2Segment,
  notes: readonly V2Segment[],
  patientId: string,
  sender: string | undefined,
): ProblemOfPrb | undefined {
  const code = codeableConceptOf(prb.repetitions(3)[0]);
  if (!code) return undefined;
  const identifier = identifierOfEi(prb.repetitions(4)[0], sender);
  const abated = dateTimeOf(prb.value(9), prb.timeZone);
  const clinical =
    PROBLEM_LIFE_CYCLE[prb.value(14)?.trim().toUpperCase() ?? ''] ??
    (abated ? 'resolved' : 'active');
  const verification = PROBLEM_CONFIRMATION[prb.value(13)?.trim().toUpperCase() ?? ''];
  const recorded = dateTimeOf(prb.value(7), prb.timeZone) ?? dateTimeOf(prb.value(2), prb.timeZone);
  const onset = dateTimeOf(prb.value(16)?.trim(), prb.timeZone);
  const text = annotationsOf(notes);
  return {
    identifier,
    deletes: prb.value(1)?.toUpperCase() === 'DE',
    resource: {
      ...conditionOf('problem-list-item', code, patientId, clinical, verification),
      ...(identifier ? { identifier: [identifier] } : {}),
      ...(onset ? { onsetDateTime: onset } : prb.value(17) ? { onsetString: prb.value(17) } : {}),
      ...(abated ? { abatementDateTime: abated } : {}),
      ...(recorded ? { recordedDate: recorded } : {}),
      ...(text.length > 0 ? { note: text } : {}),
    },
  };
}

export interface ProcedureOfPr1 {
  /** PR1-19, the procedure identifier, that later messages name it by. */
  identifier: Identifier | undefined;
  /** PR1-20 action code D: the procedure is taken back. */
  deletes: boolean;
  resource: Record<string, unknown>;
}

/** Who did what in a PR1: anesthesiologist (PR1-8), surgeon (PR1-11), practitioners (PR1-12). */
const PROCEDURE_PERFORMERS: { field: number; role?: string }[] = [
  { field: 8, role: 'Anesthesiologist' },
  { field: 11, role: 'Surgeon' },
  { field: 12 },
];

/**
 * PR1 to a Procedure (v2-to-FHIR PR1[Procedure]); undefined without a procedure code. Its
 * status is `unknown`, as the IG has it where the message does not say: a PR1 lists a visit's
 * procedures without saying whether each was done. PR1-5 with PR1-7 minutes is a period.
 */
export function procedureFromPr1(
  pr1: V2Segment,
  patientId: string,
  encounterId: string | undefined,
  sender: string | undefined,
): ProcedureOfPr1 | undefined {
  const coded = codeableConceptOf(pr1.repetitions(3)[0]);
  const description = pr1.value(4) ?? undefined;
  const code = coded
    ? { ...coded, ...(description && !pr1.value(3, 9) ? { text: description } : {}) }
    : description && { text: description };
  if (!code) return undefined;
  const identifier = identifierOfEi(pr1.repetitions(19)[0], sender);
  const performed = dateTimeOf(pr1.value(5), pr1.timeZone);
  const minutes = exactNumberOf(pr1.value(7), 'PR1-7') ?? 0;
  const category = codeableConceptOf(pr1.repetitions(6)[0]);
  const reason = codeableConceptOf(pr1.repetitions(15)[0]);
  const performers = PROCEDURE_PERFORMERS.flatMap(({ field, role }) =>
    pr1
      .repetitions(field)
      .map((xcn) => practitionerOf(xcn, sender))
      .filter((actor) => actor !== undefined)
      .map((actor) => ({
        ...(role ? { function: { text: role } } : {}),
        actor: { type: 'Practitioner', ...actor },
      })),
  );
  return {
    identifier,
    deletes: pr1.value(20)?.toUpperCase() === 'D',
    resource: {
      resourceType: 'Procedure',
      ...(identifier ? { identifier: [identifier] } : {}),
      status: 'unknown',
      ...(category ? { category } : {}),
      code,
      subject: { reference: `Patient/${patientId}` },
      ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
      ...(performed?.includes('T') && Number.isInteger(minutes) && minutes > 0
        ? { performedPeriod: { start: performed, end: plusMinutes(performed, minutes, 'PR1-7') } }
        : performed
          ? { performedDateTime: performed }
          : {}),
      ...(performers.length > 0 ? { performer: performers } : {}),
      ...(reason ? { reasonCode: [reason] } : {}),
    },
  };
}
