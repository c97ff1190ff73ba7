import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes a run's figures to bench/results/<kind>-<time>.json and says where. */
export async function writeResults(kind: string, data: unknown): Promise<string> {
  const out = join(process.cwd(), 'bench', 'results');
  await mkdir(out, { recursive: true });
  const file = join(out, `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(data, null, 2));
  process.stderr.write(`Wrote ${file}\n`);
  return file;
}
