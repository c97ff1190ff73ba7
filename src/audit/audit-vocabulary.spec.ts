import { knownParameter, knownType } from './audit-vocabulary.js';

describe('audit vocabulary', () => {
  it('keeps resource types and records any other word as unknown', () => {
    expect(knownType('Patient')).toBe('Patient');
    expect(knownType('Quixoticson')).toBe('unknown');
    expect(knownType('Resource')).toBe('unknown');
    expect(knownType(null)).toBeNull();
  });

  it("keeps the type's search parameters and the result parameters", () => {
    expect(knownParameter('family', 'Patient')).toBe('family');
    expect(knownParameter('_count', 'Patient')).toBe('_count');
    expect(knownParameter('_lastUpdated', 'Observation')).toBe('_lastUpdated');
    expect(knownParameter('code', 'Observation')).toBe('code');
    // A parameter of another type is not one of this type's.
    expect(knownParameter('value-quantity', 'Patient')).toBe('unknown');
  });

  it('keeps modifiers, chains and reverse chains made of FHIR words only', () => {
    expect(knownParameter('name:exact', 'Patient')).toBe('name:exact');
    expect(knownParameter('subject:Patient.name', 'Observation')).toBe('subject:Patient.name');
    expect(knownParameter('_has:Observation:patient:code', 'Patient')).toBe(
      '_has:Observation:patient:code',
    );
    expect(knownParameter('name:Zebulon', 'Patient')).toBe('unknown');
    expect(knownParameter('subject.Quixoticson', 'Observation')).toBe('unknown');
  });

  it('records a made-up name as unknown, whatever the route', () => {
    for (const type of ['Patient', null]) {
      expect(knownParameter('Quixoticson', type)).toBe('unknown');
      expect(knownParameter('MRNX77777', type)).toBe('unknown');
      expect(knownParameter('fam\u0000ily', type)).toBe('unknown');
    }
    expect(knownParameter('status', null)).toBe('status');
  });
});
