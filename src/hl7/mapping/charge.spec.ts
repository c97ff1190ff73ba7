import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeMessage, Hl7ProcessingError } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { chargeFromFt1 } from './charge.js';

const SAMPLES = join(process.cwd(), '..', 'shared', 'hl7-samples', 'fhir-converter');
const SENDER = 'urn:oid:2.16.840.1.122848.1.30';

function decoded(bytes: Buffer, timeZone?: string): V2Message {
  const { text, header } = decodeMessage(bytes);
  return new V2Message(text, header.delimiters, timeZone);
}

function ft1(line: string, timeZone?: string) {
  const message = decoded(
    Buffer.from(`MSH|^~\\&|BILL|HOSP|CV|CV|20250101||DFT^P03|1|P|2.5\r${line}`),
    timeZone,
  );
  return message.first('FT1')!;
}

describe('FT1 to ChargeItem', () => {
  it('maps the sample charge: code, dates, quantity, price, cost center, people, reasons, product', () => {
    const message = decoded(readFileSync(join(SAMPLES, 'DFT-P03-01.hl7')));
    const [first, second] = message.all('FT1');
    const charge = chargeFromFt1(first!, [], 'p1', 'e1', SENDER)!;
    expect(charge.identifier).toEqual({ system: SENDER, value: '12345' });
    expect(charge.resource).toEqual({
      resourceType: 'ChargeItem',
      identifier: [{ system: SENDER, value: '12345' }],
      status: 'billable',
      code: {
        coding: [
          {
            system: 'http://www.ama-assn.org/go/cpt',
            code: '71045',
            display: 'Xray exam chest 1 view',
          },
        ],
        text: 'Xray exam chest 1 view',
      },
      subject: { reference: 'Patient/p1' },
      context: { reference: 'Encounter/e1' },
      occurrenceDateTime: '2019-11-22',
      performer: [
        {
          actor: {
            type: 'Practitioner',
            identifier: { system: 'urn:oid:2.16.840.1.113883.4.6', value: '9941339108' },
            display: 'Adam Smith',
          },
        },
      ],
      costCenter: {
        type: 'Organization',
        identifier: { system: SENDER, value: 'RAD-1' },
        display: 'Radiology Deptt',
      },
      quantity: { value: 2 },
      priceOverride: { value: 100, currency: 'USD' },
      enterer: {
        type: 'Practitioner',
        identifier: { system: 'urn:oid:2.16.840.1.113883.4.6', value: '9941339116' },
        display: 'John Mellie',
      },
      enteredDate: '2019-11-22',
      reason: [
        {
          coding: [{ system: 'http://snomed.info/sct', code: '29857009', display: 'Chest pain' }],
          text: 'Chest pain',
        },
        {
          coding: [
            { system: 'http://snomed.info/sct', code: '68235000', display: 'Nasal congestion' },
          ],
          text: 'Nasal congestion',
        },
      ],
      productCodeableConcept: {
        coding: [
          { system: 'http://hl7.org/fhir/sid/ndc', code: '0182-1061-05', display: 'ASPIRIN EC' },
        ],
        text: 'ASPIRIN EC',
      },
    });
    // The second charge: a bare code without a system, no transaction id, no visit.
    const bare = chargeFromFt1(second!, [], 'p1', undefined, SENDER)!;
    expect(bare.identifier).toBeUndefined();
    expect(bare.resource).toMatchObject({
      code: { coding: [{ code: '626.2' }] },
      quantity: { value: 1 },
      priceOverride: { value: 120, currency: 'USD' },
    });
    expect(bare.resource).not.toHaveProperty('context');
    expect(bare.resource).not.toHaveProperty('identifier');
  });

  it('takes a transaction date range as a period, local times in HL7_TIME_ZONE', () => {
    const charge = chargeFromFt1(
      ft1(
        'FT1|1|T1||202501100930^202501101015|202501111200|CG|99213^Office visit^C4',
        'America/Chicago',
      ),
      [],
      'p1',
      undefined,
      undefined,
    )!;
    expect(charge.resource).toMatchObject({
      occurrencePeriod: { start: '2025-01-10T09:30:00-06:00', end: '2025-01-10T10:15:00-06:00' },
      enteredDate: '2025-01-11T12:00:00-06:00',
    });
    expect(charge.identifier).toEqual({ value: 'T1' });
  });

  it('prices a single unit by its unit amount when no extended amount is sent, never several', () => {
    const single = chargeFromFt1(
      ft1('FT1|1|||20250110||CG|99213^^C4||||45.50&usd'),
      [],
      'p',
      undefined,
      undefined,
    )!;
    expect(single.resource['priceOverride']).toEqual({ value: 45.5, currency: 'USD' });
    const several = chargeFromFt1(
      ft1('FT1|1|||20250110||CG|99213^^C4|||3||45.50&USD'),
      [],
      'p',
      undefined,
      undefined,
    )!;
    expect(several.resource).not.toHaveProperty('priceOverride');
    expect(several.resource['quantity']).toEqual({ value: 3 });
    // Amounts and quantities that are not numbers are left out rather than guessed.
    const junk = chargeFromFt1(
      ft1('FT1|1|||20250110||CG|99213^^C4|||two|ten&dollars'),
      [],
      'p',
      undefined,
      undefined,
    )!;
    expect(junk.resource).not.toHaveProperty('quantity');
    expect(junk.resource).not.toHaveProperty('priceOverride');
  });

  it('keeps the notes after it, and gives nothing without a transaction code', () => {
    const message = decoded(
      Buffer.from(
        'MSH|^~\\&|BILL|HOSP|CV|CV|20250101||DFT^P03|1|P|2.5\rFT1|1|||20250110||CG|99213^^C4\rNTE|1||Billed to the second plan',
      ),
    );
    const charge = chargeFromFt1(
      message.first('FT1')!,
      message.all('NTE'),
      'p',
      undefined,
      undefined,
    )!;
    expect(charge.resource['note']).toEqual([{ text: 'Billed to the second plan' }]);
    expect(
      chargeFromFt1(ft1('FT1|1|||20250110||CG'), [], 'p', undefined, undefined),
    ).toBeUndefined();
  });

  it('refuses (AE, ERR 102 naming the field) a quantity or amount a double cannot hold as written', () => {
    const refusal = (line: string): unknown => {
      try {
        chargeFromFt1(ft1(line), [], 'p', undefined, undefined);
      } catch (error) {
        return error;
      }
      return 'mapped';
    };
    // Each was stored rounded: 2 units, 100 USD, 45.5 USD, with an AA.
    const cases = [
      ['FT1-10', 'FT1|1|||20250110||CG|99213^^C4|||2.0000000000000001|100&USD'],
      ['FT1-11', 'FT1|1|||20250110||CG|99213^^C4|||2|100.00000000000000001&USD'],
      ['FT1-12', 'FT1|1|||20250110||CG|99213^^C4|||1||45.500000000000000001&USD'],
      ['FT1-11', 'FT1|1|||20250110||CG|99213^^C4|||1|90071992547409930&USD'],
    ] as const;
    for (const [field, line] of cases) {
      const error = refusal(line);
      expect(error).toBeInstanceOf(Hl7ProcessingError);
      expect(error).toMatchObject({ code: '102', message: expect.stringContaining(field) });
      expect((error as Error).message).not.toMatch(/\d{4}/);
    }
    // What a double holds as written is taken, trailing zeros included.
    const exact = chargeFromFt1(
      ft1('FT1|1|||20250110||CG|99213^^C4|||3|1234567.890&USD|411522630.00'),
      [],
      'p',
      undefined,
      undefined,
    )!;
    expect(exact.resource).toMatchObject({
      quantity: { value: 3 },
      priceOverride: { value: 1234567.89, currency: 'USD' },
    });
  });
});
