import { foreignKeyOrder } from './table-order.js';

describe('foreignKeyOrder', () => {
  it('puts each table after the tables it refers to, otherwise by name', () => {
    const order = foreignKeyOrder(
      ['smart_app', 'authorization_code', 'app_user', 'resource', 'backend_client_assertion'],
      [
        { table: 'authorization_code', references: 'smart_app' },
        { table: 'authorization_code', references: 'app_user' },
        { table: 'backend_client_assertion', references: 'backend_client' },
      ],
    );
    expect(order).toEqual([
      'app_user',
      'backend_client_assertion',
      'resource',
      'smart_app',
      'authorization_code',
    ]);
  });

  it('follows chains of keys and ignores a table referring to itself', () => {
    expect(
      foreignKeyOrder(
        ['a', 'b', 'c'],
        [
          { table: 'a', references: 'b' },
          { table: 'b', references: 'c' },
          { table: 'c', references: 'c' },
        ],
      ),
    ).toEqual(['c', 'b', 'a']);
  });

  it('refuses tables that refer to each other in a cycle, naming them', () => {
    expect(() =>
      foreignKeyOrder(
        ['a', 'b', 'c', 'd'],
        [
          { table: 'b', references: 'c' },
          { table: 'c', references: 'b' },
          { table: 'd', references: 'b' },
        ],
      ),
    ).toThrow(/^Tables b, c, d have no order .* in a cycle of foreign keys/);
  });
});
