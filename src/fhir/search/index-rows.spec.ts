import { dedupe, emptyRows } from './index-rows.js';

describe('dedupe', () => {
  it('keeps each row once, in first-seen order, and tells apart rows that differ in any column', () => {
    const rows = emptyRows();
    const low = new Date('2024-01-01T00:00:00Z');
    const high = new Date('2024-01-01T23:59:59.999Z');
    rows.tokens.push(
      { param: 'code', system: 'http://loinc.org', code: '8480-6' },
      { param: 'code', system: null, code: '8480-6' },
      { param: 'code', system: 'http://loinc.org', code: '8480-6' },
      { param: 'combo-code', system: 'http://loinc.org', code: '8480-6' },
    );
    rows.dates.push(
      { param: 'date', low, high },
      { param: 'date', low: new Date(low), high: new Date(high) },
      { param: 'date', low, high: low },
    );
    rows.references.push(
      { param: 'subject', targetType: 'Patient', targetId: '1', local: true },
      { param: 'subject', targetType: 'Patient', targetId: '1', local: false },
      { param: 'patient', targetType: 'Patient', targetId: '1', local: true },
      { param: 'subject', targetType: 'Patient', targetId: '1', local: true },
    );
    rows.quantities.push(
      {
        param: 'value-quantity',
        value: 7,
        system: null,
        code: 'mmol/L',
        unit: null,
        comparator: null,
      },
      {
        param: 'value-quantity',
        value: 7,
        system: 'http://unitsofmeasure.org',
        code: 'mmol/L',
        unit: null,
        comparator: null,
      },
      {
        param: 'value-quantity',
        value: 7,
        system: null,
        code: 'mmol/L',
        unit: null,
        comparator: null,
      },
      // A bound is not the value: `<7` is a row of its own.
      {
        param: 'value-quantity',
        value: 7,
        system: null,
        code: 'mmol/L',
        unit: null,
        comparator: '<',
      },
    );
    rows.blind.push(
      { param: 'name', hash: 'aa' },
      { param: 'family', hash: 'aa' },
      { param: 'name', hash: 'aa' },
    );
    const unique = dedupe(rows);
    expect(unique.tokens).toEqual([rows.tokens[0], rows.tokens[1], rows.tokens[3]]);
    expect(unique.dates).toEqual([rows.dates[0], rows.dates[2]]);
    // One row per target, however written (the table has no column for it), local if any is.
    expect(unique.references).toEqual([rows.references[0], rows.references[2]]);
    const foreignFirst = emptyRows();
    foreignFirst.references.push(
      { param: 'performer', targetType: 'Practitioner', targetId: '1', local: false },
      { param: 'performer', targetType: 'Practitioner', targetId: '1', local: true },
    );
    expect(dedupe(foreignFirst).references).toEqual([
      { param: 'performer', targetType: 'Practitioner', targetId: '1', local: true },
    ]);
    expect(unique.quantities).toEqual([rows.quantities[0], rows.quantities[1], rows.quantities[3]]);
    expect(unique.blind).toEqual(rows.blind.slice(0, 2));
  });
});
