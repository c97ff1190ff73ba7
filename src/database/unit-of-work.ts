import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AsyncLocalStorage } from 'node:async_hooks';
import { connect } from 'node:net';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';

/** The transaction in progress, and what must run before it commits and once it has. */
interface Transaction {
  manager: EntityManager;
  beforeCommit: (() => Promise<void>)[];
  afterCommit: (() => void)[];
  /** What services gather over the transaction's writes (stateOf), by service. */
  state: Map<object, unknown>;
  /** Savepoints open (savepoint): what runs in one may be rolled back, its locks released. */
  savepoints: number;
  /** Savepoints rolled back so far (rollbacks). */
  rollbacks: number;
}

/**
 * The transaction a use case runs in. Repositories read and write through `manager`, and wrap
 * multi-statement writes in `run`: alone, that is a transaction of its own; inside a FHIR
 * transaction Bundle, it joins the Bundle's one transaction, so every entry commits or none.
 */
@Injectable()
export class UnitOfWork {
  private readonly current = new AsyncLocalStorage<Transaction>();
  /** The connection `limited` holds, outside a transaction, for its work's statements. */
  private readonly pinned = new AsyncLocalStorage<EntityManager>();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  get manager(): EntityManager {
    return this.current.getStore()?.manager ?? this.pinned.getStore() ?? this.dataSource.manager;
  }

  /** True inside `run`: a failure there aborts the whole enclosing transaction. */
  get inTransaction(): boolean {
    return this.current.getStore() !== undefined;
  }

  /** True inside `savepoint` (within a transaction): a row lock taken now may not last. */
  get inSavepoint(): boolean {
    return (this.current.getStore()?.savepoints ?? 0) > 0;
  }

  /**
   * How many savepoints of the transaction under way have been rolled back: a row lock taken
   * since this was last read, in a savepoint, may have been released by one.
   */
  get rollbacks(): number {
    return this.current.getStore()?.rollbacks ?? 0;
  }

  run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const active = this.current.getStore();
    if (active) {
      return work(active.manager);
    }
    return this.transaction(work);
  }

  /**
   * Runs `work` so that a statement failing in it fails only `work`: inside a transaction, in a
   * savepoint rolled back on error (else PostgreSQL aborts the whole transaction, and everything
   * after fails with it); outside one, each statement commits or fails on its own already. For
   * what a write does on the side and must not take the write down with it.
   */
  async savepoint<T>(work: () => Promise<T>): Promise<T> {
    const active = this.current.getStore();
    if (!active) return work();
    await active.manager.query('SAVEPOINT unit_of_work');
    let result: T;
    active.savepoints++;
    try {
      result = await work();
    } catch (error) {
      active.rollbacks++;
      // Should this fail too (the connection is gone), its error is the one that says so.
      await active.manager.query('ROLLBACK TO SAVEPOINT unit_of_work');
      throw error;
    } finally {
      active.savepoints--;
    }
    await active.manager.query('RELEASE SAVEPOINT unit_of_work');
    return result;
  }

  /**
   * Runs `work` as a transaction of its own inside the one under way: in a savepoint, with its
   * own before-commit hooks (run at its end, still inside the savepoint) and its own state. On
   * failure its writes are rolled back and what it gathered is forgotten, while the enclosing
   * transaction, and the row locks it took before, go on: for a use case that must record the
   * failure of its work under the same lock (an HL7 message another instance waits for).
   * Outside a transaction: `run`.
   *
   * The inner unit counts its own savepoints, from none: in it `inSavepoint` is false even when
   * the enclosing unit is inside `savepoint`. That suits what the inner unit gathers, which its
   * own before-commit hooks use while its locks are still held, but not a lock meant to outlast
   * it: the enclosing savepoint, rolled back later, releases that lock too. Savepoints here have
   * fixed names, which PostgreSQL resolves to the latest one of that name: this is safe only
   * while they are opened and closed in LIFO order, one awaited inside another, never two at
   * once in one transaction (as under a Promise.all).
   *
   * With `keep`, a savepoint that `work` leaves without error is not released: its writes stay
   * in it until the enclosing transaction ends, which releases it at commit. For a caller that
   * only records an outcome after `work` and commits (an HL7 message): the RELEASE was one
   * round trip more per message. A later nested unit's savepoint of the same name is the
   * latest, which a rollback of that unit resolves to, so the LIFO rule above still holds.
   */
  async nested<T>(work: () => Promise<T>, { keep = false }: { keep?: boolean } = {}): Promise<T> {
    const parent = this.current.getStore();
    if (!parent) return this.run(work);
    await parent.manager.query('SAVEPOINT unit_of_work_nested');
    const inner: Transaction = {
      manager: parent.manager,
      beforeCommit: [],
      afterCommit: [],
      state: new Map(),
      savepoints: 0,
      rollbacks: 0,
    };
    let result: T;
    try {
      result = await this.current.run(inner, async () => {
        const done = await work();
        while (inner.beforeCommit.length > 0) {
          await inner.beforeCommit.shift()!();
        }
        return done;
      });
    } catch (error) {
      parent.rollbacks++;
      // Should this fail too (the connection is gone), its error is the one that says so.
      await parent.manager.query('ROLLBACK TO SAVEPOINT unit_of_work_nested');
      throw error;
    }
    if (!keep) await parent.manager.query('RELEASE SAVEPOINT unit_of_work_nested');
    parent.afterCommit.push(...inner.afterCommit);
    return result;
  }

  /**
   * Runs `work` reading one snapshot of the database: in a REPEATABLE READ READ ONLY
   * transaction of its own, so that what several statements read agrees (a count and the page
   * it counts) whatever commits meanwhile; inside a transaction already, in that one.
   */
  snapshot<T>(work: () => Promise<T>): Promise<T> {
    if (this.current.getStore()) return work();
    return (this.pinned.getStore() ?? this.dataSource).transaction(async (manager) => {
      await manager.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const transaction: Transaction = {
        manager,
        beforeCommit: [],
        afterCommit: [],
        state: new Map(),
        savepoints: 0,
        rollbacks: 0,
      };
      return this.current.run(transaction, work);
    });
  }

  /**
   * Runs `work` with its statements cancelled by PostgreSQL past `timeoutMs` (0: the
   * connection's own limit), for a search. Outside a transaction, `work` holds one connection,
   * and a timer cancels what runs on it at `timeoutMs` (limitedAlone). Inside one, the limit is
   * `SET LOCAL statement_timeout` for `work` only, the one before restored after it, so that the
   * writes around it keep theirs. It only ever lowers the limit.
   */
  async limited<T>(timeoutMs: number, work: () => Promise<T>): Promise<T> {
    const ms = Math.trunc(timeoutMs);
    if (ms <= 0) return work();
    const active = this.current.getStore();
    if (!active) return this.limitedAlone(ms, work);
    // current_setting, not the pg_settings view: planning and scanning the view's 350 rows cost
    // about 4 ms of the server's CPU, more than the search it limits.
    const lower = `SELECT set_config('statement_timeout', $1, true)
      WHERE current_setting('statement_timeout')::interval = interval '0'
         OR current_setting('statement_timeout')::interval > $1::interval`;
    const [before] = await active.manager.query<{ setting: string }[]>(
      `SELECT current_setting('statement_timeout') AS setting`,
    );
    await active.manager.query(lower, [`${ms}ms`]);
    const restore = () =>
      active.manager.query(`SELECT set_config('statement_timeout', $1, true)`, [before!.setting]);
    let result: T;
    try {
      result = await work();
    } catch (error) {
      // A failed statement has aborted the transaction, which then restores nothing: the
      // error that matters is work's.
      await restore().catch(() => undefined);
      throw error;
    }
    await restore();
    return result;
  }

  /**
   * `limited` outside a transaction, at no cost in statements: the transaction with a
   * `SET LOCAL statement_timeout` that it replaced took three more round trips per search
   * (BEGIN, the SET, COMMIT), each about 100 µs of this process's CPU on a 2-core machine, and
   * searches by identifier ran at 0.8 of the rate they reach without them. Past `ms`, the timer
   * asks PostgreSQL to cancel the statement running (the protocol's cancel request, on a
   * connection of its own, as psql's Ctrl-C) and closes the held connection, so that a statement
   * the cancel missed (sent between two) cannot run, and the pool opens a new one. The error is
   * the statement timeout's, answered 503 too-costly.
   */
  private async limitedAlone<T>(ms: number, work: () => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const client = (await runner.connect()) as Backend;
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      cancelAndClose(client);
    }, ms);
    try {
      return await this.pinned.run(runner.manager, work);
    } catch (error) {
      if (!expired) throw error;
      throw Object.assign(
        new Error(`canceling statement due to statement timeout (SEARCH_TIMEOUT_MS, ${ms} ms)`),
        { code: '57014', cause: error },
      );
    } finally {
      clearTimeout(timer);
      await release(runner, expired);
    }
  }

  private async transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const afterCommit: (() => void)[] = [];
    const result = await (this.pinned.getStore() ?? this.dataSource).transaction((manager) => {
      const transaction: Transaction = {
        manager,
        beforeCommit: [],
        afterCommit,
        state: new Map(),
        savepoints: 0,
        rollbacks: 0,
      };
      return this.current.run(transaction, async () => {
        const result = await work(manager);
        // A hook may add work, and so hooks of its own: run until none is left.
        while (transaction.beforeCommit.length > 0) {
          await transaction.beforeCommit.shift()!();
        }
        return result;
      });
    });
    for (const hook of afterCommit) hook();
    return result;
  }

  /**
   * Runs `hook` once the outermost `run` has done all its work, inside its transaction, before
   * it commits: checks that hold for the transaction as a whole (a Bundle may create a
   * resource after an entry that refers to it). A hook that throws rolls everything back.
   */
  beforeCommit(hook: () => Promise<void>): void {
    const active = this.current.getStore();
    if (!active) {
      throw new Error('beforeCommit needs a transaction: call it inside UnitOfWork.run');
    }
    active.beforeCommit.push(hook);
  }

  /**
   * `owner`'s state for the transaction under way, made by `create` on first use, when `atCommit`
   * is queued with it as a beforeCommit hook: for what a service gathers over a transaction's
   * writes (a Bundle's many) and acts on once, at its end.
   */
  stateOf<T>(owner: object, create: () => T, atCommit: (state: T) => Promise<void>): T {
    const active = this.current.getStore();
    if (!active) {
      throw new Error('stateOf needs a transaction: call it inside UnitOfWork.run');
    }
    if (!active.state.has(owner)) {
      const fresh = create();
      active.state.set(owner, fresh);
      active.beforeCommit.push(() => atCommit(fresh));
    }
    return active.state.get(owner) as T;
  }

  /** `owner`'s state for the transaction under way, if it has made one (stateOf). */
  existingStateOf<T>(owner: object): T | undefined {
    return this.current.getStore()?.state.get(owner) as T | undefined;
  }

  /**
   * Runs `hook` once the outermost `run` has committed, and never if it rolls back: for what
   * this process keeps in memory about committed data. Outside a transaction each statement
   * commits as it runs, so the hook runs at once. Synchronous, and must not throw: the
   * transaction has committed, whatever the hook does.
   */
  afterCommit(hook: () => void): void {
    const active = this.current.getStore();
    if (active) active.afterCommit.push(hook);
    else hook();
  }
}

/** What node-postgres keeps of its connection's backend, for a cancel request. */
interface Backend {
  host: string;
  port: number;
  processID: unknown;
  secretKey: unknown;
  end(): Promise<void>;
}

/**
 * PostgreSQL's cancel request for what `client` runs (protocol message CancelRequest: length 16,
 * code 80877102, the backend's process id and key, on a connection of its own), then `client`
 * closed. node-postgres's own `cancel` reads a deprecated property and cancels only a statement
 * it is still waiting on.
 */
function cancelAndClose(client: Backend): void {
  const { host, port, processID, secretKey } = client;
  if (typeof processID === 'number' && typeof secretKey === 'number') {
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(80877102, 4);
    request.writeInt32BE(processID, 8);
    request.writeInt32BE(secretKey, 12);
    const socket = host.startsWith('/') ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host);
    socket.on('error', () => undefined).on('connect', () => socket.end(request));
  }
  client.end().catch(() => undefined);
}

/** Back to the pool; closed (`broken`), the pool drops it and opens another when it needs one. */
function release(runner: QueryRunner, broken: boolean): Promise<void> {
  if (!broken) return runner.release();
  const closing = runner as QueryRunner & {
    releasePostgresConnection(error: Error): Promise<void>;
  };
  return closing.releasePostgresConnection(new Error('closed past the search timeout'));
}
