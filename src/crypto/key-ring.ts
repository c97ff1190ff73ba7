import { createHash, createHmac, hkdfSync } from 'node:crypto';

export const KEY_BYTES = 32;

export interface MasterKey {
  id: string;
  material: Buffer;
}

/** Re-reads the key source: every key, and which one is current. */
export type KeyReloader = () => { keys: MasterKey[]; currentId: string };

/** How often a value under an unknown key may trigger a re-read of the key source. */
const RELOAD_INTERVAL_MS = 5_000;

/**
 * The PHI master keys known to this process. The current key encrypts; every key decrypts.
 * Blind indexes use their own root key, which does not change when the encryption key rotates
 * (rotating it would mean rebuilding every index).
 */
export class KeyRing {
  private readonly byId: Map<string, MasterKey>;
  private readonly dataKeys = new Map<string, Buffer>();

  private lastReload = 0;

  /**
   * @param reload - for a key file: lets a running instance pick up a key that `keys:rotate`
   *   added after it started, instead of failing to read what was re-encrypted under it.
   */
  constructor(
    keys: MasterKey[],
    private current: string,
    readonly blindIndexRootId: string,
    private readonly reload?: KeyReloader,
  ) {
    this.byId = new Map(keys.map((key) => [key.id, key]));
    for (const id of [current, blindIndexRootId]) {
      if (!this.byId.has(id)) {
        throw new Error(`Key ring has no key with id ${id}`);
      }
    }
  }

  /** The key that encrypts new values. */
  get currentId(): string {
    return this.current;
  }

  /** Adds a key and makes it current (rotation); earlier keys keep decrypting. */
  addCurrent(key: MasterKey): void {
    this.byId.set(key.id, key);
    this.current = key.id;
  }

  /**
   * Called on a value under a key this ring does not know: re-reads the key source (at most once
   * per interval) and adopts its keys and current key. Returns whether the key is now known.
   */
  refreshFor(id: string): boolean {
    const now = Date.now();
    if (!this.reload || now - this.lastReload < RELOAD_INTERVAL_MS) {
      return this.has(id);
    }
    this.lastReload = now;
    const { keys, currentId } = this.reload();
    for (const key of keys) {
      this.byId.set(key.id, key);
    }
    if (this.byId.has(currentId)) {
      this.current = currentId;
    }
    return this.has(id);
  }

  get ids(): string[] {
    return [...this.byId.keys()];
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /**
   * The AES-256-GCM key for a master key. It is derived (HKDF-SHA256) rather than the master key
   * itself, so the same master key never serves two purposes.
   */
  dataKey(id: string): Buffer {
    let key = this.dataKeys.get(id);
    if (!key) {
      const master = this.byId.get(id);
      if (!master) {
        throw new Error(`Unknown PHI key id ${id}`);
      }
      key = derive(master.material, 'carevault/phi/aes-256-gcm/v1');
      this.dataKeys.set(id, key);
    }
    return key;
  }

  /**
   * The AES-256-GCM key that seals values handed to clients (search links, pending
   * authorizations, EHR launches) under a master key: a key of its own, so that what anyone may
   * have sealed (an unauthenticated caller chooses an authorization request's content) neither
   * draws on the PHI key's random-IV budget nor makes the PHI key an oracle.
   */
  sealKey(id: string): Buffer {
    const master = this.byId.get(id);
    if (!master) {
      throw new Error(`Unknown PHI key id ${id}`);
    }
    return derive(master.material, 'carevault/seal/v1');
  }

  /** A per-field HMAC key for blind indexes, derived from the blind-index root key. */
  blindIndexKey(field: string): Buffer {
    const root = this.byId.get(this.blindIndexRootId);
    if (!root) {
      throw new Error(`Unknown PHI key id ${this.blindIndexRootId}`);
    }
    return derive(root.material, `carevault/blind-index/v1/${field}`);
  }

  /**
   * A non-secret check value of the blind-index root: the database records it with the root's
   * id, so that a ring whose root differs is refused at start (an id alone is what a version 1
   * key file says, not proof of the key). HMAC under a key of its own HKDF label, which no
   * index uses, of a fixed message.
   */
  get blindIndexRootCheck(): string {
    const root = this.byId.get(this.blindIndexRootId) as MasterKey;
    const key = derive(root.material, 'carevault/blind-index-root-check/v1');
    return createHmac('sha256', key).update('carevault blind-index root').digest('hex');
  }
}

/** A stable, non-secret id for a key: it names the key in envelopes without revealing it. */
export function keyIdOf(material: Buffer): string {
  return (
    'k' +
    createHash('sha256').update('carevault/key-id').update(material).digest('hex').slice(0, 12)
  );
}

function derive(material: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), info, KEY_BYTES));
}
