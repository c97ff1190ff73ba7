import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Search index tables, one per parameter type, rewritten with each resource version in the
 * same transaction. PHI parameters live only in search_blind, as keyed hashes.
 */
const TABLES: Record<string, string> = {
  search_token: `"system" text, "code" text NOT NULL`,
  search_string: `"value" text NOT NULL`,
  search_date: `"low" timestamptz NOT NULL, "high" timestamptz NOT NULL`,
  search_reference: `"target_type" text NOT NULL, "target_id" text NOT NULL`,
  search_number: `"value" numeric NOT NULL`,
  search_quantity: `"value" numeric NOT NULL, "system" text, "code" text`,
  search_uri: `"value" text NOT NULL`,
  search_blind: `"hash" text NOT NULL`,
};

const LOOKUPS: Record<string, string> = {
  search_token: `("resource_type", "param", "code", "system")`,
  search_string: `("resource_type", "param", "value" text_pattern_ops)`,
  search_date: `("resource_type", "param", "low", "high")`,
  search_reference: `("target_type", "target_id", "param", "resource_type")`,
  search_number: `("resource_type", "param", "value")`,
  search_quantity: `("resource_type", "param", "value")`,
  search_uri: `("resource_type", "param", "value")`,
  search_blind: `("resource_type", "param", "hash")`,
};

export class CreateSearchIndex1764300000000 implements MigrationInterface {
  name = 'CreateSearchIndex1764300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const [table, columns] of Object.entries(TABLES)) {
      await queryRunner.query(`
        CREATE TABLE "${table}" (
          "resource_type" text NOT NULL,
          "resource_id" text NOT NULL,
          "param" text NOT NULL,
          ${columns}
        )`);
      await queryRunner.query(
        `CREATE INDEX "idx_${table}_resource" ON "${table}" ("resource_type", "resource_id")`,
      );
      await queryRunner.query(`CREATE INDEX "idx_${table}_lookup" ON "${table}" ${LOOKUPS[table]}`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of Object.keys(TABLES).reverse()) {
      await queryRunner.query(`DROP TABLE "${table}"`);
    }
  }
}
