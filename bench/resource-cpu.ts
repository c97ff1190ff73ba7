/**
 * npm run bench:cpu [-- --passes 5]: the CPU one stored resource costs CareVault's Node thread
 * before any SQL, measured on the Synthea resources (../shared/fhir-samples/synthea): validation
 * against the R4 definitions, the patients whose compartment holds it (the access check and
 * audit row of every write), search index extraction (blind-index HMACs included), and
 * serialization with the two encryptions a write makes (the version row and the current row are
 * bound to different rows). One thread, no I/O: the figures depend on the CPU alone, unlike the
 * throughput runs, so they say how many resources per second one core can prepare at most.
 * Prints a markdown table and writes JSON to bench/results/. Not part of npm test.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { PatientCompartment } from '../src/access/patient-compartment.js';
import { BlindIndexer } from '../src/crypto/blind-index.js';
import { FieldCipher } from '../src/crypto/field-cipher.js';
import { KeyRing } from '../src/crypto/key-ring.js';
import { FhirDefinitions } from '../src/fhir/fhir-definitions.js';
import type { FhirResource } from '../src/fhir/fhir-types.js';
import { ResourceValidator } from '../src/fhir/resource-validator.js';
import { IndexExtractor } from '../src/fhir/search/index-extractor.js';
import { SearchDefinitions } from '../src/fhir/search/search-definitions.js';
import { syntheaBundles } from './workloads.js';
import { writeResults } from './results-file.js';

const args = process.argv.slice(2);
const PASSES = Number(args[args.indexOf('--passes') + 1] ?? 5) || 5;

type Step = 'validate' | 'compartment' | 'index' | 'encrypt';
const STEPS: readonly Step[] = ['validate', 'compartment', 'index', 'encrypt'];

async function main(): Promise<void> {
  const bundles = await syntheaBundles();
  const resources = [...bundles.shared, ...bundles.patients.map((p) => p.body)].flatMap((body) =>
    (JSON.parse(body) as { entry: { resource: FhirResource }[] }).entry.map((e) => e.resource),
  );
  const key = { id: 'bench', material: randomBytes(32) };
  const ring = new KeyRing([key], key.id, key.id);
  // What a write calls: Synthea's resources are all validated in place, none on the worker.
  const validator = new ResourceValidator(new FhirDefinitions());
  const compartment = new PatientCompartment();
  const extractor = new IndexExtractor(new SearchDefinitions(), new BlindIndexer(ring));
  const cipher = new FieldCipher(ring);
  const run: Record<Step, (resource: FhirResource, i: number) => void | Promise<void>> = {
    validate: (resource) => validator.validate(resource),
    compartment: (resource) => void compartment.patientsOf(resource),
    index: (resource) => void extractor.extract(resource),
    encrypt: (resource, i) => {
      const content = JSON.stringify(resource);
      const id = String(i);
      cipher.encrypt(content, { table: 'resource_history', column: 'content', row: [id, '1'] });
      cipher.encrypt(content, { table: 'resource', column: 'content', row: [id] });
    },
  };

  // Per pass and step, the total time of each resource type; the first pass warms the JIT.
  const passes: Record<Step, Map<string, number>>[] = [];
  for (let pass = 0; pass <= PASSES; pass++) {
    const totals = Object.fromEntries(STEPS.map((s) => [s, new Map<string, number>()])) as Record<
      Step,
      Map<string, number>
    >;
    for (const step of STEPS) {
      for (const [i, resource] of resources.entries()) {
        const start = process.hrtime.bigint();
        const pending = run[step](resource, i);
        if (pending) await pending;
        const ns = Number(process.hrtime.bigint() - start);
        const byType = totals[step];
        byType.set(resource.resourceType, (byType.get(resource.resourceType) ?? 0) + ns);
      }
    }
    if (pass > 0) passes.push(totals);
  }

  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r.resourceType, (counts.get(r.resourceType) ?? 0) + 1);
  const types = [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)!);
  // Median over the passes of the mean µs per resource, for one type or all of them.
  const micros = (step: Step, type?: string): number => {
    const per = passes.map((totals) => {
      const ns = type
        ? (totals[step].get(type) ?? 0)
        : [...totals[step].values()].reduce((a, b) => a + b, 0);
      return ns / 1000 / (type ? counts.get(type)! : resources.length);
    });
    return per.sort((a, b) => a - b)[Math.floor(per.length / 2)]!;
  };
  const row = (label: string, n: number, type?: string) => {
    const [v, c, x, e] = STEPS.map((step) => micros(step, type));
    const total = v! + c! + x! + e!;
    return {
      label,
      resources: n,
      validateUs: v!,
      compartmentUs: c!,
      indexUs: x!,
      encryptUs: e!,
      totalUs: total,
      perCoreSecond: Math.floor(1e6 / total),
    };
  };
  const rows = [row('All', resources.length), ...types.map((t) => row(t, counts.get(t)!, t))];

  const f = (n: number) => n.toFixed(0);
  const lines = [
    '',
    `${resources.length} Synthea resources, median of ${PASSES} passes after a warm-up pass; µs of one thread per resource:`,
    '',
    '| Type | Resources | Validation µs | Compartment µs | Index rows µs | JSON + 2 encryptions µs | Total µs | At most /s per core |',
    '| --- | --: | --: | --: | --: | --: | --: | --: |',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.resources} | ${f(r.validateUs)} | ${f(r.compartmentUs)} | ${f(r.indexUs)} | ${f(r.encryptUs)} | ${f(r.totalUs)} | ${r.perCoreSecond.toLocaleString('en-US')} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await writeResults('cpu', { passes: PASSES, node: process.version, rows });
}

await main();
