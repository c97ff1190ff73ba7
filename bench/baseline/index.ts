/**
 * The benchmark's baseline (issue 7): a minimal Fastify + `pg` service that answers the
 * benchmark's FHIR requests with exactly the database work CareVault does for them (the same
 * statements, round trips, transactions and rows, PHI encrypted with CareVault's FieldCipher,
 * blind-index hashes, the audit row through audit_append()) and nothing else: no Nest, no
 * TypeORM, no FHIR validation, no FHIRPath. `npm run bench` divides CareVault's throughput by
 * this one's. `node dist/bench/baseline/check.js` proves the database work is the same.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import pg from 'pg';
import { BlindIndexer } from '../../src/crypto/blind-index.js';
import { FieldCipher } from '../../src/crypto/field-cipher.js';
import { KEY_BYTES, KeyRing, keyIdOf } from '../../src/crypto/key-ring.js';
import { GroupCommit } from './audit.js';
import { BaselineAuth } from './auth.js';
import { handleErrors } from './http.js';
import { registerRoutes } from './routes.js';
import { BaselineStore } from './store.js';

export interface Baseline {
  url: string;
  /** A bearer token of a user with the doctor role, for every request. */
  token: string;
  close(): Promise<void>;
}

/** CareVault's request body limit (BODY_LIMIT's default). */
const BODY_LIMIT = 1_048_576;

/**
 * Starts the baseline on 127.0.0.1, any free port.
 * @param options.databaseUrl - a database migrated with CareVault's migrations.
 * @param options.phiMasterKey - PHI_MASTER_KEY's format: comma-separated base64 keys of 32
 *   bytes, the first encrypting, the last the blind-index root.
 */
export async function startBaseline(options: {
  databaseUrl: string;
  phiMasterKey: string;
}): Promise<Baseline> {
  const ring = keyRing(options.phiMasterKey);
  // CareVault's pool: TypeORM's node-postgres pool of 20 (database-options.ts).
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 20,
    application_name: 'carevault-baseline',
    connectionTimeoutMillis: 5000,
  });
  const store = new BaselineStore(pool, new FieldCipher(ring), new BlindIndexer(ring));
  const audit = new GroupCommit(pool);
  const auth = await BaselineAuth.create();
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT, genReqId: () => randomUUID() });
  // JSON bodies through Fastify's own parser, which refuses prototype poisoning as CareVault does.
  app.addContentTypeParser(
    'application/fhir+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  handleErrors(app, audit);
  registerRoutes(app, { store, audit, auth });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
  } catch (error) {
    await pool.end();
    throw error;
  }
  const { port } = app.server.address() as AddressInfo;
  const token = await auth.token({
    id: randomUUID(),
    // The length of benchToken()'s user names, so audit rows are the same size.
    username: `bench-${randomUUID().slice(0, 8)}`,
    roles: ['doctor'],
  });
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    close: async () => {
      await app.close();
      await audit.flush();
      await pool.end();
    },
  };
}

/** The key ring PHI_MASTER_KEY gives CareVault (KeyStore.load). */
function keyRing(phiMasterKey: string): KeyRing {
  const keys = phiMasterKey.split(',').map((encoded) => {
    const material = Buffer.from(encoded.trim(), 'base64');
    if (material.length !== KEY_BYTES) {
      throw new Error(`Each PHI key must be ${KEY_BYTES} bytes of base64`);
    }
    return { id: keyIdOf(material), material };
  });
  const [first] = keys;
  const last = keys[keys.length - 1];
  if (!first || !last) throw new Error('No PHI key given');
  return new KeyRing(keys, first.id, last.id);
}
