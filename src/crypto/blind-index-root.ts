import { Injectable } from '@nestjs/common';
import { BlindIndexRootRepository, type RecordedRoot } from './blind-index-root.repository.js';
import { KeyRing } from './key-ring.js';
import { KeyConfigError, KeyStore } from './key-store.js';

/** What keys:status says of the root: the ring's, and the database's where that differs. */
export interface RootStatus {
  keyId: string;
  recorded: RecordedRoot | undefined;
  matches: boolean;
}

/**
 * Holds the deployment to one blind-index root. Every search index, HL7 resend hash
 * (hl7_message.content_hash) and conditional-write lock is keyed by it, so a ring with another
 * root reads every record and finds none of them: searches answer nothing and a conditional
 * create makes a second patient. A key file without its root was refused, but PHI_MASTER_KEY
 * takes its last key as the root, and retiring that key (once keys:status counted nothing under
 * it, as the README said) started with another root, silently, until 2026-12-06.
 */
@Injectable()
export class BlindIndexRoot {
  constructor(
    private readonly ring: KeyRing,
    private readonly store: KeyStore,
    private readonly repository: BlindIndexRootRepository,
  ) {}

  /** Records the ring's root at the first start; refuses a ring whose root is another. */
  async verify(): Promise<void> {
    await this.repository.recordIfNone(this.ring.blindIndexRootId, this.ring.blindIndexRootCheck);
    const { recorded, matches } = await this.status();
    if (!recorded || matches) {
      return;
    }
    throw new KeyConfigError(this.refusal(recorded));
  }

  async status(): Promise<RootStatus> {
    const recorded = await this.repository.recorded();
    const keyId = this.ring.blindIndexRootId;
    const matches =
      !recorded ||
      (recorded.keyId === keyId && recorded.checkValue === this.ring.blindIndexRootCheck);
    return { keyId, recorded, matches };
  }

  private refusal(recorded: RecordedRoot): string {
    const path = this.store.keyFilePath;
    const source = path ? `the key file ${path}` : 'PHI_MASTER_KEY';
    const ours = this.ring.blindIndexRootId;
    const differs =
      recorded.keyId === ours
        ? `${source} names key ${ours} as its root, but holds another key under that id (its ` +
          'check value differs)'
        : `${source}'s is ${ours}`;
    const remedy = path
      ? `put key ${recorded.keyId} back in the key file as its blindIndexRoot (from a backup of the file)`
      : `put key ${recorded.keyId} back as the last key of PHI_MASTER_KEY`;
    return (
      `The blind-index root of this database is key ${recorded.keyId}; ${differs}. Every search ` +
      'index, HL7 resend hash and conditional-write lock is keyed by it: started so, searches ' +
      `would find nothing and conditional creates would store duplicates. Start with it: ${remedy}. ` +
      'The blind-index root cannot be retired.'
    );
  }
}
