import { randomBytes } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { EnvironmentVariables } from '../../config/env.schema.js';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { KeyRing, keyIdOf } from '../../crypto/key-ring.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { FhirResource } from '../fhir-types.js';
import { IndexExtractor } from './index-extractor.js';
import { rowCount, SECURITY_CONTEXT_PARAM } from './index-rows.js';
import type { PathStep } from './plain-paths.js';
import { SearchDefinitions } from './search-definitions.js';
import { hasSyntheaSamples, syntheaResources } from '../../../test/support/synthea-samples.js';

/** Index rows in a comparable form: order does not matter, only which rows there are. */
function rowSet(rows: object): string[] {
  return Object.entries(rows)
    .flatMap(([table, list]) => (list as object[]).map((row) => `${table} ${JSON.stringify(row)}`))
    .sort();
}

/**
 * Two extractors under one key: one walking plain paths, and one with the paths removed from
 * every parameter but the Resource-level ones (_tag, _profile, _security, _source, which keep
 * their paths on both sides: the engine finds nothing for `Resource.meta.tag` on a Patient, see
 * below), so that it runs the FHIRPath engine. Also the kinds of steps the engine took over.
 */
function extractors() {
  // Loads the StructureDefinitions the engine needs, as the app does.
  const { resourceTypes } = new FhirDefinitions();
  const material = randomBytes(32);
  const ring = new KeyRing(
    [{ id: keyIdOf(material), material }],
    keyIdOf(material),
    keyIdOf(material),
  );
  const engineDefinitions = new SearchDefinitions();
  const resourceLevel = new Set(engineDefinitions.paramsOf('Resource').map((p) => p.code));
  const taken = new Map<string, Set<string>>();
  for (const type of resourceTypes) {
    for (const param of engineDefinitions.paramsOf(type)) {
      if (!param.paths || resourceLevel.has(param.code)) continue;
      const kinds = new Set(param.paths.flat().map(stepKind));
      taken.set(`${type}.${param.code}`, kinds);
      delete (param as { paths?: unknown }).paths;
    }
    // Nor does the engine skip a parameter whose element the resource lacks: that shortcut must
    // give the same rows (`deceased` is false on a Patient without the element).
    for (const param of engineDefinitions.paramsOf(type)) {
      delete (param as { roots?: unknown }).roots;
    }
    for (const composite of engineDefinitions.compositesOf(type)) {
      for (const part of [composite.first, composite.second, ...composite.elements]) {
        delete (part as { paths?: unknown }).paths;
      }
    }
  }
  return {
    fast: new IndexExtractor(new SearchDefinitions(), new BlindIndexer(ring)),
    engine: new IndexExtractor(engineDefinitions, new BlindIndexer(ring)),
    taken,
  };
}

function stepKind(step: PathStep): string {
  if ('resolvesTo' in step) return 'resolve';
  if ('property' in step) return 'where';
  return step.ofType ? 'ofType' : 'element';
}

(hasSyntheaSamples ? describe : describe.skip)('IndexExtractor on plain paths', () => {
  it('writes exactly the rows the FHIRPath engine gives, for every Synthea resource', async () => {
    const { fast, engine, taken } = extractors();
    const resources = await syntheaResources();
    expect(resources.length).toBeGreaterThan(4000);
    const walked = new Map<string, number>();
    for (const resource of resources) {
      for (const [key, kinds] of taken) {
        if (!key.startsWith(`${resource.resourceType}.`)) continue;
        for (const kind of kinds) walked.set(kind, (walked.get(kind) ?? 0) + 1);
      }
      expect({
        resource: `${resource.resourceType}/${resource.id}`,
        rows: rowSet(fast.extract(resource)),
      }).toEqual({
        resource: `${resource.resourceType}/${resource.id}`,
        rows: rowSet(engine.extract(resource)),
      });
    }
    // Every kind of step was compared on real data, not only the engine's side.
    expect(walked.get('element')).toBeGreaterThan(50_000);
    expect(walked.get('ofType')).toBeGreaterThan(5_000);
    expect(walked.get('resolve')).toBeGreaterThan(1_000);
    expect(walked.get('where')).toBeGreaterThan(10);
  });

  it('matches the engine on the edge cases of ofType, resolve() and where()', () => {
    const { fast, engine } = extractors();
    const subject = (reference: object) => ({
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { text: 'x' },
      subject: reference,
    });
    const cases: FhirResource[] = [
      subject({ reference: 'Patient?identifier=urn:mrn|123' }),
      subject({ reference: 'Patient/p1/_history/2' }),
      subject({ reference: 'Group/g1' }),
      subject({ type: 'Patient', identifier: { system: 'urn:mrn', value: '123' } }),
      subject({ display: 'no reference at all' }),
      { ...subject({ reference: 'Patient/p1' }), valueQuantity: { unit: 'mg' } },
      { ...subject({ reference: 'Patient/p1' }), valuePeriod: { start: '2020-01-01' } },
      { ...subject({ reference: 'Patient/p1' }), valuePeriod: { end: '2020-02' } },
      { ...subject({ reference: 'Patient/p1' }), valueDateTime: '2020-01-01T10:00:00Z' },
      { ...subject({ reference: 'Patient/p1' }), valueString: 'positive' },
      { ...subject({ reference: 'Patient/p1' }), valueRange: { low: { value: 1 } } },
      {
        ...subject({ reference: 'Patient/p1' }),
        valueCodeableConcept: { text: 'Positive', coding: [{ system: 'urn:s', code: 'pos' }] },
        component: [
          { code: { text: 'a' }, valueQuantity: { value: 5, unit: 'mg', code: 'mg' } },
          { code: { text: 'b' }, valueCodeableConcept: { coding: [{ code: 'c' }] } },
          { code: { text: 'c' }, valueSampledData: { origin: { value: 0 }, dimensions: 1 } },
        ],
      },
      {
        resourceType: 'Patient',
        id: 'p1',
        telecom: [
          { system: 'email', value: 'A@example.org' },
          { system: 'phone', value: '+1 555 0100' },
          { system: 'fax', value: '555 0101' },
          { value: 'no system' },
        ],
        deceasedDateTime: '2020-01-01',
      },
      {
        resourceType: 'Condition',
        id: 'c1',
        subject: { reference: 'Patient/p1' },
        onsetAge: { value: 40, unit: 'a' },
        abatementPeriod: { start: '2021-01-01' },
      },
    ];
    for (const resource of cases) {
      expect({ resource, rows: rowSet(fast.extract(resource)) }).toEqual({
        resource,
        rows: rowSet(engine.extract(resource)),
      });
    }
    // The one deliberate difference: the engine's resolve() types an absolute URL by its first
    // segment (`http:`), so `patient` missed what `subject` found; the walk reads its type.
    const absolute = subject({ reference: 'http://other.example/fhir/Patient/p1' });
    const patientRow =
      'references {"param":"patient","targetType":"Patient","targetId":"p1","local":false}';
    expect(rowSet(fast.extract(absolute))).toEqual(
      [...rowSet(engine.extract(absolute)), patientRow].sort(),
    );
  });

  it('indexes a composite value under its code, per element', () => {
    const { fast } = extractors();
    const loinc = (code: string) => ({ coding: [{ system: 'http://loinc.org', code }] });
    const mmHg = (value: number) => ({
      value,
      unit: 'mm[Hg]',
      system: 'http://unitsofmeasure.org',
      code: 'mm[Hg]',
    });
    const rows = fast.extract({
      resourceType: 'Observation',
      id: 'bp',
      status: 'final',
      code: loinc('85354-9'),
      component: [
        { code: loinc('8480-6'), valueQuantity: mmHg(150) },
        { code: loinc('8462-4'), valueQuantity: mmHg(95) },
      ],
    });
    const quantity = (param: string, value: number) => ({
      param,
      value,
      system: 'http://unitsofmeasure.org',
      code: 'mm[Hg]',
      unit: 'mm[Hg]',
      comparator: null,
    });
    const composite = rows.quantities.filter((row) => row.param.includes('$'));
    // Each value under its own component's code only: 150 is never under 8462-4. The combo-
    // composites are searched on these rows (and code-value-quantity's), not stored again.
    expect(composite).toEqual(
      expect.arrayContaining([
        quantity('component-code-value-quantity$http://loinc.org|8480-6', 150),
        quantity('component-code-value-quantity$*|8480-6', 150),
        quantity('component-code-value-quantity$http://loinc.org|8462-4', 95),
        quantity('component-code-value-quantity$*|8462-4', 95),
      ]),
    );
    expect(composite).toHaveLength(4);
    // The panel's own code has no value of its own: nothing under it.
    expect(composite.some((row) => row.param.includes('85354-9'))).toBe(false);

    // code-value-date runs the engine (ofType(DateTime)); a bare choice element (Group's
    // characteristic value) is read by it too.
    const dated = fast.extract({
      resourceType: 'Observation',
      id: 'o2',
      status: 'final',
      code: { coding: [{ code: 'lmp' }] },
      valueDateTime: '2024-05-01',
    });
    expect(dated.dates.filter((row) => row.param.includes('$'))).toEqual([
      expect.objectContaining({ param: 'code-value-date$|lmp' }),
      expect.objectContaining({ param: 'code-value-date$*|lmp' }),
    ]);
    const group = fast.extract({
      resourceType: 'Group',
      id: 'g1',
      type: 'person',
      actual: true,
      characteristic: [
        {
          code: { coding: [{ system: 'urn:c', code: 'smoker' }] },
          valueBoolean: true,
          exclude: false,
        },
      ],
    });
    expect(group.tokens.filter((row) => row.param.includes('$'))).toEqual([
      { param: 'characteristic-value$urn:c|smoker', system: null, code: 'true' },
      { param: 'characteristic-value$*|smoker', system: null, code: 'true' },
    ]);
  });

  it('indexes the Resource-level parameters, which the engine misses on a concrete type', () => {
    const material = randomBytes(32);
    const id = keyIdOf(material);
    const definitions = new SearchDefinitions();
    const extractor = new IndexExtractor(
      definitions,
      new BlindIndexer(new KeyRing([{ id, material }], id, id)),
    );
    const rows = extractor.extract({
      resourceType: 'Patient',
      id: 'p1',
      meta: { tag: [{ system: 'urn:tags', code: 'vip' }], profile: ['urn:profile'] },
      gender: 'female',
    });
    expect(rows.tokens).toEqual(
      expect.arrayContaining([{ param: '_tag', system: 'urn:tags', code: 'vip' }]),
    );
    expect(rows.uris).toEqual(
      expect.arrayContaining([{ param: '_profile', value: 'urn:profile' }]),
    );
  });

  it("indexes a Binary's securityContext, which no search parameter reaches", () => {
    const material = randomBytes(32);
    const id = keyIdOf(material);
    const extractor = new IndexExtractor(
      new SearchDefinitions(),
      new BlindIndexer(new KeyRing([{ id, material }], id, id)),
    );
    const binary = (reference: string): FhirResource => ({
      resourceType: 'Binary',
      contentType: 'text/plain',
      securityContext: { reference },
    });
    expect(extractor.extract(binary('DocumentReference/d1/_history/2')).references).toEqual([
      {
        param: SECURITY_CONTEXT_PARAM,
        targetType: 'DocumentReference',
        targetId: 'd1',
        local: true,
      },
    ]);
    expect(
      extractor.extract(binary('https://elsewhere.example/fhir/Patient/1')).references,
    ).toEqual([
      { param: SECURITY_CONTEXT_PARAM, targetType: 'Patient', targetId: '1', local: false },
    ]);
    expect(
      extractor.extract({ resourceType: 'Binary', contentType: 'text/plain' }).references,
    ).toEqual([]);
  });
});

describe('the cap on index rows per resource version', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  const extractor = new IndexExtractor(
    new SearchDefinitions(),
    new BlindIndexer(new KeyRing([{ id, material }], id, id)),
  );
  const patient = (families: string[]): FhirResource => ({
    resourceType: 'Patient',
    id: 'p1',
    name: families.map((family) => ({ family })),
  });
  const refusal = (resource: FhirResource, maxRows: number): AppError | undefined => {
    try {
      extractor.extract(resource, maxRows);
      return undefined;
    } catch (error) {
      return error as AppError;
    }
  };

  it('keeps a resource at the cap and refuses one past it, naming the cap and no value', () => {
    const resource = patient(Array.from({ length: 30 }, (_, i) => `Quixote${i}`));
    const count = rowCount(extractor.extract(resource));
    expect(rowCount(extractor.extract(resource, count))).toBe(count);
    const refused = refusal(resource, count - 1);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused!.status).toBe(422);
    expect(refused!.issues).toEqual([
      expect.objectContaining({
        code: 'too-costly',
        diagnostics: expect.stringContaining(String(count - 1)),
      }),
    ]);
    expect(refused!.message).not.toMatch(/quixote/i);
  });

  it('counts a value repeated in the resource once, as it is stored', () => {
    const resource = patient(Array.from({ length: 5000 }, () => 'Smith'));
    const count = rowCount(extractor.extract(resource));
    expect(count).toBeLessThan(20);
    expect(refusal(resource, count)).toBeUndefined();
  });

  (hasSyntheaSamples ? it : it.skip)(
    'stores every Synthea resource well under the default cap',
    async () => {
      const most = Math.max(
        ...(await syntheaResources()).map((resource) => rowCount(extractor.extract(resource))),
      );
      // 129 when this was written (a Patient); the default cap is FHIR_INDEX_ROWS_MAX's.
      expect(most).toBeLessThan(new EnvironmentVariables().FHIR_INDEX_ROWS_MAX / 100);
    },
  );
});

describe('IndexExtractor and free text', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  const extractor = new IndexExtractor(
    new SearchDefinitions(),
    new BlindIndexer(new KeyRing([{ id, material }], id, id)),
  );
  const plaintext = (rows: object): string => JSON.stringify(rows).toLowerCase();

  it('hashes a title or description where it is about a patient, not where it defines', () => {
    const composition = extractor.extract({
      resourceType: 'Composition',
      status: 'final',
      type: { coding: [{ system: 'http://loinc.org', code: '18842-5' }] },
      date: '2024-01-01',
      author: [{ reference: 'Practitioner/1' }],
      title: 'Discharge of Montgomery Scarborough',
    });
    expect(plaintext(composition)).not.toContain('scarborough');
    expect(composition.blind.some((row) => row.param === 'title')).toBe(true);
    const device = extractor.extract({
      resourceType: 'Device',
      udiCarrier: [{ deviceIdentifier: '00884838012345', carrierHRF: '(21)SN-99-14142' }],
    });
    expect(plaintext(device)).not.toContain('00884838012345');
    expect(plaintext(device)).not.toContain('sn 99 14142');
    const valueSet = extractor.extract({
      resourceType: 'ValueSet',
      status: 'active',
      title: 'Smoking status codes',
    });
    expect(valueSet.strings).toEqual(
      expect.arrayContaining([
        { param: 'title', value: 'smoking status codes', exact: 'Smoking status codes' },
      ]),
    );
  });
});

describe('IndexExtractor dates', () => {
  const material = randomBytes(32);
  const id = keyIdOf(material);
  new FhirDefinitions();
  const extractor = new IndexExtractor(
    new SearchDefinitions(),
    new BlindIndexer(new KeyRing([{ id, material }], id, id)),
  );
  const observationDates = (effective: Record<string, unknown>) =>
    extractor
      .extract({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, ...effective })
      .dates.filter((row) => row.param === 'date')
      .map((row) => [row.low.toISOString(), row.high.toISOString()]);

  it('indexes a leap second as the last millisecond of its minute', () => {
    expect(observationDates({ effectiveDateTime: '2016-12-31T23:59:60Z' })).toEqual([
      ['2016-12-31T23:59:59.999Z', '2017-01-01T00:00:00.000Z'],
    ]);
  });

  it('indexes nothing for a Period with an unreadable end, rather than an open one', () => {
    for (const effectivePeriod of [
      { start: '2024-03-01T10:00:00Z', end: '2024-03-01T11' },
      { start: '2024-03-01T10', end: '2024-03-01T11:00:00Z' },
    ]) {
      expect([effectivePeriod, observationDates({ effectivePeriod })]).toEqual([
        effectivePeriod,
        [],
      ]);
    }
    expect(observationDates({ effectivePeriod: { start: '2024-03-01' } })).toEqual([
      ['2024-03-01T00:00:00.000Z', '9999-12-31T23:59:59.000Z'],
    ]);
  });

  it('indexes a Period of a date and a time on that day as covering both, never inverted', () => {
    // Valid (per-1 compares a date by its calendar day), though the end is 20:00 UTC the day
    // before the date's UTC day begins: the row must not end before it starts.
    expect(
      observationDates({
        effectivePeriod: { start: '2024-03-02', end: '2024-03-02T01:00:00+05:00' },
      }),
    ).toEqual([['2024-03-01T20:00:00.000Z', '2024-03-03T00:00:00.000Z']]);
    expect(
      observationDates({
        effectivePeriod: { start: '2024-03-01T23:00:00-05:00', end: '2024-03-01' },
      }),
    ).toEqual([['2024-03-01T00:00:00.000Z', '2024-03-02T04:00:01.000Z']]);
  });

  it('indexes a Timing by its outer limits: events and repeat.boundsPeriod', () => {
    const may = (start: string, end: string) => [`2024-05-${start}`, `2024-05-${end}`];
    expect(
      observationDates({
        effectiveTiming: { event: ['2024-05-12T09:00:00Z', '2024-05-10T09:00:00Z'] },
      }),
    ).toEqual([may('10T09:00:00.000Z', '12T09:00:01.000Z')]);
    expect(
      observationDates({
        effectiveTiming: { repeat: { boundsPeriod: { start: '2024-05-01', end: '2024-05-31' } } },
      }),
    ).toEqual([[`2024-05-01T00:00:00.000Z`, `2024-06-01T00:00:00.000Z`]]);
    expect(
      observationDates({
        effectiveTiming: {
          event: ['2024-04-30T22:00:00Z'],
          repeat: {
            boundsPeriod: { start: '2024-05-01' },
            frequency: 2,
            period: 1,
            periodUnit: 'd',
          },
        },
      }),
    ).toEqual([['2024-04-30T22:00:00.000Z', '9999-12-31T23:59:59.000Z']]);
    // Durations and ranges have no dates; nor has a Timing of a code alone.
    for (const effectiveTiming of [
      {
        repeat: {
          boundsDuration: { value: 5, unit: 'd' },
          frequency: 1,
          period: 1,
          periodUnit: 'd',
        },
      },
      { repeat: { boundsRange: { low: { value: 1 } } } },
      { code: { text: 'BID' } },
      { event: ['2024-05-10T09'] },
    ]) {
      expect([effectiveTiming, observationDates({ effectiveTiming })]).toEqual([
        effectiveTiming,
        [],
      ]);
    }
  });

  it('indexes a Timing of as many events as a body may carry', () => {
    // 140,000 events fit in a 1 MB body; passed as call arguments to find the earliest and the
    // latest, they overflowed the stack, and the write was a 500 (until 2026-12-07).
    const event = Array.from({ length: 140_000 }, (_, i) => `${2000 + (i % 20)}`);
    expect(observationDates({ effectiveTiming: { event } })).toEqual([
      ['2000-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z'],
    ]);
  });
});
