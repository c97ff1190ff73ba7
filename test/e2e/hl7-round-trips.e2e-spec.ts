import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { msaOf } from '../support/mllp.js';
import { queriesWhere } from '../support/queries.js';

/**
 * What one ORU^R01 about a known patient costs the database in statements, each a round trip
 * and, on a small machine, a few hundred µs of the service's CPU: a lab feed sends one per
 * result, and the issue's benchmark (W5) found a message cost twice the CPU of a transaction
 * Bundle of as many resources.
 */
describe('HL7 v2 results: statements per message', () => {
  let feed: Hl7Feed;
  let db: DataSource;

  beforeAll(async () => {
    feed = await openHl7Feed();
    db = feed.testApp.app.get(DataSource);
  });

  afterAll(() => feed.close());

  const tag = randomUUID().slice(0, 8);
  const pid = `PID|1||RT-${tag}^^^LAB&2.16.77&ISO^MR||Trip^Rita||19700101|F`;
  const oru = (n: number) =>
    [
      `MSH|^~\\&|LAB|LAB|CV|CV|20250301090000+0000||ORU^R01^ORU_R01|RT-${tag}-${n}|P|2.5.1`,
      pid,
      `OBR|1||F-${tag}-${n}^LAB^2.16.77^ISO|24323-8^Metabolic panel^LN|||20250301080000+0000||||||||||||||||F`,
      ...Array.from(
        { length: 3 },
        (_, i) =>
          `OBX|${i + 1}|NM|${2000 + i}-${i}^Analyte ${i}^LN||4.${i}|mmol/L^^UCUM|3.5-5.5|N|||F|||20250301083000+0000`,
      ),
    ].join('\r');

  /** The statements a message sends (text and values as JSON), once it is ACKed AA. */
  const sent = async (message: string) => {
    const statements: { text: string; values: string }[] = [];
    let ack = '';
    await queriesWhere(
      db,
      (text, values) => statements.push({ text, values }) > 0,
      async () => {
        ack = (await feed.send(message))[0]!;
      },
    );
    expect(msaOf(ack).code).toBe('AA');
    return statements;
  };

  let n = 0;
  /** The statements of a message about the patient once they are known, and their id. */
  const known = async () => {
    // Registered as the lab's PID names them: the results change nothing of the record.
    expect(msaOf((await feed.send(oru(n++)))[0]!).code).toBe('AA');
    const patient = await feed.one(
      `Patient?identifier=${encodeURIComponent(`urn:oid:2.16.77|RT-${tag}`)}`,
    );
    return { statements: await sent(oru(n++)), patientId: patient['id'] as string };
  };

  it('locks and reads the known patient once for the match and the results that refer to it', async () => {
    const { statements, patientId } = await known();
    const rowReads = statements.filter(
      ({ text, values }) =>
        /\bFROM resource r\b/.test(text) &&
        !/\bsearch_[a-z]+\b/.test(text) &&
        values.includes(patientId),
    );
    // Its row locked against deletion and read in one statement, read for the check of what
    // the PID says, and not once more when the results' references to it are checked.
    expect(rowReads).toHaveLength(2);
  });

  it('leaves the processing savepoint to the commit', async () => {
    const { statements } = await known();
    expect(
      statements.filter(({ text }) => /RELEASE SAVEPOINT unit_of_work_nested/.test(text)),
    ).toEqual([]);
  });

  it('looks up an order of a filler number (no placer number) in one search when none has it', async () => {
    const { statements } = await known();
    expect(statements.filter(({ values }) => values.includes('"ServiceRequest"'))).toHaveLength(1);
  });
});
