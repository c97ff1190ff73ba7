import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { annotationsOf, dateTimeOf, typedIdentifier } from '../mapping/datatypes.js';
import {
  carriesAllResults,
  identifierOfEi,
  observationFromObx,
  reportFromObr,
} from '../mapping/observation.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message, V2Segment } from '../message/v2-message.js';
import { Hl7EventClockRepository } from '../store/hl7-event-clock.repository.js';
import { eventInstant, isStale, keep, reportInstant } from './event-order.js';
import {
  formsOf,
  numberedReport,
  observationIdentifier,
  resultGroups,
  sharesNumber,
  unnumberedReport,
} from './result-groups.js';
import { patientsOrder, patientsOrderIfAny } from './order-numbers.js';
import {
  ambiguous,
  byIdentifier,
  upsert,
  writeOver,
  type PatientOfMessage,
  type Touched,
} from './processing.js';
import {
  codeCriteria,
  codeKey,
  repeated,
  repeatedCodes,
  unnumberedObservationCriteria,
} from './record-criteria.js';
import { isPatientsRecord, visitOf } from './record-owners.js';
import {
  dropped,
  gone,
  overtaken,
  withdraw,
  withdrawn,
  withdrawnWarning,
} from './report-versions.js';
import { obrSpecimen, spmSpecimen, type SpecimenHolder } from './specimens.js';

/**
 * R5's DiagnosticReport.note, which R4 lacks, as its cross-version extension: a lab's comments
 * on the whole report ("specimen haemolysed", "verified by") would otherwise be lost.
 */
const REPORT_NOTE = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note';

/** Results (ORU^R01, OUL^R22-R24), for Hl7Processor, in its transaction. */
@Injectable()
export class ResultMessages {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly clock: Hl7EventClockRepository,
  ) {}

  /**
   * ORU^R01 and OUL^R22-R24: each OBR with the OBX segments after it becomes a DiagnosticReport
   * with its Observations, each of its specimen (SPM) when one is sent. A report with a filler
   * order number (OBR-3) replaces its earlier version, so a corrected result updates rather
   * than duplicates.
   */
  async process(
    message: V2Message,
    specimenFirst: boolean,
    { sender, patientId, touched }: PatientOfMessage,
  ): Promise<Touched> {
    const encounter = await visitOf(this.fhir, this.matches, message, sender, patientId);
    const groups = resultGroups(message, specimenFirst);
    if (!groups.some((group) => group.obr)) {
      throw new Hl7ProcessingError('100', 'A result message needs an OBR segment');
    }
    const specimens = new Map<V2Segment, string>();
    const reportsSeen = new Set<string>();
    const messageAt = eventInstant(message);
    // The filler's number (OBR-3), else the placer's (OBR-2), typed as the IG's OBR map does.
    const numberOf = (obr: V2Segment) =>
      typedIdentifier(identifierOfEi(obr.repetitions(3)[0], sender), 'FILL') ??
      typedIdentifier(identifierOfEi(obr.repetitions(2)[0], sender), 'PLAC');
    const numbers = groups.map(({ obr }) => (obr ? numberOf(obr)?.value : undefined));
    for (const { orc, obr, notes: comments, obx, spm } of groups) {
      if (!obr && obx.length === 0) continue; // no OBX came before the first OBR
      const specimenId = spm && (await this.specimen(spm, patientId, sender, specimens, touched));
      const reportIdentifier = obr ? numberOf(obr) : undefined;
      const parentNumber = obr !== undefined && sharesNumber(obr, reportIdentifier, numbers);
      const effective = obr ? dateTimeOf(obr.value(7), obr.timeZone) : undefined;
      const reportCriteria =
        obr &&
        (numberedReport(obr, reportIdentifier, patientId) ??
          unnumberedReport(obr, patientId, effective));
      // The second would be written over the first: two blood culture sets drawn together.
      if (reportCriteria && reportsSeen.has(reportCriteria)) {
        throw new Hl7ProcessingError(
          '205',
          reportIdentifier
            ? 'Two reports of this message have the same number (OBR-3, else OBR-2) and code (OBR-4): number them apart'
            : 'Two reports of this message have no number (OBR-3, OBR-2) and the same code and time (OBR-4, OBR-7): number them',
        );
      }
      if (reportCriteria) reportsSeen.add(reportCriteria);
      // The report's lock covers its observations, whose identifiers derive from its own: a new
      // report's observations exist only when an earlier version was deleted (below), and are
      // otherwise created without a lookup each.
      const matching = reportCriteria
        ? this.matches.uniqueMatch(HL7_USER, 'DiagnosticReport', reportCriteria)
        : undefined;
      // Unnumbered reports filed more than once before they were known again: a new one, as then.
      const reportMatch = await (reportIdentifier ? matching : matching?.catch(ambiguous));
      if (reportMatch) await this.assertPatientsReport(reportMatch, patientId);
      // A report older than the version stored (a preliminary one replayed after the final or
      // its correction) writes nothing over it: its results' values and status stay.
      const at = obr && reportInstant(obr, messageAt);
      if (reportMatch && at) {
        const clock = await this.clock.advance('DiagnosticReport', reportMatch, sender, at, false);
        if (isStale(at, clock.detailsAt)) {
          keep(touched, 'DiagnosticReport');
          continue;
        }
      } else if (reportMatch && obr && (await overtaken(this.fhir, obr, reportMatch, patientId))) {
        // No instant orders them (local times, no HL7_TIME_ZONE): the status does, as v2
        // changes a final report only by a correction. Until 2026-12-07 a replayed preliminary
        // glucose of 5.0 replaced its correction to 6.1 here (and a replayed final one still).
        keep(touched, 'DiagnosticReport', true);
        continue;
      }
      const order = obr && (await this.orderOf(orc, obr, sender, patientId));
      const basedOn = order ? { basedOn: [order] } : {};
      // A feed before v2.5 names the specimen in OBR-15 rather than in an SPM.
      const sourceId =
        !specimenId && obr
          ? await obrSpecimen(this.fhir, obr, patientId, [
              reportMatch ? { type: 'DiagnosticReport', id: reportMatch } : undefined,
              orderId(order),
            ])
          : undefined;
      if (sourceId) touched.entities.push(`Specimen/${sourceId}`);
      const sampleId = specimenId ?? sourceId;
      const sample = sampleId ? `Specimen/${sampleId}` : undefined;
      // A report's own document (a lab's PDF, ED; or where to fetch it, RP) is the report as
      // issued, its presentedForm, rather than an Observation without a value.
      const forms = obx.map(([segment]) => (obr ? formsOf(segment) : []));
      const presentedForm = forms.flat();
      const results = obx.filter((_, i) => forms[i]!.length === 0);
      const observations = results.map(([segment, notes]) => {
        const observation = {
          ...observationFromObx(segment, patientId, effective, notes, obr, sender),
          ...basedOn,
          ...encounter,
          ...(sample ? { specimen: { reference: sample } } : {}),
        };
        const identifier = observationIdentifier(reportIdentifier, segment, obr, parentNumber);
        return {
          identifier,
          body: identifier ? { ...observation, identifier: [identifier] } : observation,
        };
      });
      if (!obr) {
        touched.entities.push(
          ...(await this.looseResults(
            observations.map(({ body }) => body),
            patientId,
            encounter.encounter?.reference.slice('Encounter/'.length),
            sample,
          )),
        );
        continue;
      }
      const reportNotes = annotationsOf(comments ?? []).map((valueAnnotation) => ({
        url: REPORT_NOTE,
        valueAnnotation,
      }));
      const report = (result: { reference: string }[]) => ({
        ...reportFromObr(obr, patientId, reportIdentifier, sender),
        ...basedOn,
        ...encounter,
        ...(sample ? { specimen: [{ reference: sample }] } : {}),
        ...(result.length > 0 ? { result } : {}),
        ...(presentedForm.length > 0 ? { presentedForm } : {}),
        ...(reportNotes.length > 0 ? { extension: reportNotes } : {}),
      });
      // A report deleted through the API leaves its results, which nothing refers to then: its
      // next version, filed anew, takes them over by their identifiers. Created beside them, two
      // results had one identifier, and the lab's next correction matched both (an AE). One
      // probe of the identifier index for all of them (the report's lock covers them): a search
      // by them cost a new report ten times its time while PostgreSQL knew no Observations yet.
      const kept =
        !reportMatch &&
        (await this.matches.anyIdentified(
          'Observation',
          observations.flatMap(({ identifier }) =>
            identifier?.system ? [{ system: identifier.system, value: identifier.value }] : [],
          ),
        ));
      if (!reportMatch && !kept) {
        // A new report: it and its observations are all new, written together.
        const ids = observations.map(() => randomUUID());
        const result = ids.map((id) => ({ reference: `Observation/${id}` }));
        const created = await this.fhir.createMany(HL7_USER, [
          ...observations.map(({ body }, i) => ({ type: 'Observation', body, id: ids[i]! })),
          { type: 'DiagnosticReport', body: report(result) },
        ]);
        touched.entities.push(...created.map(({ resourceType, id }) => `${resourceType}/${id}`));
        const filed = created.find(({ resourceType }) => resourceType === 'DiagnosticReport')!;
        if (at) await this.clock.advance('DiagnosticReport', filed.id, sender, at, false);
        continue;
      }
      const result: { reference: string }[] = [];
      // Results that nothing but their place tells apart: all of a report without a number, and
      // those of a numbered one whose code comes more than once without sub-ids (the lines of a
      // pathology text, two organisms), which share one identifier. Those are known again by
      // code in the report's order, as a lookup by that identifier would find several.
      const shared = repeated(observations.flatMap(({ identifier }) => identifier?.value ?? []));
      // A report filed anew has no order to know those by: they are added.
      const positional =
        reportMatch && (!reportIdentifier || shared.size > 0)
          ? await this.resultsByCode(reportMatch)
          : undefined;
      for (const { identifier, body } of observations) {
        const byPlace = !identifier || shared.has(identifier.value);
        const id = byPlace
          ? await writeOver(this.fhir, 'Observation', body, positional?.get(codeKey(body))?.shift())
          : await upsert(this.fhir, this.matches, 'Observation', body, byIdentifier(identifier));
        result.push({ reference: `Observation/${id}` });
        touched.entities.push(`Observation/${id}`);
      }
      if (reportMatch) {
        const omitted = await dropped(this.fhir, reportMatch, result);
        // A version of all of the report's results that no longer carries one withdraws it (the
        // lab took it back); until 2026-12-07 it stayed final and showed as a current result,
        // off its report. A version with part of them (or none: a status) keeps the others.
        if (observations.length > 0 && carriesAllResults(obr)) {
          const taken = await withdraw(this.fhir, omitted);
          touched.entities.push(...taken.map(({ id }) => `Observation/${id}`));
          const warning = withdrawnWarning(obr, message.all('OBR').indexOf(obr), taken);
          if (warning) (touched.warnings ??= []).push(warning);
        } else result.push(...omitted.map(({ id }) => ({ reference: `Observation/${id}` })));
      }
      // A report sent again as stored (a replayed queue) makes no new version.
      const reportId = await writeOver(this.fhir, 'DiagnosticReport', report(result), reportMatch);
      touched.entities.push(`DiagnosticReport/${reportId}`);
      if (at && !reportMatch)
        await this.clock.advance('DiagnosticReport', reportId, sender, at, false);
    }
    return touched;
  }

  /**
   * A filler order number names one patient's report: another patient's result under it (a
   * mislabelled specimen, two labs' number series) is refused (ERR 205) rather than moving the
   * report and its results to that patient, as writing it over did. A report of a patient
   * merged into this one (A40) is this patient's. So is one its lab withdrew, every result
   * entered in error (OBX-11 `W`, wrong patient): the lab's correction sends it again under the
   * right patient, which was refused until 2026-12-07, leaving that patient's result unfiled.
   */
  private async assertPatientsReport(reportId: string, patientId: string): Promise<void> {
    const report = (await this.fhir.read(HL7_USER, 'DiagnosticReport', reportId)).resource;
    if (await withdrawn(this.fhir, report)) return;
    if (!(await isPatientsRecord(this.fhir, report, patientId))) {
      throw new Hl7ProcessingError(
        '205',
        "OBR-3 names another patient's report: correct the patient or the filler order number",
      );
    }
  }

  /**
   * Results outside any report: a specimen's own (OUL^R22, R23), known again by specimen and
   * code; others (OBX before the first OBR) as an ADT feed's OBX are, by code and time or
   * visit. One whose code comes twice in the message, or that several stored ones match, is
   * added: taken for another, it would be written over it (two comment lines of one code).
   */
  private async looseResults(
    observations: Record<string, unknown>[],
    patientId: string,
    encounterId: string | undefined,
    sample: string | undefined,
  ): Promise<string[]> {
    const twice = repeatedCodes(observations);
    const written: string[] = [];
    for (const body of observations) {
      const byCode = twice.has(codeKey(body))
        ? undefined
        : codeCriteria('subject', patientId, body);
      const criteria = sample
        ? byCode && `${byCode}&specimen=${sample}`
        : !twice.has(codeKey(body))
          ? await unnumberedObservationCriteria(
              this.fhir,
              this.matches,
              body,
              patientId,
              encounterId,
            )
          : undefined;
      const match = criteria
        ? await this.matches.uniqueMatch(HL7_USER, 'Observation', criteria).catch(ambiguous)
        : undefined;
      written.push(`Observation/${await writeOver(this.fhir, 'Observation', body, match)}`);
    }
    return written;
  }

  /**
   * The results of a report without a number, by code, in the report's order: the n-th OBX of
   * a code in a message sent again is the n-th result of that code (a device sends one code
   * several times, told apart by OBX-4 sub-ids that nothing stores without a report number).
   */
  private async resultsByCode(reportId: string): Promise<Map<string, string[]>> {
    const report = (await this.fhir.read(HL7_USER, 'DiagnosticReport', reportId)).resource;
    const byCode = new Map<string, string[]>();
    for (const { reference } of (report['result'] as { reference?: string }[] | undefined) ?? []) {
      const id = /^Observation\/([^/]+)$/.exec(reference ?? '')?.[1];
      if (!id) continue;
      const observation = await this.fhir.read(HL7_USER, 'Observation', id).catch(gone);
      if (!observation) continue; // deleted through the API since: a new one takes its place
      const key = codeKey(observation.resource);
      byCode.set(key, [...(byCode.get(key) ?? []), id]);
    }
    return byCode;
  }

  /**
   * The order a report answers, by its placer order number (ORC-2, else OBR-2): the patient's
   * ServiceRequest when the order feed made it (see patientsOrder), else the number, for a
   * client to match. Without a placer number, the patient's order of the filler's (ORC-3, else
   * OBR-3), as an order the filler placed is known (until 2026-12-07 none), else none: that
   * number is the report's own.
   */
  private async orderOf(
    orc: V2Segment | undefined,
    obr: V2Segment,
    sender: string | undefined,
    patientId: string,
  ): Promise<Record<string, unknown> | undefined> {
    const placer = typedIdentifier(
      identifierOfEi(orc?.repetitions(2)[0] ?? obr.repetitions(2)[0], sender),
      'PLAC',
    );
    if (!placer) {
      const filler = typedIdentifier(
        identifierOfEi(orc?.repetitions(3)[0] ?? obr.repetitions(3)[0], sender),
        'FILL',
      );
      const id =
        filler &&
        (await patientsOrderIfAny(this.fhir, this.matches, byIdentifier(filler)!, patientId));
      return id ? { reference: `ServiceRequest/${id}` } : undefined;
    }
    const id = await patientsOrder(this.fhir, this.matches, byIdentifier(placer)!, patientId);
    return id
      ? { reference: `ServiceRequest/${id}` }
      : { type: 'ServiceRequest', identifier: placer };
  }

  /**
   * The Specimen of an SPM, once per message, known again by its filler's (else placer's) id
   * for the patient, so that a later result on the same specimen updates it.
   */
  private async specimen(
    spm: V2Segment,
    patientId: string,
    sender: string | undefined,
    done: Map<V2Segment, string>,
    touched: Touched,
  ): Promise<string> {
    const known = done.get(spm);
    if (known) return known;
    const id = await spmSpecimen(this.fhir, this.matches, spm, patientId, sender, touched);
    done.set(spm, id);
    touched.entities.push(`Specimen/${id}`);
    return id;
  }
}

/** The order a report answers, when it is one on file here (see orderOf). */
function orderId(order: Record<string, unknown> | undefined): SpecimenHolder | undefined {
  const id = /^ServiceRequest\/([^/]+)$/.exec(
    (order?.['reference'] as string | undefined) ?? '',
  )?.[1];
  return id ? { type: 'ServiceRequest', id } : undefined;
}
