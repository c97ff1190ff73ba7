import type { DataSource, EntityManager } from 'typeorm';
import { UnitOfWork } from './unit-of-work.js';

/** A DataSource whose transactions record their statements instead of sending them. */
function recordingDataSource(statements: string[]): DataSource {
  const manager = {
    query: (sql: string) => {
      statements.push(sql);
      return Promise.resolve([]);
    },
  } as unknown as EntityManager;
  return {
    manager,
    transaction: <T>(work: (manager: EntityManager) => Promise<T>) => work(manager),
  } as unknown as DataSource;
}

describe('UnitOfWork savepoints', () => {
  it('says when work runs in a savepoint, whether the savepoint is released or rolled back', async () => {
    const statements: string[] = [];
    const unitOfWork = new UnitOfWork(recordingDataSource(statements));
    const seen: boolean[] = [];
    await unitOfWork.run(async () => {
      seen.push(unitOfWork.inSavepoint);
      await unitOfWork.savepoint(async () => {
        seen.push(unitOfWork.inSavepoint);
        await unitOfWork.savepoint(() => Promise.resolve(seen.push(unitOfWork.inSavepoint)));
        seen.push(unitOfWork.inSavepoint);
      });
      seen.push(unitOfWork.inSavepoint);
      await expect(
        unitOfWork.savepoint(() => Promise.reject(new Error('refused'))),
      ).rejects.toThrow('refused');
      seen.push(unitOfWork.inSavepoint);
    });
    expect(seen).toEqual([false, true, true, true, false, false]);
    expect(statements).toEqual([
      'SAVEPOINT unit_of_work',
      'SAVEPOINT unit_of_work',
      'RELEASE SAVEPOINT unit_of_work',
      'RELEASE SAVEPOINT unit_of_work',
      'SAVEPOINT unit_of_work',
      'ROLLBACK TO SAVEPOINT unit_of_work',
    ]);
    // Outside a transaction there is no savepoint to be in.
    await unitOfWork.savepoint(() => Promise.resolve(seen.push(unitOfWork.inSavepoint)));
    expect(seen.at(-1)).toBe(false);
  });
});
