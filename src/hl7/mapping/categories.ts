/**
 * Categories of results: the report's diagnostic service section (OBR-24, table 0074), and the
 * Observation category a FHIR client filters on (`Observation?category=laboratory`, as SMART
 * lab and vital-sign apps ask).
 */

const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const SERVICE_SECTION = 'http://terminology.hl7.org/CodeSystem/v2-0074';

/**
 * The LOINC codes of R4's vital signs profile, which every vital sign SHALL conform to
 * (observation-vitalsigns.html), with the category vital-signs among its rules.
 */
const VITAL_SIGNS = new Set([
  '85353-1', // vital signs panel
  '9279-1', // respiratory rate
  '8867-4', // heart rate
  '2708-6', // oxygen saturation in arterial blood
  '59408-5', // oxygen saturation by pulse oximetry
  '8310-5', // body temperature
  '8302-2', // body height
  '9843-4', // head circumference
  '29463-7', // body weight
  '39156-5', // body mass index
  '85354-9', // blood pressure panel
  '8480-6', // systolic blood pressure
  '8462-4', // diastolic blood pressure
]);

/** Table 0074 sections whose results are laboratory, or imaging, results. */
const LABORATORY = new Set(
  'BG BLB CG CH CP GE HM IMM LAB MB MCB MYC OSL PAR PAT SP SR TX URN VR'.split(' '),
);
const IMAGING = new Set('CT CUS NMR NMS OUS RAD RUS RX VUS XRC'.split(' '));

type Concept = { coding?: { system?: string; code?: string }[] };

/** OBR-24 as the report's category, in table 0074's system, as R4's example binding has it. */
export function reportCategory(section: string | null | undefined): Concept[] {
  return section ? [{ coding: [{ system: SERVICE_SECTION, code: section }] }] : [];
}

/**
 * An Observation's category: vital-signs for a vital sign's LOINC code, else laboratory or
 * imaging when its report's section (OBR-24) says so; none when nothing does.
 */
export function observationCategory(code: Concept, section?: string | null): Concept[] {
  const loinc = code.coding?.find((coding) => coding.system === 'http://loinc.org')?.code;
  const category =
    loinc && VITAL_SIGNS.has(loinc)
      ? 'vital-signs'
      : section && LABORATORY.has(section.toUpperCase())
        ? 'laboratory'
        : section && IMAGING.has(section.toUpperCase())
          ? 'imaging'
          : undefined;
  return category ? [{ coding: [{ system: OBSERVATION_CATEGORY, code: category }] }] : [];
}
