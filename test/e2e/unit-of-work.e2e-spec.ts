import type { DataSource } from 'typeorm';
import { createDataSource } from '../../src/database/database-options.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';

describe('UnitOfWork.afterCommit', () => {
  let dataSource: DataSource;
  let unitOfWork: UnitOfWork;
  let other: DataSource;

  beforeAll(async () => {
    dataSource = await createDataSource(process.env['DATABASE_URL']!).initialize();
    other = await createDataSource(process.env['DATABASE_URL']!).initialize();
    unitOfWork = new UnitOfWork(dataSource);
    await dataSource.query('DROP TABLE IF EXISTS uow_probe_shared');
    await dataSource.query('CREATE TABLE uow_probe_shared (n int)');
  });

  afterAll(async () => {
    await dataSource.query('DROP TABLE IF EXISTS uow_probe_shared');
    await other.destroy();
    await dataSource.destroy();
  });

  /** What another connection sees: committed rows only. */
  const seenElsewhere = async (n: number): Promise<boolean> =>
    (await other.query<unknown[]>('SELECT 1 FROM uow_probe_shared WHERE n = $1', [n])).length > 0;

  it('runs hooks once the outermost run has committed, in order, with the change visible', async () => {
    const seen: string[] = [];
    let visible: Promise<boolean> | undefined;
    await unitOfWork.run(async (manager) => {
      await manager.query('INSERT INTO uow_probe_shared VALUES (1)');
      unitOfWork.afterCommit(() => {
        seen.push('outer');
        visible = seenElsewhere(1);
      });
      // A nested run joins the transaction: its hooks wait for the same commit.
      await unitOfWork.run(() => {
        unitOfWork.afterCommit(() => seen.push('inner'));
        return Promise.resolve();
      });
      expect(seen).toEqual([]);
    });
    expect(seen).toEqual(['outer', 'inner']);
    expect(await visible).toBe(true);
  });

  it('never runs them when the transaction rolls back', async () => {
    const seen: string[] = [];
    const failed = unitOfWork.run(async (manager) => {
      await manager.query('INSERT INTO uow_probe_shared VALUES (2)');
      unitOfWork.afterCommit(() => seen.push('committed'));
      throw new Error('entry 3 failed');
    });
    await expect(failed).rejects.toThrow('entry 3 failed');
    expect(seen).toEqual([]);
    expect(await seenElsewhere(2)).toBe(false);
  });

  it('counts the savepoints rolled back, each of which released the row locks taken in it', async () => {
    await unitOfWork.run(async () => {
      await unitOfWork.savepoint(() => Promise.resolve());
      expect(unitOfWork.rollbacks).toBe(0);
      const refused = unitOfWork.savepoint(() => Promise.reject(new Error('entry 2 refused')));
      await expect(refused).rejects.toThrow('entry 2 refused');
      expect(unitOfWork.rollbacks).toBe(1);
    });
    expect(unitOfWork.rollbacks).toBe(0);
  });

  it("keeps a service's state for one transaction, nested runs included, acted on before it commits", async () => {
    const owner = {};
    const acted: string[][] = [];
    const note = (value: string) =>
      unitOfWork
        .stateOf(
          owner,
          () => [] as string[],
          async (state) => {
            // Before the commit: what it writes commits with the rest.
            await unitOfWork.manager.query('INSERT INTO uow_probe_shared VALUES (3)');
            acted.push(state);
          },
        )
        .push(value);
    await unitOfWork.run(async () => {
      expect(unitOfWork.existingStateOf(owner)).toBeUndefined();
      note('a');
      await unitOfWork.run(() => Promise.resolve(note('b')));
      expect(unitOfWork.existingStateOf(owner)).toEqual(['a', 'b']);
    });
    expect(acted).toEqual([['a', 'b']]);
    expect(await seenElsewhere(3)).toBe(true);
    await unitOfWork.run(() => Promise.resolve(note('c')));
    expect(acted).toEqual([['a', 'b'], ['c']]);
  });

  it('runs a hook at once outside a transaction, where each statement has committed', () => {
    const seen: string[] = [];
    unitOfWork.afterCommit(() => seen.push('now'));
    expect(seen).toEqual(['now']);
  });

  it('rolls a failed nested unit back with its state and hooks, and the enclosing one goes on', async () => {
    const owner = {};
    const acted: string[][] = [];
    const seen: string[] = [];
    const note = (value: string) =>
      unitOfWork
        .stateOf(
          owner,
          () => [] as string[],
          (state) => Promise.resolve(void acted.push(state)),
        )
        .push(value);
    await unitOfWork.run(async (manager) => {
      await manager.query('INSERT INTO uow_probe_shared VALUES (5)');
      const failed = unitOfWork.nested(async () => {
        await manager.query('INSERT INTO uow_probe_shared VALUES (6)');
        note('rolled back');
        unitOfWork.afterCommit(() => seen.push('rolled back'));
        // A failed statement: without the savepoint it would abort the enclosing transaction.
        await manager.query('SELECT 1 / 0');
      });
      await expect(failed).rejects.toThrow('division by zero');
      await unitOfWork.nested(async () => {
        note('kept');
        unitOfWork.afterCommit(() => seen.push('kept'));
        await manager.query('INSERT INTO uow_probe_shared VALUES (7)');
      });
      // The nested unit's own hooks ran at its end; the enclosing one has none of its state.
      expect(acted).toEqual([['kept']]);
      expect(unitOfWork.existingStateOf(owner)).toBeUndefined();
      expect(seen).toEqual([]);
    });
    expect(seen).toEqual(['kept']);
    expect(await seenElsewhere(5)).toBe(true);
    expect(await seenElsewhere(6)).toBe(false);
    expect(await seenElsewhere(7)).toBe(true);
  });
});
