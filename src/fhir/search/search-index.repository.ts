import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { IndexRows } from './index-rows.js';

const TABLES = [
  'search_token',
  'search_string',
  'search_date',
  'search_reference',
  'search_number',
  'search_quantity',
  'search_uri',
  'search_blind',
] as const;

/**
 * Writes a resource's index rows, replacing the previous version's, inside the caller's
 * transaction (the one that writes the version). One INSERT per table, values as arrays.
 */
@Injectable()
export class SearchIndexRepository {
  async replace(
    manager: EntityManager,
    resourceType: string,
    resourceId: string,
    rows: IndexRows | null,
  ): Promise<void> {
    // Every table's rows in one statement: data-modifying CTEs all run, in one round trip.
    await manager.query(
      `WITH ${TABLES.map(
        (table, i) =>
          `d${i} AS (DELETE FROM "${table}" WHERE resource_type = $1 AND resource_id = $2)`,
      ).join(', ')} SELECT 1`,
      [resourceType, resourceId],
    );
    if (rows) {
      await this.insert(manager, resourceType, resourceId, rows);
    }
  }

  /** The index rows of a resource that has none yet (its first version). */
  async insert(
    manager: EntityManager,
    resourceType: string,
    resourceId: string,
    rows: IndexRows,
  ): Promise<void> {
    const key = [resourceType, resourceId];
    await this.insertRows(
      manager,
      key,
      'search_token',
      ['param', 'system', 'code'],
      ['text', 'text', 'text'],
      rows.tokens.map((r) => [r.param, r.system, r.code]),
    );
    await this.insertRows(
      manager,
      key,
      'search_string',
      ['param', 'value'],
      ['text', 'text'],
      rows.strings.map((r) => [r.param, r.value]),
    );
    await this.insertRows(
      manager,
      key,
      'search_date',
      ['param', 'low', 'high'],
      ['text', 'timestamptz', 'timestamptz'],
      rows.dates.map((r) => [r.param, r.low.toISOString(), r.high.toISOString()]),
    );
    await this.insertRows(
      manager,
      key,
      'search_reference',
      ['param', 'target_type', 'target_id'],
      ['text', 'text', 'text'],
      rows.references.map((r) => [r.param, r.targetType, r.targetId]),
    );
    await this.insertRows(
      manager,
      key,
      'search_number',
      ['param', 'value'],
      ['text', 'numeric'],
      rows.numbers.map((r) => [r.param, r.value]),
    );
    await this.insertRows(
      manager,
      key,
      'search_quantity',
      ['param', 'value', 'system', 'code'],
      ['text', 'numeric', 'text', 'text'],
      rows.quantities.map((r) => [r.param, r.value, r.system, r.code]),
    );
    await this.insertRows(
      manager,
      key,
      'search_uri',
      ['param', 'value'],
      ['text', 'text'],
      rows.uris.map((r) => [r.param, r.value]),
    );
    await this.insertRows(
      manager,
      key,
      'search_blind',
      ['param', 'hash'],
      ['text', 'text'],
      rows.blind.map((r) => [r.param, r.hash]),
    );
  }

  /** INSERT … SELECT $1, $2, unnest(columns…): one statement however many rows. */
  private async insertRows(
    manager: EntityManager,
    key: string[],
    table: string,
    columns: string[],
    types: string[],
    rows: unknown[][],
  ): Promise<void> {
    if (rows.length === 0) {
      return;
    }
    const arrays = columns.map((_, i) => rows.map((row) => row[i]));
    const unnest = types.map((type, i) => `$${i + 3}::${type}[]`).join(', ');
    await manager.query(
      `INSERT INTO "${table}" (resource_type, resource_id, ${columns.join(', ')})
       SELECT $1, $2, * FROM unnest(${unnest})`,
      [...key, ...arrays],
    );
  }
}
