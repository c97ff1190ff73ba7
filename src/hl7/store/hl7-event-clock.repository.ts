import { Injectable } from '@nestjs/common';
import { UnitOfWork } from '../../database/unit-of-work.js';

/** The newest event times applied to a record (see event-order.ts). */
export interface EventClock {
  detailsAt: Date;
  statusAt: Date | null;
}

/** All SQL of hl7_event_clock, in the caller's unit of work (the message's transaction). */
@Injectable()
export class Hl7EventClockRepository {
  constructor(private readonly unitOfWork: UnitOfWork) {}

  /**
   * Moves the record's clock as `source` (the sender's system, see senderSystem) keeps it on
   * to `at` (its status clock too when the event sets a status),
   * never back, and gives the clock as it is then: a time later than `at` there means a newer
   * event was applied first. One statement per record; the caller holds the record's criteria
   * lock, so messages about it take their turns.
   */
  async advance(
    resourceType: string,
    resourceId: string,
    source: string | undefined,
    at: Date,
    setsStatus: boolean,
  ): Promise<EventClock> {
    const [row] = await this.unitOfWork.manager.query<
      { details_at: Date; status_at: Date | null }[]
    >(
      `INSERT INTO hl7_event_clock AS clock
                   (resource_type, resource_id, source, details_at, status_at)
            VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (resource_type, resource_id, source) DO UPDATE
               SET details_at = GREATEST(clock.details_at, EXCLUDED.details_at),
                   status_at = GREATEST(clock.status_at, EXCLUDED.status_at)
         RETURNING details_at, status_at`,
      [resourceType, resourceId, source ?? '', at, setsStatus ? at : null],
    );
    return { detailsAt: row!.details_at, statusAt: row!.status_at };
  }
}
