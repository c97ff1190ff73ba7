import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import {
  administeredAt,
  doseIdentifiers,
  doseObservations,
  fillerFirst,
  immunizationFromRxa,
  onTheDose,
} from './immunization.js';

const MSH = 'MSH|^~\\&|EHR|CLINIC|IIS|STATE|20250301||VXU^V04^VXU_V04|1|P|2.5.1';

function message(...segments: string[]): V2Message {
  const { text, header } = decodeMessage(Buffer.from([MSH, ...segments].join('\r')));
  return new V2Message(text, header.delimiters);
}

describe('a dose identifiers (ORC-2, ORC-3)', () => {
  it("leaves out CDC's filler number 9999 of a dose not given, and keeps the others", () => {
    const values = (orc: string) =>
      doseIdentifiers(message(orc).first('ORC'), 'urn:s').map((identifier) => identifier.value);
    expect(values('ORC|RE||9999^CDC')).toEqual([]);
    expect(values('ORC|RE|9999^EHR|9999^CDC')).toEqual(['9999']);
    expect(values('ORC|RE|P1^EHR|F1^EHR')).toEqual(['P1', 'F1']);
  });
});

describe('the identifier a dose is known by', () => {
  it("is the filler's number (ORC-3), else the placer's", () => {
    const known = (orc: string) =>
      fillerFirst(doseIdentifiers(message(orc).first('ORC'), 'urn:s'))?.value;
    expect(known('ORC|RE|P1^EHR|F1^EHR')).toBe('F1');
    expect(known('ORC|RE|P1^EHR')).toBe('P1');
    expect(known('ORC|RE|P1^EHR|9999^CDC')).toBe('P1');
    expect(known('ORC|RE')).toBeUndefined();
  });
});

describe('the OBX of a dose (CDC IG 1.5, 6.3)', () => {
  const of = (...obx: string[]) => doseObservations(message(...obx).all('OBX'));

  it('takes VFC eligibility, funding source, and each VIS with its dates, by OBX-4 group', () => {
    expect(
      of(
        'OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V05^VFC eligible - FQHC^HL70064||||||F|||20120701|||VXC40^per immunization^CDCPHINVS',
        'OBX|2|CE|30963-3^Vaccine Funding Source^LN|2|PHC70^Private^CDCPHINVS||||||F',
        'OBX|3|CE|30956-7^vaccine type^LN|3|88^Influenza, unspecified formulation^CVX||||||F',
        'OBX|4|TS|29768-9^Date VIS published^LN|3|20120702||||||F',
        'OBX|5|TS|29769-7^Date VIS presented^LN|3|20120814||||||F',
        'OBX|6|CE|69764-9^Document Type^LN|4|253088698300028811170411^Td VIS^cdcgs1vis||||||F',
        'OBX|7|DT|29769-7^Date Vis Presented^LN|4|20210818||||||F',
      ),
    ).toEqual({
      programEligibility: [
        {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/v2-0064',
              code: 'V05',
              display: 'VFC eligible - FQHC',
            },
          ],
          text: 'VFC eligible - FQHC',
        },
      ],
      fundingSource: expect.objectContaining({
        coding: [expect.objectContaining({ code: 'PHC70', display: 'Private' })],
      }),
      education: [
        {
          documentType: 'Influenza, unspecified formulation',
          publicationDate: '2012-07-02',
          presentationDate: '2012-08-14',
        },
        { documentType: '253088698300028811170411', presentationDate: '2021-08-18' },
      ],
    });
  });

  it('tells the OBX the Immunization keeps from those that are Observations of it', () => {
    const kept = (code: string) => onTheDose(message(`OBX|1|CE|${code}^x^LN|1|A^a`).first('OBX')!);
    expect(['64994-7', '30963-3', '69764-9', '30956-7', '29768-9', '29769-7'].map(kept)).toEqual(
      Array(6).fill(true),
    );
    expect(['31044-1', '30945-0', '59784-9'].map(kept)).toEqual([false, false, false]);
  });

  it('leaves out a value not of its type, a statement naming no document, and void results', () => {
    // As a shared sample sends it: a presentation date's code with a funding source's value.
    expect(
      of(
        'OBX|1|CE|29769-7^Vaccine Funding Source^LN^30963-3|1|PHC70^Private^CDCPHINVS||||||F',
        'OBX|2|DT|29769-7^Date Vis Presented^LN|2|20210818||||||F',
        'OBX|3|CE|64994-7^VFC eligibility^LN|3|V02^Medicaid^HL70064||||||X',
        'OBX|4|NM|8867-4^Heart rate^LN|4|60|/min|||||F',
      ),
    ).toEqual({});
  });
});

describe('where a dose was given (RXA-27, else RXA-11)', () => {
  const at = (rxa: string) =>
    administeredAt(message(rxa).first('RXA')!).map((level) => level.display);

  it('takes the 2.6 administer-at place, else the 2.5.1 administered-at location', () => {
    expect(at('RXA|0|1|20150624||08^HepB^CVX|0.5|mL||00|7824^Jackson|^^^NIST-Clinic-1')).toEqual([
      'NIST-Clinic-1',
    ]);
    expect(
      at('RXA|0|1|20210818||08^HepB^CVX|0.5|mL||00||^^^NIST-Clinic-1||||||||||||||||Peds^2^^GHH'),
    ).toEqual(['GHH', 'Peds, GHH', 'Peds, room 2, GHH']);
    expect(at('RXA|0|1|20150624||08^HepB^CVX|0.5|mL')).toEqual([]);
  });
});

describe('who reported a dose (RXA-9, NIP001)', () => {
  const reported = (source: string) => {
    const rxa = message(`RXA|0|1|20150624||08^HepB^CVX|999|||${source}`).first('RXA')!;
    const dose = immunizationFromRxa(rxa, 'p1', []);
    return { primarySource: dose?.['primarySource'], reportOrigin: dose?.['reportOrigin'] };
  };

  it('is a secondary report, of its origin, for every historical code (01 to 08)', () => {
    expect(reported('00^New immunization record^NIP001')).toEqual({
      primarySource: true,
      reportOrigin: undefined,
    });
    expect(reported("04^Parent's recall^NIP001")).toEqual({
      primarySource: false,
      reportOrigin: {
        coding: [
          {
            system: 'urn:carevault:v2:coding-system:NIP001',
            code: '04',
            display: "Parent's recall",
          },
        ],
        text: "Parent's recall",
      },
    });
    expect(reported('01^Historical^NIP001')).toMatchObject({ primarySource: false });
    expect(reported('')).toEqual({ primarySource: undefined, reportOrigin: undefined });
  });
});

describe('whether a dose was given (RXA-20, RXA-18, RXA-5 998)', () => {
  const dose = (rxa: string) => immunizationFromRxa(message(rxa).first('RXA')!, 'p1', []);

  it('is not done when a refusal reason or CVX 998 comes without a completion status', () => {
    const refusal = '||||||||||||00^Parental decision^NIP002';
    expect(dose(`RXA|0|1|20250301||03^MMR^CVX|999${refusal}`)).toMatchObject({
      status: 'not-done',
      statusReason: { coding: [{ code: '00' }] },
    });
    expect(dose('RXA|0|1|20250301||998^No vaccine administered^CVX|999')).toMatchObject({
      status: 'not-done',
    });
    // What RXA-20 says stands; without it, a dose is given (CP), as CDC's guide has it.
    expect(dose(`RXA|0|1|20250301||03^MMR^CVX|999${refusal}||CP`)?.['status']).toBe('completed');
    expect(dose('RXA|0|1|20250301||03^MMR^CVX|0.5|mL')?.['status']).toBe('completed');
  });

  it('has no dose quantity for 999, the amount unknown, however it is written', () => {
    for (const amount of ['999', '999.0', '999.00']) {
      expect(dose(`RXA|0|1|20250301||03^MMR^CVX|${amount}|mL^mL^UCUM`)).not.toHaveProperty(
        'doseQuantity',
      );
    }
  });
});

describe('when a dose was recorded (RXA-22)', () => {
  it('is the system entry time, as the IG maps it', () => {
    const rxa = (entered: string) =>
      message(`RXA|0|1|20250301||03^MMR^CVX|0.5|mL|||||||||||||CP|A|${entered}`).first('RXA')!;
    expect(immunizationFromRxa(rxa('20250302101500+0100'), 'p1', [])?.['recorded']).toBe(
      '2025-03-02T10:15:00+01:00',
    );
    expect(immunizationFromRxa(rxa(''), 'p1', [])).not.toHaveProperty('recorded');
  });
});
