import { decodeMessage } from '../message/hl7-header.js';
import { V2Message } from '../message/v2-message.js';
import {
  amendedOrder,
  carriesWholeOrder,
  orderChangeOf,
  orderIdentifiers,
  orderStatusOf,
  serviceRequestOf,
} from './orders.js';
import { immunizationFromRxa } from './immunization.js';
import { medicationRequestOf } from './medication.js';

const MSH = 'MSH|^~\\&|CPOE|HOSP|CV|CV|20261206||RDE^O11|1|P|2.5';

function orc(line: string) {
  const { text, header } = decodeMessage(Buffer.from([MSH, line].join('\r')));
  return new V2Message(text, header.delimiters).first('ORC')!;
}

describe('order status (ORC-5, else ORC-1)', () => {
  const rxe = () => {
    const { text, header } = decodeMessage(
      Buffer.from([MSH, 'RXE||197361^Amlodipine 5 mg tab^RXNORM|5'].join('\r')),
    );
    return new V2Message(text, header.delimiters).first('RXE')!;
  };
  const prescription = (line: string) =>
    medicationRequestOf(orc(line), rxe(), undefined, 'p1', [])?.['status'];
  const order = (line: string) => serviceRequestOf(orc(line), undefined, 'p1', [])['status'];

  it('stops a discontinued prescription and completes a completed one', () => {
    expect(prescription('ORC|NW|R300^CPOE')).toBe('active');
    expect(prescription('ORC|OD|R300^CPOE|F300^PHARM')).toBe('stopped');
    expect(prescription('ORC|DR|R302^CPOE|F302^PHARM||DC')).toBe('stopped');
    expect(prescription('ORC|SC|R301^CPOE|F301^PHARM||CM')).toBe('completed');
    expect(prescription('ORC|CR|R303^CPOE')).toBe('cancelled');
    expect(prescription('ORC|OH|R304^CPOE')).toBe('on-hold');
    expect(prescription('ORC|SC|R305^CPOE|||ER')).toBe('entered-in-error');
  });

  it("takes ORC-5 before ORC-1, as the IG's ORC map does", () => {
    // A new order already completed, a cancellation of one that is in process.
    expect(order('ORC|NW|P1^CPOE|||CM')).toBe('completed');
    expect(prescription('ORC|NW|P1^CPOE|||CM')).toBe('completed');
    expect(order('ORC|CA|P1^CPOE|||IP')).toBe('active');
    expect(order('ORC|OD|P1^CPOE')).toBe('revoked');
    expect(order('ORC|DR|P1^CPOE')).toBe('revoked');
    expect(order('ORC|SC|P1^CPOE|||DC')).toBe('revoked');
    // A local ORC-5 is no code of table 0038: ORC-1 says.
    expect(order('ORC|HD|P1^CPOE|||ZZ')).toBe('on-hold');
  });

  it('says nothing for a status change that names no status, which keeps the stored one', () => {
    expect(orderStatusOf(orc('ORC|SC|P1^CPOE'), 'ServiceRequest')).toBeUndefined();
    expect(orderStatusOf(orc('ORC|XO|P1^CPOE'), 'MedicationRequest')).toBeUndefined();
    // A new order of no status is active.
    expect(order('ORC|SC|P1^CPOE')).toBe('active');
  });
});

describe('an order a control message changes', () => {
  const stored = {
    resourceType: 'MedicationRequest',
    identifier: [{ system: 'urn:s', value: 'R300' }],
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { text: 'Amlodipine' },
    authoredOn: '2026-12-06T08:00:00Z',
    requester: { type: 'Practitioner', display: 'Alice Attend' },
    dosageInstruction: [{ route: { text: 'Oral' }, doseAndRate: [{ doseQuantity: { value: 5 } }] }],
    dispenseRequest: { quantity: { value: 30 }, numberOfRepeatsAllowed: 2 },
    encounter: { reference: 'Encounter/e1' },
  };

  it('takes ORC-9 as the authored time of a new order (NW) only', () => {
    const at = '|||||||20261206080000+0000';
    expect(serviceRequestOf(orc(`ORC|NW|P1^CPOE${at}`), undefined, 'p1', [])).toHaveProperty(
      'authoredOn',
      '2026-12-06T08:00:00+00:00',
    );
    expect(serviceRequestOf(orc(`ORC|OD|P1^CPOE${at}`), undefined, 'p1', [])).not.toHaveProperty(
      'authoredOn',
    );
  });

  it('keeps what the message does not carry, part by part, and the status it does not give', () => {
    const sent = {
      resourceType: 'MedicationRequest',
      identifier: [
        { system: 'urn:s', value: 'R300' },
        { system: 'urn:p', value: 'F300' },
      ],
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { text: 'Amlodipine' },
      dosageInstruction: [{ doseAndRate: [{ doseQuantity: { value: 10 } }] }],
      dispenseRequest: { quantity: { value: 60 } },
    };
    expect(amendedOrder(stored, sent, 'stopped')).toEqual({
      ...stored,
      identifier: sent.identifier,
      status: 'stopped',
      dosageInstruction: [
        { route: { text: 'Oral' }, doseAndRate: [{ doseQuantity: { value: 10 } }] },
      ],
      dispenseRequest: { quantity: { value: 60 }, numberOfRepeatsAllowed: 2 },
    });
    expect(amendedOrder({ ...stored, status: 'on-hold' }, sent, undefined)['status']).toBe(
      'on-hold',
    );
  });

  it("replaces what it gives with what is sent, a drug's code or a compound's Medication", () => {
    const code = { medicationCodeableConcept: { text: 'Vancomycin' } };
    const compound = {
      contained: [{ resourceType: 'Medication', id: 'compound', ingredient: [] }],
      medicationReference: { reference: '#compound' },
    };
    const order = { resourceType: 'MedicationRequest', status: 'active', intent: 'order' };
    // R4 allows one medication[x]: never both, nor the compound of an order that no longer is.
    expect(amendedOrder({ ...order, ...code }, { ...order, ...compound }, undefined)).toEqual({
      ...order,
      ...compound,
    });
    expect(amendedOrder({ ...order, ...compound }, { ...order, ...code }, undefined)).toEqual({
      ...order,
      ...code,
    });
    // A message that gives no drug (a status alone) keeps the stored one.
    expect(amendedOrder({ ...order, ...compound }, order, 'on-hold')).toEqual({
      ...order,
      ...compound,
      status: 'on-hold',
    });
  });

  it('replaces the whole order for a new order (NW) or an OBR without an ORC only', () => {
    expect(carriesWholeOrder(orc('ORC|NW|P1^CPOE'))).toBe(true);
    expect(carriesWholeOrder(undefined)).toBe(true);
    expect(carriesWholeOrder(orc('ORC|OD|P1^CPOE'))).toBe(false);
    expect(carriesWholeOrder(orc('ORC|SC|P1^CPOE'))).toBe(false);
  });

  it('takes an order back for a cancel or discontinue (ORC-1), not for a status of one (ORC-5)', () => {
    expect(orderChangeOf(orc('ORC|ca|P1^CPOE'), 'ServiceRequest')).toEqual({
      whole: false,
      status: 'revoked',
      withdraws: 'CA',
    });
    expect(orderChangeOf(orc('ORC|OD|P1^CPOE'), 'MedicationRequest')['withdraws']).toBe('OD');
    // A new order sent already cancelled (ORC-5 CA) needs no order on file; a hold is no cancel.
    expect(orderChangeOf(orc('ORC|NW|P1^CPOE|||CA'), 'ServiceRequest')).toEqual({
      whole: true,
      status: 'revoked',
    });
    expect(orderChangeOf(orc('ORC|HD|P1^CPOE'), 'ServiceRequest')['withdraws']).toBeUndefined();
    expect(orderChangeOf(undefined, 'ServiceRequest')).toEqual({ whole: true, status: undefined });
  });

  it('changes, holds, releases or reports on a placed order for XO, HD, RL, SC and their replies', () => {
    for (const control of ['XO', 'XR', 'HD', 'HR', 'OH', 'RL', 'OR', 'SC']) {
      expect(orderChangeOf(orc(`ORC|${control}|P1^CPOE`), 'ServiceRequest')['amends']).toBe(
        control,
      );
    }
    expect(orderChangeOf(orc('ORC|sc|P1^CPOE|||CM'), 'MedicationRequest')).toEqual({
      whole: false,
      status: 'completed',
      amends: 'SC',
    });
    // A new order, a cancel and a code outside table 0119 are not changes of a placed order.
    for (const control of ['NW', 'CA', 'ZZ']) {
      expect(
        orderChangeOf(orc(`ORC|${control}|P1^CPOE`), 'ServiceRequest')['amends'],
      ).toBeUndefined();
    }
  });
});

describe('how often an order is done (TQ1-3, RPT[Timing])', () => {
  const tq1 = (line: string) => {
    const { text, header } = decodeMessage(Buffer.from([MSH, line].join('\r')));
    return new V2Message(text, header.delimiters).first('TQ1')!;
  };
  const timing = (orcLine: string, tq1Line?: string) =>
    serviceRequestOf(orc(orcLine), undefined, 'p1', [], {
      ...(tq1Line ? { timing: tq1(tq1Line) } : {}),
    })['occurrenceTiming'] as Record<string, unknown> | undefined;

  it("takes TQ1-3's repeat pattern code as occurrenceTiming.code, its system when named", () => {
    expect(timing('ORC|NW|S1^CPOE', 'TQ1|1||Q6H&Every 6 hours&HL70335')).toEqual({
      code: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0335',
            code: 'Q6H',
            display: 'Every 6 hours',
          },
        ],
        text: 'Every 6 hours',
      },
    });
    expect(timing('ORC|NW|S2^CPOE', 'TQ1|1||QAM|||||R')).toEqual({
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code: 'QAM' }] },
    });
  });

  it('takes ORC-7.2 of feeds before v2.5, and says nothing when neither gives a pattern', () => {
    expect(timing('ORC|NW|S3^CPOE|||||^BID')).toEqual({
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code: 'BID' }] },
    });
    expect(timing('ORC|NW|S4^CPOE', 'TQ1|1|||||||R')).toBeUndefined();
  });

  it("takes the repeat pattern's period (TQ1-3.5, TQ1-3.6) in units of time, else none", () => {
    // OML-O21-01's TQ1: once a day, its units of ANSI's table (d, hr) as UCUM's.
    expect(
      timing(
        'ORC|NW|S5^CPOE',
        'TQ1|1||Once^^^^1^d&Day&ANS+^^AC^1^hr&Hour&ANS+|||1^d&Day&ANS+|||R',
      )?.['repeat'],
    ).toEqual({ period: 1, periodUnit: 'd' });
    expect(timing('ORC|NW|S6^CPOE', 'TQ1|1||Q8H^^^^8^hr')?.['repeat']).toEqual({
      period: 8,
      periodUnit: 'h',
    });
    // A period of no unit of time (or a unit of none) is no period: R4 needs both (tim-1).
    expect(timing('ORC|NW|S7^CPOE', 'TQ1|1||Q8H^^^^8^mg')?.['repeat']).toBeUndefined();
    expect(timing('ORC|NW|S8^CPOE', 'TQ1|1||Q8H^^^^8')?.['repeat']).toBeUndefined();
    expect(timing('ORC|NW|S9^CPOE', 'TQ1|1||Q8H^^^^-8^h')?.['repeat']).toBeUndefined();
  });

  it('takes the explicit times (TQ1-4) as timeOfDay, those of no offset only', () => {
    expect(timing('ORC|NW|T1^CPOE', 'TQ1|1||TID|0800~1400~220015')?.['repeat']).toEqual({
      timeOfDay: ['08:00:00', '14:00:00', '22:00:15'],
    });
    // A time of another zone than the patient's day, and one that is no time, are left out.
    expect(timing('ORC|NW|T2^CPOE', 'TQ1|1||TID|0800+0100~2500~11:30:05')).toEqual({
      code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0335', code: 'TID' }] },
    });
  });
});

describe('how much of a service is ordered (TQ1-2, TQ.1)', () => {
  const tq1 = (line: string) => {
    const { text, header } = decodeMessage(Buffer.from([MSH, line].join('\r')));
    return new V2Message(text, header.delimiters).first('TQ1')!;
  };
  const quantity = (orcLine: string, tq1Line?: string) =>
    serviceRequestOf(orc(orcLine), undefined, 'p1', [], {
      ...(tq1Line ? { timing: tq1(tq1Line) } : {}),
    })['quantityQuantity'];

  it("takes TQ1-2 as quantityQuantity, its units' code when UCUM names it", () => {
    expect(quantity('ORC|NW|Q1^CPOE', 'TQ1|1|2^&cp')).toEqual({ value: 2, unit: 'cp' });
    expect(quantity('ORC|NW|Q2^CPOE', 'TQ1|1|3^mL&milliliter&UCUM')).toEqual({
      value: 3,
      unit: 'milliliter',
      system: 'http://unitsofmeasure.org',
      code: 'mL',
    });
  });

  it('takes ORC-7.1 of feeds before v2.5, and none of no number', () => {
    expect(quantity('ORC|NW|Q3^CPOE|||||12&lb^BID')).toEqual({ value: 12, unit: 'lb' });
    expect(quantity('ORC|NW|Q4^CPOE', 'TQ1|1|some')).toBeUndefined();
    expect(quantity('ORC|NW|Q5^CPOE')).toBeUndefined();
  });
});

describe('order numbers', () => {
  it('types the placer (ORC-2) and filler (ORC-3) numbers PLAC and FILL, as the IG does', () => {
    const type = (code: string) => ({
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code }],
    });
    expect(orderIdentifiers(orc('ORC|NW|R300^CPOE|F300^PHARM'))).toEqual([
      { system: 'urn:carevault:v2:assigning-authority:CPOE', value: 'R300', type: type('PLAC') },
      { system: 'urn:carevault:v2:assigning-authority:PHARM', value: 'F300', type: type('FILL') },
    ]);
    expect(orderIdentifiers(orc('ORC|SC||F300^PHARM'))).toEqual([
      expect.objectContaining({ value: 'F300', type: type('FILL') }),
    ]);
  });
});

describe('Immunization performers', () => {
  it('names who gave the dose (RXA-10, AP) and who ordered it (ORC-12, OP), as the IG does', () => {
    const { text, header } = decodeMessage(
      Buffer.from(
        [
          MSH,
          'ORC|RE||IZ1^IIS|||||||||77^Order^Olga',
          'RXA|0|1|20261206||08^HepB^CVX|0.5|mL^^UCUM||00|55^Give^Gus',
        ].join('\r'),
      ),
    );
    const m = new V2Message(text, header.delimiters);
    const role = (code: string, display: string) => ({
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0443', code, display }],
    });
    const dose = immunizationFromRxa(m.first('RXA')!, 'p1', [], undefined, m.first('ORC'), 'urn:s');
    expect(dose).toMatchObject({
      performer: [
        {
          function: role('AP', 'Administering Provider'),
          actor: { type: 'Practitioner', identifier: { value: '55' }, display: 'Gus Give' },
        },
        {
          function: role('OP', 'Ordering Provider'),
          actor: { type: 'Practitioner', identifier: { value: '77' }, display: 'Olga Order' },
        },
      ],
    });
  });
});

describe("how often a drug is given (TQ1-3's period)", () => {
  const segment = (line: string, name: string) => {
    const { text, header } = decodeMessage(Buffer.from([MSH, line].join('\r')));
    return new V2Message(text, header.delimiters).first(name)!;
  };

  it("takes RDE-O11-01's every 180 minutes, and leaves TQ1-2 and TQ1-4 to RXE-3 and none", () => {
    const prescription = medicationRequestOf(
      orc('ORC|NW|R1^CPOE'),
      segment('RXE||197361^Amlodipine 5 mg tab^RXNORM|5||mg', 'RXE'),
      undefined,
      'p1',
      [],
      undefined,
      segment('TQ1|1|2^&cp|P&Post (after)&HL70335^^^^180^min^^PCM^360^s|113005', 'TQ1'),
    )!;
    const [dosage] = prescription['dosageInstruction'] as Record<string, unknown>[];
    expect(dosage!['timing']).toEqual({
      repeat: { period: 180, periodUnit: 'min' },
      code: {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v2-0335',
            code: 'P',
            display: 'Post (after)',
          },
        ],
        text: 'Post (after)',
      },
    });
    expect(dosage!['doseAndRate']).toEqual([{ doseQuantity: { value: 5, unit: 'mg' } }]);
  });
});
