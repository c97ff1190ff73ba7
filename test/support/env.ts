import { join } from 'node:path';

/**
 * Sets environment variables for one test file and puts the old values back afterwards. A
 * database of its own (DATABASE_URL without a DATA_DIR) also gets a checkpoint file of its own:
 * its audit chain is its own, and a checkpoint file serves one chain (README, Signed
 * checkpoints), where the worker's default file would collect several.
 */
export function withEnv(values: Record<string, string | undefined>): () => void {
  const dataDir = process.env['DATA_DIR'];
  if (
    values['DATABASE_URL'] &&
    dataDir &&
    !('DATA_DIR' in values) &&
    !('AUDIT_CHECKPOINT_FILE' in values)
  ) {
    const database = new URL(values['DATABASE_URL']).pathname.slice(1);
    values = {
      ...values,
      AUDIT_CHECKPOINT_FILE: join(dataDir, `audit-checkpoints-${database}.jsonl`),
    };
  }
  const saved = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  apply(values);
  return () => apply(saved);
}

function apply(values: Record<string, string | undefined>): void {
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) {
      delete process.env[key];
    } else {
      process.env[key] = value;
    }
  }
}
