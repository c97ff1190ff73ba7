import { rm } from 'node:fs/promises';
import { adminQuery } from './global-setup.mjs';

export default async function globalTeardown() {
  const workers = globalThis.__carevaultWorkerDatabases;
  if (workers) {
    await adminQuery(workers.url, async (client) => {
      for (const name of workers.names) {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }
    });
  }
  await globalThis.__carevaultStopTestDatabase?.();
  if (globalThis.__carevaultTestScratch) {
    await rm(globalThis.__carevaultTestScratch, { recursive: true, force: true });
  }
}
