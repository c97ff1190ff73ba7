import { normalizePhone, normalizeString } from '../search/normalize.js';

/** The FHIR match-grade codes $match reports (certainly-not matches are left out). */
export type MatchGrade = 'certain' | 'probable' | 'possible';

export interface PatientFacts {
  identifier?: { system?: string; value?: string }[];
  name?: { family?: string; given?: string[] }[];
  birthDate?: string;
  gender?: string;
  telecom?: { system?: string; value?: string }[];
  address?: { postalCode?: string }[];
}

/** How much each agreeing element adds to a match's score (when no identifier settles it). */
const WEIGHTS = {
  family: 0.3,
  given: 0.2,
  birthDate: 0.3,
  gender: 0.05,
  telecom: 0.1,
  postalCode: 0.05,
};
/** And what a disagreement takes away: a different birth date or MRN of the same system weighs most. */
const PENALTIES = { birthDate: 0.4, gender: 0.1, identifier: 0.5 };

/**
 * Scores a candidate against the patient asked about, deterministically and explainably (the
 * way an MPI's rules read, not a trained model). The same identifier (system and value) is a
 * certain match unless the birth dates differ (then possible); otherwise agreeing names, birth date, gender,
 * phone or email and postal code add up: family, given and birth date together are probable
 * (0.8), two of them possible (0.5 to 0.6). Strings compare as searches do (case and accents
 * ignored), phones by their digits.
 */
export function scoreMatch(
  asked: PatientFacts,
  candidate: PatientFacts,
): { score: number; grade: MatchGrade } | undefined {
  const birthConflict =
    asked.birthDate !== undefined &&
    candidate.birthDate !== undefined &&
    asked.birthDate !== candidate.birthDate;
  const sameIdentifier = identifiers(asked).some((id) => identifiers(candidate).includes(id));
  if (sameIdentifier) {
    // One MRN with two birth dates is a mistyped date or two people on one record (an overlay):
    // someone should look, so it is shown, as possible.
    return birthConflict ? { score: 0.5, grade: 'possible' } : { score: 1, grade: 'certain' };
  }

  const agree = (mine: string[], theirs: string[]) => mine.some((value) => theirs.includes(value));
  let score = 0;
  if (agree(families(asked), families(candidate))) score += WEIGHTS.family;
  if (agree(givens(asked), givens(candidate))) score += WEIGHTS.given;
  if (asked.birthDate !== undefined && asked.birthDate === candidate.birthDate) {
    score += WEIGHTS.birthDate;
  }
  if (known(asked.gender) && known(candidate.gender)) {
    score += asked.gender === candidate.gender ? WEIGHTS.gender : -PENALTIES.gender;
  }
  if (agree(telecoms(asked), telecoms(candidate))) score += WEIGHTS.telecom;
  if (agree(postalCodes(asked), postalCodes(candidate))) score += WEIGHTS.postalCode;
  if (birthConflict) score -= PENALTIES.birthDate;
  if (identifierConflict(asked, candidate)) score -= PENALTIES.identifier;
  score = Math.round(Math.min(0.99, Math.max(0, score)) * 100) / 100;
  if (score >= 0.8) return { score, grade: 'probable' };
  if (score >= 0.5) return { score, grade: 'possible' };
  return undefined;
}

function identifiers(patient: PatientFacts): string[] {
  return (patient.identifier ?? [])
    .filter((id) => id.system && id.value)
    .map((id) => `${id.system}|${id.value!.trim()}`);
}

/** Both hold an identifier of one system, with different values (another MRN of that hospital). */
function identifierConflict(asked: PatientFacts, candidate: PatientFacts): boolean {
  const theirs = new Map<string, Set<string>>();
  for (const id of candidate.identifier ?? []) {
    if (id.system && id.value) {
      theirs.set(id.system, (theirs.get(id.system) ?? new Set()).add(id.value.trim()));
    }
  }
  return (asked.identifier ?? []).some(
    (id) =>
      id.system !== undefined &&
      id.value !== undefined &&
      theirs.has(id.system) &&
      !theirs.get(id.system)!.has(id.value.trim()),
  );
}

const families = (patient: PatientFacts): string[] =>
  (patient.name ?? []).flatMap((name) => (name.family ? [normalizeString(name.family)] : []));

const givens = (patient: PatientFacts): string[] =>
  (patient.name ?? []).flatMap((name) => (name.given ?? []).map(normalizeString));

const telecoms = (patient: PatientFacts): string[] =>
  (patient.telecom ?? []).flatMap((telecom) =>
    !telecom.value
      ? []
      : telecom.system === 'email'
        ? [telecom.value.trim().toLowerCase()]
        : [normalizePhone(telecom.value)].filter((digits) => digits.length >= 7),
  );

const postalCodes = (patient: PatientFacts): string[] =>
  (patient.address ?? []).flatMap((address) =>
    address.postalCode ? [normalizeString(address.postalCode)] : [],
  );

const known = (gender: string | undefined): gender is string =>
  gender !== undefined && gender !== 'unknown';
