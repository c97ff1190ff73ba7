import { Injectable } from '@nestjs/common';
import { CriteriaMatches } from '../../fhir/criteria-matches.service.js';
import { FhirService } from '../../fhir/fhir.service.js';
import type { StoredResource } from '../../fhir/fhir-types.js';
import { replacedBy } from '../../fhir/retired-patients.js';
import { HL7_USER } from '../hl7-user.js';
import { sameIdentifier } from '../mapping/datatypes.js';
import { identifierCriteria, patientFromSegments } from '../mapping/patient.js';
import { Hl7ProcessingError } from '../message/hl7-header.js';
import type { V2Message } from '../message/v2-message.js';
import { Hl7EventClockRepository } from '../store/hl7-event-clock.repository.js';
import { eventInstant, isStale, keep } from './event-order.js';
import { patientNamed, senderSystem, whileChangedMeanwhile } from './message-patients.js';
import { without, type Touched } from './processing.js';

interface PatientLink {
  other?: { reference?: unknown };
  type?: unknown;
}

/** The link types a merge writes (A40, FHIR's $merge): the pair an unlink may not take apart. */
const MERGE_LINKS: ReadonlySet<unknown> = new Set(['replaced-by', 'replaces']);

const MERGED =
  'The two patients were merged (A40): an unlink (A37) does not undo a merge, which moved ' +
  "the prior patient's records and identifiers; correct it on the survivor";

type Change = 'link' | 'unlink';

/** How the two messages are named in their errors. */
const EVENT: Record<Change, string> = { link: 'A link (A24)', unlink: 'An unlink (A37)' };

const ORDINAL = ['first', 'second'] as const;

/** What a link or unlink older than one applied leaves (its ACK's warning names it so). */
const LINK_RECORD = 'Patient link';

/**
 * A Patient's links without its `seealso` ones to `otherId`: what an unlink (A37) leaves of
 * them. An A24 links two records of one person without merging them, which is FHIR's `seealso`
 * ("in use and valid", another record of the same person); `refer` and the merge's pair are
 * other relations. Throws (AE) when a link to the other is a merge's: undone by an unlink, the
 * retired record would answer again while its records and identifiers stay with the survivor.
 */
export function unlinked(links: readonly PatientLink[], otherId: string): PatientLink[] {
  const toOther = (link: PatientLink) => link.other?.reference === `Patient/${otherId}`;
  if (links.some((link) => toOther(link) && MERGE_LINKS.has(link.type))) {
    throw new Hl7ProcessingError('207', MERGED);
  }
  return links.filter((link) => !(toOther(link) && link.type === 'seealso'));
}

/**
 * A Patient's links with a `seealso` one to `otherId`: what a link (A24) leaves of them, the
 * links as they are when it is there already. Throws (AE) when a link to the other is a
 * merge's: the two are one patient's records already, one of them retired.
 */
export function linked(links: readonly PatientLink[], otherId: string): PatientLink[] {
  const toOther = (link: PatientLink) => link.other?.reference === `Patient/${otherId}`;
  if (links.some((link) => toOther(link) && MERGE_LINKS.has(link.type))) {
    throw new Hl7ProcessingError(
      '207',
      'The two patients were merged (A40): there is nothing to link',
    );
  }
  if (links.some((link) => toOther(link) && link.type === 'seealso')) return [...links];
  return [...links, { other: { reference: `Patient/${otherId}` }, type: 'seealso' }];
}

/**
 * The order in which the patients of `ids` are written (their indexes): by id, whichever PID
 * names which, so that two messages about one pair take the patients' row locks in one order
 * and neither holds one the other waits for.
 */
export function writeOrder(ids: readonly string[]): number[] {
  return [...ids.keys()].sort((x, y) => (ids[x]! < ids[y]! ? -1 : ids[x]! > ids[y]! ? 1 : 0));
}

/** Linking (ADT^A24) and unlinking (ADT^A37) two patients, for Hl7Processor. */
@Injectable()
export class PatientLinks {
  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly clock: Hl7EventClockRepository,
  ) {}

  /**
   * ADT^A24: the two patients of its PID segments are records of one person, kept apart (as
   * chapter 3 has it: "following a link event, the affected patient data records should remain
   * distinct"): each gets a `seealso` link to the other, and nothing else of them changes (the
   * standard sends other changes as A08). Linked already, nothing is written (AA), so a resend
   * makes no version. Refused (AE): a patient not on file (204; the standard does not say an A24
   * registers anyone, and its PIDs need carry no more than the numbers), two PIDs naming one
   * patient here (a merge made them one), and a patient a merge retired (`replaced-by`), which
   * is no longer to be used. An unlink (A37) takes the links apart again.
   */
  async link(message: V2Message): Promise<Touched> {
    return whileChangedMeanwhile(() => this.change(message, 'link'));
  }

  /**
   * ADT^A37: the two patients of its PID segments are no longer linked as one person's records
   * (the link an A24 or a registrar made): their `seealso` links to each other are removed, and
   * neither is retired or changed otherwise. A patient not known here, or a link not there, is
   * already as the sender has it (AA, nothing written, so a resend changes nothing). Two PIDs
   * naming one patient here are a merge's doing (the survivor answers to the prior numbers),
   * and so is a `replaced-by` pair between them: refused (AE), as an edit does not undo a merge.
   */
  async unlink(message: V2Message): Promise<Touched> {
    return whileChangedMeanwhile(() => this.change(message, 'unlink'));
  }

  /**
   * One try of a link or unlink: each patient is written over the version read only (If-Match),
   * so that a FHIR update committed meanwhile (a registrar's new phone) is not written over with
   * what was read before it, as it was until 2026-12-07; whileChangedMeanwhile then tries again
   * from a fresh search and read. What a try wrote stays (the transaction is the message's), and
   * the next finds it done.
   */
  private async change(message: V2Message, change: Change): Promise<Touched> {
    const touched: Touched = { entities: [], patientIds: [], kept: [] };
    const [first, second] = await this.patientsOf(message, change);
    if (!first || !second) {
      if (change === 'unlink') return touched;
      throw new Hl7ProcessingError(
        '204',
        `The ${ORDINAL[first ? 1 : 0]} PID names no patient here: ${EVENT.link.toLowerCase()} links two patients on file, so register them first (A04, A28)`,
      );
    }
    if (first === second) {
      throw new Hl7ProcessingError(
        '207',
        change === 'unlink'
          ? MERGED
          : 'Both PIDs name one patient here (a merge, A40, made them one): there are not two records to link',
      );
    }
    const patients = [
      await this.fhir.read(HL7_USER, 'Patient', first),
      await this.fhir.read(HL7_USER, 'Patient', second),
    ] as const;
    const ids = [first, second];
    // Both checked before either is written: a refusal leaves both as they were.
    const next = patients.map(({ resource }, i) => {
      if (change === 'link' && replacedBy(resource)) {
        throw new Hl7ProcessingError(
          '207',
          `The patient of the ${ORDINAL[i]} PID was merged into another (its link is replaced-by) and is no longer to be used: link the patient it was merged into`,
        );
      }
      const links = (resource['link'] as PatientLink[] | undefined) ?? [];
      return (change === 'link' ? linked : unlinked)(links, ids[1 - i]!);
    });
    // Both patients are the message's, written or not: its audit row names whose records it
    // read, as a message of one patient's does when its PID changes nothing.
    touched.patientIds.push(first, second);
    if (await this.olderThanApplied(message, ids)) {
      keep(touched, LINK_RECORD);
      return touched;
    }
    for (const i of writeOrder(ids)) {
      if (await this.write(patients[i]!, next[i]!)) touched.entities.push(`Patient/${ids[i]!}`);
    }
    return touched;
  }

  /**
   * Whether a link or unlink of the pair newer than the message (see eventInstant) was applied
   * already, from its sender: the older one then leaves the links as the newer one set them.
   * Until 2026-12-07 an A37 replayed after a newer A24 took the link apart again. The pair's
   * clock is its own, neither patient's (an A08 of a patient orders its details, not its links),
   * kept on the first patient by id under a source naming the other (the clock's rows are a
   * stored resource's, and go with it); both patients' criteria locks are held (patientsOf).
   */
  private async olderThanApplied(message: V2Message, ids: readonly string[]): Promise<boolean> {
    const at = eventInstant(message);
    if (at === undefined) return false;
    const [low, high] = writeOrder(ids).map((i) => ids[i]!);
    const source = `${senderSystem(message) ?? ''} ${LINK_RECORD} Patient/${high!}`;
    return isStale(at, (await this.clock.advance('Patient', low!, source, at, false)).detailsAt);
  }

  /**
   * The two patients the PIDs name, each by the numbers the other PID does not carry: two
   * records of one person share an SSN, which names both of them (AE 205 had it been searched
   * for). Undefined for one not on file.
   */
  private async patientsOf(message: V2Message, change: Change): Promise<(string | undefined)[]> {
    const pids = message.all('PID');
    if (pids.length !== 2) {
      throw new Hl7ProcessingError(
        '100',
        `${EVENT[change]} needs the PID segments of two patients`,
      );
    }
    const sender = senderSystem(message);
    const sent = pids.map((pid) => patientFromSegments(pid, sender, undefined).identifiers);
    const owns = sent.map((identifiers, i) =>
      identifiers.filter(
        (identifier) => !sent[1 - i]!.some((other) => sameIdentifier(other, identifier)),
      ),
    );
    const criteria = owns.map((own) => {
      const text = identifierCriteria(own);
      if (!text) {
        throw new Hl7ProcessingError(
          '101',
          'PID-3 holds no identifier with an assigning authority that the other PID does not hold',
        );
      }
      return { type: 'Patient', criteria: text };
    });
    // Both searches' locks at once, in one order, as MessagePatients.lockAll takes a message's:
    // taken PID by PID until 2026-12-07, two messages naming the pair in opposite orders each
    // held one and waited for the other (a deadlock, rolled back and processed again).
    await this.matches.lockCriteria(criteria);
    const ids: (string | undefined)[] = [];
    for (const own of owns) ids.push(await patientNamed(this.fhir, this.matches, own, 'PID-3'));
    return ids;
  }

  /**
   * Writes the patient with these links over the version read (see retried), when they differ
   * from its own; tells whether it wrote.
   */
  private async write(patient: StoredResource, links: PatientLink[]): Promise<boolean> {
    const { resource } = patient;
    const held = (resource['link'] as PatientLink[] | undefined) ?? [];
    if (links.length === held.length) return false;
    const id = String(resource['id']);
    await this.fhir.update(
      HL7_USER,
      'Patient',
      id,
      { ...without(resource, 'meta', 'link'), ...(links.length > 0 ? { link: links } : {}) },
      `W/"${patient.versionId}"`,
      { matched: true },
    );
    return true;
  }
}
