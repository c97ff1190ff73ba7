import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which key is the blind-index root of the stored data: its id and a check value derived from it
 * (KeyRing.blindIndexRootCheck), never the key. One row, written by the first service start
 * (src/crypto/blind-index-root.ts); a start whose key ring has another root is refused, as every
 * search index, HL7 resend hash and conditional-write lock is keyed by it.
 */
export class BlindIndexRoot1767236000000 implements MigrationInterface {
  name = 'BlindIndexRoot1767236000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "blind_index_root" (
        "singleton" boolean NOT NULL DEFAULT true,
        "key_id" text NOT NULL,
        "check_value" text NOT NULL,
        "recorded_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "pk_blind_index_root" PRIMARY KEY ("singleton"),
        CONSTRAINT "chk_blind_index_root_singleton" CHECK ("singleton")
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "blind_index_root"`);
  }
}
