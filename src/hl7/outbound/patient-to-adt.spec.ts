import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import { encodeFrame, MllpDecoder } from '../mllp/mllp-decoder.js';
import { applyPatient, patientFromPid, patientFromSegments } from '../mapping/patient.js';
import { adtOfPatient } from './patient-to-adt.js';

const PATIENT = {
  resourceType: 'Patient',
  id: 'p1',
  identifier: [
    {
      system: 'urn:oid:2.16.840.1.113883.19.5',
      value: 'MRN|7^8',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
    },
    { system: 'urn:carevault:v2:assigning-authority:GOOD%20HEALTH', value: '42' },
    { system: 'https://ids.example.org/mrn', value: 'A&B' },
  ],
  name: [
    { use: 'official', family: "O'Brien & Sons", given: ['Zoë', 'Ann~Marie'], prefix: ['Dr'] },
  ],
  birthDate: '1980-02-29',
  gender: 'female',
  address: [
    { use: 'home', line: ['1 Main St', 'Apt \\2'], city: 'Ann Arbor', postalCode: '48103' },
  ],
  telecom: [
    { system: 'phone', value: '555-0100', use: 'home' },
    { system: 'email', value: 'zoe@example.org' },
    {
      system: 'phone',
      value: '555-0199',
      use: 'work',
      extension: [
        { url: 'http://hl7.org/fhir/StructureDefinition/contactpoint-country', valueString: '1' },
        {
          url: 'http://hl7.org/fhir/StructureDefinition/contactpoint-extension',
          valueString: '89',
        },
      ],
    },
  ],
  deceasedBoolean: false,
  communication: [
    {
      language: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0296',
            code: 'spa',
            display: 'Spanish',
          },
        ],
        text: 'Spanish',
      },
      preferred: true,
    },
  ],
  maritalStatus: {
    coding: [
      { system: 'http://terminology.hl7.org/CodeSystem/v2-0002', code: 'M', display: 'Married' },
    ],
    text: 'Married',
  },
};

/** The resource id, as PID-3 always carries it, read back. */
const OWN_ID = {
  system: 'urn:carevault:v2:assigning-authority:CAREVAULT',
  value: 'p1',
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PI' }] },
};

const HEADER = {
  facility: 'GOOD|HOSP',
  processingId: 'P',
  receivingApplication: '',
  receivingFacility: '',
  controlId: 'CV123',
  now: new Date('2026-01-02T03:04:05Z'),
};

describe('Patient to ADT', () => {
  it('builds an ADT^A04 whose header reads back and whose values are escaped', () => {
    const text = adtOfPatient(PATIENT, 'A04', HEADER);
    const { header } = decodeMessage(Buffer.from(text, 'utf8'));
    expect(header).toMatchObject({
      messageCode: 'ADT',
      triggerEvent: 'A04',
      controlId: 'CV123',
      version: '2.5.1',
      sendingFacility: 'GOOD\\F\\HOSP',
    });
    expect(text).toContain(
      'PID|1||MRN\\F\\7\\S\\8^^^&2.16.840.1.113883.19.5&ISO^MR~42^^^GOOD HEALTH',
    );
    expect(text).toContain('EVN|A04|20260102030405+0000');
    expect(
      text
        .split('\r')
        .filter(Boolean)
        .map((segment) => segment.slice(0, 3)),
    ).toEqual(['MSH', 'EVN', 'PID', 'PV1']);
  });

  it('sends a facility with a universal id as an HD, its components escaped', () => {
    const text = adtOfPatient(PATIENT, 'A04', {
      ...HEADER,
      facility: 'GOOD|HOSP^2.16.840.1.113883.19.99^ISO',
    });
    expect(text.split('\r')[0]!.split('|')[3]).toBe('GOOD\\F\\HOSP^2.16.840.1.113883.19.99^ISO');
  });

  it("names the destination's receiving application and facility in MSH-5 and MSH-6", () => {
    const text = adtOfPatient(PATIENT, 'A08', {
      ...HEADER,
      receivingApplication: 'LIS',
      receivingFacility: 'LAB~1^2.16.840.1.113883.19.7^ISO',
    });
    expect(text.split('\r')[0]!.split('|').slice(2, 6)).toEqual([
      'CAREVAULT',
      'GOOD\\F\\HOSP',
      'LIS',
      'LAB\\R\\1^2.16.840.1.113883.19.7^ISO',
    ]);
    const { header } = decodeMessage(Buffer.from(text, 'utf8'));
    expect(header).toMatchObject({ receivingApplication: 'LIS' });
  });

  it('reads back through the inbound mapping to the same patient data', () => {
    const text = adtOfPatient(PATIENT, 'A08', HEADER);
    const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, header.delimiters).first('PID')!;
    const { identifiers, elements } = patientFromPid(pid);
    expect(identifiers).toEqual([...PATIENT.identifier, OWN_ID]);
    // The same data, but for the use an email without one reads back with (PID-13 is home).
    const data = (({ resourceType: _type, id: _id, identifier: _identifiers, ...rest }) => rest)(
      PATIENT,
    );
    expect(elements).toEqual({
      ...data,
      telecom: data.telecom.map((point) => ({ use: 'home', ...point })),
      // PID-10 and PID-22 "": the race and ethnic group this Patient does not have.
      extension: expect.any(Function),
    });
  });

  it('sends the time of birth that patient-birthTime gives, when it is of the birth date', () => {
    const pid7 = (patient: Record<string, unknown>) =>
      adtOfPatient(patient, 'A08', HEADER).split('\r')[2]!.split('|')[7];
    const birthTime = (valueDateTime: string) => ({
      extension: [
        { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime },
      ],
    });
    const baby = { ...PATIENT, birthDate: '2026-12-05' };
    expect(pid7({ ...baby, _birthDate: birthTime('2026-12-05T23:47:00-05:00') })).toBe(
      '20261205234700-0500',
    );
    expect(pid7({ ...baby, _birthDate: birthTime('2026-12-06T04:47:00Z') })).toBe('20261205');
  });

  it('sends race, ethnic group and multiple birth as the inbound map reads them', () => {
    const pidOf = (text: string) => {
      const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
      return new V2Message(decoded, header.delimiters).first('PID')!;
    };
    const fields = Array.from({ length: 26 }, () => '');
    fields[3] = 'M-1^^^HOSP&2.16.1&ISO^MR';
    fields[10] = '2106-3^White^CDCREC~2029-7^Asian Indian^CDCREC';
    fields[22] = '2186-5^Not Hispanic or Latino^CDCREC';
    fields[24] = 'Y';
    fields[25] = '2';
    const sent = pidOf(`MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rPID${fields.join('|')}`);
    const patient: Record<string, unknown> = {
      ...applyPatient(undefined, [], patientFromPid(sent).elements),
      id: 'p2',
    };
    const out = pidOf(adtOfPatient(patient, 'A08', HEADER));
    expect([10, 22, 24, 25].map((field) => out.value(field))).toEqual([
      '2106-3',
      '2186-5',
      'Y',
      '2',
    ]);
    const back = applyPatient(undefined, [], patientFromPid(out).elements);
    expect(back['extension']).toEqual(patient['extension']);
    expect(back['multipleBirthInteger']).toBe(2);
    // An update that no longer has them says "" so that the receiver drops them too.
    const without = { resourceType: 'Patient', id: 'p2', multipleBirthBoolean: false };
    const cleared = pidOf(adtOfPatient(without, 'A08', HEADER));
    expect([10, 22, 24, 25].map((field) => cleared.value(field))).toEqual([null, null, 'N', null]);
  });

  it('leaves out of PID-3 the identifiers a merge retired (use old)', () => {
    const merged = {
      ...PATIENT,
      identifier: [...PATIENT.identifier, { use: 'old', system: 'urn:mrn', value: 'DUP-9' }],
    };
    const text = adtOfPatient(merged, 'A08', HEADER);
    expect(text).toContain(
      'PID|1||MRN\\F\\7\\S\\8^^^&2.16.840.1.113883.19.5&ISO^MR~42^^^GOOD HEALTH~A\\T\\B^^^',
    );
    expect(text).not.toContain('DUP-9');
  });

  it('says "" in an update for what the Patient no longer has, so that the receiver drops it', () => {
    const sparse = { resourceType: 'Patient', identifier: PATIENT.identifier, gender: 'male' };
    const pidIn = (text: string) => {
      const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
      return new V2Message(decoded, header.delimiters).first('PID')!;
    };
    const update = pidIn(adtOfPatient(sparse, 'A08', HEADER));
    const { elements } = patientFromPid(update);
    expect(elements).toEqual({
      name: null,
      birthDate: null,
      gender: 'male',
      address: null,
      telecom: null,
      communication: null,
      maritalStatus: null,
      deceasedDateTime: null,
      deceasedBoolean: null,
      extension: expect.any(Function),
    });
    // PID-10 and PID-22 "": a receiver drops the race and ethnic group it holds, and keeps
    // the patient's other extensions.
    const own = { url: 'https://example.org/own', valueString: 'kept' };
    const held = {
      resourceType: 'Patient',
      extension: [
        own,
        { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race', extension: [] },
        { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity', extension: [] },
      ],
    };
    expect(applyPatient(held, [], elements)['extension']).toEqual([own]);
    // A new patient has nothing to drop.
    expect(patientFromPid(pidIn(adtOfPatient(sparse, 'A04', HEADER))).elements).toEqual({
      gender: 'male',
    });
  });

  it('takes a system with a % that escapes nothing as it is written, and a type without codes', () => {
    const odd = {
      resourceType: 'Patient',
      id: 'p1',
      identifier: [
        { system: 'urn:carevault:v2:assigning-authority:100%', value: '1', type: { text: 'MRN' } },
      ],
      maritalStatus: { coding: [{ system: 'urn:carevault:v2:coding-system:5%zz', code: 'X' }] },
    };
    const text = adtOfPatient(odd, 'A08', HEADER);
    expect(text).toContain('PID|1||1^^^100%');
    expect(text).toContain('|X^^5%zz|');
  });

  it('leaves a field empty, not "", for an element PID has no place for, as the Patient has it', () => {
    // XPN and XAD (v2.5.1) have no free-text component; a ContactPoint without a value is none.
    const textual = {
      resourceType: 'Patient',
      identifier: PATIENT.identifier,
      name: [{ text: 'Zoë Ann' }],
      address: [{ text: '1 Main St, Ann Arbor' }],
      telecom: [
        { system: 'phone', use: 'home' },
        { system: 'phone', use: 'work' },
      ],
      communication: [{ preferred: true, language: {} }],
      maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0002' }] },
    };
    const text = adtOfPatient(textual, 'A08', HEADER);
    const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, header.delimiters).first('PID')!;
    for (const field of [5, 11, 13, 14, 15, 16]) expect(pid.value(field)).toBeUndefined();
    expect(patientFromPid(pid).elements).toEqual({
      birthDate: null,
      gender: null,
      deceasedDateTime: null,
      deceasedBoolean: null,
      extension: expect.any(Function),
    });
  });

  it('marks a restricted Patient protected in PD1-12, and lifts the mark in an update', () => {
    const segmentsOf = (text: string) => {
      const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
      return new V2Message(decoded, header.delimiters);
    };
    const R = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };
    const restricted = { ...PATIENT, meta: { security: [R] } };
    for (const event of ['A04', 'A08'] as const) {
      const message = segmentsOf(adtOfPatient(restricted, event, HEADER));
      expect(message.first('PD1')!.value(12)).toBe('Y');
      // PD1 goes between PID and PV1 (ADT_A01), and reads back as no change of practitioner.
      const pid = message.first('PID')!;
      const read = patientFromSegments(pid, undefined, message.first('PD1'));
      expect(applyPatient(undefined, [], read.elements)).toEqual(
        applyPatient(undefined, [], patientFromPid(pid).elements),
      );
      // And restricts the patient at a CareVault receiving it.
      expect(read.restricted).toBe(true);
    }
    expect(adtOfPatient(restricted, 'A04', HEADER)).toMatch(/\rPID\|[^\r]*\rPD1\|{12}Y\rPV1\|/);
    const lifted = segmentsOf(adtOfPatient(PATIENT, 'A08', HEADER));
    expect(lifted.first('PD1')!.value(12)).toBe('N');
    // A CareVault receiver keeps its restriction: lifting one there is a person's decision.
    expect(
      patientFromSegments(lifted.first('PID')!, undefined, lifted.first('PD1')).restricted,
    ).toBe(false);
    expect(adtOfPatient(PATIENT, 'A04', HEADER)).not.toContain('PD1');
  });

  it('always names the resource id in PID-3, which is required', () => {
    const pid3 = (identifier: unknown[]) => {
      const text = adtOfPatient({ resourceType: 'Patient', id: 'p9', identifier }, 'A04', HEADER);
      return /\rPID\|1\|\|([^|\r]*)/.exec(text)?.[1];
    };
    expect(pid3([])).toBe('p9^^^CAREVAULT^PI');
    expect(pid3([{ use: 'old', system: 'urn:mrn', value: 'DUP-9' }])).toBe('p9^^^CAREVAULT^PI');
    expect(pid3([{ system: 'urn:oid:1.2.3', value: 'M1' }])).toBe(
      'M1^^^&1.2.3&ISO~p9^^^CAREVAULT^PI',
    );
    // The namespace id a feed sent with the universal id goes back with it.
    expect(pid3([{ system: 'urn:oid:1.2.3', value: 'M1', assigner: { display: 'HOSP' } }])).toBe(
      'M1^^^HOSP&1.2.3&ISO~p9^^^CAREVAULT^PI',
    );
  });

  it("names the resource id under MSH-4's universal id when the facility has one", () => {
    const header = { ...HEADER, facility: 'GOOD HOSP^2.16.840.1.113883.19.99^ISO' };
    const text = adtOfPatient({ resourceType: 'Patient', id: 'p9' }, 'A04', header);
    // Two CareVaults feeding one receiver would otherwise both say CAREVAULT, and one's p9 be
    // taken for the other's.
    expect(/\rPID\|1\|\|([^|\r]*)/.exec(text)?.[1]).toBe(
      'p9^^^GOOD HOSP&2.16.840.1.113883.19.99&ISO^PI',
    );
    const { text: decoded, header: read } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, read.delimiters).first('PID')!;
    expect(patientFromPid(pid).identifiers).toEqual([
      {
        system: 'urn:oid:2.16.840.1.113883.19.99',
        value: 'p9',
        type: OWN_ID.type,
        assigner: { display: 'GOOD HOSP' },
      },
    ]);
  });

  it('sends a web address as a network address, and an sms number as a cell phone', () => {
    const telecom = [
      { system: 'url', value: 'https://zoe.example.org', use: 'home' },
      { system: 'sms', value: '555-0123', use: 'home' },
    ];
    const text = adtOfPatient({ ...PATIENT, telecom }, 'A04', HEADER);
    expect(text).toContain('|^NET^Internet^https://zoe.example.org~555-0123^PRN^CP^');
  });

  it('sends emails, urls, phones, faxes and pagers that read back as they were', () => {
    const home = [
      { system: 'email', value: 'zoe@example.org', use: 'home' },
      { system: 'url', value: 'https://zoe.example.org/?a=1&b=2', use: 'home' },
      { system: 'phone', value: '555-0100', use: 'home' },
      { system: 'phone', value: '555-0123', use: 'mobile' },
      { system: 'pager', value: '555-0102', use: 'home' },
    ];
    const work = [
      { system: 'email', value: 'z.ann@work.example.org', use: 'work' },
      { system: 'url', value: 'www.work.example.org/zoe', use: 'work' },
      { system: 'fax', value: '555-0101', use: 'work' },
      { system: 'pager', value: '555-0103', use: 'work' },
    ];
    const text = adtOfPatient({ ...PATIENT, telecom: [...work, ...home] }, 'A08', HEADER);
    const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, header.delimiters).first('PID')!;
    // PID-13 holds what is not work, PID-14 the rest: each list comes back in its field's order.
    expect(patientFromPid(pid).elements['telecom']).toEqual([...home, ...work]);
  });

  it('leaves out a phone no longer in use (use old), and clears it at the receiver in an update', () => {
    const old = { system: 'phone', value: '555-0666', use: 'old' };
    const current = { system: 'phone', value: '555-0100', use: 'home' };
    const pidOf = (telecom: object[]) => {
      const text = adtOfPatient({ ...PATIENT, telecom }, 'A08', HEADER);
      const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
      return new V2Message(decoded, header.delimiters).first('PID')!;
    };
    expect(patientFromPid(pidOf([old, current])).elements['telecom']).toEqual([current]);
    // The retired number was the only one: "" drops what the receiver holds as current.
    expect(pidOf([old]).value(13)).toBeNull();
    expect(patientFromPid(pidOf([old])).elements['telecom']).toBeNull();
  });

  it('sends the period of a name and an address, an ended one after those in use', () => {
    // HEADER.now is 2026-01-02: the first of each ended in 2020.
    const patient = {
      ...PATIENT,
      name: [
        { use: 'official', family: 'Old', period: { end: '2020-01-01' } },
        { use: 'official', family: 'New', period: { start: '2020-01-02T10:00:00Z' } },
      ],
      address: [
        { use: 'home', city: 'Was', period: { start: '2010-05', end: '2020-01-01' } },
        { use: 'home', city: 'Is', period: { end: '2027-01-01' } },
      ],
    };
    const pid = adtOfPatient(patient, 'A08', HEADER).split('\r')[2]!.split('|');
    // XPN-12/13 and XAD-13/14 are effective and expiration dates (v2.5.1): a receiver that
    // reads only the first repetition, the legal name and the current address, gets those.
    expect(pid[5]!.split('~')).toEqual([
      'New^^^^^^L^^^^^20200102100000+0000',
      'Old^^^^^^L^^^^^^20200101',
    ]);
    expect(pid[11]!.split('~')).toEqual([
      '^^Is^^^^H^^^^^^^20270101',
      '^^Was^^^^H^^^^^^201005^20200101',
    ]);
  });

  it('leaves out a ContactPoint whose period has ended, as one no longer in use', () => {
    const ended = {
      system: 'phone',
      value: '555-0666',
      use: 'home',
      period: { end: '2025-12-31' },
    };
    const until = {
      system: 'phone',
      value: '555-0100',
      use: 'home',
      period: { end: '2026-06-30' },
    };
    const pidOf = (telecom: object[]) =>
      adtOfPatient({ ...PATIENT, telecom }, 'A08', HEADER)
        .split('\r')[2]!
        .split('|');
    expect(pidOf([ended, until])[13]).toBe('555-0100^PRN^PH^^^^^^^^^555-0100');
    // The ended number was the only one: "" drops what the receiver holds as current.
    expect(pidOf([ended])[13]).toBe('""');
    // A date ends with its day, wherever the patient is: on its last day it is still in use.
    const today = { ...ended, period: { end: '2026-01-02' } };
    expect(pidOf([today])[13]).toBe('555-0666^PRN^PH^^^^^^^^^555-0666');
  });

  it('sends a value that is two double quotes as text, not as the null that deletes a field', () => {
    const patient = { ...PATIENT, name: [{ family: 'Doe', given: ['Ann', '""'] }] };
    const text = adtOfPatient(patient, 'A08', HEADER);
    const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, header.delimiters).first('PID')!;
    expect(pid.value(5, 3)).toBe('""');
    expect(patientFromPid(pid).elements['name']).toEqual([{ family: 'Doe', given: ['Ann', '""'] }]);
  });

  it('keeps the time and UTC offset of a death, and its date for a receiver that reads only it', () => {
    const pidOfDeath = (deceasedDateTime: string) => {
      const text = adtOfPatient({ ...PATIENT, deceasedDateTime }, 'A08', HEADER);
      const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
      return new V2Message(decoded, header.delimiters).first('PID')!;
    };
    const evening = pidOfDeath('2024-03-01T23:30:15.123456-05:00');
    expect(evening.value(29)).toBe('20240301233015.1234-0500');
    expect(evening.value(30)).toBe('Y');
    // Moved to UTC it would say March 2nd, the date a receiver that keeps the date alone keeps.
    // Ours reads it back as it was, to DTM's four digits of a second.
    expect(patientFromPid(evening).elements['deceasedDateTime']).toBe(
      '2024-03-01T23:30:15.1234-05:00',
    );
    expect(pidOfDeath('2024-03-01T04:05:06Z').value(29)).toBe('20240301040506+0000');
    expect(pidOfDeath('2024-03-01').value(29)).toBe('20240301');
    expect(pidOfDeath('2024-03').value(29)).toBe('202403');
  });

  it('builds an ADT^A29 (ADT_A21) for a deleted Patient, its PID as last stored, nothing cleared', () => {
    const sparse = { resourceType: 'Patient', id: 'p1', gender: 'male' };
    const text = adtOfPatient(sparse, 'A29', HEADER);
    expect(decodeMessage(Buffer.from(text, 'utf8')).header).toMatchObject({
      messageCode: 'ADT',
      triggerEvent: 'A29',
    });
    expect(text).toContain('|ADT^A29^ADT_A21|');
    expect(text).toContain('\rPID|1||p1^^^CAREVAULT^PI|||||M\rPV1|1|N\r');
    const R = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };
    expect(adtOfPatient({ ...sparse, meta: { security: [R] } }, 'A29', HEADER)).toContain(
      '\rPD1||||||||||||Y\r',
    );
  });

  it('builds an ADT^A40 (ADT_A39) of the survivor, with the merged patient in MRG-1', () => {
    const survivor = { resourceType: 'Patient', id: 's1', gender: 'male' };
    const prior = {
      resourceType: 'Patient',
      id: 'p1',
      identifier: [
        { system: 'urn:oid:2.16.9', value: 'OLD|1' },
        // Retired by an earlier merge: the receiver no longer knows this patient by it.
        { system: 'urn:oid:2.16.9', value: 'GONE', use: 'old' },
      ],
    };
    const text = adtOfPatient(survivor, 'A40', HEADER, prior);
    expect(decodeMessage(Buffer.from(text, 'utf8')).header).toMatchObject({
      messageCode: 'ADT',
      triggerEvent: 'A40',
    });
    expect(text).toContain('|ADT^A40^ADT_A39|');
    // No PV1: a merge of patients is about no visit, and ADT_A39 does not require one.
    expect(text).toContain(
      '\rPID|1||s1^^^CAREVAULT^PI|||||M\rMRG|OLD\\F\\1^^^&2.16.9&ISO~p1^^^CAREVAULT^PI\r',
    );
    expect(text.endsWith('ISO~p1^^^CAREVAULT^PI\r')).toBe(true);
  });

  it('escapes control characters, so that an MLLP receiver gets the whole message in one frame', () => {
    // FHIR strings may hold them (the spec says only "SHOULD not"): a name pasted from a scanner.
    const family = 'Doe\u001cJr\u000bX\u0007';
    const patient = { ...PATIENT, name: [{ family, given: ['Ann\r\nMarie'] }] };
    const text = adtOfPatient(patient, 'A08', HEADER);
    const frames = new MllpDecoder(1 << 20).push(encodeFrame(Buffer.from(text, 'utf8')));
    expect(frames).toEqual([{ kind: 'frame', payload: Buffer.from(text, 'utf8') }]);
    const { text: decoded, header } = decodeMessage(Buffer.from(text, 'utf8'));
    const pid = new V2Message(decoded, header.delimiters).first('PID')!;
    // A CR LF is one line break, not two.
    expect(patientFromPid(pid).elements['name']).toEqual([{ family, given: ['Ann\nMarie'] }]);
  });
});
