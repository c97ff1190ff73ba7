import { relative } from 'node:path';
import { SingleBar } from 'cli-progress';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AppConfig } from '../../config/config.js';
import { BlindIndexRoot } from '../../crypto/blind-index-root.js';
import {
  describeSource,
  findSources,
  loadingPhases,
  NDJSON_CHUNK,
  unitsOf,
  type ImportSource,
  type ImportUnit,
} from './import-sources.js';
import { ImportService, type UnitResult } from './import.service.js';
import { ResourceIds } from './resource-ids.js';
import { referringGroups, storableParts } from './referring-groups.js';
import { integerOption } from '../../cli/integer-option.js';

interface ImportOptions {
  concurrency: number;
  stableIds?: boolean;
}

interface Rejection {
  file: string;
  where: string;
  status: string;
  reason: string;
}

/** How many rejected entries the report lists before it only counts them. */
const LISTED_REJECTIONS = 100;

@Command({
  name: 'import',
  arguments: '<paths...>',
  description:
    'Load FHIR transaction/batch Bundles (.json) and NDJSON files (.ndjson, .ndjson.gz), or folders of them',
})
export class ImportCommand extends CommandRunner {
  constructor(
    private readonly imports: ImportService,
    private readonly root: BlindIndexRoot,
    private readonly config: AppConfig,
  ) {
    super();
  }

  async run(paths: string[], options: ImportOptions): Promise<void> {
    // Indexed under another root, what it stores would be found by nothing the service runs.
    await this.root.verify();
    const { files, skipped } = await findSources(paths);
    if (skipped.length > 0) {
      process.stderr.write(
        `Not read (neither .json, .ndjson nor .ndjson.gz): ${skipped.length} files in the ` +
          'folders given\n' +
          skipped
            .slice(0, LISTED_REJECTIONS)
            .map((file) => `  ${shown(file)}\n`)
            .join('') +
          (skipped.length > LISTED_REJECTIONS
            ? `  ... and ${skipped.length - LISTED_REJECTIONS} more\n`
            : ''),
      );
    }
    if (files.length === 0) {
      throw new Error('No .json, .ndjson or .ndjson.gz files found in the paths given');
    }
    // Read and checked before anything is written: a malformed file stops the import whole.
    const reading = { lineLimit: this.config.bodyLimit };
    const ids = new ResourceIds();
    const sources: ImportSource[] = [];
    for (const file of files) sources.push(await describeSource(file, { ...reading, ids }));
    const total = sources.reduce((sum, source) => sum + source.resources, 0);
    const started = Date.now();
    const bar = progressBar(total);
    // A line that repeats an id read before it is not sent: the first is kept, and the
    // engineer learns of each other one (see ResourceIds).
    const rejections: Rejection[] = sources.flatMap((source) =>
      [...source.repeats].map(([line, { key, first }]) => ({
        file: shown(source.path),
        where: `line ${line}`,
        status: '409',
        reason: `${key} is also ${shown(first.path)} line ${first.line}, which is the one stored`,
      })),
    );
    bar.increment(rejections.length);
    // With --stable-ids, what the shared Bundles write by id, which the patients' Bundles then
    // leave out (see leaveOutShared).
    const sharedKeys = new Set(
      sources.filter((source) => source.shared).flatMap((source) => [...source.stableKeys]),
    );
    const waiting: Waiting[] = [];
    let written = 0;
    // For the account of a run stopped by a failure: the files whose units were all sent, and
    // those with lines that still wait (sent again after every file, see below).
    const sent = new Set<ImportSource>();
    const waitedIn = new Set<ImportSource>();
    let failure: { error: unknown } | undefined;
    const settle = (source: ImportSource, result: UnitResult, entries: number): void => {
      written += result.written;
      if (result.deferred.length > 0) waitedIn.add(source);
      for (const rejected of result.rejected) {
        rejections.push({ file: shown(source.path), ...rejected });
      }
      waiting.push(...result.deferred.map((deferred) => ({ source, ...deferred })));
      bar.increment(entries - result.deferred.length, { speed: rate(written, started) });
    };
    try {
      // Shared bundles (no Patient) first: the others refer to them by conditional reference.
      // NDJSON files after the files they refer to (see loadingPhases).
      for (const phase of loadingPhases(sources)) {
        await pool(phase, options.concurrency, async (source) => {
          for await (const unit of unitsOf(source, {
            ...reading,
            stableIds: options.stableIds ?? false,
            sharedKeys,
          })) {
            const result = await this.imports.load(unit);
            // The entries left out are stored (by the shared Bundle) when the rest is.
            const leftOut = unit.leftOut ?? 0;
            if (result.rejected.length === 0) result.written += leftOut;
            settle(source, result, (unit.bundle.entry?.length ?? 0) + leftOut);
          }
          sent.add(source);
        });
      }
      // Entries whose targets were not stored yet go again while a round stores something.
      // After that, what still waits refers to what the import does not hold, or to entries
      // that wait too: resources that refer to each other (a merged Patient pair's links, an
      // Encounter and its Condition) are stored only together, in a transaction, whose
      // references the server checks when it commits. Each group of entries that refer to one
      // another is one transaction (so a resource that refers to nothing the import holds
      // takes only its own group down, and then only itself and what waits for it: see
      // storeGroup); an entry of no group is rejected.
      for (let round = waiting.splice(0); round.length > 0; round = waiting.splice(0)) {
        const before = written;
        for (const unit of retryUnits(round)) {
          settle(unit.source, await this.imports.load(unit), unit.bundle.entry?.length ?? 0);
        }
        if (written > before) continue;
        for (const group of referringGroups(waiting.splice(0), (item) => item.entry)) {
          for (const { item, refusal } of await this.storeGroup(group)) {
            if (refusal === undefined) written++;
            else rejections.push({ file: shown(item.source.path), where: item.where, ...refusal });
            bar.increment(1, { speed: rate(written, started) });
          }
        }
      }
      waitedIn.clear();
    } catch (error) {
      failure = { error };
    } finally {
      bar.stop();
    }
    if (written > 0 && failure === undefined) {
      process.stderr.write('Updating the planner statistics (ANALYZE)\n');
      await this.imports.analyze();
    }
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(
      `${failure ? 'Stopped: imported' : 'Imported'} ${written} of ${total} resources from ${sources.length} files in ` +
        `${seconds.toFixed(1)} s (${rate(written, started)} resources/s); ` +
        `${rejections.length} rejected\n`,
    );
    if (rejections.length > 0) {
      for (const rejection of rejections.slice(0, LISTED_REJECTIONS)) {
        process.stderr.write(
          `${rejection.file} ${rejection.where}: ${rejection.status} ${rejection.reason}\n`,
        );
      }
      if (rejections.length > LISTED_REJECTIONS) {
        process.stderr.write(`... and ${rejections.length - LISTED_REJECTIONS} more\n`);
      }
      process.exitCode = 1;
    }
    if (failure) {
      // Stopped by the database (gone, restarted) or a defect: what was stored is stored, each
      // Bundle whole or not at all, and the operator needs to know what to run again.
      const unfinished = sources.filter((s) => !sent.has(s) || waitedIn.has(s));
      process.stderr.write(
        'Not imported, or not wholly: import these again (lines with ids, and Bundles with ' +
          '--stable-ids or conditional creates, update what is stored instead of adding copies)\n' +
          unfinished.map((source) => `  ${shown(source.path)}\n`).join(''),
      );
      throw failure.error;
    }
  }

  /**
   * Entries that wait for one another, stored in transactions: each entry's outcome, undefined
   * when it is stored, else why it was refused. The group goes as one transaction first. A
   * refusal there gives one reason for every line, though most may be fine (one line names
   * something the import does not hold), so the group goes again in its smallest parts
   * (storableParts), what a part refers to first, and a part refused goes line by line: each
   * line is stored, or refused for its own reason (a line waiting for a refused one names it).
   * No line is stored twice: a refused transaction stored nothing (load reports a refusal only
   * for an error that rolled it back), and each line is tried again only after a refusal.
   */
  private async storeGroup(group: Waiting[]): Promise<Outcome[]> {
    if (group.length === 1) {
      // Alone, it was refused in the last batch round already: for that reason.
      return group.map((item) => ({ item, refusal: { status: item.status, reason: item.reason } }));
    }
    if ((await this.storeTogether(group)) === undefined) {
      return group.map((item) => ({ item, refusal: undefined }));
    }
    const outcomes: Outcome[] = [];
    for (const part of storableParts(group, (item) => item.entry)) {
      const refusal = await this.storeTogether(part);
      if (refusal === undefined || part.length === 1) {
        outcomes.push(...part.map((item) => ({ item, refusal })));
        continue;
      }
      for (const item of part) outcomes.push({ item, refusal: await this.storeTogether([item]) });
    }
    return outcomes;
  }

  /**
   * Entries that wait for one another, as one transaction: undefined when it is stored, else
   * the status and reason it was refused with.
   */
  private async storeTogether(group: Waiting[]): Promise<Refused | undefined> {
    const result = await this.imports.load({
      source: group[0]!.source,
      bundle: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: group.map((item) => item.entry),
      },
      where: (index) => group[index]?.where ?? '?',
    });
    const refusal = result.rejected[0];
    return refusal && { status: refusal.status, reason: refusal.reason };
  }

  @Option({ flags: '--concurrency <n>', description: 'Files loaded at once', defaultValue: 4 })
  parseConcurrency(value: string): number {
    return integerOption('--concurrency', value, 1, 64);
  }

  @Option({
    flags: '--stable-ids',
    description:
      'Create entries whose fullUrl is urn:uuid:<uuid> with that id (PUT), so that a re-import updates them instead of adding copies (conditional creates, ifNoneExist, stay as they are)',
  })
  parseStableIds(): boolean {
    return true;
  }
}

type Waiting = UnitResult['deferred'][number] & { source: ImportSource };

type Refused = Pick<Rejection, 'status' | 'reason'>;

/** A waiting entry, stored (no refusal) or refused. */
interface Outcome {
  item: Waiting;
  refusal: Refused | undefined;
}

/** Batch Bundles of the entries that wait, by file, each reporting where its entries came from. */
function retryUnits(waiting: Waiting[]): ImportUnit[] {
  const bySource = new Map<ImportSource, Waiting[]>();
  for (const item of waiting) {
    // Pushed, not copied: a copy per line made a round of a million lines quadratic.
    const items = bySource.get(item.source);
    if (items) items.push(item);
    else bySource.set(item.source, [item]);
  }
  const units: ImportUnit[] = [];
  for (const [source, items] of bySource) {
    for (let i = 0; i < items.length; i += NDJSON_CHUNK) {
      const chunk = items.slice(i, i + NDJSON_CHUNK);
      units.push({
        source,
        bundle: { resourceType: 'Bundle', type: 'batch', entry: chunk.map((item) => item.entry) },
        where: (index) => chunk[index]?.where ?? '?',
      });
    }
  }
  return units;
}

/**
 * Runs `work` on every item, `limit` at a time. After a failure no new item starts; the ones
 * under way finish, and then the first failure is thrown.
 */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      await work(item).catch((error: unknown) => {
        failed = true;
        throw error;
      });
    }
  };
  const workers = Array.from({ length: Math.min(limit, items.length) }, worker);
  const failure = (await Promise.allSettled(workers)).find(
    (result) => result.status === 'rejected',
  );
  if (failure) throw failure.reason;
}

/** A path as the user would type it: relative under the working directory, else absolute. */
function shown(path: string): string {
  const local = relative(process.cwd(), path);
  return local.startsWith('..') ? path : local;
}

function rate(resources: number, started: number): number {
  return Math.round(resources / Math.max((Date.now() - started) / 1000, 0.001));
}

/**
 * The progress bar on stderr (stdout keeps the summary for scripts). Without a terminal it
 * prints a line every five seconds instead of redrawing.
 */
function progressBar(total: number): SingleBar {
  const bar = new SingleBar({
    format:
      'Importing [{bar}] {percentage}% | {value}/{total} resources | {speed}/s | ETA {eta_formatted}',
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 5_000,
    etaBuffer: 50,
    hideCursor: true,
  });
  bar.start(total, 0, { speed: 0 });
  return bar;
}
