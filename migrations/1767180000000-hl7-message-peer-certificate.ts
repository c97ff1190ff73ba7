import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The client certificate a message came with over mutual TLS (subject and SHA-256 fingerprint):
 * the sender the handshake authenticated, where MSH-3 is whatever the sender wrote.
 */
export class Hl7MessagePeerCertificate1767180000000 implements MigrationInterface {
  name = 'Hl7MessagePeerCertificate1767180000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "hl7_message" ADD "peer_certificate" text`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "hl7_message" DROP COLUMN "peer_certificate"`);
  }
}
