import { AppError } from '../../common/errors/app-error.js';
import { bodyParameters, queryParameters } from './kick-off-parameters.js';

const parameters = (...parameter: Record<string, unknown>[]) => ({
  resourceType: 'Parameters',
  parameter,
});

describe('kick-off parameters', () => {
  it('reads a POST body as a GET query would be read, and patient besides', () => {
    expect(
      bodyParameters(
        parameters(
          { name: '_type', valueString: 'Patient, Observation' },
          { name: '_type', valueString: 'Condition,Patient' },
          { name: '_since', valueInstant: '2026-01-01T00:00:00Z' },
          { name: '_typeFilter', valueString: 'Observation?code=a,b' },
          { name: 'patient', valueReference: { reference: 'Patient/p1' } },
          { name: 'patient', valueReference: { reference: 'Patient/p1' } },
        ),
        'patient',
      ),
    ).toEqual({
      types: ['Patient', 'Observation', 'Condition'],
      // A comma in a body's filter is FHIR's OR, not a second filter.
      typeFilters: ['Observation?code=a,b'],
      since: new Date('2026-01-01T00:00:00Z'),
      patients: ['p1'],
    });
    expect(
      queryParameters(
        { _type: 'Patient', _typeFilter: 'Observation%3Fcode%3Da%2Cb,Condition%3F' },
        '/fhir/Patient/$export?_type=Patient&_typeFilter=Observation%3Fcode%3Da%2Cb,Condition%3F',
      ),
    ).toEqual({ types: ['Patient'], typeFilters: ['Observation?code=a,b', 'Condition?'] });
  });

  it('refuses what it would not keep: other parameters, wrong value types, repeats, other references', () => {
    const refused = (body: unknown, level: 'system' | 'patient' = 'patient') => {
      try {
        bodyParameters(body, level);
      } catch (error) {
        return error instanceof AppError ? error.status : 'not an AppError';
      }
      return 'taken';
    };
    expect(refused({ resourceType: 'Bundle' })).toBe(400);
    expect(refused(parameters({ name: '_elements', valueString: 'id' }))).toBe(400);
    expect(refused(parameters({ name: '_since', valueString: '2026-01-01T00:00:00Z' }))).toBe(400);
    const since = { name: '_since', valueInstant: '2026-01-01T00:00:00Z' };
    expect(refused(parameters(since, since))).toBe(400);
    const reference = (value: string) => ({
      name: 'patient',
      valueReference: { reference: value },
    });
    expect(refused(parameters(reference('Group/g1')))).toBe(400);
    expect(refused(parameters(reference('Patient/p1')), 'system')).toBe(400);
    expect(
      refused(parameters(...Array.from({ length: 1001 }, (_, i) => reference(`Patient/p${i}`)))),
    ).toBe(400);
    expect(refused(parameters(reference('Patient/p1')))).toBe('taken');
  });
});
