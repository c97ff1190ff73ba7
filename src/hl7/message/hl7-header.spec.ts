import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAck } from './ack.js';
import { decodeMessage, Hl7RejectError } from './hl7-header.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');

describe('decodeMessage', () => {
  it('reads the header of every sample message, BOM and LF segment ends included', () => {
    const files = readdirSync(SAMPLES).filter((file) => file.endsWith('.hl7'));
    expect(files.length).toBeGreaterThan(100);
    for (const file of files) {
      const { text, header } = decodeMessage(readFileSync(join(SAMPLES, file)));
      expect(text.startsWith('MSH')).toBe(true);
      expect(text).not.toMatch(/\n/);
      expect(header.messageCode).toMatch(/^[A-Z0-9]{3}$/);
      expect(header.controlId.length).toBeGreaterThan(0);
    }
  });

  it('takes custom delimiters from MSH-1 and MSH-2', () => {
    const { header } = decodeMessage(
      Buffer.from('MSH#:*!$#LAB#HOSP#CV#CV#20240101##ORU:R01#42#P#2.5.1\nPID###1'),
    );
    expect(header).toMatchObject({
      messageCode: 'ORU',
      triggerEvent: 'R01',
      controlId: '42',
      sendingApplication: 'LAB',
      version: '2.5.1',
    });
    expect(header.delimiters).toMatchObject({ field: '#', component: ':', repetition: '*' });
  });

  it('drops a byte-order mark at the start of a segment, which hid its name', () => {
    // A segment pasted from a file of its own kept that file's BOM: `\uFEFFPID` is no PID, and
    // the message was refused for having none (AE 100).
    const { text } = decodeMessage(
      Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A28|42|P|2.5\r\uFEFFPID|||1'),
    );
    expect(text.split('\r')).toEqual(['MSH|^~\\&|A|B|C|D|20240101||ADT^A28|42|P|2.5', 'PID|||1']);
  });

  it('reads a message type padded with blanks as the code it is', () => {
    const { header } = decodeMessage(
      Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT ^A08 ^ADT_A01|42|P|2.5\rPID|||1'),
    );
    expect(header).toMatchObject({ messageCode: 'ADT', triggerEvent: 'A08' });
  });

  it('reads a message type written in lower case as the code it is', () => {
    const { header } = decodeMessage(
      Buffer.from('MSH|^~\\&|A|B|C|D|20240101||oru^r01^oru_r01|42|P|2.5.1\rPID|||1'),
    );
    expect(header).toMatchObject({ messageCode: 'ORU', triggerEvent: 'R01' });
  });

  it.each([
    ['an empty MSH-2', 'MSH||A|B|C|D|20240101||ADT^A01|1|P|2.5'],
    ['a short MSH-2', 'MSH|^~|A|B|C|D|20240101||ADT^A01|1|P|2.5'],
    ['repeated delimiters', 'MSH|^^\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5'],
    ['a letter as delimiter', 'MSH|^~X&|A|B|C|D|20240101||ADT^A01|1|P|2.5'],
    ['no MSH', 'PID|1||123'],
    ['no control id', 'MSH|^~\\&|A|B|C|D|20240101||ADT^A01||P|2.5'],
  ])('refuses %s', (_, text) => {
    expect(() => decodeMessage(Buffer.from(text))).toThrow(Hl7RejectError);
  });

  it('decodes by MSH-18: Latin-1 as declared, UTF-8 as declared', () => {
    const latin1 = Buffer.from(
      'MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||8859/1\rPID|||1||Müller',
      'latin1',
    );
    expect(decodeMessage(latin1).text).toContain('Müller');
    const utf8 = Buffer.from(
      'MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||UNICODE UTF-8\rPID|||1||Müller',
    );
    expect(decodeMessage(utf8).text).toContain('Müller');
    const wrong = Buffer.from(
      'MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||UNICODE UTF-8\rPID|||1||M\xfcller',
      'latin1',
    );
    expect(() => decodeMessage(wrong)).toThrow(Hl7RejectError);
  });

  it('refuses UTF-8 bytes under an 8859/1 label rather than store Müller as MÃ¼ller', () => {
    const mislabelled = Buffer.from(
      'MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||8859/1\rPID|||1||Müller',
      'utf8',
    );
    expect(() => decodeMessage(mislabelled)).toThrow(/MSH-18 says 8859\/1/);
    // Latin-1 of ASCII only is UTF-8 too, and reads the same either way.
    const ascii = Buffer.from('MSH|^~\\&|A|B|C|D|1||ADT^A08|1|P|2.5||||||8859/1\rPID|||1||Doe');
    expect(decodeMessage(ascii).text).toContain('Doe');
  });

  it('refuses a message holding NUL, keeping its header with NUL escaped for the AR', () => {
    for (const [message, controlId] of [
      ['MSH|^~\\&|LAB|HOSP|CV|CV|1||ADT^A01|N-1|P|2.5\rPID|||MRN1\0^^^HOSP^MR||Doe', 'N-1'],
      ['MSH|^~\\&|LAB|HOSP|CV|CV|1||ADT^A01|N\0-2|P|2.5\rPID|||MRN1^^^HOSP^MR||Doe', 'N\\X00\\-2'],
      ['MSH|^~\\&|LAB|HOSP|CV|CV|1||ADT^A01|N-3|P|2.5||||||8859/1\rPID|||M\0', 'N-3'],
    ]) {
      let refused: Hl7RejectError | undefined;
      try {
        decodeMessage(Buffer.from(message!, 'latin1'));
      } catch (error) {
        refused = error as Hl7RejectError;
      }
      expect(refused).toBeInstanceOf(Hl7RejectError);
      expect(refused!.message).toContain('NUL');
      expect(refused!.header).toMatchObject({ controlId, sendingApplication: 'LAB' });
      expect(JSON.stringify(refused!.header)).not.toContain('\\u0000');
    }
    // NUL as the field separator is no delimiter either.
    const nulDelimited = ['MSH', '^~\\&', 'A', 'B', 'C', 'D', '1', '', 'ADT^A01', '1'].join('\0');
    expect(() => decodeMessage(Buffer.from(nulDelimited))).toThrow(
      'MSH-1 and MSH-2 must give five distinct delimiter characters',
    );
  });

  it('keeps the header of a message refused for its character set, for the AR to answer', () => {
    for (const message of [
      'MSH|^~\\&|LAB|HOSP|CV|CV|1||ORU^R01|CTRL123|P|2.5.1||||||UNICODE UTF-16\rPID|1',
      'MSH|^~\\&|LAB|HOSP|CV|CV|1||ORU^R01|CTRL123|P|2.5.1||||||UNICODE UTF-8\rPID|||M\xfcller',
    ]) {
      const refused = (() => {
        try {
          decodeMessage(Buffer.from(message, 'latin1'));
        } catch (error) {
          return error as Hl7RejectError;
        }
        throw new Error('not refused');
      })();
      expect(refused.header).toMatchObject({ controlId: 'CTRL123', sendingApplication: 'LAB' });
      const [msh, msa] = buildAck(refused.header, 'AR', {
        code: '102',
        text: refused.message,
      }).split('\r');
      expect(msh!.split('|').slice(2, 6)).toEqual(['CV', 'CV', 'LAB', 'HOSP']);
      expect(msa).toMatch(/^MSA\|AR\|CTRL123\|/);
    }
  });

  it('refuses a version that is not HL7 v2 (ERR 203), keeping the header; takes every v2 one', () => {
    const version = (v: string) =>
      decodeMessage(Buffer.from(`MSH|^~\\&|LAB|HOSP|CV|CV|1||ADT^A08|C1|P|${v}\rPID|1`)).header
        .version;
    for (const v of ['2.1', '2.3', '2.3.1', '2.5.1', '2.8.2', '2.9', '2.5^USA', ''])
      expect(version(v)).toBe(v.split('^')[0]);
    for (const v of ['3.0', 'banana', '2', '2.10', '25']) {
      expect(() => version(v)).toThrow(
        expect.objectContaining({
          code: '203',
          header: expect.objectContaining({ controlId: 'C1' }),
        }),
      );
    }
  });
});

describe('buildAck', () => {
  const { header } = decodeMessage(
    Buffer.from('MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|MSG7|P|2.5.1\rPID|||1'),
  );

  it('echoes the sender reversed, MSA-2 is MSH-10, and the ACK has its own control id', () => {
    const [msh, msa] = buildAck(header, 'AA').split('\r');
    const fields = msh!.split('|');
    expect(fields.slice(2, 6)).toEqual(['CV', 'HOSP', 'LAB', 'NORTH']);
    expect(fields[8]).toBe('ACK^R01^ACK');
    expect(fields[9]).not.toBe('MSG7');
    expect(fields[11]).toBe('2.5.1');
    expect(msa).toBe('MSA|AA|MSG7|');
  });

  it('gives MSH-9 its message structure from v2.3.1 on, as that version added it', () => {
    const typeOf = (version: string) => {
      const old = decodeMessage(
        Buffer.from(`MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ADT^A04|M1|P|${version}\rPID|||1`),
      ).header;
      return buildAck(old, 'AA').split('\r')[0]!.split('|')[8];
    };
    expect(['2.1', '2.2', '2.3', '2.3.1', '2.4', '2.8'].map(typeOf)).toEqual([
      'ACK^A04',
      'ACK^A04',
      'ACK^A04',
      'ACK^A04^ACK',
      'ACK^A04^ACK',
      'ACK^A04^ACK',
    ]);
  });

  it("escapes v2.7's truncation character (MSH-2's fifth) in the text it sends back", () => {
    // Sent as it is, a `#` in a warning (`in PID #2`) told a v2.7 receiver the text was cut.
    const { header: v27 } = decodeMessage(
      Buffer.from('MSH|^~\\&#|LAB|NORTH|CV|HOSP|20240101||ADT^A08|M#1|P|2.7\rPID|||1'),
    );
    const warning = { code: '102', text: 'PID-7 left out in PID #2', severity: 'W' } as const;
    const segments = buildAck(v27, 'AA', warning).split('\r');
    expect(segments[0]!.split('|')[1]).toBe('^~\\&#');
    // MSA-2 echoes MSH-10 as sent: the sender's own escaping, not ours.
    expect(segments[1]).toBe('MSA|AA|M#1|');
    expect(segments[2]).toBe('ERR|||102^Data type error^HL70357|W||||PID-7 left out in PID \\P\\2');
  });

  it('says why in an ERR segment, escaped', () => {
    const ack = buildAck(header, 'AE', { code: '207', text: 'failed | retry^later' });
    expect(ack).toContain('MSA|AE|MSG7|failed \\F\\ retry\\S\\later');
    expect(ack).toContain('ERR|||207^Application internal error^HL70357|E||||failed');
  });

  it('names the fields an accepted message had left out in ERR warnings, with their place', () => {
    const warnings = [
      { code: '102', text: 'PID-7 left out', severity: 'W', location: ['PID', 1, 7] },
      { code: '102', text: 'PID-8 left out', severity: 'W', location: ['PID', 2, 8] },
    ] as const;
    const segments = buildAck(header, 'AA', warnings).split('\r');
    expect(segments.slice(1)).toEqual([
      'MSA|AA|MSG7|',
      'ERR||PID^1^7|102^Data type error^HL70357|W||||PID-7 left out',
      'ERR||PID^2^8|102^Data type error^HL70357|W||||PID-8 left out',
      '',
    ]);
    // Before v2.5, ERR-1 is where the place and the code go.
    const { header: old } = decodeMessage(
      Buffer.from('MSH|^~\\&|LAB|NORTH|CV|HOSP|1||ADT^A08|M|P|2.3'),
    );
    expect(buildAck(old, 'AA', warnings[0]).split('\r')[2]).toBe(
      'ERR|PID^1^7^102&Data type error&HL70357',
    );
  });
});
