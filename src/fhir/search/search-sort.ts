import { AppError } from '../../common/errors/app-error.js';
import type { SearchDefinitions } from './search-definitions.js';
import type { SortKey } from './search-request.js';
import type { SqlParams } from './sql-params.js';

/** One ORDER BY key: its SQL, the type its cursor value is cast to, and its direction. */
export interface SortColumn {
  sql: string;
  cast: 'text' | 'timestamptz' | 'numeric';
  descending: boolean;
}

const AGGREGATES: Record<
  string,
  { table: string; column: (desc: boolean) => string; cast: SortColumn['cast']; missing: string }
> = {
  string: { table: 'search_string', column: () => 'value', cast: 'text', missing: "''" },
  token: { table: 'search_token', column: () => 'code', cast: 'text', missing: "''" },
  date: {
    table: 'search_date',
    column: (desc) => (desc ? 'high' : 'low'),
    cast: 'timestamptz',
    missing: "'-infinity'::timestamptz",
  },
  number: {
    table: 'search_number',
    column: () => 'value',
    cast: 'numeric',
    missing: "'-Infinity'::numeric",
  },
  quantity: {
    table: 'search_quantity',
    column: () => 'value',
    cast: 'numeric',
    missing: "'-Infinity'::numeric",
  },
};

/**
 * The ORDER BY of a search, from an allow-list: `_id`, `_lastUpdated`, and the type's string,
 * token, date, number and quantity parameters that are not PHI (blind hashes have no order).
 * Anything else is a 400, so _sort can never carry SQL. The id is always the last key, which
 * makes the order total and keyset paging exact.
 */
export function sortColumns(
  type: string,
  keys: readonly SortKey[],
  definitions: SearchDefinitions,
  params: SqlParams,
): SortColumn[] {
  const columns: SortColumn[] = keys.map(({ code, descending }) => {
    if (code === '_id') {
      return { sql: 'r.id', cast: 'text', descending };
    }
    if (code === '_lastUpdated') {
      return { sql: 'r.last_updated', cast: 'timestamptz', descending };
    }
    const param = definitions.param(type, code);
    if (!param) {
      throw AppError.invalid(`_sort: unknown search parameter ${code} for ${type}`);
    }
    if (param.phi) {
      throw AppError.invalid(
        `_sort: ${code} cannot be sorted on: it is stored encrypted and indexed only as keyed hashes`,
      );
    }
    const aggregate = AGGREGATES[param.type];
    if (!aggregate) {
      throw AppError.of(
        400,
        'not-supported',
        `_sort: ${param.type} parameters cannot be sorted on`,
      );
    }
    const fn = descending ? 'max' : 'min';
    const sql = `COALESCE((SELECT ${fn}(s.${aggregate.column(descending)}) FROM ${aggregate.table} s WHERE s.resource_type = r.resource_type AND s.resource_id = r.id AND s.param = ${params.add(code)}), ${aggregate.missing})`;
    return { sql, cast: aggregate.cast, descending };
  });
  if (!keys.some((key) => key.code === '_id')) {
    columns.push({ sql: 'r.id', cast: 'text', descending: false });
  }
  return columns;
}

/**
 * Rows strictly after (or, for a previous page, before) the cursor's row in this order:
 * (k1 > v1) OR (k1 = v1 AND k2 > v2) OR … with each key's own direction.
 */
export function keysetCondition(
  columns: readonly SortColumn[],
  values: readonly string[],
  backwards: boolean,
  params: SqlParams,
): string {
  const bound = columns.map((column, i) => `${params.add(values[i])}::${column.cast}`);
  const branches = columns.map((column, i) => {
    const forward = column.descending !== backwards ? '<' : '>';
    const equal = columns.slice(0, i).map((previous, j) => `${previous.sql} = ${bound[j]}`);
    return `(${[...equal, `${column.sql} ${forward} ${bound[i]}`].join(' AND ')})`;
  });
  return `(${branches.join(' OR ')})`;
}

export function orderBy(columns: readonly SortColumn[], backwards: boolean): string {
  return columns
    .map((column) => `${column.sql} ${column.descending !== backwards ? 'DESC' : 'ASC'}`)
    .join(', ');
}
