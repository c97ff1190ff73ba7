import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DataSource, EntityManager } from 'typeorm';

/**
 * The transaction a use case runs in. Repositories read and write through `manager`, and wrap
 * multi-statement writes in `run`: alone, that is a transaction of its own; inside a FHIR
 * transaction Bundle, it joins the Bundle's one transaction, so every entry commits or none.
 */
@Injectable()
export class UnitOfWork {
  private readonly current = new AsyncLocalStorage<EntityManager>();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  get manager(): EntityManager {
    return this.current.getStore() ?? this.dataSource.manager;
  }

  /** True inside `run`: a failure there aborts the whole enclosing transaction. */
  get inTransaction(): boolean {
    return this.current.getStore() !== undefined;
  }

  run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const manager = this.current.getStore();
    if (manager) {
      return work(manager);
    }
    return this.dataSource.transaction((transactional) =>
      this.current.run(transactional, () => work(transactional)),
    );
  }
}
