import { boundValueCollector } from './bound-values.js';
import type { BoundValue } from './value-sets.js';

const code = (value: string, path: string): BoundValue => ({ type: 'code', value, path });

describe('boundValueCollector: the values of required bindings, as the validator adds them', () => {
  // What @medplum/core's appendToken does with `collect.tokens`: look the value set up, walk its
  // list for a value at the same path, then push, or set a new array for the first value.
  function append(tokens: Record<string, BoundValue[]>, key: string, value: BoundValue): void {
    const list = tokens[key];
    for (const held of list ?? []) if (held.path === value.path) return;
    if (list) list.push(value);
    else tokens[key] = [value];
  }

  it('keeps the first value at each path of each value set, in order', () => {
    const { tokens, collected } = boundValueCollector();
    append(tokens, 'gender', code('male', 'Patient.gender'));
    append(tokens, 'use', code('usual', 'Patient.identifier[0].use'));
    append(tokens, 'use', code('old', 'Patient.identifier[1].use'));
    append(tokens, 'use', code('temp', 'Patient.identifier[0].use'));
    expect(Object.keys(tokens)).toEqual(['gender', 'use']);
    expect(collected()).toEqual({
      gender: [code('male', 'Patient.gender')],
      use: [code('usual', 'Patient.identifier[0].use'), code('old', 'Patient.identifier[1].use')],
    });
  });

  it('adds 100,000 values in linear time', () => {
    const { tokens, collected } = boundValueCollector();
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) append(tokens, 'use', code('usual', `p[${i}]`));
    expect(collected()['use']).toHaveLength(100_000);
    // Walked, the lists made 5 billion comparisons: minutes.
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
