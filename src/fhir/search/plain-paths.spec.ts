import { parsePlainPaths, plainValues } from './plain-paths.js';

describe('plainValues', () => {
  it('gives every value of a long list, however many (as many as a body may carry)', () => {
    // 200,000 given names fit in a 1 MB body; pushed as call arguments they overflowed the
    // stack, and the create was a 500 (until 2026-12-07).
    const given = Array.from({ length: 200_000 }, (_, i) => `g${i}`);
    const paths = parsePlainPaths('Patient', 'Patient.name.given');
    expect(paths).toBeDefined();
    const values = plainValues({ resourceType: 'Patient', name: [{ given }] }, paths!);
    expect(values).toHaveLength(given.length);
    expect(values?.at(-1)).toBe('g199999');
  });
});
