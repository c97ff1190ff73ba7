import { getMetadataStorage } from 'class-validator';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { EnvironmentVariables, knownVariables } from './env.schema.js';

/**
 * The README's configuration table, `.env.example` and docker-compose.yml against the schema:
 * an operator starts from the example and looks settings up in the table, so a setting missing
 * from either is one they never learn of, and a name the schema does not know is silently
 * ignored (until 2026-12-07 the example listed 44 of the 96).
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): string => readFileSync(`${ROOT}${file}`, 'utf8');

interface Group {
  title: string;
  names: string[];
}

/** The rows of the README's configuration table. */
function readmeRows(): string[] {
  const readme = read('README.md');
  const start = readme.indexOf('\n## Configuration\n');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return section.split('\n').filter((line) => line.startsWith('| '));
}

/** The table's groups (`| **Database** | | |` rows) and the variables of each, in order. */
function readmeGroups(): Group[] {
  // Rows before the first group are kept, in a group without a title.
  const groups: Group[] = [{ title: '', names: [] }];
  for (const row of readmeRows()) {
    const first = row.split('|')[1]!.trim();
    const title = /^\*\*(.+)\*\*$/.exec(first)?.[1];
    if (title) {
      groups.push({ title, names: [] });
    } else if (first.startsWith('`')) {
      // Every backquoted name of the first column: `JWT_ISSUER`, `JWT_AUDIENCE` are two.
      const names = [...first.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
      groups.at(-1)!.names.push(...names);
    }
  }
  return groups.filter((group) => group.title !== '' || group.names.length > 0);
}

/** The example's sections (`# == Database ==`) and the variables each sets, commented or not. */
function exampleGroups(): Group[] {
  const groups: Group[] = [{ title: '', names: [] }];
  for (const line of read('.env.example').split('\n')) {
    const title = /^# == (.+) ==$/.exec(line)?.[1];
    const name = /^(?:# )?([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)?.[1];
    if (title) {
      groups.push({ title, names: [] });
    } else if (name) {
      groups.at(-1)!.names.push(name);
    }
  }
  return groups.filter((group) => group.title !== '' || group.names.length > 0);
}

const namesOf = (groups: Group[]): string[] => groups.flatMap((group) => group.names);
const missing = (names: string[], from: string[]): string[] =>
  names.filter((name) => !from.includes(name));

describe('configuration documentation', () => {
  const known = knownVariables();

  it('knows every variable the schema validates', () => {
    // A property with a validator but neither a default nor a place in OPTIONAL_VARIABLES is
    // never read from the environment (validateEnv picks the variables it knows).
    const validated = getMetadataStorage()
      .getTargetValidationMetadatas(EnvironmentVariables, '', true, false)
      .map((metadata) => metadata.propertyName);
    expect(missing([...new Set(validated)], known)).toEqual([]);
    expect(known.length).toBeGreaterThan(90);
  });

  it('lists every setting in the README table, and no other', () => {
    const documented = namesOf(readmeGroups());
    expect(missing(known, documented)).toEqual([]);
    expect(missing(documented, known)).toEqual([]);
    expect(documented.length).toBe(new Set(documented).size);
  });

  it('gives each default in the README table as the schema has it', () => {
    const shown = new Map<string, string | undefined>();
    for (const row of readmeRows()) {
      const [, names = '', defaults = ''] = row.split('|');
      // `JWT_ISSUER`, `JWT_AUDIENCE` | `carevault`, `carevault-api`: the same order.
      const values = [...defaults.matchAll(/`([^`]*)`/g)].map((match) => match[1]);
      [...names.matchAll(/`([^`]+)`/g)].forEach((match, index) => {
        shown.set(match[1]!, values[index]);
      });
    }
    const defaults = Object.entries(new EnvironmentVariables());
    expect(
      defaults.filter(([name, value]) => shown.get(name) !== String(value)).map(([name]) => name),
    ).toEqual([]);
  });

  it('lists every setting in .env.example, and no other, grouped as the README table', () => {
    const example = exampleGroups();
    expect(missing(known, namesOf(example))).toEqual([]);
    expect(missing(namesOf(example), known)).toEqual([]);
    expect(example).toEqual(readmeGroups());
  });

  it('shows each default in .env.example as the schema has it', () => {
    const shown = new Map(
      [...read('.env.example').matchAll(/^# ([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((match) => [
        match[1]!,
        match[2]!,
      ]),
    );
    const defaults = Object.entries(new EnvironmentVariables());
    expect(defaults.length).toBeGreaterThan(40);
    expect(
      defaults.filter(([name, value]) => shown.get(name) !== String(value)).map(([name]) => name),
    ).toEqual([]);
  });

  it('keeps secrets out of .env.example: the secret variables are commented out', () => {
    const set = read('.env.example')
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => line.slice(0, line.indexOf('=')));
    for (const secret of ['DATABASE_URL', 'PHI_MASTER_KEY', 'REDIS_URL']) {
      expect(set).not.toContain(secret);
    }
  });

  it("gives CareVault's containers in docker-compose.yml known settings only", () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, { build?: string; environment?: Record<string, unknown> }>;
    };
    // The services built from this repository; postgres and redis take their images' variables.
    const ours = Object.values(compose.services).filter((service) => service.build === '.');
    expect(ours.length).toBeGreaterThanOrEqual(2);
    const set = ours.flatMap((service) => Object.keys(service.environment ?? {}));
    expect(set.length).toBeGreaterThan(0);
    expect(missing(set, known)).toEqual([]);
    // What it takes from .env (`${PUBLIC_URL:-…}`) too.
    const interpolated = [...read('docker-compose.yml').matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map(
      (match) => match[1]!,
    );
    expect(interpolated.length).toBeGreaterThan(0);
    expect(missing(interpolated, known)).toEqual([]);
  });
});
