import type { FhirService } from '../../fhir/fhir.service.js';
import { HL7_USER } from '../hl7-user.js';
import { observationFromObx } from '../mapping/observation.js';
import type { V2Segment } from '../message/v2-message.js';
import type { RecordClock } from './event-order.js';
import { writeOver } from './processing.js';
import { codeKey } from './record-criteria.js';

/** An OBX sent with an order (an answer asked at order entry, a weight), with its NTE. */
export interface OrderAnswer {
  obx: V2Segment;
  notes: V2Segment[];
}

/**
 * The OBX of the pharmacy give (RXE) or dispense (RXD) at `at`, each with the NTE right after
 * it: those after it, its TQ1, RXR, RXC and CDO, before the next order, give or dispense
 * (RDE_O11's and RDE_O25's ORDER.OBSERVATION group; RDS_O13's, after its RXD). An RDS's RXE
 * has none: its OBX come after the RXD.
 */
export function giveAnswers(segments: readonly V2Segment[], at: number): OrderAnswer[] {
  const answers: OrderAnswer[] = [];
  let notes: V2Segment[] | undefined;
  for (const segment of segments.slice(at + 1)) {
    if (['ORC', 'RXE', 'RXD'].includes(segment.name)) break;
    if (segment.name === 'NTE') {
      notes?.push(segment);
      continue;
    }
    notes = undefined;
    if (segment.name === 'OBX') {
      const answer = { obx: segment, notes: [] };
      answers.push(answer);
      notes = answer.notes;
    }
  }
  return answers;
}

/**
 * The NTE right after the give (RXE) or dispense (RXD) at `at`, or after its PRT: its notes
 * (RDE_O11's NTE after the RXE, RDS_O13's after the RXD); not those of its OBX, nor of the
 * order detail (RXO) before it.
 */
export function giveNotes(segments: readonly V2Segment[], at: number): V2Segment[] {
  const notes: V2Segment[] = [];
  for (const segment of segments.slice(at + 1)) {
    if (segment.name === 'NTE') notes.push(segment);
    else if (segment.name !== 'PRT') break;
  }
  return notes;
}

/**
 * The components (RXC: an IV admixture's base and additives) of the give (RXE), requested
 * order (RXO) or dispense (RXD) at `at`: those after it, its TQ1 and RXR, before its OBX and
 * the next order, give or dispense (see medicationOf).
 */
export function giveComponents(segments: readonly V2Segment[], at: number): V2Segment[] {
  const components: V2Segment[] = [];
  for (const segment of segments.slice(at + 1)) {
    if (['ORC', 'RXO', 'RXE', 'RXD', 'OBX', 'OBR'].includes(segment.name)) break;
    if (segment.name === 'RXC') components.push(segment);
  }
  return components;
}

/**
 * An order's ask-at-order-entry answers (the OBX after its OBR: the date of the last rabies
 * vaccination, whether the patient fasted) as Observations its ServiceRequest names in
 * supportingInfo, as the IG's OML_O21, OMG_O19 and ORM_O01 maps have them, and those of a
 * pharmacy order (after an RXO: ORM_O01's ORDER_DETAIL, OMP_O09; after an RXE: RDE_O11's
 * ORDER.OBSERVATION, a weight or a creatinine the dose was worked out from) in its
 * MedicationRequest's supportingInformation, and those after a dispense (RDS_O13's RXD) in its
 * MedicationDispense's. Dropped until 2026-12-07: the lab got the order without what the
 * clinician answered for it, the pharmacy a prescription without the observations sent with
 * it, and a dispense came without the INR it was checked against. An answer is known again as
 * the order on file's (or dispense's) of that code (the n-th of it, when one is asked twice), so
 * that the order sent again updates its answers rather than adding them; those of an order not
 * on file are new (one of no number is found by what it says, see unnumberedOrder). A message
 * older than one already applied to the order leaves its answers as they are (the order's
 * clock), and each answer too (its own, see writeOver): until 2026-12-07 a replayed older
 * order, kept itself, wrote its answers over the newer ones, and filed those the newer message
 * did not have beside it.
 */
export async function orderAnswers(
  fhir: FhirService,
  type: 'ServiceRequest' | 'MedicationRequest' | 'MedicationDispense',
  answers: readonly OrderAnswer[],
  {
    obr,
    storedOrder,
    sender,
    patientId,
    encounter,
    clock,
  }: {
    obr: V2Segment | undefined;
    storedOrder: () => Promise<string | undefined>;
    sender?: string;
    patientId: string;
    encounter: { encounter?: { reference: string } };
    clock: RecordClock;
  },
): Promise<{ reference: string }[]> {
  if (answers.length === 0) return [];
  const element = type === 'ServiceRequest' ? 'supportingInfo' : 'supportingInformation';
  const stored = await storedOrder();
  const previous: { id: string; code: string }[] = [];
  if (stored) {
    const order = (await fhir.read(HL7_USER, type, stored)).resource;
    const references = (order[element] ?? []) as { reference: string }[];
    // The order stays as the newer message left it (upsertOrder): so do the answers it names,
    // and none is filed beside it that it would not name.
    if (await clock(type, stored)) return references;
    for (const { reference } of references) {
      const [kind, id] = reference?.split('/') ?? [];
      if (kind !== 'Observation' || !id) continue;
      const answer = (await fhir.read(HL7_USER, 'Observation', id)).resource;
      previous.push({ id, code: codeKey(answer) });
    }
  }
  const references: { reference: string }[] = [];
  for (const { obx, notes } of answers) {
    const observation = {
      ...observationFromObx(obx, patientId, undefined, notes, obr, sender),
      ...encounter,
    };
    const at = previous.findIndex(({ code }) => code === codeKey(observation));
    const match = at >= 0 ? previous.splice(at, 1)[0]!.id : undefined;
    const id = await writeOver(fhir, 'Observation', observation, match, clock);
    references.push({ reference: `Observation/${id}` });
  }
  return references;
}
