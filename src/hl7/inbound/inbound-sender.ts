import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Hl7Sender } from '../../config/hl7-destinations.js';
import type { Hl7Header } from '../message/hl7-header.js';

/**
 * The sender (MSH-3 and MSH-4) of the HL7 message being processed, for what its writes set off
 * in the same transaction: the outbox sends a feed's change on, but not back to its sender.
 */
@Injectable()
export class InboundSender {
  private readonly storage = new AsyncLocalStorage<Hl7Sender>();

  run<T>(header: Hl7Header, work: () => Promise<T>): Promise<T> {
    const components = (value: string): string[] => value.split(header.delimiters.component);
    return this.storage.run(
      {
        application: components(header.sendingApplication),
        facility: components(header.sendingFacility),
      },
      work,
    );
  }

  /** Undefined outside the processing of a message. */
  get current(): Hl7Sender | undefined {
    return this.storage.getStore();
  }
}
