import { jest } from '@jest/globals';
import { buildPatient } from '../support/factories.js';
import { tokenFor } from '../support/auth.js';
import { randomUUID } from 'node:crypto';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { msaOf } from '../support/mllp.js';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { FhirService } from '../../src/fhir/fhir.service.js';
import { HL7_USER } from '../../src/hl7/hl7-user.js';
import { gate, untilWaitingForLock } from '../support/locks.js';

const RESTRICTED = {
  security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
};

const observation = (patient: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { text: 'Heart rate' },
  subject: { reference: patient },
  ...extra,
});

/**
 * A Patient a merge retired (inactive, `replaced-by` its survivor) "must no longer be used"
 * (FHIR R4 Patient.link): a record written to it is missing from the chart a clinician opens.
 */

const OID = '2.16.840.1.113883.19.41';

/** ADT messages about patients `<who>-<tag>` (an MRN under OID), the tag keeping runs apart. */
function adtOf(tag: string, family: string) {
  const mrn = (who: string) => `${who}-${tag}^^^HOSP&${OID}&ISO^MR`;
  return {
    mrn,
    pid: (who: string, name = family) => `PID|1||${mrn(who)}||${name}^Pat||19700101|F`,
    message: (control: string, event: string, hour: string, ...rest: string[]) =>
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207${hour}0000+0000||ADT^${event}|${control}-${tag}|P|2.5.1`,
        `EVN|${event}|20261207${hour}0000+0000`,
        ...rest,
      ].join('\r'),
    search: (who: string) =>
      `Patient?identifier=${encodeURIComponent(`urn:oid:${OID}|${who}-${tag}`)}`,
  };
}

describe('writes to a Patient a merge retired', () => {
  let feed: Hl7Feed;
  let fhir: string;
  let http: HttpFn;

  beforeAll(async () => {
    feed = await openHl7Feed();
    fhir = `${feed.testApp.url}/fhir`;
    http = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
  });

  afterAll(() => feed.close());

  const create = (body: Record<string, unknown>) => createResource(http, fhir, body);

  /** A survivor, and a prior patient with a record of its own, then merged into the survivor. */
  const merged = async (survivorExtra: Record<string, unknown> = {}) => {
    const survivor = await create({ ...buildPatient(), ...survivorExtra });
    const prior = await create(buildPatient());
    const kept = await create(observation(`Patient/${prior}`));
    const retired = await http('PUT', `${fhir}/Patient/${prior}`, {
      body: {
        ...buildPatient(),
        id: prior,
        active: false,
        link: [{ other: { reference: `Patient/${survivor}` }, type: 'replaced-by' }],
      },
    });
    expect(retired.status).toBe(200);
    return { survivor, prior, kept };
  };

  const refusal = (res: { status: number; body: any }) =>
    [res.status, res.body?.issue?.[0]?.code, res.body?.issue?.[0]?.diagnostics] as const;

  const onPatient = async (id: string): Promise<number> =>
    (await http('GET', `${fhir}/Observation?subject=Patient/${id}&_total=accurate`)).body
      .total as number;

  it('refuses a new record for the retired patient, naming the survivor, by POST and in a Bundle', async () => {
    const { survivor, prior } = await merged();
    const posted = await http('POST', `${fhir}/Observation`, {
      body: observation(`Patient/${prior}`),
    });
    const [status, code, diagnostics] = refusal(posted);
    expect([status, code]).toEqual([422, 'processing']);
    expect(diagnostics).toContain(`Patient/${prior} was merged into Patient/${survivor}`);
    const bundled = await http('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: observation(`Patient/${prior}`),
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    expect(refusal(bundled).slice(0, 2)).toEqual([422, 'processing']);
    expect(await onPatient(prior)).toBe(1);
  });

  it('refuses moving a record to the retired patient by PUT or PATCH, and keeps its own records updatable', async () => {
    const { survivor, prior, kept } = await merged();
    const other = await create(observation(`Patient/${survivor}`));
    const put = await http('PUT', `${fhir}/Observation/${other}`, {
      body: { ...observation(`Patient/${prior}`), id: other },
    });
    expect(refusal(put).slice(0, 2)).toEqual([422, 'processing']);
    const patched = await http('PATCH', `${fhir}/Observation/${other}`, {
      body: [{ op: 'replace', path: '/subject/reference', value: `Patient/${prior}` }],
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(refusal(patched).slice(0, 2)).toEqual([422, 'processing']);
    // A record the merge left on the prior patient (one the survivor already held) is corrected.
    const corrected = await http('PUT', `${fhir}/Observation/${kept}`, {
      body: { ...observation(`Patient/${prior}`, { status: 'amended' }), id: kept },
    });
    expect(corrected.status).toBe(200);
    const survivorRecord = await http('GET', `${fhir}/Patient/${survivor}`);
    const linked = await http('PUT', `${fhir}/Patient/${survivor}`, {
      body: {
        ...survivorRecord.body,
        link: [{ other: { reference: `Patient/${prior}` }, type: 'replaces' }],
      },
    });
    expect(linked.status).toBe(200);
    // A Provenance of the merge names both patients.
    await create({
      resourceType: 'Provenance',
      target: [{ reference: `Patient/${prior}` }, { reference: `Patient/${survivor}` }],
      recorded: '2026-12-07T10:00:00Z',
      agent: [{ who: { display: 'Registrar' } }],
    });
    expect(await onPatient(prior)).toBe(1);
  });

  it('refuses reviving the retired patient or dropping its link, and keeps other corrections', async () => {
    const { survivor, prior } = await merged();
    const current = (await http('GET', `${fhir}/Patient/${prior}`)).body;
    const revived = await http('PUT', `${fhir}/Patient/${prior}`, {
      body: { ...current, active: true },
    });
    const [status, code, diagnostics] = refusal(revived);
    expect([status, code]).toEqual([422, 'processing']);
    expect(diagnostics).toContain(`Patient/${survivor}`);
    const unlinked = { ...current };
    delete unlinked.link;
    const dropped = await http('PUT', `${fhir}/Patient/${prior}`, { body: unlinked });
    expect(refusal(dropped).slice(0, 2)).toEqual([422, 'processing']);
    const patched = await http('PATCH', `${fhir}/Patient/${prior}`, {
      body: [{ op: 'remove', path: '/link' }],
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(refusal(patched).slice(0, 2)).toEqual([422, 'processing']);
    const renamed = await http('PUT', `${fhir}/Patient/${prior}`, {
      body: { ...current, name: [{ family: 'Corrected' }] },
    });
    expect(renamed.status).toBe(200);
    const stored = (await http('GET', `${fhir}/Patient/${prior}`)).body;
    expect([stored.active, stored.link]).toEqual([false, current.link]);
  });

  it('refuses pointing a merged patient at another survivor, and a wrong merge is corrected around it', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag, 'Wrong');
    const codes = async (...messages: string[]) =>
      (await feed.send(...messages)).map((ack) => msaOf(ack).code);
    // A merged into B, where A and C were the one person; A had a record.
    expect(
      await codes(
        message('T1', 'A28', '08', pid('A', 'Anna')),
        message('T2', 'A28', '08', pid('B', 'Bert')),
        message('T3', 'A28', '08', pid('C', 'Anna')),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const idOf = async (who: string) => String((await feed.one(search(who)))['id']);
    const [prior, wrong, right] = [await idOf('A'), await idOf('B'), await idOf('C')];
    const kept = await create(observation(`Patient/${prior}`));
    expect(await codes(message('T4', 'A40', '09', pid('B', 'Bert'), `MRG|${mrn('A')}`))).toEqual([
      'AA',
    ]);
    const record = (await http('GET', `${fhir}/Observation/${kept}`)).body;
    expect(record.subject.reference).toBe(`Patient/${wrong}`);
    const retired = (await http('GET', `${fhir}/Patient/${prior}`)).body;
    // The merge moved A's records and MRN to B: pointed at C by an edit, A would name C while
    // they stay with B, and the feed's next message with A's MRN would still reach B.
    const retargeted = await http('PUT', `${fhir}/Patient/${prior}`, {
      body: {
        ...retired,
        link: [{ other: { reference: `Patient/${right}` }, type: 'replaced-by' }],
      },
    });
    expect(refusal(retargeted).slice(0, 2)).toEqual([422, 'processing']);
    // Corrected around it, as the refusal says: B gives up A's MRN, C takes it, and A's
    // records move to C; the feed's next message with A's MRN then reaches C.
    const survivor = (await http('GET', `${fhir}/Patient/${wrong}`)).body;
    const [own, taken] = [
      survivor.identifier.filter((one: { value: string }) => one.value !== `A-${tag}`),
      survivor.identifier.find((one: { value: string }) => one.value === `A-${tag}`),
    ];
    expect(
      (await http('PUT', `${fhir}/Patient/${wrong}`, { body: { ...survivor, identifier: own } }))
        .status,
    ).toBe(200);
    const person = (await http('GET', `${fhir}/Patient/${right}`)).body;
    const current = { ...taken };
    delete current.use;
    expect(
      (
        await http('PUT', `${fhir}/Patient/${right}`, {
          body: { ...person, identifier: [...person.identifier, current] },
        })
      ).status,
    ).toBe(200);
    const moved = await http('PUT', `${fhir}/Observation/${kept}`, {
      body: { ...observation(`Patient/${right}`), id: kept },
    });
    expect(moved.status).toBe(200);
    expect(await codes(message('T5', 'A08', '10', pid('A', 'Annie'), 'PV1|1|O'))).toEqual(['AA']);
    expect((await http('GET', `${fhir}/Patient/${right}`)).body.name[0].family).toBe('Annie');
    expect((await http('GET', `${fhir}/Patient/${wrong}`)).body.name[0].family).toBe('Bert');
  });

  it('keeps a patient an HL7 merge retired retired, so that its old MRN still names one patient', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag, 'Alpha');
    const codes = async (...messages: string[]) =>
      (await feed.send(...messages)).map((ack) => msaOf(ack).code);
    expect(
      await codes(
        message('R1', 'A28', '08', pid('A', 'Alpha')),
        message('R2', 'A28', '09', pid('B', 'Alpha')),
        message('R3', 'A40', '10', pid('B', 'Alpha'), `MRG|${mrn('A')}`),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const [survivor] = await feed.search(search('B'));
    const prior = (survivor!['link'] as { other: { reference: string } }[])[0]!.other.reference;
    const retired = (await http('GET', `${fhir}/${prior}`)).body;
    const revived = await http('PUT', `${fhir}/${prior}`, {
      body: {
        ...retired,
        active: true,
        link: undefined,
        identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.41', value: `A-${tag}` }],
      },
    });
    expect(refusal(revived)[0]).toBe(422);
    // The registration system's next update by the old MRN reaches the survivor.
    expect(await codes(message('R4', 'A08', '11', pid('A', 'Renamed'), 'PV1|1|O'))).toEqual(['AA']);
    const stored = (await http('GET', `${fhir}/Patient/${String(survivor!['id'])}`)).body;
    expect(stored.name[0].family).toBe('Alpha');
  });

  it('refuses giving the retired patient an identifier, which its survivor answers to', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag, 'Alpha');
    const codes = async (...messages: string[]) =>
      (await feed.send(...messages)).map((ack) => msaOf(ack).code);
    expect(
      await codes(
        message('I1', 'A28', '08', pid('A')),
        message('I2', 'A28', '09', pid('B')),
        message('I3', 'A40', '10', pid('B'), `MRG|${mrn('A')}`),
      ),
    ).toEqual(['AA', 'AA', 'AA']);
    const [survivor] = await feed.search(search('B'));
    const prior = (survivor!['link'] as { other: { reference: string } }[])[0]!.other.reference;
    const retired = (await http('GET', `${fhir}/${prior}`)).body;
    // Still inactive and linked, but "corrected" with the MRN the merge moved to the survivor.
    const identified = await http('PUT', `${fhir}/${prior}`, {
      body: {
        ...retired,
        identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.41', value: `A-${tag}` }],
      },
    });
    expect(refusal(identified).slice(0, 2)).toEqual([422, 'processing']);
    // The old MRN still names one patient: the registration system's next message is taken.
    expect(await codes(message('I4', 'A08', '11', pid('A'), 'PV1|1|O'))).toEqual(['AA']);
  });

  /**
   * The statements `work` sends that read the `resource` table's row of the resource whose id
   * `idOf` gives (once `work` has answered, for an id the server assigns): each one a row read
   * and its content decrypted.
   */
  const rowReads = async <T>(
    work: () => Promise<T>,
    idOf: (done: T) => string,
  ): Promise<number> => {
    const query = jest.spyOn(pg.Client.prototype, 'query');
    let calls: unknown[][];
    let done: T;
    try {
      done = await work();
    } finally {
      calls = [...query.mock.calls];
      query.mockRestore();
    }
    const id = idOf(done);
    return calls.filter(([config, values]) => {
      const { text, values: given } =
        typeof config === 'string'
          ? { text: config, values }
          : (config as { text: string; values?: unknown });
      return (
        /r\.content\b[^]*FROM resource r\b/.test(text) &&
        JSON.stringify(given ?? values ?? []).includes(id)
      );
    }).length;
  };

  it('reads the Patient of a transaction of ten records once, not once per record', async () => {
    const patient = `urn:uuid:${randomUUID()}`;
    const reads = await rowReads(
      () =>
        http('POST', fhir, {
          body: {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
              {
                fullUrl: patient,
                resource: buildPatient(),
                request: { method: 'POST', url: 'Patient' },
              },
              ...Array.from({ length: 10 }, () => ({
                resource: observation(patient),
                request: { method: 'POST', url: 'Observation' },
              })),
            ],
          },
        }),
      (res) => {
        expect(res.status).toBe(200);
        return String(res.body.entry[0].response.location.split('/')[1]);
      },
    );
    expect(reads).toBeLessThanOrEqual(1);
  });

  it('reads the Patient of a transaction of ten updates once, each in a savepoint of its own', async () => {
    const patient = await create(buildPatient());
    const reads = await rowReads(
      () =>
        http('POST', fhir, {
          body: {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: Array.from({ length: 10 }, () => {
              const id = randomUUID();
              return {
                resource: { ...observation(`Patient/${patient}`), id },
                request: { method: 'PUT', url: `Observation/${id}` },
              };
            }),
          },
        }),
      (res) => {
        expect(res.status).toBe(200);
        return patient;
      },
    );
    expect(reads).toBeLessThanOrEqual(1);
  });

  it('reads the Patient of an ORU of ten results once for them all', async () => {
    const tag = randomUUID().slice(0, 8);
    const pid = `PID|1||R-${tag}^^^HOSP&2.16.840.1.113883.19.41&ISO^MR||Tenresults^Pat||19700101|F`;
    const [registered] = await feed.send(
      [
        `MSH|^~\\&|ADT|HOSP|CV|CV|20261207080000+0000||ADT^A28|C1-${tag}|P|2.5.1`,
        'EVN|A28|20261207080000+0000',
        pid,
      ].join('\r'),
    );
    expect(msaOf(registered!).code).toBe('AA');
    const { id } = await feed.one(
      `Patient?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.41|R-${tag}`)}`,
    );
    const oru = [
      `MSH|^~\\&|LAB|LABF|CV|CV|20261207100000+0000||ORU^R01^ORU_R01|C2-${tag}|P|2.5.1`,
      pid,
      `OBR|1||F-${tag}^LAB|24323-8^Panel^LN|||20261207090000+0000||||||||||||||||||F`,
      ...Array.from(
        { length: 10 },
        (_, i) => `OBX|${i + 1}|NM|2823-${i}^Result ${i}^LN||4.${i}|mmol/L|||||F`,
      ),
    ].join('\r');
    const reads = await rowReads(
      () => feed.send(oru),
      ([ack]) => {
        expect(msaOf(ack!).code).toBe('AA');
        return String(id);
      },
    );
    expect(await onPatient(String(id))).toBe(10);
    // The feed reads the patient to update what the PID says, and the results' check of a
    // merge reads it once for them all.
    expect(reads).toBeLessThanOrEqual(2);
  });

  it('moves a record created on the prior patient while an HL7 merge of it ran, once created', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag, 'Racing');
    const acks = await feed.send(
      message('M1', 'A28', '10', pid('A')),
      message('M2', 'A28', '10', pid('B')),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const idOf = async (who: string) => String((await feed.one(search(who)))['id']);
    const [prior, survivor] = [await idOf('A'), await idOf('B')];
    // A create that checked the prior patient, not yet merged, and has not committed yet.
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    let created: string | undefined;
    const creating = feed.testApp.app.get(UnitOfWork).run(async () => {
      const fhirService = feed.testApp.app.get(FhirService);
      created = (
        await fhirService.create({ ...HL7_USER, roles: ['doctor'] }, 'Observation', {
          ...observation(`Patient/${prior}`),
        })
      ).id;
      await held;
    });
    while (!created) await new Promise((resolve) => setTimeout(resolve, 10));
    const merging = feed.send(message('M3', 'A40', '10', pid('B'), `MRG|${mrn('A')}`));
    // The merge waits for the create to commit before it lists the prior patient's records;
    // until 2026-12-07 it listed them at once, answered AA, and the create then committed the
    // record onto the retired patient.
    const first = await Promise.race([
      merging.then(() => 'merged'),
      untilWaitingForLock(feed.testApp.app.get(DataSource), 'The merge').then(() => 'waiting'),
    ]);
    commit();
    await creating;
    const [merged] = await merging;
    expect([first, msaOf(merged!).code]).toEqual(['waiting', 'AA']);
    const record = (await http('GET', `${fhir}/Observation/${created}`)).body;
    expect(record.subject.reference).toBe(`Patient/${survivor}`);
  });

  it('refuses a record created on the prior patient once an HL7 merge of it has begun', async () => {
    const tag = randomUUID().slice(0, 8);
    const { mrn, message, pid, search } = adtOf(tag, 'Waiting');
    const acks = await feed.send(
      message('W1', 'A28', '10', pid('A')),
      message('W2', 'A28', '10', pid('B')),
    );
    expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    const idOf = async (who: string) => String((await feed.one(search(who)))['id']);
    const [prior, survivor] = [await idOf('A'), await idOf('B')];
    const data = feed.testApp.app.get(DataSource);
    // The survivor held, so that the merge stops after it took the prior patient's lock.
    const holder = data.createQueryRunner();
    await holder.connect();
    let merging: Promise<string[]> | undefined;
    let posting: Promise<{ status: number; body: any }> | undefined;
    try {
      await holder.startTransaction();
      await holder.query(
        "SELECT 1 FROM resource WHERE resource_type = 'Patient' AND id = $1 FOR UPDATE",
        [survivor],
      );
      merging = feed.send(message('W3', 'A40', '10', pid('B'), `MRG|${mrn('A')}`));
      await untilWaitingForLock(data, 'The merge', '%JOIN unnest%FOR KEY SHARE%');
      posting = http('POST', `${fhir}/Observation`, { body: observation(`Patient/${prior}`) });
      // Until 2026-12-07 the create did not wait: it committed onto the prior patient.
      await untilWaitingForLock(data, 'The create', '%ANY($2::text[])%FOR KEY SHARE%');
    } finally {
      await holder.commitTransaction();
      await holder.release();
    }
    const [merged] = await merging;
    expect(msaOf(merged!).code).toBe('AA');
    const [status, , diagnostics] = refusal(await posting);
    expect(status).toBe(422);
    expect(diagnostics).toContain(`Patient/${prior} was merged into Patient/${survivor}`);
  });

  /** A survivor and a prior patient, and the body of a PUT retiring the prior into it. */
  const pair = async () => {
    const survivor = await create(buildPatient());
    const prior = await create(buildPatient());
    const retiring = {
      ...buildPatient(),
      id: prior,
      active: false,
      link: [{ other: { reference: `Patient/${survivor}` }, type: 'replaced-by' }],
    };
    return { survivor, prior, retiring };
  };

  it('refuses a record created on a patient once a FHIR update retiring it has begun', async () => {
    const { survivor, prior, retiring } = await pair();
    const data = feed.testApp.app.get(DataSource);
    const held = gate();
    const user = { ...HL7_USER, roles: ['doctor' as const] };
    // The merge, written and not committed.
    const merging = feed.testApp.app.get(UnitOfWork).run(async () => {
      await feed.testApp.app.get(FhirService).update(user, 'Patient', prior, retiring);
      await held.wait();
    });
    await held.reached;
    let posting: Promise<{ status: number; body: any }> | undefined;
    let first: string;
    try {
      posting = http('POST', `${fhir}/Observation`, { body: observation(`Patient/${prior}`) });
      // Until 2026-12-07 the create did not wait for the merge (its FOR KEY SHARE does not
      // conflict with an update's FOR NO KEY UPDATE): it read the patient as it was before the
      // merge and committed onto it, as the HL7 merge's did before it took its lock.
      first = await Promise.race([
        posting.then(() => 'created'),
        untilWaitingForLock(data, 'The create', '%ANY($2::text[])%FOR KEY SHARE%').then(
          () => 'waiting',
        ),
      ]);
    } finally {
      held.release();
      await merging;
    }
    const [status, , diagnostics] = refusal(await posting);
    expect([first, status]).toEqual(['waiting', 422]);
    expect(diagnostics).toContain(`Patient/${prior} was merged into Patient/${survivor}`);
    expect(await onPatient(prior)).toBe(0);
  });

  it('has a FHIR update retiring a patient wait for a record being created on it', async () => {
    const { prior, retiring } = await pair();
    const data = feed.testApp.app.get(DataSource);
    const held = gate();
    const creating = feed.testApp.app.get(UnitOfWork).run(async () => {
      await feed.testApp.app
        .get(FhirService)
        .create({ ...HL7_USER, roles: ['doctor'] }, 'Observation', observation(`Patient/${prior}`));
      await held.wait();
    });
    await held.reached;
    let putting: Promise<{ status: number; body: any }> | undefined;
    let first: string;
    try {
      putting = http('PUT', `${fhir}/Patient/${prior}`, { body: retiring });
      // The merge waits for the create, which checked the patient first, to commit: a client
      // that lists the prior patient's records once the merge answers finds it, to move it.
      // Until 2026-12-07 the merge answered at once, and the record committed after it.
      first = await Promise.race([
        putting.then(() => 'retired'),
        untilWaitingForLock(data, 'The merge', '%FOR UPDATE OF r%').then(() => 'waiting'),
      ]);
    } finally {
      held.release();
      await creating;
    }
    expect([first, (await putting).status]).toEqual(['waiting', 200]);
    expect(await onPatient(prior)).toBe(1);
  });

  it('refuses a record on a patient the same transaction retired after it read the patient', async () => {
    const survivor = await create(buildPatient());
    const prior = await create(buildPatient());
    const user = { ...HL7_USER, roles: ['doctor' as const] };
    const fhirService = feed.testApp.app.get(FhirService);
    const run = feed.testApp.app.get(UnitOfWork).run(async () => {
      await fhirService.create(user, 'Observation', observation(`Patient/${prior}`));
      await fhirService.update(user, 'Patient', prior, {
        ...buildPatient(),
        id: prior,
        active: false,
        link: [{ other: { reference: `Patient/${survivor}` }, type: 'replaced-by' }],
      });
      await fhirService.create(user, 'Observation', observation(`Patient/${prior}`));
    });
    await expect(run).rejects.toMatchObject({ status: 422 });
    expect(await onPatient(prior)).toBe(0);
  });

  it('does not name a survivor the caller may not read', async () => {
    const { survivor, prior } = await merged({ meta: RESTRICTED });
    const posted = await http('POST', `${fhir}/Observation`, {
      body: observation(`Patient/${prior}`),
    });
    const [status, , diagnostics] = refusal(posted);
    expect(status).toBe(422);
    expect(diagnostics).toContain(`Patient/${prior} was merged into another Patient`);
    expect(diagnostics).not.toContain(survivor);
  });
});
