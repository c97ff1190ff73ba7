// Runs before each e2e file, in its worker: the worker's own copy of the test database and its
// own data directory (global-setup.mjs makes the databases), so that two files running at the
// same time share neither rows nor key files. The environment here is the file's own copy of the
// worker's, so the worker's values stay the base ones for the next file.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const worker = process.env['JEST_WORKER_ID'] ?? '1';
const url = new URL(process.env['DATABASE_URL']!);
url.pathname = `${url.pathname}_w${worker}`;
process.env['DATABASE_URL'] = url.toString();
process.env['DATA_DIR'] = join(process.env['DATA_DIR']!, `w${worker}`);
mkdirSync(process.env['DATA_DIR'], { recursive: true });
