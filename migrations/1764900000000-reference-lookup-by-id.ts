import type { MigrationInterface, QueryRunner } from 'typeorm';

const BY_TYPE = `"target_type", "target_id", "param", "resource_type", "resource_id"`;
const BY_ID = `"target_id", "target_type", "param", "resource_type", "resource_id"`;

/**
 * The reference lookup starts with the target's id instead of its type.
 *
 * A reference search with a bare id (`Observation?patient=123`, `subject=123`) names no target
 * type, so an index that starts with the type could not be used: PostgreSQL scanned all of
 * search_reference (180 ms at 240,000 Observations, growing with the table). Ids are as
 * selective as type and id together, and a lookup that names the type too (`Patient/123`,
 * _revinclude, _has, chains, the patient compartment) still matches every column and reads its
 * matches in resource id order, as the keyset paging of SearchRepository.page wants.
 */
export class ReferenceLookupById1764900000000 implements MigrationInterface {
  name = 'ReferenceLookupById1764900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await this.rebuild(queryRunner, BY_ID);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await this.rebuild(queryRunner, BY_TYPE);
  }

  private async rebuild(queryRunner: QueryRunner, columns: string): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_search_reference_lookup"`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "idx_search_reference_lookup" ON "search_reference" (${columns})`,
    );
  }
}
