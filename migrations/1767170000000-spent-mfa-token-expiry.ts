import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Expired spent MFA tokens of every user go at any MFA sign-in (src/auth/spent-ids.ts), not
 * only the signing-in user's: the index finds them without reading the table, as
 * idx_backend_client_assertion_expires does for spent client assertions.
 */
export class SpentMfaTokenExpiry1767170000000 implements MigrationInterface {
  name = 'SpentMfaTokenExpiry1767170000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX "idx_spent_mfa_token_expires" ON "spent_mfa_token" ("expires_at")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "idx_spent_mfa_token_expires"`);
  }
}
