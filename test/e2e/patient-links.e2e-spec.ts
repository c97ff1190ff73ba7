import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CriteriaMatches } from '../../src/fhir/criteria-matches.service.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { PatientLinks } from '../../src/hl7/inbound/patient-links.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from '../support/auth.js';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { MllpTestClient, msaOf } from '../support/mllp.js';

const OID = '2.16.840.1.113883.19.45';
const SSA = '2.16.840.1.113883.4.1';

/** ADT messages about patients `<who>-<tag>` (an MRN under OID), the tag keeping runs apart. */
function adtOf(tag: string) {
  const mrn = (who: string) => `${who}-${tag}^^^HOSP&${OID}&ISO^MR`;
  const pid = (who: string) => `PID|1||${mrn(who)}||Link${who}^Pat||19700101|F`;
  // Two records of one person share an SSN, which a link and an unlink name in both PIDs.
  const unlinkPid = (who: string) =>
    `PID|1||${mrn(who)}~SSN-${tag}^^^SSA&${SSA}&ISO^SS||Link${who}^Pat||19700101|F`;
  return {
    mrn,
    pid,
    message: (control: string, event: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207100000+0000||ADT^${event}^ADT_${event}|${control}-${tag}|P|2.5.1`,
        `EVN|${event}|20261207100000+0000`,
        ...rest,
      ].join('\r'),
    /** ADT^A37: the two patients, each PID with its (empty) PV1, as ADT_A37 has them. */
    unlink: (control: string, a: string, b: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207110000+0000||ADT^A37^ADT_A37|${control}-${tag}|P|2.5.1`,
        'EVN|A37|20261207110000+0000',
        unlinkPid(a),
        'PV1|1|N',
        unlinkPid(b),
        'PV1|1|N',
      ].join('\r'),
    /** ADT^A24: the two patients, as ADT_A24 has them (PID, PV1, twice), with the SSN. */
    link: (control: string, a: string, b: string) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207103000+0000||ADT^A24^ADT_A24|${control}-${tag}|P|2.5.1`,
        'EVN|A24|20261207103000+0000',
        unlinkPid(a),
        'PV1|1|N',
        unlinkPid(b),
        'PV1|1|N',
      ].join('\r'),
    search: (who: string) =>
      `Patient?identifier=${encodeURIComponent(`urn:oid:${OID}|${who}-${tag}`)}`,
  };
}

type Link = { other: { reference: string }; type: string };

describe('HL7 ADT^A24 and A37, link and unlink patient information', () => {
  let feed: Hl7Feed;
  let fhir: string;
  let http: HttpFn;

  beforeAll(async () => {
    feed = await openHl7Feed();
    fhir = `${feed.testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
  });

  afterAll(() => feed.close());

  afterEach(() => {
    jest.restoreAllMocks();
  });

  const codes = async (...messages: string[]) =>
    (await feed.send(...messages)).map((ack) => msaOf(ack).code);

  /** Registers the patients and returns their ids, in the order given. */
  const registered = async (tag: string, ...who: string[]) => {
    const { message, pid, search } = adtOf(tag);
    expect(await codes(...who.map((one, i) => message(`R${i}`, 'A28', pid(one))))).toEqual(
      who.map(() => 'AA'),
    );
    return Promise.all(who.map(async (one) => String((await feed.one(search(one)))['id'])));
  };

  const linksOf = async (id: string): Promise<Link[]> =>
    ((await http('GET', `${fhir}/Patient/${id}`)).body.link as Link[] | undefined) ?? [];

  /** Links a patient to the others given, as a registrar does through FHIR, with the SSN. */
  const link = async (id: string, links: Link[], tag: string) => {
    const patient = (await http('GET', `${fhir}/Patient/${id}`)).body;
    const ssn = { system: `urn:oid:${SSA}`, value: `SSN-${tag}` };
    const res = await http('PUT', `${fhir}/Patient/${id}`, {
      body: { ...patient, identifier: [...patient.identifier, ssn], link: links },
    });
    expect(res.status).toBe(200);
  };

  /** The resources and patients the audit row of a message names, sorted. */
  const audited = async (control: string) => {
    const [row] = await feed.testApp.app
      .get(DataSource)
      .query<{ entities: string[]; patient_ids: string[] }[]>(
        `SELECT a.entities, a.patient_ids FROM audit_event a
           JOIN hl7_message m ON a.request_id = m.id::text
          WHERE a.source = 'hl7' AND m.control_id = $1`,
        [control],
      );
    return { entities: [...row!.entities].sort(), patients: [...row!.patient_ids].sort() };
  };

  const seeAlso = (id: string): Link => ({
    other: { reference: `Patient/${id}` },
    type: 'seealso',
  });

  it('removes the seealso links between the two patients, and keeps their others', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b, c] = await registered(tag, 'A', 'B', 'C');
    await link(a!, [seeAlso(b!), seeAlso(c!)], tag);
    await link(b!, [seeAlso(a!)], tag);
    // Until 2026-12-07 an A37 was refused (AR, unsupported event), and the sender's queue stopped.
    expect(await codes(adtOf(tag).unlink('U1', 'A', 'B'))).toEqual(['AA']);
    expect(await linksOf(a!)).toEqual([seeAlso(c!)]);
    expect(await linksOf(b!)).toEqual([]);
    // Neither patient is retired, and a resend (the links gone) changes nothing.
    for (const id of [a!, b!]) {
      expect((await http('GET', `${fhir}/Patient/${id}`)).body.active).not.toBe(false);
    }
    const version = (await http('GET', `${fhir}/Patient/${a!}`)).body.meta.versionId;
    expect(await codes(adtOf(tag).unlink('U2', 'B', 'A'))).toEqual(['AA']);
    expect((await http('GET', `${fhir}/Patient/${a!}`)).body.meta.versionId).toBe(version);
  });

  it('refuses undoing a merge (AE), and leaves both patients as the merge left them', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag);
    await registered(tag, 'A', 'B');
    expect(await codes(message('M1', 'A40', pid('B'), `MRG|${mrn('A')}`))).toEqual(['AA']);
    const survivor = await feed.one(search('B'));
    const before = (await linksOf(String(survivor['id']))).map((one) => one.type);
    // The prior patient answers to no MRN now: the A37 names the survivor by its own and by
    // the prior one it took over, and the survivor's link to the prior record is a merge's.
    const [ack] = await feed.send(adtOf(tag).unlink('U3', 'B', 'A'));
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain('does not undo a merge');
    expect((await linksOf(String(survivor['id']))).map((one) => one.type)).toEqual(before);
  });

  it('refuses undoing a merge made through FHIR, where the prior patient kept its MRN', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    const merged: Link = { other: { reference: `Patient/${b!}` }, type: 'replaced-by' };
    const prior = (await http('GET', `${fhir}/Patient/${a!}`)).body;
    const retired = await http('PUT', `${fhir}/Patient/${a!}`, {
      body: { ...prior, active: false, link: [merged, seeAlso(b!)] },
    });
    expect(retired.status).toBe(200);
    const [ack] = await feed.send(adtOf(tag).unlink('U7', 'A', 'B'));
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain('does not undo a merge');
    expect(await linksOf(a!)).toEqual([merged, seeAlso(b!)]);
  });

  it('answers AA without a change when a patient is not known here or the link is not there', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    expect(
      await codes(adtOf(tag).unlink('U4', 'A', 'Z'), adtOf(tag).unlink('U5', 'A', 'B')),
    ).toEqual(['AA', 'AA']);
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[], []]);
    expect(await feed.search(adtOf(tag).search('Z'))).toEqual([]);
  });

  it('refuses an A37 without two PID segments (AE 100)', async () => {
    const tag = randomUUID().slice(0, 8);
    const { message, pid } = adtOf(tag);
    const [ack] = await feed.send(message('U6', 'A37', pid('A'), 'PV1|1|N'));
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toMatch(/ERR\|[^\r]*\|100\b/);
  });
  it('links two patients both ways (A24), once, and an A37 takes the link apart', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    // Until 2026-12-07 an A24 was refused (AR, unsupported event), and the sender's queue stopped.
    expect(await codes(adtOf(tag).link('L1', 'A', 'B'))).toEqual(['AA']);
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[seeAlso(b!)], [seeAlso(a!)]]);
    // Audited as every HL7-made change: the row names both patients.
    expect(await audited(`L1-${tag}`)).toEqual({
      entities: [`Patient/${a!}`, `Patient/${b!}`].sort(),
      patients: [a!, b!].sort(),
    });
    // Linked already, either way round: no new version, and no patient's details changed.
    const versions = async () =>
      Promise.all(
        [a!, b!].map(async (id) => (await http('GET', `${fhir}/Patient/${id}`)).body.meta),
      );
    const before = await versions();
    expect(await codes(adtOf(tag).link('L2', 'B', 'A'))).toEqual(['AA']);
    expect(await versions()).toEqual(before);
    // Its audit row names the two patients whose records it read, though it wrote neither.
    expect(await audited(`L2-${tag}`)).toEqual({ entities: [], patients: [a!, b!].sort() });
    expect(await codes(adtOf(tag).unlink('U8', 'A', 'B'))).toEqual(['AA']);
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[], []]);
  });

  it('refuses an A24 naming a patient not on file (AE 204), and creates no one', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a] = await registered(tag, 'A');
    const [ack] = await feed.send(adtOf(tag).link('L3', 'A', 'Z'));
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toMatch(/ERR\|[^\r]*\|204\b/);
    expect(ack).toContain('second PID');
    expect(await linksOf(a!)).toEqual([]);
    expect(await feed.search(adtOf(tag).search('Z'))).toEqual([]);
  });

  it('refuses an A24 whose PIDs name one patient here: a merge made them one (AE)', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag);
    await registered(tag, 'A', 'B');
    expect(await codes(message('M2', 'A40', pid('B'), `MRG|${mrn('A')}`))).toEqual(['AA']);
    const survivor = String((await feed.one(search('B')))['id']);
    const before = await linksOf(survivor);
    const [ack] = await feed.send(adtOf(tag).link('L4', 'B', 'A'));
    expect(msaOf(ack!).code).toBe('AE');
    expect(ack).toContain('name one patient here');
    expect(await linksOf(survivor)).toEqual(before);
  });

  it('refuses an A24 naming a patient a merge retired (AE), and links neither', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b, c] = await registered(tag, 'A', 'B', 'C');
    const merged: Link = { other: { reference: `Patient/${c!}` }, type: 'replaced-by' };
    const prior = (await http('GET', `${fhir}/Patient/${a!}`)).body;
    const retired = await http('PUT', `${fhir}/Patient/${a!}`, {
      body: { ...prior, active: false, link: [merged] },
    });
    expect(retired.status).toBe(200);
    for (const [control, first, second] of [
      ['L5', 'A', 'B'],
      ['L6', 'B', 'A'],
    ] as const) {
      const [ack] = await feed.send(adtOf(tag).link(control, first, second));
      expect(msaOf(ack!).code).toBe('AE');
      expect(ack).toContain('was merged');
    }
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[merged], []]);
  });

  /**
   * Sends the message, during which, once it has read patient A (the `nthRead` time), a
   * registrar's PUT sets A's phone and commits; gives A as it is then.
   */
  const editedDuring = async (a: string, message: string, value: string, nthRead = 1) => {
    const service = feed.testApp.app.get(FhirService);
    const read = service.read.bind(service);
    let edited = false;
    let reads = 0;
    jest.spyOn(service, 'read').mockImplementation(async (user, type, id) => {
      const found = await read(user, type, id);
      if (user === HL7_USER && id === a && ++reads === nthRead) {
        edited = true;
        const put = await http('PUT', `${fhir}/Patient/${a}`, {
          body: { ...found.resource, meta: undefined, telecom: [{ system: 'phone', value }] },
        });
        expect(put.status).toBe(200);
      }
      return found;
    });
    expect(await codes(message)).toEqual(['AA']);
    jest.restoreAllMocks();
    expect(edited).toBe(true);
    return (await http('GET', `${fhir}/Patient/${a}`)).body;
  };

  it('keeps what a FHIR update wrote while an A24 was linking the patient', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    // Written over the version it had read, the A24 dropped the phone (until 2026-12-07).
    const patient = await editedDuring(a!, adtOf(tag).link('L7', 'A', 'B'), '+1 555 0100');
    expect([patient.telecom, patient.link]).toEqual([
      [{ system: 'phone', value: '+1 555 0100' }],
      [seeAlso(b!)],
    ]);
  });

  it('keeps what a FHIR update wrote while an A37 was unlinking the patient', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a] = await registered(tag, 'A', 'B');
    expect(await codes(adtOf(tag).link('L8', 'A', 'B'))).toEqual(['AA']);
    // As the A24 did, the A37 dropped the phone until 2026-12-07.
    const patient = await editedDuring(a!, adtOf(tag).unlink('U9', 'A', 'B'), '+1 555 0101');
    expect([patient.telecom, patient.link]).toEqual([
      [{ system: 'phone', value: '+1 555 0101' }],
      undefined,
    ]);
  });

  it('links (A24) and unlinks (A37) a pair named in opposite orders at once, without a deadlock', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    const port = feed.testApp.app.get(MllpListener).address()!.port;
    const clients = [await MllpTestClient.connect(port), await MllpTestClient.connect(port)];
    // Each message holds on after its first search until the other has made its own (or a
    // second has passed): taken search by search, A's lock then B's against B's then A's,
    // each waited for the other until 2026-12-07, a deadlock the database broke by rolling
    // one back after a second, for it to be processed again.
    const matches = feed.testApp.app.get(CriteriaMatches);
    const uniqueMatch = matches.uniqueMatch.bind(matches);
    const links = feed.testApp.app.get(PatientLinks);
    const both = async (messages: [string, string]) => {
      let searched = 0;
      let release!: () => void;
      const met = new Promise<void>((resolve) => (release = resolve));
      jest.spyOn(matches, 'uniqueMatch').mockImplementation(async (...args) => {
        const found = await uniqueMatch(...args);
        if (args[2].includes(tag) && ++searched <= 2) {
          if (searched === 2) release();
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([met, new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
          clearTimeout(timer);
        }
        return found;
      });
      // Processed once each: a message rolled back by a deadlock is processed again.
      const tries = [jest.spyOn(links, 'link'), jest.spyOn(links, 'unlink')];
      const acks = await Promise.all(messages.map((one, i) => clients[i]!.exchange([one])));
      const processed = tries.reduce((sum, spy) => sum + spy.mock.calls.length, 0);
      jest.restoreAllMocks();
      return { codes: acks.map(([ack]) => msaOf(ack!).code), processed };
    };
    const { link, unlink } = adtOf(tag);
    try {
      const done = { codes: ['AA', 'AA'], processed: 2 };
      expect(await both([link('L9', 'A', 'B'), link('L10', 'B', 'A')])).toEqual(done);
      expect([await linksOf(a!), await linksOf(b!)]).toEqual([[seeAlso(b!)], [seeAlso(a!)]]);
      expect(await both([unlink('U10', 'A', 'B'), unlink('U11', 'B', 'A')])).toEqual(done);
      expect([await linksOf(a!), await linksOf(b!)]).toEqual([[], []]);
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('leaves a link as a newer A24 or A37 left it when an older one is replayed after it', async () => {
    const tag = randomUUID().slice(0, 8);
    const [a, b] = await registered(tag, 'A', 'B');
    const { link, unlink } = adtOf(tag);
    // A queue replayed out of order: the unlink of 10:00 after the link of 10:30. Taken, it
    // removed the link the newer message had made (until 2026-12-07).
    const olderUnlink = unlink('U12', 'A', 'B').replaceAll('20261207110000', '20261207100000');
    expect(await codes(link('L11', 'A', 'B'))).toEqual(['AA']);
    const [ack] = await feed.send(olderUnlink);
    expect(msaOf(ack!).code).toBe('AA');
    expect(ack).toContain('Older than a message already applied to its Patient link');
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[seeAlso(b!)], [seeAlso(a!)]]);
    // And the other way: the link of 10:30 after the unlink of 11:00 links nothing again.
    expect(await codes(unlink('U13', 'B', 'A'))).toEqual(['AA']);
    expect(await codes(link('L12', 'B', 'A'))).toEqual(['AA']);
    expect([await linksOf(a!), await linksOf(b!)]).toEqual([[], []]);
  });

  it('keeps what a FHIR update wrote on the survivor while an A40 was merging into it', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid } = adtOf(tag);
    const [a, b] = await registered(tag, 'A', 'B');
    // Edited once the merge had read the survivor again after taking its PID: written over the
    // version read, the merge dropped the new phone (until 2026-12-07). The prior patient's row
    // is locked before it is read (against new references), so a PUT of it waits for the merge.
    const survivor = await editedDuring(
      b!,
      message('M3', 'A40', pid('B'), `MRG|${mrn('A')}`),
      '+1 555 0103',
      2,
    );
    expect([survivor.telecom, survivor.link]).toEqual([
      [{ system: 'phone', value: '+1 555 0103' }],
      [{ other: { reference: `Patient/${a!}` }, type: 'replaces' }],
    ]);
  });

  it('keeps what a FHIR update wrote while an A47 was correcting an identifier', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid } = adtOf(tag);
    const [a] = await registered(tag, 'A');
    const patient = await editedDuring(
      a!,
      message('I1', 'A47', pid('E'), `MRG|${mrn('A')}`),
      '+1 555 0104',
    );
    expect(patient.telecom).toEqual([{ system: 'phone', value: '+1 555 0104' }]);
    expect(patient.identifier.map((one: { value: string }) => one.value)).toEqual([`E-${tag}`]);
  });
});
