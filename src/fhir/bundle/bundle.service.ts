import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AuditContext } from '../../audit/audit-context.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import { errorResponse, loggableError } from '../../common/errors/error-response.js';
import { bodyText } from '../../common/http/body-text.js';
import { AUDIT_EVENT_READ_ONLY, auditEventRefusal } from '../../common/http/allowed-methods.js';
import { parseJsonBody } from '../../common/http/json-body.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { entries } from '../bundle.js';
import {
  CascadeDelete,
  cascadeOutcome,
  cascadeRequested,
  splitCascade,
} from '../cascade-delete.js';
import { conditionalReferences, type ConditionalReference } from '../conditional-references.js';
import { criteriaKey } from '../criteria.js';
import { parsePreferReturn } from '../fhir-headers.js';
import type { FhirResource } from '../fhir-types.js';
import { ConditionalWrites } from '../conditional-writes.service.js';
import { CriteriaMatches } from '../criteria-matches.service.js';
import { FhirPatch } from '../fhir-patch.service.js';
import { FhirService, type CheckedCreate } from '../fhir.service.js';
import { Turns } from '../turns.js';
import {
  baseOf,
  ORDER,
  parseEntries,
  resolveEntry,
  resolveJsonPatch,
  type ParsedEntry,
  type RejectedEntry,
} from './bundle-entry.js';
import { BundleReads } from './bundle-reads.js';
import { assertCreatedOnce, createdMatches, foundOwn } from './created-once.js';
import {
  asPreferred,
  failed,
  inEntry,
  prefixed,
  STATUS_TEXT,
  withFullUrl,
  written,
  type EntryResult,
} from './entry-results.js';
import { ReadBudget } from './read-budget.js';
import {
  assertDistinctFullUrls,
  assertEachChangedOnce,
  compareTargets,
  conditionalCriteria,
  isDeleteById,
  lockTarget,
  withPlaceholdersReplaced,
  withPlannedId,
  type Planned,
} from './transaction-plan.js';

/**
 * POST /fhir: batch Bundles (each entry on its own) and transaction Bundles (all entries in one
 * database transaction: any failure rolls everything back). Each entry is checked against the
 * permission matrix and the token's scopes like the single request it stands for.
 */
@Injectable()
export class BundleService {
  private readonly logger = new Logger('Bundle');

  constructor(
    private readonly fhir: FhirService,
    private readonly matches: CriteriaMatches,
    private readonly conditional: ConditionalWrites,
    private readonly patches: FhirPatch,
    private readonly cascades: CascadeDelete,
    private readonly reads: BundleReads,
    private readonly unitOfWork: UnitOfWork,
    private readonly audit: AuditContext,
  ) {}

  /**
   * `prefer` is the request's Prefer header: its `return=` applies to every write entry.
   * `requestId` names the request in what a batch entry that failed unexpectedly logs and answers.
   */
  async process(
    user: AuthenticatedUser,
    body: unknown,
    baseUrl: string,
    prefer?: string,
    requestId?: string,
  ): Promise<FhirResource> {
    const parsed = parseEntries(body);
    const results =
      parsed.type === 'transaction'
        ? await this.transaction(user, parsed.entries, baseUrl)
        : await this.batch(user, parsed.entries, baseUrl, requestId);
    const wanted = parsePreferReturn(prefer);
    const writes = new Set(
      parsed.entries
        .filter((entry) => 'method' in entry && entry.method !== 'GET' && entry.method !== 'DELETE')
        .map((entry) => entry.index),
    );
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      type: `${parsed.type}-response`,
      ...entries(
        results.map((result, index) =>
          withFullUrl(
            writes.has(index) && result.resource ? asPreferred(result, wanted) : result,
            baseUrl,
          ),
        ),
      ),
    };
  }

  private async transaction(
    user: AuthenticatedUser,
    sent: ParsedEntry[],
    baseUrl: string,
  ): Promise<EntryResult[]> {
    sent.forEach((entry) => this.authorize(user, entry));
    const results: EntryResult[] = [];
    const budget = new ReadBudget();
    await this.unitOfWork.run(async () => {
      await this.matches.lockCriteria(sent.flatMap(conditionalCriteria));
      const { planned, references, entries } = await this.plan(user, sent);
      const ordered = [...entries].sort(
        (a, b) =>
          ORDER[a.method] - ORDER[b.method] ||
          compareTargets(lockTarget(a, planned), lockTarget(b, planned)) ||
          a.index - b.index,
      );
      // Matched against Subscriptions together, while all of them are still there.
      await this.fhir.willDelete(
        ordered.flatMap((entry) => {
          if (entry.method !== 'DELETE') return [];
          const id = isDeleteById(entry) ? entry.id : planned.get(entry.index)?.id;
          return id === undefined ? [] : [{ type: entry.type, id }];
        }),
      );
      const creates = ordered.filter(
        (entry) => entry.method === 'POST' && !planned.get(entry.index)!.existing,
      );
      for (const entry of ordered) {
        if (creates.includes(entry)) {
          // New resources are written together where the first of them comes in the order.
          if (entry === creates[0]) {
            for (const [index, result] of await this.createAll(
              user,
              creates,
              planned,
              references,
            )) {
              results[index] = result;
            }
          }
          continue;
        }
        results[entry.index] = await inEntry(entry, () =>
          this.execute(user, entry, planned.get(entry.index), references, baseUrl, budget),
        );
      }
      // Searched once, for the checks of both loops below: nothing is written between them.
      const found = await createdMatches(ordered, results, (type, criteria, limit) =>
        this.matches.matchingIds(user, type, criteria, limit),
      );
      for (const entry of ordered) {
        if (entry.method !== 'POST' || entry.ifNoneExist === undefined) continue;
        if (!results[entry.index]?.response.status.startsWith('201')) continue;
        // Its criteria found what it wrote: searched restricted to its id, they would too.
        if (foundOwn(found, entry.index)) continue;
        // Created with the others in one statement (createAll), so compared here, once written.
        await inEntry(entry, () =>
          this.matches.assertMatchesCriteria(
            user,
            entry.type,
            planned.get(entry.index)!.id,
            entry.ifNoneExist!,
          ),
        );
      }
      // After the checks above: an entry its own criteria do not find is that entry's error.
      assertCreatedOnce(ordered, results, found);
    });
    return results;
  }

  /**
   * A transaction's creates in one statement however many there are (a patient's record
   * from Synthea is hundreds), each checked on its own first so that an error names its entry.
   */
  private async createAll(
    user: AuthenticatedUser,
    entries: ParsedEntry[],
    planned: ReadonlyMap<number, Planned>,
    references: ReadonlyMap<string, string>,
  ): Promise<[number, EntryResult][]> {
    const checked: CheckedCreate[] = [];
    // Thousands of entries are validated in turns; the transaction stays one (all or nothing).
    const turns = new Turns();
    for (const entry of entries) {
      await turns.next();
      checked.push(
        await inEntry(entry, () => {
          const where = `Bundle.entry[${entry.index}].resource`;
          const body = entry.resource
            ? resolveEntry(entry.resource, references, where, baseOf(entry))
            : undefined;
          const id = planned.get(entry.index)!.id;
          return this.fhir.checkCreate(user, entry.type, body, { id });
        }),
      );
    }
    const stored = await this.fhir.createChecked(user, checked);
    return entries.map((entry, i) => [entry.index, written(stored[i]!, 201)]);
  }

  /**
   * A batch's entries are independent (FHIR): each is answered on its own, an entry that failed
   * unexpectedly too. Had it failed the request, the entries written before it would stand
   * unreported, and a client retrying the batch would write them twice.
   */
  private async batch(
    user: AuthenticatedUser,
    entries: (ParsedEntry | RejectedEntry)[],
    baseUrl: string,
    requestId: string | undefined,
  ): Promise<EntryResult[]> {
    // Its deletions by id are matched against Subscriptions together first, as a
    // transaction's are; until 2026-12-07 each entry's was matched on its own (one query per
    // Subscription and entry). Each entry's deletion still decides, in its own transaction.
    const deletions = entries.flatMap((entry) =>
      !('error' in entry) && isDeleteById(entry) && entry.id !== undefined
        ? [{ type: entry.type, id: entry.id }]
        : [],
    );
    return this.fhir.willDeleteApart(deletions, () =>
      this.batchEntries(user, entries, baseUrl, requestId),
    );
  }

  private async batchEntries(
    user: AuthenticatedUser,
    entries: (ParsedEntry | RejectedEntry)[],
    baseUrl: string,
    requestId: string | undefined,
  ): Promise<EntryResult[]> {
    const results: EntryResult[] = [];
    const budget = new ReadBudget();
    for (const entry of entries) {
      if ('error' in entry) {
        results.push(failed(entry.error, entry.index));
        continue;
      }
      results.push(
        // Each entry runs under an audit part of its own. A write that succeeds commits with a
        // row of its own, in one transaction: a later failure of the request's row cannot leave
        // it stored and unnamed, and a failure of its own row undoes it. A read that succeeds
        // is named in the request's row. An entry that fails (refused, not found, undone) gets
        // a failure row of its own, written after its transaction: the request's row says
        // success, and named it as a resource accessed (a patient's accounting of disclosures
        // showed a refused read of their record as a successful one).
        await this.audit.part(async (record) => {
          try {
            this.authorize(user, entry);
            const perform = async () => {
              const { planned, references, entries } = await this.plan(user, [entry]);
              return this.execute(
                user,
                entries[0]!,
                planned.get(entry.index),
                references,
                baseUrl,
                budget,
              );
            };
            if (entry.method === 'GET') return await this.unitOfWork.run(perform);
            return await this.unitOfWork.run(async () => {
              const result = await perform();
              await record({
                method: entry.method,
                type: entry.type,
                status: Number.parseInt(result.response.status, 10),
                version: /^W\/"(\d+)"$/.exec(result.response.etag ?? '')?.[1] ?? null,
              });
              return result;
            });
          } catch (error) {
            const result =
              error instanceof AppError
                ? failed(error, entry.index)
                : this.failedUnexpectedly(error, entry.index, requestId);
            await record({
              method: entry.method,
              interaction: entry.interaction,
              type: entry.type,
              status: Number.parseInt(result.response.status, 10),
              version: null,
            });
            return result;
          }
        }),
      );
    }
    return results;
  }

  /**
   * Ids for every create, decided before anything is written so that entries can refer to each
   * other by fullUrl (`urn:uuid:…`): a conditional create that matches takes the match's id, a
   * second one with the same criteria stands for the first, and one matching what the Bundle
   * deletes makes a new resource (deletes run first). A conditional update or patch takes the
   * id of its one match (a new id when an update matches none), so that its fullUrl can be
   * referred to too. Conditional references (`Patient?identifier=…`) are resolved here as well:
   * to the conditional create of the Bundle with the same criteria, or else to the one stored
   * match. Two entries that change one resource are refused, as FHIR's transaction rules say.
   * Entries are planned in the order they are processed, and a `urn:uuid:` fullUrl in the
   * conditional URL of an entry (`PUT Observation?subject=urn:uuid:…`, `ifNoneExist`, a GET's
   * search) is replaced by the `Type/id` of the entry processed before it that it names, as
   * HAPI does: the entries are returned with their URLs so replaced.
   */
  private async plan(
    user: AuthenticatedUser,
    sent: ParsedEntry[],
  ): Promise<{
    planned: Map<number, Planned>;
    references: Map<string, string>;
    entries: ParsedEntry[];
  }> {
    assertDistinctFullUrls(sent);
    const planned = new Map<number, Planned>();
    const references = new Map<string, string>();
    // What each conditional create will stand for: a conditional reference with the same
    // criteria means that resource, whether it exists already or this Bundle creates it.
    const conditionallyCreated = new Map<string, string>();
    const conditionallyUpdated = new Map<string, string>();
    const deleted = new Set(
      sent.flatMap((entry) => (isDeleteById(entry) ? [`${entry.type}/${entry.id}`] : [])),
    );
    const entries = [...sent];
    const processing = sent
      .map((_, position) => position)
      .sort((a, b) => ORDER[sent[a]!.method] - ORDER[sent[b]!.method] || a - b);
    for (const position of processing) {
      const entry = withPlaceholdersReplaced(sent[position]!, references);
      entries[position] = entry;
      let id: string | undefined;
      if (entry.method === 'POST') {
        const key = entry.ifNoneExist && criteriaKey(entry.type, entry.ifNoneExist);
        const earlier = key ? conditionallyCreated.get(key) : undefined;
        const stored = earlier
          ? undefined
          : entry.ifNoneExist
            ? await inEntry(entry, () =>
                this.matches.liveMatch(user, entry.type, entry.ifNoneExist!),
              )
            : undefined;
        const match =
          earlier?.slice(entry.type.length + 1) ??
          (stored && !deleted.has(`${entry.type}/${stored}`) ? stored : undefined);
        id = match ?? randomUUID();
        planned.set(entry.index, { id, existing: match !== undefined });
        if (key) conditionallyCreated.set(key, `${entry.type}/${id}`);
      } else if (
        (entry.method === 'PUT' || entry.method === 'PATCH') &&
        entry.query !== undefined
      ) {
        // Criteria an earlier conditional create or update of the Bundle has stand for what it
        // made or matched, so that the two are refused as changing one resource; searched, they
        // matched nothing yet and the second was refused for a body id the client never sent.
        const key = criteriaKey(entry.type, entry.query);
        const earlier = conditionallyCreated.get(key) ?? conditionallyUpdated.get(key);
        id =
          earlier?.slice(entry.type.length + 1) ??
          (await inEntry(entry, () => this.conditionalTarget(user, entry)));
        conditionallyUpdated.set(key, `${entry.type}/${id}`);
        planned.set(entry.index, { id, existing: true });
      } else if (entry.method === 'PUT' || entry.method === 'PATCH') {
        id = entry.id;
      } else if (entry.method === 'DELETE' && !isDeleteById(entry)) {
        // A conditional delete's match, resolved ahead as an update's is: an update of it in
        // the same Bundle is refused as changing it twice (it was a 409 whose text blamed an id
        // the body did not have), and a conditional create it matched creates anew. What a
        // cascade would delete with it is found when it runs, and not compared.
        const { criteria } = splitCascade(entry.query ?? '');
        const match = await inEntry(entry, () =>
          this.matches.uniqueMatch(user, entry.type, criteria),
        );
        if (match !== undefined) {
          planned.set(entry.index, { id: match, existing: true });
          deleted.add(`${entry.type}/${match}`);
        }
      }
      if (id !== undefined && entry.fullUrl) references.set(entry.fullUrl, `${entry.type}/${id}`);
    }
    assertEachChangedOnce(entries, planned);
    for (const entry of entries) {
      for (const conditional of conditionalReferences(entry.resource)) {
        if (references.has(conditional.reference)) continue;
        const target =
          conditionallyCreated.get(criteriaKey(conditional.type, conditional.criteria)) ??
          (await inEntry(entry, () => this.resolve(user, conditional)));
        references.set(conditional.reference, target);
      }
    }
    return { planned, references, entries };
  }

  /**
   * The id a conditional update or patch will write: its one match, or for an update that
   * matches none the id its body names or a new one (404 for a patch, 412 for several).
   */
  private async conditionalTarget(user: AuthenticatedUser, entry: ParsedEntry): Promise<string> {
    const match = await this.matches.uniqueMatch(user, entry.type, entry.query!);
    if (match !== undefined) return match;
    if (entry.method === 'PATCH') {
      throw AppError.notFound(`No ${entry.type} matches the conditional criteria`);
    }
    const bodyId = entry.resource?.id;
    return typeof bodyId === 'string' ? bodyId : randomUUID();
  }

  /**
   * `Type/id` of the one resource a conditional reference matches, found as the caller's own
   * search would find it (so it needs search access to the type), under the criteria's lock
   * like a conditional create: 404 when none matches, 412 when several do (as HAPI answers).
   */
  private async resolve(
    user: AuthenticatedUser,
    conditional: ConditionalReference,
  ): Promise<string> {
    const { path, type, criteria } = conditional;
    if (!mayUseFhir(user, type, 'search')) {
      throw AppError.forbidden(
        `Access denied: the conditional reference at ${path} searches ${type}`,
      );
    }
    const id = await this.matches.uniqueMatch(
      user,
      type,
      criteria,
      `the conditional reference at ${path}`,
    );
    if (id === undefined) {
      throw AppError.notFound(`The conditional reference at ${path} matches no ${type}`);
    }
    // The match's id is answered in the caller's resource, so the caller must be able to open
    // the match, as a conditional create answering it must: a restricted record only through
    // break-glass (a 403 otherwise). Matches count restricted records so that a Bundle does
    // not refer past one, and until 2026-12-07 the restricted record's id was written in.
    await this.fhir.read(user, type, id);
    return `${type}/${id}`;
  }

  private async execute(
    user: AuthenticatedUser,
    entry: ParsedEntry,
    planned: Planned | undefined,
    references: ReadonlyMap<string, string>,
    baseUrl: string,
    budget: ReadBudget,
  ): Promise<EntryResult> {
    const where = `Bundle.entry[${entry.index}].resource`;
    const body = entry.resource
      ? resolveEntry(entry.resource, references, where, baseOf(entry))
      : undefined;
    switch (entry.method) {
      case 'POST': {
        if (planned!.existing) {
          return written(await this.fhir.read(user, entry.type, planned!.id), 200);
        }
        // A batch's create (a transaction's are written together, by createAll, and compared
        // once written): in the entry's transaction, which a mismatch rolls back.
        const created = await this.fhir.create(user, entry.type, body, { id: planned!.id });
        if (entry.ifNoneExist !== undefined) {
          await this.matches.assertMatchesCriteria(user, entry.type, created.id, entry.ifNoneExist);
        }
        return written(created, 201);
      }
      case 'PUT': {
        // The id planned for a conditional update (what its fullUrl was resolved to) is the one
        // it writes: its match, found again under the lock plan() took, or the new resource's.
        // ifNoneMatch is If-None-Match's (`*` creates only): dropped until 2026-12-07, it let
        // an entry meant to create write over a stored resource.
        const { stored, created } =
          entry.query !== undefined
            ? await this.conditional.conditionalUpdate(
                user,
                entry.type,
                entry.query,
                withPlannedId(body, planned),
                entry.ifMatch,
                entry.ifNoneMatch,
              )
            : await this.fhir.update(user, entry.type, entry.id!, body, entry.ifMatch, {
                ifNoneMatch: entry.ifNoneMatch,
              });
        return written(stored, created ? 201 : 200);
      }
      case 'PATCH': {
        const operations = patchOf(body, where, references, baseOf(entry));
        return written(
          entry.query !== undefined
            ? await this.conditional.conditionalPatch(
                user,
                entry.type,
                entry.query,
                operations,
                entry.ifMatch,
              )
            : await this.patches.patch(user, entry.type, entry.id!, operations, entry.ifMatch),
          200,
        );
      }
      case 'DELETE': {
        const { criteria, cascade } = splitCascade(entry.query ?? '');
        const id = isDeleteById(entry)
          ? entry.id!
          : await this.stillMatched(user, entry, criteria, planned);
        if (id === undefined) return { response: { status: STATUS_TEXT[204]! } };
        if (cascadeRequested(cascade, undefined)) {
          const cascaded = await this.cascades.delete(user, entry.type, id, entry.ifMatch);
          return { response: { status: STATUS_TEXT[200]!, outcome: cascadeOutcome(cascaded) } };
        }
        await this.fhir.delete(user, entry.type, id, entry.ifMatch);
        return { response: { status: STATUS_TEXT[204]! } };
      }
      case 'GET':
        budget.assertRoom();
        return budget.spent(await this.reads.get(user, entry, baseUrl));
    }
  }

  /**
   * What a conditional delete deletes: the match plan() found and compared with the other
   * entries, found again under the criteria's lock. A plain write of another transaction may
   * have changed what they match meanwhile (the lock holds off conditional writers only):
   * deleting the new match would change a resource the plan never compared, so it is a 409.
   */
  private async stillMatched(
    user: AuthenticatedUser,
    entry: ParsedEntry,
    criteria: string,
    planned: Planned | undefined,
  ): Promise<string | undefined> {
    const match = await this.matches.uniqueMatch(user, entry.type, criteria);
    if (match !== planned?.id) {
      throw AppError.conflict(
        `What the criteria of this conditional delete match changed while the Bundle was processed: send it again`,
      );
    }
    return match;
  }

  /**
   * A batch entry that failed for a reason of the server's own (a 500, or 503 for the database):
   * answered as the request itself would be, and logged with the request id and the entry's
   * index, never its content.
   */
  private failedUnexpectedly(
    error: unknown,
    index: number,
    requestId: string | undefined,
  ): EntryResult {
    const { status, body, unexpected } = errorResponse(error, requestId);
    if (unexpected !== undefined) {
      this.logger.error(
        { err: loggableError(unexpected), requestId, entry: index },
        'Batch entry failed',
      );
    }
    return { response: { status: String(status), outcome: body } };
  }

  /** The same rule as the permission guard: the role's matrix, narrowed by the token's scopes. */
  private authorize(user: AuthenticatedUser, entry: ParsedEntry): void {
    // What the direct routes answer with a 405, before any permission: no one writes the trail.
    if (auditEventRefusal(entry.method, entry.url)) {
      throw prefixed(AppError.of(405, 'not-supported', AUDIT_EVENT_READ_ONLY), entry.index);
    }
    if (!mayUseFhir(user, entry.type, entry.interaction)) {
      throw prefixed(AppError.forbidden('Access denied'), entry.index);
    }
  }
}

/**
 * A PATCH entry's operations: a FHIRPath Patch (Parameters, whose references resolveEntry
 * resolved with the rest of the entry), or a JSON Patch in a Binary, whose references to other
 * entries (`urn:uuid:`) are resolved here, inside its data: a `value` that is a Reference, or a
 * string set at a `.../reference` path. Until 2026-12-06 they were stored as sent.
 */
function patchOf(
  body: unknown,
  where: string,
  references: ReadonlyMap<string, string>,
  base: string | undefined,
): unknown {
  const resource = body as { resourceType?: unknown; data?: unknown } | undefined;
  if (resource?.resourceType === 'Parameters') {
    return body;
  }
  if (resource?.resourceType !== 'Binary' || typeof resource.data !== 'string') {
    throw AppError.invalid(
      `${where} must be a Parameters resource (FHIRPath Patch) or a Binary holding a JSON Patch (application/json-patch+json)`,
    );
  }
  let operations: unknown;
  try {
    operations = parseJsonBody(bodyText(Buffer.from(resource.data, 'base64'), undefined), {
      exactNumbers: true,
    });
  } catch (error) {
    if (error instanceof AppError && error.issues[0]?.code !== 'structure') throw error;
    throw AppError.invalid(`${where}.data is not a base64 JSON Patch (UTF-8 JSON)`);
  }
  return resolveJsonPatch(operations, references, `${where}.data`, base);
}
