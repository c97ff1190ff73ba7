import pg from 'pg';
import { instantCondition, rangeCondition, type Prefix } from '../../src/fhir/search/prefixes.js';

const PREFIXES: Prefix[] = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'];

/**
 * `_lastUpdated` compares the column itself (instantCondition), so that an index serves it, where
 * it used to compare a millisecond-wide range starting at it (rangeCondition). PostgreSQL decides
 * both for instants on and around every bound: they must agree everywhere.
 */
describe('instantCondition', () => {
  let db: pg.Client;

  beforeAll(async () => {
    db = new pg.Client({ connectionString: process.env['DATABASE_URL'] });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
  });

  it('matches exactly what the millisecond-wide range matched, for every prefix', async () => {
    const low = '2026-05-17T10:00:00.000Z';
    const high = '2026-05-17T10:00:01.000Z';
    const offsets = [-1500, -1000, -999.5, -1, -0.5, 0, 0.5, 1, 500, 999, 999.5, 1000, 1001, 2000];
    // Microseconds since the epoch: PostgreSQL keeps them; meta.lastUpdated shows milliseconds.
    const instants = [low, high].flatMap((bound) =>
      offsets.map((ms) => Math.round((Date.parse(bound) + ms) * 1000)),
    );
    const qLow = () => `'${low}'::timestamptz`;
    const qHigh = () => `'${high}'::timestamptz`;
    const columns = PREFIXES.flatMap((prefix) => [
      `${rangeCondition(prefix, 't', "(t + interval '1 millisecond')", qLow, qHigh)} AS "range_${prefix}"`,
      `${instantCondition(prefix, 't', qLow, qHigh)} AS "instant_${prefix}"`,
    ]);
    const { rows } = await db.query<Record<string, boolean>>(
      `SELECT ${columns.join(', ')}
         FROM unnest($1::bigint[]) AS micros, LATERAL (SELECT to_timestamp(0) + micros * interval '1 microsecond' AS t) i`,
      [instants],
    );
    expect(rows).toHaveLength(instants.length);
    for (const row of rows) {
      for (const prefix of PREFIXES) {
        expect({ prefix, instant: row[`instant_${prefix}`] }).toEqual({
          prefix,
          instant: row[`range_${prefix}`],
        });
      }
    }
    // Both sides of each bound occur: the comparison is not vacuous.
    expect(new Set(rows.map((row) => row['range_eq']))).toEqual(new Set([true, false]));
  });
});
