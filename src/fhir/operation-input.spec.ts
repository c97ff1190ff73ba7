import { operationInput } from './operation-input.js';

describe('operationInput', () => {
  it("adds a Parameters body's values to the query's, leaving the caller's query as it was", () => {
    const query = { code: ['a', 'b'] };
    const body = { resourceType: 'Parameters', parameter: [{ name: 'code', valueCode: 'c' }] };
    expect(operationInput(query, body).query).toEqual({ code: ['a', 'b', 'c'] });
    expect(query).toEqual({ code: ['a', 'b'] });
  });

  it('reads 150,000 repeats of a parameter (a body may hold that many) in one pass', () => {
    // Until 2026-12-07 each repeat copied the list before it, for minutes.
    const parameter = Array.from({ length: 150_000 }, (_, i) => ({
      name: 'code',
      valueCode: `${i}`,
    }));
    const coding = Array.from({ length: 150_000 }, (_, i) => ({
      name: 'coding',
      valueCoding: { code: `${i}` },
    }));
    const input = operationInput(
      {},
      { resourceType: 'Parameters', parameter: [...parameter, ...coding] },
      ['coding'],
    );
    expect(input.query.code).toHaveLength(150_000);
    expect(input.codings.get('coding')).toHaveLength(150_000);
  });
});
