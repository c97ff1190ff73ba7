import type { Device, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { AppError } from '../common/errors/app-error.js';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { applyFhirPathPatch, isFhirPathPatch } from './fhirpath-patch.js';

const patient: FhirResource = {
  resourceType: 'Patient',
  id: 'p',
  birthDate: '1980-01-01',
  deceasedBoolean: false,
  name: [{ family: 'Rivera', given: ['Ana'] }],
  telecom: [
    { system: 'phone', value: '555-0100' },
    { system: 'email', value: 'ana@example.org' },
  ],
  identifier: [{ system: 'urn:mrn', value: '1' }],
};

const operation = (...part: ParametersParameter[]): ParametersParameter => ({
  name: 'operation',
  part,
});
const patch = (...parameter: ParametersParameter[]): Parameters => ({
  resourceType: 'Parameters',
  parameter,
});
const type = (code: string): ParametersParameter => ({ name: 'type', valueCode: code });
const path = (value: string): ParametersParameter => ({ name: 'path', valueString: value });
/** An add operation: `value` is the value part without its name (value[x], or parts). */
const add = (at: string, name: string, value: Omit<ParametersParameter, 'name'>) =>
  operation(
    type('add'),
    path(at),
    { name: 'name', valueString: name },
    { name: 'value', ...value },
  );

async function failure(
  work: () => Promise<unknown>,
): Promise<{ status: number; code: string; diagnostics: string }> {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return { status: error.status, ...error.issues[0]! };
  }
  throw new Error('expected an AppError');
}

describe('FHIRPath Patch', () => {
  beforeAll(() => {
    // Indexes the R4 definitions in @medplum/core, which the patch reads element types from.
    new FhirDefinitions();
  });

  it('applies add, insert, delete, replace and move in order, on a copy', async () => {
    const before = structuredClone(patient);
    const result = await applyFhirPathPatch(
      patient,
      patch(
        operation(type('replace'), path('Patient.birthDate'), {
          name: 'value',
          valueDate: '1981-02-02',
        }),
        add('Patient', 'gender', { valueCode: 'female' }),
        add('Patient.name[0]', 'given', { valueString: 'Maria' }),
        operation(type('delete'), path("Patient.telecom.where(system = 'email')")),
        operation(
          type('insert'),
          path('Patient.identifier'),
          { name: 'index', valueInteger: 0 },
          {
            name: 'value',
            valueIdentifier: { system: 'urn:ssn', value: '2' },
          },
        ),
        operation(
          type('move'),
          path('Patient.identifier'),
          { name: 'source', valueInteger: 1 },
          { name: 'destination', valueInteger: 0 },
        ),
      ),
    );
    expect(result).toEqual({
      resourceType: 'Patient',
      id: 'p',
      birthDate: '1981-02-02',
      deceasedBoolean: false,
      gender: 'female',
      name: [{ family: 'Rivera', given: ['Ana', 'Maria'] }],
      telecom: [{ system: 'phone', value: '555-0100' }],
      identifier: [
        { system: 'urn:mrn', value: '1' },
        { system: 'urn:ssn', value: '2' },
      ],
    });
    expect(patient).toEqual(before);
  });

  it('reads a backbone element given as parts, with lists where the definition has them', async () => {
    const result = await applyFhirPathPatch(
      patient,
      patch(
        add('Patient', 'contact', {
          part: [
            { name: 'name', valueHumanName: { family: 'Rivera', given: ['Luis'] } },
            { name: 'telecom', valueContactPoint: { system: 'phone', value: '555-0199' } },
            {
              name: 'relationship',
              part: [{ name: 'text', valueString: 'brother' }],
            },
          ],
        }),
      ),
    );
    expect(result['contact']).toEqual([
      {
        name: { family: 'Rivera', given: ['Luis'] },
        telecom: [{ system: 'phone', value: '555-0199' }],
        relationship: [{ text: 'brother' }],
      },
    ]);
  });

  it('leaves no empty list behind a delete, and deleting what is not there changes nothing', async () => {
    const result = await applyFhirPathPatch(
      patient,
      patch(
        operation(type('delete'), path('Patient.telecom[1]')),
        operation(type('delete'), path('Patient.telecom[0]')),
        operation(type('delete'), path('Patient.maritalStatus')),
      ),
    );
    expect(result).not.toHaveProperty('telecom');
    expect(result['name']).toEqual(patient['name']);
  });

  it("keeps a primitive's id and extensions with it (_given, _birthDate) when it moves or goes", async () => {
    const ext = (url: string) => ({ extension: [{ url, valueString: 'x' }] });
    const withExtensions: FhirResource = {
      ...patient,
      _birthDate: ext('urn:birth-time'),
      name: [{ family: 'Rivera', given: ['Ana', 'Bea'], _given: [ext('urn:of-ana'), null] }],
    };
    const moved = await applyFhirPathPatch(
      withExtensions,
      patch(
        operation(
          type('move'),
          path('Patient.name[0].given'),
          { name: 'source', valueInteger: 0 },
          { name: 'destination', valueInteger: 1 },
        ),
      ),
    );
    expect(moved['name']).toEqual([
      { family: 'Rivera', given: ['Bea', 'Ana'], _given: [null, ext('urn:of-ana')] },
    ]);
    const deleted = await applyFhirPathPatch(
      withExtensions,
      patch(
        operation(type('delete'), path('Patient.name[0].given[0]')),
        operation(type('delete'), path('Patient.birthDate')),
      ),
    );
    expect(deleted['name']).toEqual([{ family: 'Rivera', given: ['Bea'] }]);
    expect(deleted).not.toHaveProperty('birthDate');
    expect(deleted).not.toHaveProperty('_birthDate');
    const inserted = await applyFhirPathPatch(
      withExtensions,
      patch(
        operation(
          type('insert'),
          path('Patient.name[0].given'),
          { name: 'value', valueString: 'Cy' },
          { name: 'index', valueInteger: 0 },
        ),
      ),
    );
    expect(inserted['name']).toEqual([
      { family: 'Rivera', given: ['Cy', 'Ana', 'Bea'], _given: [null, ext('urn:of-ana'), null] },
    ]);
  });

  it('refuses what the spec does not allow, naming the operation and quoting nothing', async () => {
    const cases: [Parameters, number, RegExp][] = [
      [patch(operation(type('frob'), path('Patient'))), 400, /type must be one of/],
      [patch(operation(type('replace'), path('Patient.birthDate'))), 400, /needs a value/],
      [
        patch(operation(type('add'), path('Patient'), { name: 'value', valueString: 'x' })),
        400,
        /needs a name/,
      ],
      [
        patch(add('Patient', 'birthDate', { valueDate: '1999-01-01' })),
        422,
        /there already \(use replace\)/,
      ],
      [
        patch(
          operation(type('replace'), path('Patient.telecom'), { name: 'value', valueString: 'x' }),
        ),
        422,
        /more than one element/,
      ],
      [
        patch(
          operation(type('replace'), path("Patient.name.where(family = 'Nobody')"), {
            name: 'value',
            valueHumanName: { family: 'X' },
          }),
        ),
        422,
        /matches no element/,
      ],
      [
        patch(
          operation(
            type('insert'),
            path('Patient.identifier'),
            { name: 'index', valueInteger: 5 },
            {
              name: 'value',
              valueIdentifier: { value: 'x' },
            },
          ),
        ),
        422,
        /out of bounds/,
      ],
      [
        patch(add('Patient', 'contact', { part: [{ name: 'nickname', valueString: 'Rivera' }] })),
        400,
        /PatientContact has no element nickname/,
      ],
      [
        patch(
          operation(type('replace'), path('Patient.deceased'), {
            name: 'value',
            valueString: 'yes',
          }),
        ),
        422,
        /a type the element does not take/,
      ],
      [
        patch(operation(type('replace'), path('Patient'), { name: 'value', valueString: 'x' })),
        422,
        /the resource itself/,
      ],
      [
        patch(
          operation(
            type('move'),
            path('Patient.telecom'),
            { name: 'source', valueInteger: 0 },
            { name: 'destination', valueInteger: 2 },
          ),
        ),
        422,
        /out of bounds/,
      ],
      [
        patch(
          operation(
            type('insert'),
            path('Patient.telecom[0]'),
            { name: 'index', valueInteger: 0 },
            { name: 'value', valueContactPoint: { system: 'fax' } },
          ),
        ),
        422,
        /not the whole list/,
      ],

      [
        { resourceType: 'Parameters', parameter: [{ name: 'replace', valueString: 'x' }] },
        400,
        /parameters are all named "operation"/,
      ],
    ];
    for (const [body, status, message] of cases) {
      const refused = await failure(() => applyFhirPathPatch(patient, body));
      expect({ status: refused.status, diagnostics: refused.diagnostics }).toEqual({
        status,
        diagnostics: expect.stringMatching(message),
      });
      expect(refused.diagnostics).not.toMatch(/Rivera|Nobody|birthDate|telecom|1999/);
    }
  });

  it('refuses paths beyond what a patch needs, and over 100 operations, before evaluating any', async () => {
    // A union dedups pairwise in the engine: 11.6 s on 3,000 extensions, for no change.
    const extensions = Array.from({ length: 3000 }, (_, i) => ({
      url: 'http://example.org/x',
      valueInteger: i,
    }));
    const large = { ...patient, extension: extensions };
    for (const costly of [
      '(Patient.extension | Patient.extension).where(false)',
      'Patient.extension.repeat(extension)',
      'Patient.descendants()',
      "Patient.name.select(given).where($this = 'Ana')",
    ]) {
      const refused = await failure(() =>
        applyFhirPathPatch(
          large,
          patch(
            operation(type('replace'), path('Patient.birthDate'), {
              name: 'value',
              valueDate: '1999-01-01',
            }),
            operation(type('delete'), path(costly)),
          ),
        ),
      );
      expect(refused).toMatchObject({
        status: 400,
        code: 'not-supported',
        diagnostics: expect.stringMatching(/^FHIRPath Patch operation 2 \(delete\): its path may/),
      });
      expect(refused.diagnostics).not.toMatch(/extension|Ana|1999/);
    }

    const deletes = (count: number) =>
      patch(
        ...Array.from({ length: count }, () =>
          operation(type('delete'), path("Patient.telecom.where(system = 'fax')")),
        ),
      );
    expect(await applyFhirPathPatch(patient, deletes(100))).toEqual(patient);
    expect(await failure(() => applyFhirPathPatch(patient, deletes(101)))).toMatchObject({
      status: 400,
      code: 'too-costly',
      diagnostics: 'A FHIRPath Patch holds at most 100 operations; this one has 101',
    });
  });

  it('refuses to add a name that every object has (constructor, __proto__), and finds no such element', async () => {
    const refused = /^FHIRPath Patch operation 1 \(add\): keys named like a property of every/;
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const cases: [Parameters, number, RegExp][] = [
        [patch(add('Patient', name, { valueString: 'x' })), 400, refused],
        [
          patch(add('Patient', name, { part: [{ name: 'family', valueString: 'x' }] })),
          400,
          refused,
        ],
        [patch(add('Patient', 'contact', { part: [{ name, valueString: 'x' }] })), 400, refused],
        [
          patch(
            operation(type('replace'), path(`Patient.name[0].${name}`), {
              name: 'value',
              valueString: 'x',
            }),
          ),
          422,
          /matches no element/,
        ],
        [patch(add(`Patient.${name}`, 'family', { valueString: 'x' })), 422, /matches no element/],
      ];
      for (const [body, status, message] of cases) {
        const refused = await failure(() => applyFhirPathPatch(patient, body));
        expect({ status: refused.status, diagnostics: refused.diagnostics }).toEqual({
          status,
          diagnostics: expect.stringMatching(message),
        });
      }
    }
  });

  it('changes choice elements under their typed names, at them and through them', async () => {
    const observation: FhirResource = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'Smoking status' },
      valueCodeableConcept: { coding: [{ code: 'never' }] },
      component: [{ code: { text: 'Packs' }, valueQuantity: { value: 1 } }],
    };
    const through = await applyFhirPathPatch(
      observation,
      patch(
        operation(
          type('insert'),
          path('Observation.value.coding'),
          { name: 'index', valueInteger: 0 },
          { name: 'value', valueCoding: { code: 'former' } },
        ),
        add('Observation.value', 'text', { valueString: 'Former smoker' }),
        operation(type('replace'), path('Observation.component[0].value.value'), {
          name: 'value',
          valueDecimal: 2,
        }),
      ),
    );
    expect(through['valueCodeableConcept']).toEqual({
      coding: [{ code: 'former' }, { code: 'never' }],
      text: 'Former smoker',
    });
    expect(through['component']).toEqual([
      { code: { text: 'Packs' }, valueQuantity: { value: 2 } },
    ]);

    // A replace may change the type: the old typed key goes.
    const retyped = await applyFhirPathPatch(
      observation,
      patch(
        operation(type('replace'), path('Observation.value'), {
          name: 'value',
          valueQuantity: { value: 3, unit: '/d' },
        }),
        operation(type('delete'), path('Observation.component[0].value')),
      ),
    );
    expect(retyped).not.toHaveProperty('valueCodeableConcept');
    expect(retyped['valueQuantity']).toEqual({ value: 3, unit: '/d' });
    expect(retyped['component']).toEqual([{ code: { text: 'Packs' } }]);

    // add sets a choice element under the value's type, once.
    const dated = await applyFhirPathPatch(
      observation,
      patch(add('Observation', 'effective', { valueDateTime: '2024-05-01' })),
    );
    expect(dated['effectiveDateTime']).toBe('2024-05-01');
    expect(
      await failure(() =>
        applyFhirPathPatch(
          patient,
          patch(add('Patient', 'deceased', { valueDateTime: '2024-05-01' })),
        ),
      ),
    ).toMatchObject({ status: 422, diagnostics: expect.stringMatching(/there already/) });
    const deceased = await applyFhirPathPatch(
      patient,
      patch(
        operation(type('replace'), path('Patient.deceased'), {
          name: 'value',
          valueDateTime: '2024-05-01',
        }),
      ),
    );
    expect(deceased).not.toHaveProperty('deceasedBoolean');
    expect(deceased['deceasedDateTime']).toBe('2024-05-01');
  });

  it('reaches contained resources: their elements by their own definitions, and the list', async () => {
    const request: FhirResource = {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      medicationReference: { reference: '#med' },
      subject: { reference: 'Patient/p' },
      contained: [
        { resourceType: 'Medication', id: 'med', code: { text: 'Amoxicillin' } },
        {
          resourceType: 'Observation',
          id: 'obs',
          status: 'final',
          code: { text: 'Weight' },
          valueQuantity: { value: 20, unit: 'kg' },
        },
      ],
    };
    const before = structuredClone(request);
    const medication = "MedicationRequest.contained.where(id = 'med')";
    const observation = 'MedicationRequest.contained.ofType(Observation)';
    const result = await applyFhirPathPatch(
      request,
      patch(
        operation(type('replace'), path(`${medication}.code`), {
          name: 'value',
          valueCodeableConcept: { text: 'Amoxicillin 250 mg' },
        }),
        add(medication, 'status', { valueCode: 'active' }),
        // A choice element of a contained resource, under its typed name.
        operation(type('replace'), path(`${observation}.value`), {
          name: 'value',
          valueString: 'unknown',
        }),
        add(`${medication}.code`, 'coding', {
          valueCoding: { system: 'http://snomed.info/sct', code: '27658006' },
        }),
      ),
    );
    expect(result['contained']).toEqual([
      {
        resourceType: 'Medication',
        id: 'med',
        code: {
          text: 'Amoxicillin 250 mg',
          coding: [{ system: 'http://snomed.info/sct', code: '27658006' }],
        },
        status: 'active',
      },
      {
        resourceType: 'Observation',
        id: 'obs',
        status: 'final',
        code: { text: 'Weight' },
        valueString: 'unknown',
      },
    ]);
    // The resource around them is untouched, and so is the original.
    expect({ ...result, contained: undefined }).toEqual({ ...request, contained: undefined });
    expect(request).toEqual(before);

    // Whole contained resources: added (a Parameters part carries a resource in `resource`),
    // inserted, moved, replaced and deleted like any item of a list.
    const device: Device = { resourceType: 'Device', id: 'pump' };
    const listed = await applyFhirPathPatch(
      request,
      patch(
        add('MedicationRequest', 'contained', { resource: device }),
        operation(
          type('insert'),
          path('MedicationRequest.contained'),
          { name: 'index', valueInteger: 0 },
          { name: 'value', resource: { resourceType: 'Practitioner', id: 'dr' } },
        ),
        operation(
          type('move'),
          path('MedicationRequest.contained'),
          { name: 'source', valueInteger: 3 },
          { name: 'destination', valueInteger: 1 },
        ),
        operation(type('replace'), path(observation), {
          name: 'value',
          resource: { resourceType: 'Observation', id: 'obs', status: 'cancelled', code: {} },
        }),
        operation(type('delete'), path(medication)),
      ),
    );
    expect((listed['contained'] as FhirResource[]).map((r) => `${r.resourceType}/${r.id}`)).toEqual(
      ['Practitioner/dr', 'Device/pump', 'Observation/obs'],
    );
    expect((listed['contained'] as FhirResource[])[2]).toEqual({
      resourceType: 'Observation',
      id: 'obs',
      status: 'cancelled',
    });

    // A resource value must name its type; an element a contained resource does not have is
    // refused as at the top level.
    expect(
      await failure(() =>
        applyFhirPathPatch(
          request,
          patch(add('MedicationRequest', 'contained', { resource: { id: 'x' } as never })),
        ),
      ),
    ).toMatchObject({ status: 400, diagnostics: expect.stringMatching(/resourceType/) });
    expect(
      await failure(() =>
        applyFhirPathPatch(request, patch(add(medication, 'intent', { valueCode: 'order' }))),
      ),
    ).toMatchObject({ status: 422 });
  });

  it('lets the event loop run between operations once they have held it for a turn', async () => {
    // Each where() over 3,000 extensions takes the engine tens of milliseconds.
    const extension = Array.from({ length: 3000 }, (_, i) => ({
      url: 'http://example.org/x',
      valueInteger: i,
    }));
    const slow = operation(type('delete'), path("Patient.extension.where(url = 'urn:none')"));
    let ran = false;
    setImmediate(() => (ran = true));
    const result = await applyFhirPathPatch({ ...patient, extension }, patch(slow, slow, slow));
    expect(ran).toBe(true);
    expect(result['extension']).toHaveLength(3000);
  });

  it('tells a FHIRPath Patch from a JSON Patch', () => {
    expect(isFhirPathPatch(patch())).toBe(true);
    expect(isFhirPathPatch([{ op: 'add', path: '/active', value: true }])).toBe(false);
  });
});
