import { randomUUID } from 'node:crypto';
import { tokenFor } from '../support/auth.js';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import { MllpTestClient, msaOf } from '../support/mllp.js';
import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';

/**
 * A clinician finds a patient the way they type the name, whatever the registering system sent:
 * the same normalization at write, at search, over HL7, in $match and in conditional create.
 */
describe('Searching names as people of many countries write and type them', () => {
  let feed: Hl7Feed;
  let doctor: HttpFn;
  let fhir: string;
  const run = randomUUID().slice(0, 6);
  const ids: Record<string, string> = {};

  const create = async (
    name: Record<string, unknown>,
    birthDate = '1980-04-02',
    line?: string[],
  ) => {
    const res = await doctor('POST', `${fhir}/Patient`, {
      body: {
        resourceType: 'Patient',
        name: [name],
        birthDate,
        ...(line ? { address: [{ line, city: 'Hong Kong' }] } : {}),
      },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const found = async (query: string) =>
    (await feed.search(`Patient?${query}`)).map((patient) => patient['id'] as string);

  beforeAll(async () => {
    feed = await openHl7Feed();
    fhir = `${feed.testApp.url}/fhir`;
    doctor = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
    // Written as other systems send them: é decomposed (NFD), ß, a zero-width space pasted in,
    // a right-to-left mark before an Arabic name, Greek capitals.
    ids['amelie'] = await create({ family: `Straße-${run}`, given: ['Ame\u0301lie'] });
    ids['greek'] = await create({ family: 'Οδυσσευς', given: [`G${run}`] });
    ids['arabic'] = await create({ family: `\u200fمحمد${run}`, given: ['Ali'] });
    ids['vietnamese'] = await create({ family: `Đặng${run}`, given: ['Thị Ánh'] });
    ids['zero-width'] = await create({ family: `Mül\u200bler${run}`, given: ['Işık'] });
  });

  afterAll(() => feed.close());

  it('finds a name typed with other case, accents, composition or invisible characters', async () => {
    expect(await found(`family=STRASSE-${run}&given=${encodeURIComponent('Amélie')}`)).toEqual([
      ids['amelie'],
    ]);
    expect(await found(`family:exact=${encodeURIComponent(`strasse ${run}`)}`)).toEqual([
      ids['amelie'],
    ]);
    expect(await found(`family=${encodeURIComponent('ΟΔΥΣ')}&given=g${run}`)).toEqual([
      ids['greek'],
    ]);
    expect(await found(`family=${encodeURIComponent(`محمد${run}`)}`)).toEqual([ids['arabic']]);
    expect(await found(`family=dang${run}&given=thi`)).toEqual([ids['vietnamese']]);
    expect(await found(`family=MULLER${run}&given=isik`)).toEqual([ids['zero-width']]);
  });

  it('counts characters outside the Basic Multilingual Plane as one each, as it cuts prefixes', async () => {
    // 𠮷 (U+20BB7, CJK Extension B; the 𠮷 of 𠮷野家) is two UTF-16 units. Until 2026-12-07
    // 𠮷野 counted as three characters, so it was a prefix search that found 𠮷野谷 too.
    const given = `Y${run}`;
    const yoshino = await create({ family: '𠮷野', given: [given] });
    const yoshinoya = await create({ family: '𠮷野谷', given: [given] });
    expect(await found(`family=${encodeURIComponent('𠮷野')}&given=${given}`)).toEqual([yoshino]);
    expect(await found(`family=${encodeURIComponent('𠮷野谷')}&given=${given}`)).toEqual([
      yoshinoya,
    ]);
    // A prefix of 20 UTF-16 units ended in half of 𨋢 or 𡋀, hashed as U+FFFD for either, so
    // a search for one address line found the other.
    const street = `${run}屯門青山公路大興村興盛樓一`;
    expect(street).toHaveLength(19);
    const lift = await create({ family: 'Chan', given: [given] }, '1980-04-02', [`${street}𨋢`]);
    await create({ family: 'Chan', given: [given] }, '1980-04-02', [`${street}𡋀`]);
    expect(await found(`address=${encodeURIComponent(`${street}𨋢`)}`)).toEqual([lift]);
  });

  it('tells apart names that differ only in a vowel sign or a voicing mark, and counts Hangul syllables', async () => {
    // Until 2026-12-07 every combining mark was dropped: राम (Ram) and रमा (Rama) were both रम,
    // ガトウ (Gatō) and カドウ (Kadō) both カトウ, so a search for one found the other.
    const given = `M${run}`;
    const search = (family: string, modifier = '') =>
      found(`family${modifier}=${encodeURIComponent(family)}&given=${given}`);
    const ram = await create({ family: 'राम', given: [given] });
    const rama = await create({ family: 'रमा', given: [given] });
    const ramchandra = await create({ family: 'रामचन्द्र', given: [given] });
    const gato = await create({ family: 'ガトウ', given: [given] });
    const kado = await create({ family: 'ｶﾄﾞｳ', given: [given] });
    expect(await search('राम', ':exact')).toEqual([ram]);
    expect((await search('राम')).sort()).toEqual([ram, ramchandra].sort());
    expect(await search('रमा')).toEqual([rama]);
    expect(await search('ガトウ', ':exact')).toEqual([gato]);
    expect(await search('ガトウ')).toEqual([gato]);
    expect(await search('カドウ')).toEqual([kado]);
    // 민 was three jamo, a prefix that found 민준 too; it is one syllable, a whole part.
    const family = `K${run}`;
    const min = await create({ family, given: ['민'] });
    const minjun = await create({ family, given: ['민준'] });
    expect(await found(`family=${family}&given=${encodeURIComponent('민')}`)).toEqual([min]);
    expect(await found(`family=${family}&given=${encodeURIComponent('민준')}`)).toEqual([minjun]);
  });

  it('conditional create and $match find the patient typed another way', async () => {
    const again = await doctor('POST', `${fhir}/Patient`, {
      body: { resourceType: 'Patient', name: [{ family: `STRASSE-${run}`, given: ['AMELIE'] }] },
      headers: { 'if-none-exist': `family=STRASSE-${run}&given=AMELIE` },
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(ids['amelie']);
    const match = await doctor('POST', `${fhir}/Patient/$match`, {
      body: {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'resource',
            resource: {
              resourceType: 'Patient',
              name: [{ family: `DANG${run}`, given: ['THI'] }],
              birthDate: '1980-04-02',
            },
          },
        ],
      },
    });
    expect(match.status).toBe(200);
    expect(
      (match.body.entry as { resource: { id: string } }[]).map((entry) => entry.resource.id),
    ).toContain(ids['vietnamese']);
  });

  it('finds a name that came over HL7 in UTF-8 or Latin-1 as it is typed', async () => {
    const tag = `${run}h`;
    const utf8 = [
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A04|U-${tag}|P|2.5||||||UNICODE UTF-8`,
      `PID|1||U-${tag}^^^HOSP&2.16.36&ISO^MR||ĐẶNG${tag}^THỊ||19800402|F`,
      'PV1|1|O',
    ].join('\r');
    const latin1 = [
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A04|L-${tag}|P|2.5||||||8859/1`,
      `PID|1||L-${tag}^^^HOSP&2.16.36&ISO^MR||Müßig${tag}^Jürgen||19800402|M`,
      'PV1|1|O',
    ].join('\r');
    const sender = await MllpTestClient.connect(feed.testApp.app.get(MllpListener).address()!.port);
    try {
      await sender.send([Buffer.from(utf8, 'utf8'), Buffer.from(latin1, 'latin1')]);
      const acks = await sender.waitForAcks(2);
      expect(acks.map((ack) => msaOf(ack).code)).toEqual(['AA', 'AA']);
    } finally {
      sender.close();
    }
    expect(await found(`family=dang${tag}&given=thi`)).toHaveLength(1);
    expect(await found(`family=MUSSIG${tag}&given=jurgen`)).toHaveLength(1);
  });

  it('refuses a message labelled 8859/1 that carries UTF-8, rather than store its names garbled', async () => {
    const tag = `${run}m`;
    const mislabelled = [
      `MSH|^~\\&|ADT|HOSP|CV|CV|20250101||ADT^A04|M-${tag}|P|2.5||||||8859/1`,
      `PID|1||M-${tag}^^^HOSP&2.16.36&ISO^MR||Müller${tag}^Jürgen||19800402|M`,
      'PV1|1|O',
    ].join('\r');
    const sender = await MllpTestClient.connect(feed.testApp.app.get(MllpListener).address()!.port);
    try {
      await sender.send([Buffer.from(mislabelled, 'utf8')]);
      const [ack] = await sender.waitForAcks(1);
      expect(msaOf(ack!).code).toBe('AR');
    } finally {
      sender.close();
    }
    // Stored as Latin-1, it was MÃ¼ller: found by no search for Müller.
    expect(await found(`identifier=M-${tag}`)).toEqual([]);
  });
});
