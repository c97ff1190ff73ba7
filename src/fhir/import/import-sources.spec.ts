import { loadingPhases, type ImportSource } from './import-sources.js';

const ndjson = (path: string, types: string[], refersTo: string[]): ImportSource => ({
  path,
  kind: 'ndjson',
  resources: 1,
  shared: false,
  types: new Set(types),
  refersTo: new Set(refersTo),
});

const paths = (phases: ImportSource[][]) => phases.map((phase) => phase.map((s) => s.path));

describe('loadingPhases', () => {
  it('loads a file after the files holding the types it refers to', () => {
    const phases = loadingPhases([
      ndjson('Encounter.ndjson', ['Encounter'], ['Patient', 'Practitioner']),
      ndjson('Observation.ndjson', ['Observation'], ['Patient', 'Encounter']),
      ndjson('Patient.ndjson', ['Patient'], ['Organization']),
    ]);
    expect(paths(phases)).toEqual([
      ['Patient.ndjson'],
      ['Encounter.ndjson'],
      ['Observation.ndjson'],
    ]);
  });

  it('puts shared Bundles first, and files of one type together despite their own references', () => {
    const shared: ImportSource = { ...ndjson('hospital.json', ['Organization'], []) };
    const phases = loadingPhases([
      ndjson('Patient.000.ndjson', ['Patient'], ['Patient']),
      ndjson('Patient.001.ndjson', ['Patient'], ['Patient']),
      { ...shared, kind: 'bundle', shared: true },
    ]);
    expect(paths(phases)).toEqual([
      ['hospital.json'],
      ['Patient.000.ndjson', 'Patient.001.ndjson'],
    ]);
  });

  it('loads files that refer to one another in a circle together, after what they wait for', () => {
    const phases = loadingPhases([
      ndjson('Condition.ndjson', ['Condition'], ['Encounter', 'Patient']),
      ndjson('Encounter.ndjson', ['Encounter'], ['Condition', 'Patient']),
      ndjson('Patient.ndjson', ['Patient'], []),
    ]);
    expect(paths(phases)).toEqual([['Patient.ndjson'], ['Condition.ndjson', 'Encounter.ndjson']]);
  });
});
