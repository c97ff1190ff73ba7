import { randomUUID } from 'node:crypto';
import { tokenFor } from '../support/auth.js';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { msaOf } from '../support/mllp.js';

const OID = '2.16.840.1.113883.19.45';
const SSA = '2.16.840.1.113883.4.1';

/** ADT messages about patients `<who>-<tag>` (an MRN under OID), the tag keeping runs apart. */
function adtOf(tag: string) {
  const mrn = (who: string) => `${who}-${tag}^^^HOSP&${OID}&ISO^MR`;
  const pid = (who: string) => `PID|1||${mrn(who)}||Link${who}^Pat||19700101|F`;
  // Two records of one person share an SSN, which the unlink names in both PIDs.
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
    search: (who: string) =>
      `Patient?identifier=${encodeURIComponent(`urn:oid:${OID}|${who}-${tag}`)}`,
  };
}

type Link = { other: { reference: string }; type: string };

describe('HL7 ADT^A37, unlink patient information', () => {
  let feed: Hl7Feed;
  let fhir: string;
  let http: HttpFn;

  beforeAll(async () => {
    feed = await openHl7Feed();
    fhir = `${feed.testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
  });

  afterAll(() => feed.close());

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
});
