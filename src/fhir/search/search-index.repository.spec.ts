import { emptyRows } from './index-rows.js';
import { insertions } from './search-index.repository.js';

describe('insertions', () => {
  it('sends each column as a PostgreSQL array literal, quoting as pg does', async () => {
    const rows = emptyRows();
    rows.strings.push(
      { param: 'note', value: 'a "quoted" word', exact: 'back\\slash, {braces}' },
      { param: 'note', value: 'NULL', exact: null },
    );
    rows.quantities.push({
      param: 'value-quantity',
      value: 0.1,
      system: null,
      code: 'mg',
      unit: 'mg',
      comparator: '<',
    });
    const values: unknown[] = [];
    const ctes = await insertions(
      [{ resourceType: 'Observation', resourceId: 'o1', rows }],
      values,
    );
    expect(ctes).toHaveLength(2);
    expect(values).toEqual([
      '{"Observation","Observation"}',
      '{"o1","o1"}',
      '{"note","note"}',
      '{"a \\"quoted\\" word","NULL"}',
      '{"back\\\\slash, {braces}",NULL}',
      '{"Observation"}',
      '{"o1"}',
      '{"value-quantity"}',
      '{"0.1"}',
      '{NULL}',
      '{"mg"}',
      '{"mg"}',
      '{"<"}',
    ]);
  });

  it('keeps every element, in order, past the size of one joined piece', async () => {
    const rows = emptyRows();
    const codes = Array.from({ length: 10_000 }, (_, i) => `c${i}`);
    rows.tokens.push(...codes.map((code) => ({ param: 'code', system: null, code })));
    const values: unknown[] = [];
    await insertions([{ resourceType: 'Observation', resourceId: 'o1', rows }], values);
    expect(values[4]).toBe(`{${codes.map((code) => `"${code}"`).join(',')}}`);
  });
});
