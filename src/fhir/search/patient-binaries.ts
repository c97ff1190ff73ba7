/** Placeholders (of whatever query builds the SQL) for patientBinariesSql. */
export interface PatientBinariesPlaceholders {
  patient: string;
  /** SECURITY_CONTEXT_PARAM. */
  contextParam: string;
  /** CompartmentScope.binaries' contextLinks, as two text arrays. */
  linkTypes: string;
  linkParams: string;
}

/**
 * The Binaries that may be a patient's (see CompartmentScope.binaries), as `resource_type, id`
 * rows, each once: those whose securityContext names the patient, those naming a record in the
 * patient's compartment now (the patient's index rows, then the rows naming each record:
 * idx_search_reference_lookup both times, so other patients' Binaries are never read), and
 * those naming a record deleted since, which counts as it was (SecurityContexts) and which
 * only the check of each row read can judge. That last part reads every Binary's context row
 * and the deleted records (no content): at 50,000 Binaries, 65 ms where the rest took 0.1 ms.
 */
export function patientBinariesSql(p: PatientBinariesPlaceholders): string {
  return `SELECT s.resource_type, s.resource_id AS id FROM search_reference s
       WHERE s.target_id = ${p.patient} AND s.target_type = 'Patient'
         AND s.param = ${p.contextParam} AND s.resource_type = 'Binary'
      UNION
      SELECT s.resource_type, s.resource_id FROM (
        SELECT l.resource_type, l.resource_id FROM search_reference l
         WHERE l.target_id = ${p.patient} AND l.target_type = 'Patient'
           AND (l.resource_type, l.param) IN
               (SELECT * FROM unnest(CAST(${p.linkTypes} AS text[]), CAST(${p.linkParams} AS text[])))
      ) x
      JOIN search_reference s
        ON s.target_id = x.resource_id AND s.target_type = x.resource_type
       AND s.param = ${p.contextParam} AND s.resource_type = 'Binary'
      UNION
      SELECT s.resource_type, s.resource_id FROM search_reference s
        JOIN resource d ON d.resource_type = s.target_type AND d.id = s.target_id AND d.deleted
       WHERE s.resource_type = 'Binary' AND s.param = ${p.contextParam}`;
}
