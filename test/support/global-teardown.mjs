import { rm } from 'node:fs/promises';

export default async function globalTeardown() {
  await globalThis.__carevaultStopTestDatabase?.();
  if (globalThis.__carevaultTestScratch) {
    await rm(globalThis.__carevaultTestScratch, { recursive: true, force: true });
  }
}
