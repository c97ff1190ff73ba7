import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The newest HL7 event time (EVN-2, else MSH-7) applied to a record a feed keeps up to date (a
 * Patient's details, a visit's details and its status), so that an older message arriving late
 * (a queue replayed out of order) does not write over newer data. A time, not PHI: the
 * resource's own last_updated is as close to it. Gone with the resource row. Kept per sender
 * (MSH-3/MSH-4): a feed's messages are ordered by its own clock, and a lab's clock running
 * minutes ahead of the admission system's must not make the latter's newer A08 look older.
 */
export class Hl7EventClock1767183000000 implements MigrationInterface {
  name = 'Hl7EventClock1767183000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "hl7_event_clock" (
        "resource_type" text NOT NULL,
        "resource_id" text NOT NULL,
        "source" text NOT NULL,
        "details_at" timestamptz NOT NULL,
        "status_at" timestamptz,
        CONSTRAINT "pk_hl7_event_clock" PRIMARY KEY ("resource_type", "resource_id", "source"),
        CONSTRAINT "fk_hl7_event_clock_resource" FOREIGN KEY ("resource_type", "resource_id")
          REFERENCES "resource" ("resource_type", "id") ON DELETE CASCADE
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "hl7_event_clock"`);
  }
}
