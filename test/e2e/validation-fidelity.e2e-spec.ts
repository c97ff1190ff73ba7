import { randomUUID } from 'node:crypto';
import type { HttpFn } from '../support/http.js';
import { doctorApp } from '../support/doctor-app.js';
import type { TestApp } from '../support/test-app.js';

/**
 * What a hospital stores is valid R4: the invariants of the StructureDefinitions are evaluated
 * wherever R4 puts them, and `$validate` answers what a write would.
 */
describe('FHIR: validation fidelity', () => {
  let testApp: TestApp;
  let http: HttpFn;
  let fhir: string;

  beforeAll(async () => {
    ({ testApp, http, fhir } = await doctorApp());
  });

  afterAll(async () => {
    await testApp.close();
  });

  function observation(extra: Record<string, unknown>) {
    return {
      resourceType: 'Observation',
      status: 'final',
      code: { text: `fidelity ${randomUUID()}` },
      ...extra,
    };
  }

  /** A write's status and first issue, and $validate's first issue, for the same body. */
  async function writeAndValidate(body: Record<string, unknown>) {
    const type = body['resourceType'] as string;
    const written = await http('POST', `${fhir}/${type}`, { body });
    const validated = await http('POST', `${fhir}/${type}/$validate`, { body });
    expect(validated.status).toBe(200);
    return {
      status: written.status,
      written: written.body.issue?.[0],
      validated: validated.body.issue?.[0],
    };
  }

  /** `body` refused under `key` at `expression`, alike by a write (400) and by $validate. */
  async function expectRefused(body: Record<string, unknown>, key: string, expression: string) {
    const answer = await writeAndValidate(body);
    const issue = {
      severity: 'error',
      expression: [expression],
      diagnostics: expect.stringContaining(`Constraint ${key} not met`) as unknown,
    };
    expect({ key, expression, ...answer }).toMatchObject({
      key,
      expression,
      status: 400,
      written: issue,
      validated: issue,
    });
  }

  it('refuses the invariants of data types (qty-3, rng-2, sqty-1), on a write and $validate', async () => {
    for (const [body, key, expression] of [
      [
        observation({ valueQuantity: { value: 4.2, code: 'mmol/L' } }),
        'qty-3',
        'Observation.value[x]',
      ],
      [
        observation({ valueRange: { low: { value: 9 }, high: { value: 1 } } }),
        'rng-2',
        'Observation.value[x]',
      ],
      [
        observation({ referenceRange: [{ low: { value: 3.5, comparator: '>' } }] }),
        'sqty-1',
        'Observation.referenceRange[0].low',
      ],
    ] as const) {
      await expectRefused(body, key, expression);
    }
    const kept = await http('POST', `${fhir}/Observation`, {
      body: observation({
        valueQuantity: {
          value: 4.2,
          unit: 'mmol/L',
          system: 'http://unitsofmeasure.org',
          code: 'mmol/L',
        },
        referenceRange: [{ low: { value: 3.5 }, high: { value: 5.1 } }],
      }),
    });
    expect(kept.status).toBe(201);
  });

  it('refuses the invariants of resources held in others (a contained result, a Bundle entry)', async () => {
    const both = observation({ valueString: '4.2', dataAbsentReason: { text: 'not done' } });
    for (const [body, expression] of [
      [
        {
          resourceType: 'DiagnosticReport',
          status: 'final',
          code: { text: `fidelity ${randomUUID()}` },
          contained: [{ ...both, id: 'o1' }],
          result: [{ reference: '#o1' }],
        },
        'DiagnosticReport.contained[0]',
      ],
      [
        { resourceType: 'Bundle', type: 'collection', entry: [{ resource: both }] },
        'Bundle.entry[0].resource',
      ],
    ] as const) {
      await expectRefused(body, 'obs-6', expression);
    }
    const kept = await http('POST', `${fhir}/Bundle`, {
      body: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: observation({ valueString: '4.2' }) }],
      },
    });
    expect(kept.status).toBe(201);
  });

  it('refuses obs-7 and que-2, which @medplum/core let pass, and takes what it wrongly refused', async () => {
    const bp = { coding: [{ system: 'http://loinc.org', code: '85354-9' }] };
    for (const [body, key, expression] of [
      [
        observation({
          code: bp,
          valueString: '120/80',
          component: [{ code: bp, valueQuantity: { value: 120 } }],
        }),
        'obs-7',
        'Observation.component[0].code',
      ],
      [
        {
          resourceType: 'Questionnaire',
          status: 'active',
          item: [
            {
              linkId: 'history',
              type: 'group',
              text: 'History',
              item: [{ linkId: 'history', type: 'string', text: 'Allergies' }],
            },
          ],
        },
        'que-2',
        'Questionnaire.item[0].item[0]',
      ],
    ] as const) {
      await expectRefused(body, key, expression);
    }
    const ucum = (value: number, code: string) => ({
      value,
      unit: code,
      system: 'http://unitsofmeasure.org',
      code,
    });
    for (const body of [
      observation({ valueRange: { low: ucum(500, 'mg'), high: ucum(1, 'g') } }),
      {
        resourceType: 'MedicationDispense',
        status: 'completed',
        medicationCodeableConcept: { text: `fidelity ${randomUUID()}` },
        whenPrepared: '2024-03-01T10:00:00+05:00',
        whenHandedOver: '2024-03-01T06:00:00Z',
      },
    ]) {
      const written = await http('POST', `${fhir}/${body.resourceType}`, { body });
      expect({ body, status: written.status }).toEqual({ body, status: 201 });
    }
  });

  it('refuses bdl-10 and sdf-9, which @medplum/core let pass', async () => {
    const absent = {
      extension: [
        {
          url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason',
          valueCode: 'unknown',
        },
      ],
    };
    for (const [body, key, expression] of [
      [
        {
          resourceType: 'Bundle',
          type: 'document',
          identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
          _timestamp: absent,
          entry: [
            {
              fullUrl: `urn:uuid:${randomUUID()}`,
              resource: {
                resourceType: 'Composition',
                status: 'final',
                type: { text: 'Discharge summary' },
                date: '2024-03-01',
                author: [{ display: 'Dr. A' }],
                title: 'Discharge summary',
              },
            },
          ],
        },
        'bdl-10',
        'Bundle',
      ],
      [
        {
          resourceType: 'StructureDefinition',
          url: `http://example.org/fhir/StructureDefinition/${randomUUID()}`,
          name: 'Inpatient',
          status: 'draft',
          kind: 'resource',
          abstract: false,
          type: 'Patient',
          baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
          derivation: 'constraint',
          differential: { element: [{ id: 'Patient', path: 'Patient', label: 'Inpatient' }] },
        },
        'sdf-9',
        'StructureDefinition.differential.element[0]',
      ],
    ] as const) {
      await expectRefused(body, key, expression);
    }
  });

  it('refuses a Count of 0.0000001 (cnt-3), and takes one written 2.0, kept as 2', async () => {
    const counted = (value: number) =>
      observation({
        extension: [
          {
            url: 'http://example.org/fhir/StructureDefinition/tablets',
            valueCount: { value, system: 'http://unitsofmeasure.org', code: '1' },
          },
        ],
      });
    await expectRefused(counted(0.0000001), 'cnt-3', 'Observation.extension[0].value[x]');
    // JSON's 2.0 is the number 2 (trailing zeros are not kept): a whole number, taken as 2.
    const raw = JSON.stringify(counted(2)).replace('"value":2,', '"value":2.0,');
    expect(raw).toContain('"value":2.0,');
    const written = await http('POST', `${fhir}/Observation`, {
      raw,
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(written.status).toBe(201);
    expect(written.text).toContain('"valueCount":{"value":2,');
  });

  it('$validate with a mode refuses what a write of the body refuses; without one, warns of it', async () => {
    for (const [body, status, expression] of [
      [
        observation({ subject: { reference: 'Patient?identifier=urn:mrn|fidelity' } }),
        400,
        'Observation.subject',
      ],
      [
        observation({ subject: { reference: `urn:uuid:${randomUUID()}` } }),
        400,
        'Observation.subject.reference',
      ],
      [{ resourceType: 'Bundle', type: 'transaction' }, 422, 'Bundle.type'],
    ] as const) {
      const type = body.resourceType;
      const written = await http('POST', `${fhir}/${type}`, { body });
      expect({ expression, status: written.status }).toEqual({ expression, status });
      const [refused] = written.body.issue;
      expect(refused.expression).toEqual([expression]);
      const issue = { expression: refused.expression, diagnostics: refused.diagnostics };
      const created = await http('POST', `${fhir}/${type}/$validate?mode=create`, { body });
      expect({ expression, issue: created.body.issue }).toMatchObject({
        expression,
        issue: [{ severity: 'error', ...issue }],
      });
      const plain = await http('POST', `${fhir}/${type}/$validate`, { body });
      expect({ expression, issue: plain.body.issue }).toMatchObject({
        expression,
        issue: [{ severity: 'warning', ...issue }],
      });
    }
  });
});
