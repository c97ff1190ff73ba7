import { decodeMessage, Hl7ProcessingError } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import {
  dateOf,
  dateTimeOf,
  identifierOf,
  offsetIn,
  sameIdentifier,
  systemOfHd,
} from './datatypes.js';
import { encounterFromPv1, locationChain } from './encounter.js';
import { observationFromObx, reportFromObr } from './observation.js';
import { coverageFromIn1 } from './coverage.js';
import { appointmentFromSiu } from './appointment.js';
import { allergyFromIam, procedureFromPr1 } from './clinical.js';
import { documentFromTxa } from './document.js';
import { immunizationFromRxa } from './immunization.js';
import { medicationDispenseOf, medicationRequestOf } from './medication.js';
import {
  applyPatient,
  conflictingRecordNumber,
  identifierCriteria,
  patientFromPd1,
  patientFromPid,
  patientFromSegments,
  pidWarnings,
  replacedBy,
} from './patient.js';
import { relatedPersonFromNk1 } from './related-person.js';

function message(...segments: string[]): V2Message {
  const { text, header } = decodeMessage(Buffer.from(segments.join('\r')));
  return new V2Message(text, header.delimiters);
}

const MSH = 'MSH|^~\\&|ADT|HOSP|CV|CV|20240101||ADT^A08|1|P|2.5';

/** One segment, after the MSH that gives it its delimiters. */
function segment(line: string) {
  return message(MSH, line).first(line.slice(0, 3))!;
}

describe('V2Message', () => {
  it('unescapes delimiters, hex and line breaks, and tells "" from empty', () => {
    const pid = message(MSH, 'PID|1||1||O\\T\\Brien^Mary\\.br\\Ann^""^^\\X41\\|||').first('PID')!;
    expect(pid.value(5, 1)).toBe('O&Brien');
    expect(pid.value(5, 2)).toBe('Mary\nAnn');
    expect(pid.value(5, 3)).toBeNull();
    expect(pid.value(5, 4)).toBeUndefined();
    expect(pid.value(5, 5)).toBe('A');
    expect(pid.value(7)).toBeUndefined();
    expect(pid.value(40)).toBeUndefined();
  });

  it('reads hex data in the character set it was written in, \\P\\ and \\.sp\\', () => {
    const utf8 = message(`${MSH}||||||UNICODE UTF-8`, 'PID|1||1||Ren\\XC3A9\\e^Zo\\XEB\\').first(
      'PID',
    )!;
    expect(utf8.value(5, 1)).toBe('Renée');
    expect(utf8.value(5, 2)).toBe('Zoë');
    const v27 = message(
      'MSH|^~\\&#|LAB|HOSP|CV|CV|20240101||ORU^R01|1|P|2.7',
      'NTE|1||A\\P\\B#C^one\\.sp\\two\\.sp2\\three',
    ).first('NTE')!;
    expect(v27.value(3, 1)).toBe('A#B#C');
    expect(v27.value(3, 2)).toBe('one\ntwo\n\nthree');
  });

  it('leaves out trailing blanks, as fixed-width systems pad with them, and keeps leading ones', () => {
    const pid = message(MSH, 'PID|1||12345   ^^^HOSP||   ^  Mary  |  ').first('PID')!;
    expect(pid.value(3)).toBe('12345');
    expect(pid.value(5, 1)).toBeUndefined();
    expect(pid.value(5, 2)).toBe('  Mary');
    expect(pid.value(7)).toBeUndefined();
  });

  it('numbers MSH fields from the field separator, and reads custom delimiters', () => {
    const custom = message(
      'MSH#:*!$#LAB#HOSP#CV#CV#1##ADT:A08#9#P#2.5',
      'PID###7:::AUTH$1.2.3$ISO',
    );
    const msh = custom.first('MSH')!;
    expect([msh.value(1), msh.value(3), msh.value(9, 2), msh.value(10)]).toEqual([
      '#',
      'LAB',
      'A08',
      '9',
    ]);
    expect(custom.first('PID')!.value(3, 4, 2)).toBe('1.2.3');
  });

  it('cuts a message at each group, each part with the shared segments and its own group', () => {
    const names = (parts: V2Message[]) =>
      parts.map((part) => part.segments().map((segment) => segment.value(1) ?? segment.name));
    const shared = new Set(['MSH', 'SFT', 'PID']);
    const several = message(MSH, 'SFT|sw', 'PID|a', 'OBR|a1', 'OBX|a2', 'PID|b', 'OBR|b1');
    expect(names(several.splitAt('PID', shared))).toEqual([
      ['|', 'sw', 'a', 'a1', 'a2'],
      ['|', 'sw', 'b', 'b1'],
    ]);
    // A visit group sent without its PV1 is the first part's, not every part's.
    const visits = message(MSH, 'PID|p', 'DG1|d0', 'PV1|v1', 'DG1|d1', 'PV1|v2', 'DG1|d2');
    expect(names(visits.splitAt('PV1', shared))).toEqual([
      ['|', 'p', 'd0', 'v1', 'd1'],
      ['|', 'p', 'v2', 'd2'],
    ]);
    const none = message(MSH, 'OBR|x');
    expect(none.splitAt('PID', shared)).toEqual([none]);
  });
});

describe('data types', () => {
  it("keeps a number's country code and extension (XTN-5, XTN-8) as the IG's extensions", () => {
    const pid = message(MSH, 'PID|1||1|||||||||||^WPN^PH^^1^217^5551234^89').first('PID')!;
    expect(applyPatient(undefined, [], patientFromPid(pid).elements)['telecom']).toEqual([
      {
        system: 'phone',
        value: '217 5551234',
        use: 'work',
        extension: [
          { url: 'http://hl7.org/fhir/StructureDefinition/contactpoint-country', valueString: '1' },
          {
            url: 'http://hl7.org/fhir/StructureDefinition/contactpoint-extension',
            valueString: '89',
          },
        ],
      },
    ]);
  });

  it('reads the system from the equipment type (XTN-3) as the IG maps it, else from XTN-2', () => {
    const telecom = (xtn: string) => {
      const pid = message(MSH, `PID|1||1||||||||||${xtn}|""`).first('PID')!;
      return patientFromPid(pid).elements['telecom'];
    };
    expect(telecom('^NET^Internet^jane@example.org')).toEqual([
      { system: 'email', value: 'jane@example.org', use: 'home' },
    ]);
    expect(telecom('^NET^X.400^G=Jane;S=Doe;O=Hosp;C=US')).toEqual([
      { system: 'email', value: 'G=Jane;S=Doe;O=Hosp;C=US', use: 'home' },
    ]);
    // Table 0202 has no url: a network address that is no email address is one.
    expect(
      telecom('^NET^Internet^https://jane.example.org~^NET^Internet^www.example.org/jane'),
    ).toEqual([
      { system: 'url', value: 'https://jane.example.org', use: 'home' },
      { system: 'url', value: 'www.example.org/jane', use: 'home' },
    ]);
    expect(telecom('^NET^Internet^mailto:jane@example.org')).toEqual([
      { system: 'email', value: 'mailto:jane@example.org', use: 'home' },
    ]);
    // Without an equipment type (older feeds), XTN-2 says a network address or a beeper.
    expect(telecom('jane@example.org^NET~5551234^BPN~5550000^PRN')).toEqual([
      { system: 'email', value: 'jane@example.org', use: 'home' },
      { system: 'pager', value: '5551234', use: 'home' },
      { system: 'phone', value: '5550000', use: 'home' },
    ]);
    // The equipment type wins over a use code that says otherwise.
    expect(telecom('^NET^PH^^^617^5551234~^PRS^FX^^^617^5550000~^PRN^TDD^^^617^5559999')).toEqual([
      { system: 'phone', value: '617 5551234', use: 'home' },
      { system: 'fax', value: '617 5550000', use: 'mobile' },
      { system: 'other', value: '617 5559999', use: 'home' },
    ]);
  });

  it('keeps a birth date to its digits, whatever the time zone', () => {
    expect(dateOf('19800101')).toBe('1980-01-01');
    expect(dateOf('198001011230+1400')).toBe('1980-01-01');
    expect(dateOf('1980')).toBe('1980');
    expect(dateOf('198013')).toBeUndefined();
    expect(dateOf('20250231')).toBeUndefined();
    expect(dateOf('20250229')).toBeUndefined();
    expect(dateOf('20240229')).toBe('2024-02-29');
    expect(dateOf('21000229')).toBeUndefined();
    expect(dateOf('20000229')).toBe('2000-02-29');
  });

  it('gives a date-time only with its offset, and a date without one', () => {
    expect(dateTimeOf('202401021530+0215')).toBe('2024-01-02T15:30:00+02:15');
    expect(dateTimeOf('20240102153045.123-0500')).toBe('2024-01-02T15:30:45.123-05:00');
    expect(dateTimeOf('202401021530')).toBe('2024-01-02');
    // No such day is no date; no such time keeps the day.
    expect(dateTimeOf('202502311530+0000')).toBeUndefined();
    expect(dateTimeOf('202501102400+0000')).toBe('2025-01-10');
    // Nor does an offset that no place has (FHIR's dateTime allows -14:00 to +14:00).
    expect(dateTimeOf('202501101030+1500')).toBe('2025-01-10');
    expect(dateTimeOf('202501101030+1430')).toBe('2025-01-10');
    expect(dateTimeOf('202501101030-0160')).toBe('2025-01-10');
    expect(dateTimeOf('202501101030+1400')).toBe('2025-01-10T10:30:00+14:00');
    expect(dateTimeOf('202501101030-1400')).toBe('2025-01-10T10:30:00-14:00');
  });

  it("places a time without an offset in the sender's zone, daylight saving included", () => {
    expect(dateTimeOf('202501100930', 'America/Chicago')).toBe('2025-01-10T09:30:00-06:00');
    expect(dateTimeOf('202507100930', 'America/Chicago')).toBe('2025-07-10T09:30:00-05:00');
    // An offset sent wins; a date stays a date.
    expect(dateTimeOf('202507100930+0100', 'America/Chicago')).toBe('2025-07-10T09:30:00+01:00');
    expect(dateTimeOf('20250710', 'America/Chicago')).toBe('2025-07-10');
    // The clocks going forward skip 02:30 and going back repeat 01:30 (New York), 02:30
    // (Berlin): the offset before the change. Zones with half and three-quarter hours.
    expect(offsetIn('America/New_York', '2025-03-09T02:30:00')).toBe('-05:00');
    expect(offsetIn('America/New_York', '2025-03-09T03:30:00')).toBe('-04:00');
    expect(offsetIn('America/New_York', '2025-11-02T01:30:00')).toBe('-04:00');
    expect(offsetIn('America/New_York', '2025-11-02T02:30:00')).toBe('-05:00');
    expect(offsetIn('Europe/Berlin', '2025-10-26T02:30:00')).toBe('+02:00');
    expect(offsetIn('Asia/Kolkata', '2025-03-30T02:30:00')).toBe('+05:30');
    expect(offsetIn('Pacific/Chatham', '2025-07-01T12:00:00')).toBe('+12:45');
    // A year below 100 (a typo for 2050) is placed in it, not in 1950: New York's local mean
    // time then, 4 h 56 min behind, where the offset was 1,900 years of minutes long.
    expect(dateTimeOf('00500101120000', 'America/New_York')).toBe('0050-01-01T12:00:00-04:56');
    // Through the message: an OBX of a message read in its sender's zone.
    const { text, header } = decodeMessage(
      Buffer.from(`${MSH}\rOBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|||||F|||202501100930`),
    );
    const obx = new V2Message(text, header.delimiters, 'America/Chicago').first('OBX')!;
    expect(observationFromObx(obx, 'p1', undefined)['effectiveDateTime']).toBe(
      '2025-01-10T09:30:00-06:00',
    );
  });

  it('makes a system of an assigning authority', () => {
    expect(systemOfHd('X', '2.16.840.1', 'ISO')).toBe('urn:oid:2.16.840.1');
    expect(systemOfHd(undefined, 'A0F0C5E1-1234-4DEF-8123-ABCDEF012345', 'UUID')).toBe(
      'urn:uuid:a0f0c5e1-1234-4def-8123-abcdef012345',
    );
    expect(systemOfHd('St Mary', undefined, undefined)).toBe(
      'urn:carevault:v2:assigning-authority:St%20Mary',
    );
    expect(systemOfHd(undefined, undefined, undefined)).toBeUndefined();
  });
});

describe('PID to Patient', () => {
  it("reads a name's and an address's effective and expiration dates as their period", () => {
    // XPN-12/13 and XAD-13/14 (v2.5 on), and the older validity ranges XPN-10 and XAD-12 (DR).
    const dated = message(
      MSH,
      'PID|1||123^^^HOSP^MR||Roe^Jane^^^^^L^^^^^20100101^20201231~Doe^Jane^^^^^L^^^20210101||19800101|F|||1 Main^^Town^ST^12345^USA^H^^^^^^20150101^20191231~2 Elm^^Town^ST^12345^USA^H^^^^^20200101&20221231~3 Oak^^Town^ST^12345^USA^H^^^^^^2020013X~4 Ash^^Town^ST^12345^USA^H^^^^^^20200101^20191231',
    ).first('PID')!;
    const { elements } = patientFromPid(dated);
    expect(elements['name']).toEqual([
      {
        use: 'official',
        family: 'Roe',
        given: ['Jane'],
        period: { start: '2010-01-01', end: '2020-12-31' },
      },
      { use: 'official', family: 'Doe', given: ['Jane'], period: { start: '2021-01-01' } },
    ]);
    expect(
      (elements['address'] as { period?: unknown }[]).map((address) => address.period),
    ).toEqual([
      { start: '2015-01-01', end: '2019-12-31' },
      { start: '2020-01-01', end: '2022-12-31' },
      // Not a date, or an end before the start: no period, rather than a wrong one.
      undefined,
      undefined,
    ]);
  });

  it('keeps a period whose end is less precise than its start, as per-1 allows', () => {
    // An expiration date of a month (or a year) covers the effective date in it: the name and
    // the address ended then, and arrive with their periods rather than as current.
    const dated = message(
      MSH,
      'PID|1||123^^^HOSP^MR||Roe^Jane^^^^^L^^^^^20200615^202006||19800101|F|||1 Main^^Town^ST^12345^USA^H^^^^^^20190301^2019',
    ).first('PID')!;
    const { elements } = patientFromPid(dated);
    expect((elements['name'] as { period?: unknown }[])[0]!.period).toEqual({
      start: '2020-06-15',
      end: '2020-06',
    });
    expect((elements['address'] as { period?: unknown }[])[0]!.period).toEqual({
      start: '2019-03-01',
      end: '2019',
    });
  });

  const pid = message(
    MSH,
    'PID|1||123^^^HOSP&2.16.1&ISO^MR~999^^^SSA^SS||Doe^Jane^Q^^Dr^^L||19800229|F|||1 Main St^Apt 2^Boston^MA^02115^USA^H||^PRN^PH^^^617^5551234~^NET^Internet^jane@example.org|^WPN^PH^^^617^5550000',
  ).first('PID')!;

  it('maps identifiers with their assigning authority, name, birth date, gender, address, telecom', () => {
    const { identifiers, elements } = patientFromPid(pid);
    expect(identifiers).toEqual([
      {
        system: 'urn:oid:2.16.1',
        value: '123',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        assigner: { display: 'HOSP' },
      },
      {
        system: 'urn:carevault:v2:assigning-authority:SSA',
        value: '999',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
      },
    ]);
    expect(elements).toEqual({
      name: [{ use: 'official', family: 'Doe', given: ['Jane', 'Q'], prefix: ['Dr'] }],
      birthDate: '1980-02-29',
      gender: 'female',
      address: [
        {
          use: 'home',
          line: ['1 Main St', 'Apt 2'],
          city: 'Boston',
          state: 'MA',
          postalCode: '02115',
          country: 'USA',
        },
      ],
      telecom: [
        { system: 'phone', value: '617 5551234', use: 'home' },
        { system: 'email', value: 'jane@example.org', use: 'home' },
        { system: 'phone', value: '617 5550000', use: 'work' },
      ],
    });
  });

  it('maps the language (PID-15) as the preferred one, and the marital status (PID-16)', () => {
    const pid = message(MSH, `PID|1||1^^^HOSP${'|'.repeat(12)}es^Spanish^ISO6391|M`).first('PID')!;
    expect(patientFromPid(pid).elements).toMatchObject({
      communication: [
        { language: { coding: [{ code: 'es', display: 'Spanish' }] }, preferred: true },
      ],
      maritalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0002', code: 'M' }],
      },
    });
  });

  it('says which fields it left out for holding no value of their type, never the value', () => {
    const sent = message(
      MSH,
      'PID|1||1^^^HOSP||Doe^Jane||19801345|Q',
      'PID|2||2^^^HOSP||Roe^Ann||""|F|||||||||||||||||||||2025023112',
      'PID|3||3^^^HOSP||Poe^Al||198012|M',
    );
    const warnings = pidWarnings(sent);
    expect(warnings.map(({ location }) => location)).toEqual([
      ['PID', 1, 7],
      ['PID', 1, 8],
      ['PID', 2, 29],
    ]);
    expect(warnings.map(({ text }) => text).join(' ')).not.toMatch(/1980|2025|Q\b/);
    expect(warnings[0]!.text).toBe(
      'PID-7 (birth date) is not a date (YYYY[MM[DD]]) and was left out; the rest was taken',
    );
    expect(patientFromPid(sent.first('PID')!).elements['birthDate']).toBeUndefined();
  });

  it('leaves out, with a warning, a birth date with a digit missing or text after it', () => {
    // 1980041 is no DT: read as far as it went, it was stored as April 1980 with no warning.
    const sent = message(
      MSH,
      'PID|1||1^^^HOSP||Doe^Jane||1980041|F',
      'PID|2||2^^^HOSP||Roe^Ann||19800412X|F',
      'PID|3||3^^^HOSP||Poe^Al||198004122359-0500|M',
    );
    expect(pidWarnings(sent).map(({ location }) => location)).toEqual([
      ['PID', 1, 7],
      ['PID', 2, 7],
    ]);
    const [first, second, third] = sent.all('PID').map((pid) => patientFromPid(pid).elements);
    expect([first!['birthDate'], second!['birthDate'], third!['birthDate']]).toEqual([
      undefined,
      undefined,
      '1980-04-12',
    ]);
  });

  it('falls back to the sender for an id without an assigning authority', () => {
    const bare = message(MSH, 'PID|1||555^^^^MR').first('PID')!;
    expect(patientFromPid(bare, 'urn:oid:1.2').identifiers[0]).toMatchObject({
      system: 'urn:oid:1.2',
      value: '555',
    });
  });

  it('keeps what an empty field leaves out, removes what "" clears, and merges identifiers', () => {
    const update = message(MSH, 'PID|1||777^^^HOSP&2.16.1&ISO^MR||Doe^Janet||""').first('PID')!;
    const { identifiers, elements } = patientFromPid(update);
    const stored = {
      resourceType: 'Patient',
      id: 'p1',
      meta: { versionId: '3' },
      identifier: [{ system: 'urn:oid:2.16.1', value: '123' }],
      birthDate: '1980-02-29',
      gender: 'female',
    };
    expect(applyPatient(stored, identifiers, elements)).toEqual({
      resourceType: 'Patient',
      id: 'p1',
      identifier: [
        { system: 'urn:oid:2.16.1', value: '123' },
        {
          system: 'urn:oid:2.16.1',
          value: '777',
          type: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }],
          },
          assigner: { display: 'HOSP' },
        },
      ],
      name: [{ family: 'Doe', given: ['Janet'] }],
      gender: 'female',
    });
  });

  it('changes the home and the business telecom field each on its own', () => {
    const stored = {
      resourceType: 'Patient',
      telecom: [
        { system: 'phone', value: '555-1', use: 'home' },
        { system: 'phone', value: '555-2', use: 'mobile' },
        { system: 'phone', value: '555-3', use: 'work' },
      ],
    };
    const telecomAfter = (fields: string) => {
      const { identifiers, elements } = patientFromPid(
        message(MSH, `PID|1${fields}`).first('PID')!,
      );
      return applyPatient(stored, identifiers, elements)['telecom'];
    };
    const pid13 = (value: string) => `||||||||||||${value}`;
    // PID-14 left empty: the business phone stays, whatever PID-13 says.
    expect(telecomAfter(pid13('""'))).toEqual([stored.telecom[2]]);
    expect(telecomAfter(pid13('^PRN^PH^^^617^5551234'))).toEqual([
      { system: 'phone', value: '617 5551234', use: 'home' },
      stored.telecom[2],
    ]);
    // PID-13 left empty: the home and mobile phones stay.
    expect(telecomAfter(`${pid13('')}|""`)).toEqual(stored.telecom.slice(0, 2));
    expect(telecomAfter(`${pid13('""')}|""`)).toBeUndefined();
    expect(telecomAfter(pid13(''))).toEqual(stored.telecom);
    // Both given: they are the whole list.
    expect(telecomAfter(`${pid13('""')}|^WPN^PH^^^617^5550000`)).toEqual([
      { system: 'phone', value: '617 5550000', use: 'work' },
    ]);
  });

  it('reads the death time (PID-29, a DTM) with its precision and offset, else PID-30', () => {
    const death = (fields: string, timeZone?: string) => {
      const { text, header } = decodeMessage(Buffer.from(`${MSH}\rPID|1||1${fields}`));
      const pid = new V2Message(text, header.delimiters, timeZone).first('PID')!;
      return patientFromPid(pid).elements;
    };
    const at = (dtm: string) => `${'|'.repeat(26)}${dtm}`;
    expect(death(at('20240301233015.1234-0500|Y'))).toEqual({
      deceasedDateTime: '2024-03-01T23:30:15.1234-05:00',
    });
    expect(death(at('202403012330+0100'))).toEqual({
      deceasedDateTime: '2024-03-01T23:30:00+01:00',
    });
    // Without an offset: the sender's zone when the deployment names it, else the date alone.
    expect(death(at('202407012330'), 'America/Chicago')).toEqual({
      deceasedDateTime: '2024-07-01T23:30:00-05:00',
    });
    expect(death(at('202407012330'))).toEqual({ deceasedDateTime: '2024-07-01' });
    expect(death(at('20240701|Y'))).toEqual({ deceasedDateTime: '2024-07-01' });
    expect(death(at('2024'))).toEqual({ deceasedDateTime: '2024' });
    // No time (or none that is one): the indicator alone, and "" in it clears both forms.
    expect(death(at('|Y'))).toEqual({ deceasedBoolean: true });
    expect(death(at('20240231|Y'))).toEqual({ deceasedBoolean: true });
    expect(death(at('""|N'))).toEqual({ deceasedBoolean: false });
    expect(death(at('|""'))).toEqual({ deceasedDateTime: null, deceasedBoolean: null });
    const stored = { resourceType: 'Patient', deceasedBoolean: true };
    expect(applyPatient(stored, [], death(at('20240301233015+0000')))).toEqual({
      resourceType: 'Patient',
      identifier: [],
      deceasedDateTime: '2024-03-01T23:30:15+00:00',
    });
  });

  it('adds an identifier once however often it is given (a merge gives the prior ones twice)', () => {
    const mrn = { system: 'urn:oid:2.16.1', value: 'B-1' };
    const merged = applyPatient(
      { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.1', value: 'A-1' }] },
      [mrn, { ...mrn }, { system: 'urn:oid:2.16.1', value: 'A-1' }],
      {},
    );
    expect(merged['identifier']).toEqual([{ system: 'urn:oid:2.16.1', value: 'A-1' }, mrn]);
  });

  it('matches on identifiers that have a system, with FHIR escapes', () => {
    expect(
      identifierCriteria([{ system: 'urn:oid:1', value: 'a,b' }, { value: 'no-system' }]),
    ).toBe(`identifier=${encodeURIComponent('urn:oid:1|a\\,b')}`);
    expect(identifierCriteria([{ value: 'x' }])).toBeUndefined();
  });

  it("matches an authority's identifier under its universal id and its namespace id", () => {
    const [both] = segment('PID|1||M-1^^^HOSP&2.16.5&ISO^MR').repetitions(3);
    const identifier = identifierOf(both!)!;
    expect(identifier).toMatchObject({ system: 'urn:oid:2.16.5', assigner: { display: 'HOSP' } });
    expect(identifierCriteria([identifier])).toBe(
      `identifier=${['urn:carevault:v2:assigning-authority:HOSP|M-1', 'urn:oid:2.16.5|M-1'].map(encodeURIComponent).join(',')}`,
    );
    const [bare] = segment('PID|1||M-1^^^HOSP^MR').repetitions(3);
    const [other] = segment('PID|1||M-1^^^CLINIC&2.16.5&ISO^MR').repetitions(3);
    expect(sameIdentifier(identifier, identifierOf(bare!)!)).toBe(true);
    expect(sameIdentifier(identifierOf(bare!)!, identifier)).toBe(true);
    expect(sameIdentifier(identifierOf(bare!)!, identifierOf(other!)!)).toBe(false);
    // A namespace alone, or a universal id alone, is one system: nothing to keep beside it.
    expect(identifierOf(bare!)).not.toHaveProperty('assigner');
    expect(identifierOf(segment('PID|1||M-1^^^&2.16.5&ISO').repetitions(3)[0]!)).not.toHaveProperty(
      'assigner',
    );
  });

  it('takes the universal id for an identifier known by its namespace id alone', () => {
    const stored = {
      system: 'urn:carevault:v2:assigning-authority:HOSP',
      value: 'M-1',
      use: 'old',
    };
    const incoming = { system: 'urn:oid:2.16.5', value: 'M-1', assigner: { display: 'HOSP' } };
    const merged = applyPatient({ resourceType: 'Patient', identifier: [stored] }, [incoming], {});
    expect(merged['identifier']).toEqual([{ ...incoming, use: 'old' }]);
  });

  it('sees a medical record number other than the one the patient holds from that authority', () => {
    const cx = (text: string) =>
      segment(`PID|1||${text}`)
        .repetitions(3)
        .map((one) => identifierOf(one)!);
    const alice = cx('A-1^^^HOSP&2.16.5&ISO^MR~123456789^^^USSSA^SS~V-1^^^HOSP&2.16.5&ISO^AN');
    const conflicts = (text: string, retiring: string[] = []) =>
      conflictingRecordNumber(alice, cx(text), retiring.length > 0 ? cx(retiring.join('~')) : []);
    // Bob, matched on the SSN he shares with Alice, under his own MRN of the same authority.
    expect(conflicts('B-2^^^HOSP&2.16.5&ISO^MR~123456789^^^USSSA^SS')).toBe(true);
    // The authority named by its namespace alone is the same authority.
    expect(conflicts('B-2^^^HOSP^MR~123456789^^^USSSA^SS')).toBe(true);
    // Her own number, a number of another authority or type, or both numbers sent together.
    expect(conflicts('A-1^^^HOSP^MR~123456789^^^USSSA^SS')).toBe(false);
    expect(conflicts('C-3^^^CLINIC^MR~123456789^^^USSSA^SS')).toBe(false);
    expect(conflicts('A-1^^^HOSP^MR~V-2^^^HOSP&2.16.5&ISO^AN')).toBe(false);
    expect(conflicts('A-1^^^HOSP^MR~B-2^^^HOSP^MR')).toBe(false);
    // A merge's survivor takes the prior number MRG-1 names; numbers a merge retired are old.
    expect(conflicts('B-2^^^HOSP^MR~123456789^^^USSSA^SS', ['A-1^^^HOSP^MR'])).toBe(false);
    const merged = alice.map((one) => (one.value === 'A-1' ? { ...one, use: 'old' } : one));
    expect(conflictingRecordNumber(merged, cx('B-2^^^HOSP^MR~123456789^^^USSSA^SS'))).toBe(false);
  });

  it('takes a number sent beside one the patient holds of that authority, whatever else it holds', () => {
    const cx = (text: string) =>
      segment(`PID|1||${text}`)
        .repetitions(3)
        .map((one) => identifierOf(one)!);
    // Two numbers of one authority, joined by an earlier message that sent both.
    const joined = cx('A-1^^^HOSP^MR~B-2^^^HOSP^MR~123456789^^^USSSA^SS');
    // A third, sent beside one of them, is theirs as it would be beside a patient's only one.
    expect(conflictingRecordNumber(joined, cx('A-1^^^HOSP^MR~C-3^^^HOSP^MR'))).toBe(false);
    expect(conflictingRecordNumber(cx('A-1^^^HOSP^MR'), cx('A-1^^^HOSP^MR~C-3^^^HOSP^MR'))).toBe(
      false,
    );
    // Sent beside none of them (matched on the SSN alone), it is another patient's.
    expect(conflictingRecordNumber(joined, cx('C-3^^^HOSP^MR~123456789^^^USSSA^SS'))).toBe(true);
  });

  it('names the survivor a merge made a prior patient replaced-by, and nothing else', () => {
    const link = (type: string, reference: string) => ({ type, other: { reference } });
    expect(
      replacedBy({ link: [link('seealso', 'Patient/x'), link('replaced-by', 'Patient/b')] }),
    ).toBe('b');
    expect(replacedBy({ link: [link('replaces', 'Patient/a')] })).toBeUndefined();
    expect(replacedBy({ link: [link('replaced-by', 'RelatedPerson/r')] })).toBeUndefined();
    expect(replacedBy({})).toBeUndefined();
  });
});

describe('PV1 to Encounter', () => {
  it('maps class, visit number and period', () => {
    const pv1 = message(
      MSH,
      'PV1|1|I|W^1^1||||||||||||||||V100^^^HOSP&2.16.1&ISO^VN|||||||||||||||||||||||||202401021530+0000|202401051000+0000',
    ).first('PV1')!;
    const { identifier, resource } = encounterFromPv1(pv1, 'p1', 'finished');
    expect(identifier).toMatchObject({ system: 'urn:oid:2.16.1', value: 'V100' });
    expect(resource).toMatchObject({
      status: 'finished',
      class: { code: 'IMP' },
      subject: { reference: 'Patient/p1' },
      period: { start: '2024-01-02T15:30:00+00:00', end: '2024-01-05T10:00:00+00:00' },
    });
  });

  it('names the assigned location (PV1-3) by its parts', () => {
    const location = (pl: string) =>
      encounterFromPv1(message(MSH, `PV1|1|I|${pl}`).first('PV1')!, 'p1', 'in-progress').resource[
        'location'
      ];
    expect(location('4E^136^B^GHH')).toEqual([
      { location: { display: '4E, room 136, bed B, GHH' }, status: 'active' },
    ]);
    // A point of care with subcomponents, a bed already called so, building and floor.
    expect(location('HUH AE OMU&9.8&ISO^OMU B^Bed 03^HOMERTON^^C^Homerton UH^Floor5')).toEqual([
      {
        location: { display: 'HUH AE OMU, room OMU B, Bed 03, Floor5, Homerton UH, HOMERTON' },
        status: 'active',
      },
    ]);
    expect(location('')).toBeUndefined();
  });

  it('names each level of a PL as a place, broadest first (PL[Location])', () => {
    const chain = (pl: string) =>
      locationChain(message(MSH, `PV1|1|I|${pl}`).first('PV1')!.repetitions(3)[0]).map(
        (level) => `${level.physicalType.code}: ${level.display}`,
      );
    expect(chain('4E^136^B^GHH')).toEqual([
      'si: GHH',
      'wa: 4E, GHH',
      'ro: 4E, room 136, GHH',
      'bd: 4E, room 136, bed B, GHH',
    ]);
    expect(chain('HUH AE OMU&9.8&ISO^OMU B^Bed 03^HOMERTON^^C^Homerton UH^Floor5')).toEqual([
      'si: HOMERTON',
      'bu: Homerton UH, HOMERTON',
      'lvl: Floor5, Homerton UH, HOMERTON',
      'wa: HUH AE OMU, Floor5, Homerton UH, HOMERTON',
      'ro: HUH AE OMU, room OMU B, Floor5, Homerton UH, HOMERTON',
      'bd: HUH AE OMU, room OMU B, Bed 03, Floor5, Homerton UH, HOMERTON',
    ]);
    // A bed with no room or ward named is part of the site alone.
    expect(chain('^^12^GHH')).toEqual(['si: GHH', 'bd: bed 12, GHH']);
  });

  it('names the doctors by their role, the service, where the patient came from and went', () => {
    const pv1 = message(
      MSH,
      'PV1|1|I|4E||||1^Attend^Ann|2^Refer^Rob~3^Refer^Rae||SUR||||7|||4^Admit^Al|||||||||||||||||||01',
    ).first('PV1')!;
    const { resource } = encounterFromPv1(pv1, 'p1', 'in-progress', 'urn:oid:9.9');
    const roles = (resource['participant'] as { type: { coding: { code: string }[] }[] }[]).map(
      (participant) => participant.type[0]!.coding[0]!.code,
    );
    expect(roles).toEqual(['ATND', 'REF', 'REF', 'ADM']);
    expect(resource['participant']).toContainEqual(
      expect.objectContaining({
        individual: {
          type: 'Practitioner',
          identifier: { system: 'urn:oid:9.9', value: '1' },
          display: 'Ann Attend',
        },
      }),
    );
    expect(resource['serviceType']).toEqual({
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0069', code: 'SUR' }],
    });
    expect(resource['hospitalization']).toEqual({
      admitSource: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0023', code: '7' }],
      },
      dischargeDisposition: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0112', code: '01' }],
      },
    });
  });

  it('takes the admit reason and length of stay from PV2', () => {
    const parsed = message(MSH, 'PV1|1|I', 'PV2|||140004^Chronic pharyngitis^SCT||||||||3');
    const { resource } = encounterFromPv1(
      parsed.first('PV1')!,
      'p1',
      'in-progress',
      undefined,
      parsed.first('PV2'),
    );
    expect(resource).toMatchObject({
      reasonCode: [{ coding: [{ system: 'http://snomed.info/sct', code: '140004' }] }],
      length: { value: 3, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' },
    });
  });
});

describe('OBX to Observation', () => {
  const obx = (fields: string) => message(MSH, `OBX|${fields}`).first('OBX')!;

  it.each([
    [
      '1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F',
      {
        valueQuantity: {
          value: 5.4,
          unit: 'mmol/L',
          system: 'http://unitsofmeasure.org',
          code: 'mmol/L',
        },
      },
    ],
    ['1|NM|1^x^L||<5|mg||||||F', { valueQuantity: { value: 5, comparator: '<', unit: 'mg' } }],
    ['1|NM|1^x^L||>= 100|mg||||||F', { valueQuantity: { value: 100, comparator: '>=' } }],
    ['1|NM|1^x^L||TNP|mg||||||F', { valueString: 'TNP' }],
    // More digits than a JavaScript number holds: kept as the lab wrote it, not rounded.
    ['1|NM|1^x^L||9007199254740993|mg||||||F', { valueString: '9007199254740993' }],
    ['1|NM|1^x^L||12345678901234567890|mg||||||F', { valueString: '12345678901234567890' }],
    ['1|NM|1^x^L||0.12345678901234567|mg||||||F', { valueString: '0.12345678901234567' }],
    ['1|NM|1^x^L||<9007199254740993|mg||||||F', { valueString: '<9007199254740993' }],
    ['1|NM|1^x^L||5.10|mg||||||F', { valueQuantity: { value: 5.1, unit: 'mg' } }],
    ['1|SN|1^x^L||>^10|mg||||||F', { valueQuantity: { value: 10, comparator: '>', unit: 'mg' } }],
    [
      '1|SN|1^x^L||^1^:^128|||||||F',
      { valueRatio: { numerator: { value: 1 }, denominator: { value: 128 } } },
    ],
    ['1|SN|1^x^L||^2^-^4|||||||F', { valueRange: { low: { value: 2 }, high: { value: 4 } } }],
    // Kept in the stored message, as a value of a type not mapped is, rather than rounded.
    [
      '1|SN|1^x^L||^2^-^12345678901234567890|||||||F',
      { dataAbsentReason: { coding: [{ code: 'unsupported' }] } },
    ],
    ['1|TX|1^x^L||line one~line two||||||F', { valueString: 'line one\nline two' }],
    [
      '1|CWE|1^x^L||260385009^Negative^SCT||||||F',
      {
        valueCodeableConcept: {
          coding: [{ system: 'http://snomed.info/sct', code: '260385009', display: 'Negative' }],
          text: 'Negative',
        },
      },
    ],
    ['1|DT|1^x^L||20240229||||||F', { valueDateTime: '2024-02-29' }],
    ['1|DT|1^x^L||1931Zqx0719||||||F', { valueString: '1931Zqx0719' }],
    ['1|DT|1^x^L||20240231||||||F', { valueString: '20240231' }],
    ['1|TS|1^x^L||202402291200+0100||||||F', { valueDateTime: '2024-02-29T12:00:00+01:00' }],
    ['1|ID|1^x^L||POS||||||F', { valueCodeableConcept: { coding: [{ code: 'POS' }] } }],
    ['1|TM|1^x^L||0930+0100||||||F', { valueTime: '09:30:00' }],
    ['1|TM|1^x^L||093015.5||||||F', { valueTime: '09:30:15.5' }],
    [
      '1|DR|1^x^L||202401010800+0000^202401011000+0000||||||F',
      { valuePeriod: { start: '2024-01-01T08:00:00+00:00', end: '2024-01-01T10:00:00+00:00' } },
    ],
    [
      '1|CQ|1^x^L||120^mg&milligram&UCUM||||||F',
      {
        valueQuantity: {
          value: 120,
          unit: 'milligram',
          system: 'http://unitsofmeasure.org',
          code: 'mg',
        },
      },
    ],
    [
      '1|ED|1^x^L||App^PDF^Base64^QUJD||||||F',
      {
        dataAbsentReason: {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason',
              code: 'unsupported',
            },
          ],
        },
      },
    ],
  ])('maps %s', (fields, expected) => {
    expect(observationFromObx(obx(fields), 'p1', undefined)).toMatchObject({
      status: 'final',
      subject: { reference: 'Patient/p1' },
      ...expected,
    });
  });

  it.each([
    ['3.5-5.0', { low: 3.5, high: 5 }],
    [' 3.5 – 5.0 ', { low: 3.5, high: 5 }],
    ['-2-2', { low: -2, high: 2 }],
    ['<200', { high: 200 }],
    ['>=60', { low: 60 }],
    ['negative', {}],
    ['5.0-3.5', {}],
    ['0-12345678901234567890', {}],
    ['<9007199254740993', {}],
  ])('reads the reference range %j as low and high where it is numeric', (text, bounds) => {
    const observation = observationFromObx(
      obx(`1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|${text}|||||F`),
      'p1',
      undefined,
    );
    const unit = { unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' };
    const limits = Object.fromEntries(
      Object.entries(bounds).map(([bound, value]) => [bound, { value, ...unit }]),
    );
    expect(observation['referenceRange']).toEqual([{ ...limits, text: text.trimEnd() }]);
  });

  it('takes the status from OBX-11 and the time from OBX-14, else the report', () => {
    const preliminary = observationFromObx(
      obx('1|NM|1^x^L||1||||||P|||202401020300+0000'),
      'p1',
      '2024-01-01',
    );
    expect(preliminary).toMatchObject({
      status: 'preliminary',
      effectiveDateTime: '2024-01-02T03:00:00+00:00',
    });
    expect(observationFromObx(obx('1|NM|1^x^L||1||||||C'), 'p1', '2024-01-01')).toMatchObject({
      status: 'corrected',
      effectiveDateTime: '2024-01-01',
    });
  });

  it("maps every OBX-11 status as the IG's ConceptMap table-hl70085-to-observation-status does", () => {
    const statusOf = (code: string) =>
      observationFromObx(obx(`1|NM|1^x^L||1||||||${code}`), 'p1', undefined)['status'];
    // A (v2.7 on: amended after the placer corrected the demographics) was taken as final.
    expect(['A', 'C', 'D', 'F', 'I', 'P', 'S', 'U', 'W', 'X'].map(statusOf)).toEqual([
      'amended',
      'corrected',
      'entered-in-error',
      'final',
      'registered',
      'preliminary',
      'preliminary',
      'final',
      'entered-in-error',
      'cancelled',
    ]);
    // What the IG leaves open: appended, not asked (no result will come), order detail only.
    expect(['B', 'N', 'O'].map(statusOf)).toEqual(['amended', 'cancelled', 'registered']);
    // A code of no table is no final result (it was taken as one).
    expect(['Z', 'Q'].map(statusOf)).toEqual(['unknown', 'unknown']);
  });

  it("takes an empty OBX-11 from the report's status (OBR-25), else final", () => {
    const report = (status: string) =>
      message(MSH, ['OBR', '1', '', 'F1', '1^x^L', ...Array(20).fill(''), status].join('|')).first(
        'OBR',
      )!;
    const result = obx('1|NM|1^x^L||1');
    expect(observationFromObx(result, 'p1', undefined, [], report('P'))['status']).toBe(
      'preliminary',
    );
    expect(observationFromObx(result, 'p1', undefined, [], report(''))['status']).toBe('final');
    expect(observationFromObx(result, 'p1', undefined)['status']).toBe('final');
    expect(reportFromObr(report('Z'), 'p1', undefined)['status']).toBe('unknown');
    expect(reportFromObr(report(''), 'p1', undefined)['status']).toBe('final');
  });
});

describe('PD1 to Patient', () => {
  it('refers to the primary care provider and facility by identifier and name', () => {
    const pd1 = message(
      MSH,
      'PD1|||GOOD HEALTH CLINIC^^SIIS818|88^Hippo^Harold^H^^Dr^^^NPI&2.16.840.1.113883.4.6&ISO',
    ).first('PD1')!;
    expect(patientFromPd1(pd1, 'urn:oid:1.2')).toEqual({
      generalPractitioner: [
        {
          identifier: { system: 'urn:oid:2.16.840.1.113883.4.6', value: '88' },
          display: 'Dr Harold H Hippo',
        },
        { identifier: { system: 'urn:oid:1.2', value: 'SIIS818' }, display: 'GOOD HEALTH CLINIC' },
      ],
    });
  });

  it('leaves the elements alone when empty and clears them for ""', () => {
    expect(patientFromPd1(message(MSH, 'PD1|||').first('PD1')!)).toEqual({});
    expect(patientFromPd1(message(MSH, 'PD1|||""|""').first('PD1')!)).toEqual({
      generalPractitioner: null,
    });
  });

  it('restricts the patient for a protection indicator (PD1-12) Y, and lifts nothing', () => {
    const R = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };
    const pid = message(MSH, 'PID|1||7^^^HOSP^MR').first('PID')!;
    const restricted = (indicator: string | undefined) => {
      const pd1 =
        indicator === undefined ? undefined : message(MSH, `PD1${'|'.repeat(12)}${indicator}`);
      return patientFromSegments(pid, undefined, pd1?.first('PD1')).restricted;
    };
    expect(restricted('Y')).toBe(true);
    expect(restricted('y')).toBe(true);
    // N (what many feeds send with every message), "" and an empty field lift no restriction.
    expect(restricted('N')).toBe(false);
    expect(restricted('""')).toBe(false);
    expect(restricted('')).toBe(false);
    expect(restricted(undefined)).toBe(false);
    // The label is the one the access rules read; the store keeps the rest of the stored meta.
    const stored = { resourceType: 'Patient', meta: { versionId: '2', tag: [{ code: 'x' }] } };
    expect(applyPatient(stored, [], {}, true)).toEqual({
      resourceType: 'Patient',
      identifier: [],
      meta: { security: [R] },
    });
    expect(applyPatient(stored, [], {})).toEqual({ resourceType: 'Patient', identifier: [] });
  });
});

describe('NK1 to RelatedPerson', () => {
  it('maps name, relationship, address, phones, period, gender, birth date and identifiers', () => {
    const nk1 = message(
      MSH,
      'NK1|1|DOE^MARY|MTH^MOTHER^HL70063|115 MAIN ST^^GOODTOWN^KY^42010|(555)555-2004|(555)555-2005||20210101|20210201||||||F|19600102' +
        '|'.repeat(17) +
        'K-1^^^HOSP',
    ).first('NK1')!;
    expect(relatedPersonFromNk1(nk1, 'p1', 'urn:oid:1.2')).toEqual({
      identifiers: [{ system: 'urn:carevault:v2:assigning-authority:HOSP', value: 'K-1' }],
      resource: {
        resourceType: 'RelatedPerson',
        identifier: [{ system: 'urn:carevault:v2:assigning-authority:HOSP', value: 'K-1' }],
        patient: { reference: 'Patient/p1' },
        relationship: [
          {
            coding: [
              {
                system: 'http://terminology.hl7.org/CodeSystem/v2-0063',
                code: 'MTH',
                display: 'MOTHER',
              },
            ],
            text: 'MOTHER',
          },
        ],
        name: [{ family: 'DOE', given: ['MARY'] }],
        telecom: [
          { system: 'phone', value: '(555)555-2004', use: 'home' },
          { system: 'phone', value: '(555)555-2005', use: 'work' },
        ],
        gender: 'female',
        birthDate: '1960-01-02',
        address: [{ line: ['115 MAIN ST'], city: 'GOODTOWN', state: 'KY', postalCode: '42010' }],
        period: { start: '2021-01-01', end: '2021-02-01' },
      },
    });
  });

  it('gives nothing for a segment that names nobody', () => {
    expect(relatedPersonFromNk1(message(MSH, 'NK1|1||MTH').first('NK1')!, 'p1')).toBeUndefined();
  });
});

describe('IN1 to Coverage', () => {
  it('maps insurer, policy number, plan, group, dates and relationship', () => {
    const in1 = message(
      MSH,
      'IN1|1|BAV^Blue Advantage HMO|IC-1^^^&2.16.840.1.113883.1.1&ISO|Blue Cross||||G-1|Group One|||19981101|20501231||HMO^health maintenance organization||SEL^Self' +
        '|'.repeat(19) +
        'PN-145',
    ).first('IN1')!;
    const mapped = coverageFromIn1(in1, 'p1', 'urn:oid:1.2')!;
    expect(mapped.identifier).toEqual({ system: 'urn:oid:1.2', value: 'PN-145' });
    expect(mapped.plan).toBe('BAV');
    expect(mapped.resource).toMatchObject({
      resourceType: 'Coverage',
      status: 'active',
      identifier: [{ system: 'urn:oid:1.2', value: 'PN-145' }],
      beneficiary: { reference: 'Patient/p1' },
      payor: [
        {
          identifier: { system: 'urn:oid:2.16.840.1.113883.1.1', value: 'IC-1' },
          display: 'Blue Cross',
        },
      ],
      period: { start: '1998-11-01', end: '2050-12-31' },
      type: { coding: [{ code: 'HMO' }] },
      relationship: { coding: [{ code: 'SEL', display: 'Self' }] },
      class: [
        { value: 'BAV', name: 'Blue Advantage HMO', type: { coding: [{ code: 'plan' }] } },
        { value: 'G-1', name: 'Group One', type: { coding: [{ code: 'group' }] } },
      ],
    });
  });

  it('gives nothing without an insurer, which a Coverage must name', () => {
    expect(coverageFromIn1(message(MSH, 'IN1|1|BAV').first('IN1')!, 'p1')).toBeUndefined();
  });
});

describe('TXA and OBX to DocumentReference', () => {
  const mdm = (...segments: string[]) =>
    message('MSH|^~\\&|DOCS|HOSP|CV|CV|20240101||MDM^T02|1|P|2.5', ...segments);

  it('maps type, date, author, status and number, and joins text lines into one attachment', () => {
    const m = mdm(
      'TXA|1|CN^Consult note^HL70270|FT|||202401051015+0000|||77^Lee^Ann|||D-1^HOSP|D-0^HOSP||||IP|V|AV||||||Consult',
      'OBX|1|FT|11488-4^Consult note^LN||Line one\\.br\\Line two~Line three||||||F',
      'OBX|2|TX|11488-4^Consult note^LN||Line four||||||F',
    );
    const { identifier, parent, resource } = documentFromTxa(
      m.first('TXA')!,
      m.all('OBX'),
      'p1',
      'urn:oid:9.9',
    );
    expect(identifier).toEqual({
      system: 'urn:carevault:v2:assigning-authority:HOSP',
      value: 'D-1',
    });
    expect(parent?.value).toBe('D-0');
    expect(resource).toMatchObject({
      resourceType: 'DocumentReference',
      masterIdentifier: identifier,
      status: 'current',
      docStatus: 'preliminary',
      type: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0270',
            code: 'CN',
            display: 'Consult note',
          },
        ],
      },
      subject: { reference: 'Patient/p1' },
      date: '2024-01-05T10:15:00+00:00',
      author: [{ identifier: { system: 'urn:oid:9.9', value: '77' }, display: 'Ann Lee' }],
      description: 'Consult',
      securityLabel: [{ coding: [{ code: 'V', display: 'very restricted' }] }],
    });
    const [text] = resource['content'] as { attachment: { data: string } }[];
    expect(Buffer.from(text!.attachment.data, 'base64').toString()).toBe(
      'Line one\nLine two\nLine three\nLine four',
    );
  });

  it('takes encapsulated data in its own media type, and a reference pointer as a URL', () => {
    const pdf = Buffer.from('%PDF-1.4 test').toString('base64');
    const m = mdm(
      'TXA|1|DS||||||||||D-2^HOSP|||||AU',
      `OBX|1|ED|18842-5^^LN||^AP^PDF^Base64^${pdf}||||||F`,
      'OBX|2|ED|18842-5^^LN||^TEXT^RTF^A^{\\rtf1 hi}||||||F',
      'OBX|3|RP|18842-5^^LN||https://docs.example.org/d2^^application^pdf||||||F',
    );
    const { resource } = documentFromTxa(m.first('TXA')!, m.all('OBX'), 'p1', undefined);
    expect(resource['docStatus']).toBe('final');
    expect(resource['content']).toEqual([
      { attachment: { contentType: 'application/pdf', data: pdf } },
      {
        attachment: {
          contentType: 'text/rtf',
          data: Buffer.from('{\\rtf1 hi}').toString('base64'),
        },
      },
      { attachment: { contentType: 'application/pdf', url: 'https://docs.example.org/d2' } },
    ]);
  });

  it('leaves content out when the message has none (a notification)', () => {
    const m = mdm('TXA|1|DS||||||||||D-3^HOSP|||||DI');
    const { resource } = documentFromTxa(m.first('TXA')!, [], 'p1', undefined);
    expect(resource).not.toHaveProperty('content');
  });
});

describe('SIU to Appointment', () => {
  const SIU = 'MSH|^~\\&|SCHED|HOSP|CV|CV|20250101||SIU^S12|1|P|2.5';
  const SCH = 'SCH|P-1|F-1^SCHED^2.16.15^ISO|||||WALKIN||45|min|';

  it('keys on the filler id, maps SCH-7 to appointmentType, ends at start plus SCH-9 minutes', () => {
    const m = message(
      SIU,
      `${SCH}||||||||||||||Waitlist`,
      'TQ1|||||||202503011530-0500',
      'NTE|1||First line',
      'NTE|2||Second line',
      'PID|1||7^^^HOSP^MR',
      'NTE|1||About the patient: not the appointment',
    );
    const appointment = appointmentFromSiu(m, m.first('SCH')!, 'urn:oid:9.9');
    expect(appointment.identifier).toEqual({
      system: 'urn:oid:2.16.15',
      value: 'F-1',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'FILL' }] },
    });
    expect(appointment.status).toBe('waitlist');
    expect(appointment.resource).toMatchObject({
      identifier: [{ system: 'urn:oid:9.9', value: 'P-1' }, appointment.identifier],
      appointmentType: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0276', code: 'WALKIN' }],
      },
      start: '2025-03-01T15:30:00-05:00',
      end: '2025-03-01T16:15:00-05:00',
      minutesDuration: 45,
      comment: 'First line\nSecond line',
    });
  });

  it('gives no times that a UTC offset does not place, and maps table 0278 statuses', () => {
    const statuses = [
      'Pending',
      'Booked',
      'Started',
      'Complete',
      'Dc',
      'Deleted',
      'Noshow',
      'Blocked',
    ];
    const mapped = statuses.map((status) => {
      const m = message(SIU, `${SCH}||||||||||||||${status}`, 'TQ1|||||||202503011530');
      const appointment = appointmentFromSiu(m, m.first('SCH')!, undefined);
      expect(appointment.resource['start']).toBeUndefined();
      return appointment.status;
    });
    expect(mapped).toEqual([
      'pending',
      'booked',
      'checked-in',
      'fulfilled',
      'cancelled',
      'entered-in-error',
      'noshow',
      undefined,
    ]);
  });

  it('books each person, equipment and place once, with their own status when they have one', () => {
    const m = message(
      SIU,
      SCH,
      'RGS|1',
      'AIS|1||1^Visit^L',
      'AIP|1||9^Grey^Meredith|S^Surgeon^L||||||||Pending',
      'AIG|1||GM-7^Glucose meter^L|EQ^Equipment^L',
      'AIL|1||4E^136^^GHH',
      'RGS|2',
      'AIS|1||1^Visit^L',
      'AIP|1||9^Grey^Meredith|S^Surgeon^L||||||||Pending',
      'AIL|1||4E^136^^GHH||||||||||Cancelled',
    );
    const appointment = appointmentFromSiu(m, m.first('SCH')!, 'urn:oid:9.9');
    expect(appointment.resource['serviceType']).toHaveLength(1);
    expect(appointment.participants).toEqual([
      {
        type: [expect.objectContaining({ text: 'Surgeon' })],
        actor: {
          type: 'Practitioner',
          identifier: { system: 'urn:oid:9.9', value: '9' },
          display: 'Meredith Grey',
        },
        status: 'tentative',
      },
      {
        type: [expect.objectContaining({ text: 'Equipment' })],
        actor: {
          identifier: { system: 'urn:carevault:v2:coding-system:L', value: 'GM-7' },
          display: 'Glucose meter',
        },
      },
    ]);
    expect(appointment.places).toEqual([
      {
        chain: expect.arrayContaining([expect.objectContaining({ display: '4E, room 136, GHH' })]),
      },
    ]);
  });
});

describe('IAM to AllergyIntolerance', () => {
  it('gives a record in error no clinical status, and the onset as text when it is not a date', () => {
    const m = message(MSH, 'IAM|1|MA|X1^Latex^L|SV|Hives~Wheeze|D||||||as a child|||||E');
    const allergy = allergyFromIam(m.first('IAM')!, [], 'p1', 'urn:oid:9.9')!;
    expect(allergy.deletes).toBe(true);
    expect(allergy.identifier).toBeUndefined();
    expect(allergy.resource['clinicalStatus']).toBeUndefined();
    expect(allergy.resource).toMatchObject({
      verificationStatus: { coding: [{ code: 'entered-in-error' }] },
      category: ['medication'],
      criticality: 'high',
      onsetString: 'as a child',
      reaction: [
        { manifestation: [{ text: 'Hives' }], severity: 'severe' },
        { manifestation: [{ text: 'Wheeze' }], severity: 'severe' },
      ],
    });
  });
});

describe('numbers a double cannot hold as written', () => {
  /** What mapping the segment threw, or what it gave. */
  function outcome(map: () => Record<string, unknown> | undefined): unknown {
    try {
      return map();
    } catch (error) {
      return error;
    }
  }

  function expectRefused(result: unknown, field: string): void {
    expect(result).toBeInstanceOf(Hl7ProcessingError);
    expect(result).toMatchObject({ code: '102', message: expect.stringContaining(field) });
    // The value itself is never quoted: it may be a patient's.
    expect((result as Error).message).not.toMatch(/0000000/);
  }

  const pr1 = (minutes: string) =>
    message(MSH, `PR1|1||71045^Xray^C4||202501101300+0000||${minutes}`).first('PR1')!;
  const rxa = (amount: string) =>
    message(MSH, `RXA|0|1|20240101|20240101|08^HepB^CVX|${amount}|mL^mL^UCUM`).first('RXA')!;
  const rxe = (amount: string) =>
    message(MSH, `RXE|^^^20240101|123^Drug^NDC|${amount}||mg^mg`).first('RXE')!;
  const rxd = (amount: string) =>
    message(MSH, `RXD|1|123^Drug^NDC|20240101|${amount}|TAB^tablet`).first('RXD')!;
  const siu = (duration: string) => {
    const m = message(
      'MSH|^~\\&|SCHED|HOSP|CV|CV|20250101||SIU^S12|1|P|2.5',
      `SCH|P-1|F-1^SCHED^2.16.15^ISO|||||WALKIN||${duration}|min|`,
      'TQ1|||||||202503011530-0500',
    );
    return () => appointmentFromSiu(m, m.first('SCH')!, 'urn:oid:9.9').resource;
  };
  const pv2 = (days: string) => {
    const m = message(MSH, 'PV1|1|I', `PV2${'|'.repeat(11)}${days}`);
    return () =>
      encounterFromPv1(m.first('PV1')!, 'p1', 'finished', undefined, m.first('PV2')).resource;
  };

  it('refuses each numeric field (AE, ERR 102 naming it) rather than storing it rounded', () => {
    // Each was taken as the double nearest it: 30 minutes, 0.5 mL, 5 mg, 30 tablets, 45
    // minutes, 3 days, with an AA.
    expectRefused(
      outcome(
        () => procedureFromPr1(pr1('30.0000000000000001'), 'p1', undefined, undefined)?.resource,
      ),
      'PR1-7',
    );
    expectRefused(
      outcome(() => immunizationFromRxa(rxa('0.50000000000000001'), 'p1', [])),
      'RXA-6',
    );
    expectRefused(
      outcome(() => medicationRequestOf(undefined, rxe('5.0000000000000001'), undefined, 'p1', [])),
      'RXE-3',
    );
    expectRefused(
      outcome(() =>
        medicationDispenseOf(
          rxd('30.0000000000000001'),
          undefined,
          'p1',
          undefined,
          undefined,
          undefined,
        ),
      ),
      'RXD-4',
    );
    expectRefused(outcome(siu('45.0000000000000001')), 'SCH-9');
    expectRefused(outcome(pv2('3.0000000000000001')), 'PV2-11');
    // An integer beyond 2^53 - 1 too (it was 9007199254740992 days).
    expectRefused(outcome(pv2('9007199254740993')), 'PV2-11');
  });

  it('refuses a duration held exactly that ends after the year 9999 (AE, ERR 102 naming it)', () => {
    // They were a RangeError from Date: an AE 207 that named nothing.
    expectRefused(
      outcome(() => procedureFromPr1(pr1('999999999999'), 'p1', undefined, undefined)?.resource),
      'PR1-7',
    );
    expectRefused(outcome(siu('999999999999')), 'SCH-9');
  });

  it('takes what a double holds as written, and leaves out what is no number, as before', () => {
    expect(
      outcome(() => procedureFromPr1(pr1('30.000'), 'p1', undefined, undefined)?.resource),
    ).toMatchObject({
      performedPeriod: { start: '2025-01-10T13:00:00+00:00', end: '2025-01-10T13:30:00+00:00' },
    });
    expect(outcome(() => immunizationFromRxa(rxa('0.50'), 'p1', []))).toMatchObject({
      doseQuantity: { value: 0.5 },
    });
    expect(
      outcome(() => medicationRequestOf(undefined, rxe('5'), undefined, 'p1', [])),
    ).toMatchObject({
      dosageInstruction: [{ doseAndRate: [{ doseQuantity: { value: 5, unit: 'mg' } }] }],
    });
    expect(
      outcome(() =>
        medicationDispenseOf(rxd('30'), undefined, 'p1', undefined, undefined, undefined),
      ),
    ).toMatchObject({
      quantity: { value: 30 },
    });
    expect(outcome(siu('45'))).toMatchObject({ minutesDuration: 45 });
    expect(outcome(pv2('3.5'))).toMatchObject({ length: { value: 3.5 } });
    for (const junk of ['about 30', '1e3', '0x1E', '']) {
      expect(
        outcome(() => procedureFromPr1(pr1(junk), 'p1', undefined, undefined)?.resource),
      ).toHaveProperty('performedDateTime');
      expect(outcome(() => immunizationFromRxa(rxa(junk), 'p1', []))).not.toHaveProperty(
        'doseQuantity',
      );
      expect(outcome(siu(junk))).not.toHaveProperty('minutesDuration');
      expect(outcome(pv2(junk))).not.toHaveProperty('length');
    }
  });
});

describe('RXA and RXR to Immunization', () => {
  it('marks a partial dose subpotent, and takes the route, site and MVX manufacturer', () => {
    const m = message(
      MSH,
      'RXA|0|1|20261206100000||08^HepB^CVX|0.5|mL^mL^UCUM||00^New record^NIP001||||||LOT1|20271231|MSD^Merck^MVX|||PA|A',
      'RXR|C28161^IM^NCIT|LD^Left deltoid^HL70163',
    );
    expect(immunizationFromRxa(m.first('RXA')!, 'p1', [], m.first('RXR'))).toMatchObject({
      status: 'completed',
      isSubpotent: true,
      manufacturer: {
        identifier: { system: 'http://hl7.org/fhir/sid/mvx', value: 'MSD' },
        display: 'Merck',
      },
      route: { coding: [expect.objectContaining({ code: 'C28161' })] },
      site: { coding: [expect.objectContaining({ code: 'LD' })] },
    });
    // A full dose is not subpotent; a manufacturer by name alone has no identifier.
    const full = message(MSH, 'RXA|0|1|20261206100000||08^HepB^CVX|0.5|||||||||||^Merck|||CP');
    const dose = immunizationFromRxa(full.first('RXA')!, 'p1', []);
    expect(dose).not.toHaveProperty('isSubpotent');
    expect(dose?.['manufacturer']).toEqual({ display: 'Merck' });
  });
});

describe('RXE to MedicationRequest', () => {
  it('takes the prescriber, the UCUM dose, and what is dispensed with its refills', () => {
    const m = message(
      MSH,
      'ORC|NW|RX1^CPOE|||||||20261206090000|||1234^Attend^Alice',
      'RXE|^BID|197361^Amlodipine 5 mg tab^RXNORM|5||mg^mg^UCUM|TAB^Tablet^HL70292||||30|TAB^Tablet^HL70292|2',
    );
    const request = medicationRequestOf(
      m.first('ORC'),
      m.first('RXE')!,
      undefined,
      'p1',
      [],
      'urn:s',
    );
    expect(request).toMatchObject({
      requester: { type: 'Practitioner', display: expect.stringContaining('Attend') },
      dosageInstruction: [
        {
          doseAndRate: [
            {
              doseQuantity: {
                value: 5,
                unit: 'mg',
                system: 'http://unitsofmeasure.org',
                code: 'mg',
              },
            },
          ],
        },
      ],
      dispenseRequest: { quantity: { value: 30, unit: 'Tablet' }, numberOfRepeatsAllowed: 2 },
    });
  });
});

describe('PID race, ethnicity and multiple birth', () => {
  const pid = (fields: Record<number, string>) => {
    const list = Array.from({ length: 26 }, (_, n) => fields[n] ?? '');
    list[3] = 'M-1^^^HOSP&2.16.1&ISO^MR';
    return message(MSH, `PID${list.join('|')}`).first('PID')!;
  };

  it("gives US Core's race and ethnicity extensions, keeping the patient's other extensions", () => {
    const { elements } = patientFromPid(
      pid({
        10: '2106-3^White^CDCREC~2029-7^Asian Indian^CDCREC',
        22: '2186-5^Not Hispanic or Latino^CDCREC',
        24: 'Y',
        25: '2',
      }),
    );
    const own = { url: 'https://example.org/own', valueString: 'kept' };
    const patient = applyPatient({ resourceType: 'Patient', extension: [own] }, [], elements);
    expect(patient['extension']).toEqual([
      own,
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
        extension: [
          {
            url: 'ombCategory',
            valueCoding: {
              system: 'urn:oid:2.16.840.1.113883.6.238',
              code: '2106-3',
              display: 'White',
            },
          },
          {
            url: 'detailed',
            valueCoding: {
              system: 'urn:oid:2.16.840.1.113883.6.238',
              code: '2029-7',
              display: 'Asian Indian',
            },
          },
          { url: 'text', valueString: 'White, Asian Indian' },
        ],
      },
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity',
        extension: [
          {
            url: 'ombCategory',
            valueCoding: {
              system: 'urn:oid:2.16.840.1.113883.6.238',
              code: '2186-5',
              display: 'Not Hispanic or Latino',
            },
          },
          { url: 'text', valueString: 'Not Hispanic or Latino' },
        ],
      },
    ]);
    expect(patient['multipleBirthInteger']).toBe(2);
    // "" clears race only; the rest stays. A later indicator alone replaces the birth order.
    const cleared = applyPatient(patient, [], patientFromPid(pid({ 10: '""', 24: 'N' })).elements);
    expect((cleared['extension'] as { url: string }[]).map((e) => e.url)).toEqual([
      own.url,
      'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity',
    ]);
    expect(cleared).toMatchObject({ multipleBirthBoolean: false });
    expect(cleared).not.toHaveProperty('multipleBirthInteger');
  });
});

describe('PID-7 time of birth', () => {
  const BIRTH_TIME = 'http://hl7.org/fhir/StructureDefinition/patient-birthTime';
  const pid = (birth: string, timeZone?: string) => {
    const { text, header } = decodeMessage(
      Buffer.from([MSH, `PID|1||M-1^^^HOSP&2.16.1&ISO^MR||Doe^Baby||${birth}|F`].join('\r')),
    );
    return new V2Message(text, header.delimiters, timeZone).first('PID')!;
  };
  const apply = (patient: Record<string, unknown> | undefined, sent: ReturnType<typeof pid>) =>
    applyPatient(patient, [], patientFromPid(sent).elements);

  it("keeps the time as patient-birthTime, in the sender's zone, beside other extensions", () => {
    const own = { url: 'https://example.org/own', valueString: 'kept' };
    const born = apply(
      { resourceType: 'Patient', _birthDate: { extension: [own] } },
      pid('202612052347', 'America/New_York'),
    );
    expect(born).toMatchObject({
      birthDate: '2026-12-05',
      _birthDate: {
        extension: [own, { url: BIRTH_TIME, valueDateTime: '2026-12-05T23:47:00-05:00' }],
      },
    });
    // An offset sent with the time is the sender's own; without a zone a time is not placed.
    expect(apply(undefined, pid('202612052347+0100'))['_birthDate']).toEqual({
      extension: [{ url: BIRTH_TIME, valueDateTime: '2026-12-05T23:47:00+01:00' }],
    });
    expect(apply(undefined, pid('202612052347'))).not.toHaveProperty('_birthDate');
  });

  it('drops the time when the date changes or is removed, and keeps it for the same date', () => {
    const born = apply(undefined, pid('202612052347+0000'));
    const sameDay = apply(born, pid('20261205'));
    expect(sameDay['_birthDate']).toEqual(born['_birthDate']);
    const corrected = apply(born, pid('20261204'));
    expect(corrected).toMatchObject({ birthDate: '2026-12-04' });
    expect(corrected).not.toHaveProperty('_birthDate');
    const removed = apply(born, pid('""'));
    expect(removed).not.toHaveProperty('birthDate');
    expect(removed).not.toHaveProperty('_birthDate');
    // An invalid PID-7 is left out (with a warning), and so leaves both as they were.
    expect(apply(born, pid('20261345'))).toMatchObject({
      birthDate: '2026-12-05',
      _birthDate: born['_birthDate'],
    });
  });
});

describe('OBX and OBR performers', () => {
  it('names who observed (OBX-16), the performing lab (OBX-23) and the interpreter (OBR-32)', () => {
    const m = message(
      MSH,
      `OBR|1||F1|1^x^L${'|'.repeat(28)}777&Path&Pam`,
      [
        'OBX',
        ...['1', 'NM', '1^x^L', '', '1', '', '', '', '', '', 'F', '', '', '', ''],
        '888^Tech^Tom',
        ...['', '', '', '', '', ''],
        'Acme Lab^^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000000',
      ].join('|'),
    );
    const observation = observationFromObx(
      m.first('OBX')!,
      'p1',
      undefined,
      [],
      undefined,
      'urn:s',
    );
    expect(observation['performer']).toEqual([
      { type: 'Practitioner', identifier: { system: 'urn:s', value: '888' }, display: 'Tom Tech' },
      {
        type: 'Organization',
        identifier: { system: 'urn:oid:2.16.840.1.113883.4.7', value: '05D0000000' },
        display: 'Acme Lab',
      },
    ]);
    expect(reportFromObr(m.first('OBR')!, 'p1', undefined, 'urn:s')['resultsInterpreter']).toEqual([
      { type: 'Practitioner', identifier: { system: 'urn:s', value: '777' }, display: 'Pam Path' },
    ]);
  });
});
