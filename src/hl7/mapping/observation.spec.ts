import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { carriesAllResults, isProvisionalReport, observationFromObx } from './observation.js';

const MSH = 'MSH|^~\\&|LAB|LABF|CV|CV|20261206||ORU^R01|1|P|2.5.1';

function segment(name: string, fields: string) {
  const { text, header } = decodeMessage(Buffer.from([MSH, `${name}|${fields}`].join('\r')));
  return new V2Message(text, header.delimiters).first(name)!;
}

const obx = (fields: string) => segment('OBX', fields);

const V3 = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';

describe('abnormal flags (OBX-8) as interpretation', () => {
  const flags = (flag: string) =>
    observationFromObx(obx(`1|NM|2345-7^Glucose^LN||250|mg/dL||${flag}|||F`), 'p1', undefined)[
      'interpretation'
    ];

  it.each([
    ['H^High^HL70078', [{ system: V3, code: 'H', display: 'High' }]],
    ['A^A^HL70078^^^^2.5', [{ system: V3, code: 'A', display: 'A' }]],
    ['hh', [{ system: V3, code: 'HH' }]],
    ['A', [{ system: V3, code: 'A' }]],
    // An alternate coding of table 0078 is converted too.
    [
      'HI^High^99LAB^H^High^HL70078',
      [expect.anything(), { system: V3, code: 'H', display: 'High' }],
    ],
  ])("maps %s to the v3 system, as the IG's InterpretationCodes map does", (flag, coding) => {
    expect(flags(flag)).toEqual([expect.objectContaining({ coding })]);
  });

  it("keeps a lab's own code, and a table 0078 code v3 lacks, as sent", () => {
    expect(flags('HI^High^99LAB')).toEqual([
      expect.objectContaining({
        coding: [{ system: 'urn:carevault:v2:coding-system:99LAB', code: 'HI', display: 'High' }],
      }),
    ]);
    expect(flags('OBX^Separate OBX^HL70078')).toEqual([
      expect.objectContaining({
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0078',
            code: 'OBX',
            display: 'Separate OBX',
          },
        ],
      }),
    ]);
  });
});

describe('structured numeric (SN) values', () => {
  const value = (fields: string) => {
    const observation = observationFromObx(obx(`1|SN|${fields}|||F`), 'p1', undefined);
    const key = Object.keys(observation).find((name) => name.startsWith('value'));
    return key && { [key]: observation[key] };
  };

  it.each([
    ['2888-6^Protein^LN|1|<>^5|mg/dL', { valueString: '<> 5 mg/dL' }],
    ['2888-6^Protein^LN|1|^2^+', { valueString: '2+' }],
    ['2888-6^Protein^LN|1|^2^.^5', { valueString: '2.5' }],
    ['2888-6^Protein^LN|1|=^5|mg/dL', { valueQuantity: { value: 5, unit: 'mg/dL' } }],
    [
      '2888-6^Protein^LN|1|<=^5|mg/dL',
      { valueQuantity: { value: 5, comparator: '<=', unit: 'mg/dL' } },
    ],
    [
      '5048-4^Titer^LN|1|^1^/^64',
      { valueRatio: { numerator: { value: 1 }, denominator: { value: 64 } } },
    ],
  ])('maps %s as the IG does', (fields, expected) => {
    expect(value(fields)).toEqual(expected);
  });

  // A titer below the first dilution ("<1:10") is a negative antibody screen: without its
  // comparator it reads as the low positive 1:10.
  it.each([
    [
      '5048-4^Titer^LN|1|<^1^:^10',
      { valueRatio: { numerator: { value: 1, comparator: '<' }, denominator: { value: 10 } } },
    ],
    [
      '5048-4^Titer^LN|1|>=^1^/^640',
      { valueRatio: { numerator: { value: 1, comparator: '>=' }, denominator: { value: 640 } } },
    ],
    // A Range's bounds take no comparator: the value as written, as for `<>`.
    ['2888-6^Protein^LN|1|>^2^-^4|mg/dL', { valueString: '> 2-4 mg/dL' }],
  ])('keeps the comparator of %s', (fields, expected) => {
    expect(value(fields)).toEqual(expected);
  });
});

describe('whether a report version carries all its results (OBR-25)', () => {
  const obr = (status: string) =>
    segment('OBR', `1||F1^LAB|24320-4^BMP^LN${'|'.repeat(21)}${status}`);

  it.each([
    ['F', true],
    ['C', true],
    ['c', true],
    ['P', false],
    ['A', false],
    ['S', false],
    ['X', false],
    ['', false],
  ])('takes OBR-25 %j as %s', (status, whole) => {
    expect(obr(status).value(25) ?? '').toBe(status);
    expect(carriesAllResults(obr(status))).toBe(whole);
  });
});

describe('whether a report version is before its verification (OBR-25)', () => {
  const obr = (status: string) =>
    segment('OBR', `1||F1^LAB|24320-4^BMP^LN${'|'.repeat(21)}${status}`);

  it.each([
    ['P', true],
    ['a', true],
    ['S', true],
    ['I', true],
    ['R', true],
    ['O', true],
    ['F', false],
    ['C', false],
    ['X', false],
    ['', false],
  ])('takes OBR-25 %j as %s', (status, provisional) => {
    expect(isProvisionalReport(obr(status))).toBe(provisional);
  });
});
