import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { ResourceAccess } from '../access/resource-access.js';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { isRole } from '../auth/roles.js';
import { formatScope, smartContext } from '../auth/smart-scopes.js';
import { AppError } from '../common/errors/app-error.js';
import { queryRecord } from '../common/http/query-record.js';
import { AppConfig } from '../config/config.js';
import { databaseProblem } from '../database/database-unavailable.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { FhirDefinitions } from '../fhir/fhir-definitions.js';
import { parseContent } from '../fhir/resource-versions.js';
import {
  ResourceWrites,
  type ResourceDeletion,
  type ResourceWrite,
} from '../fhir/resource-writes.js';
import { ResourceRepository } from '../fhir/resource.repository.js';
import { parseSearchRequest } from '../fhir/search/search-request.js';
import { SearchService } from '../fhir/search/search.service.js';
import { SecurityContexts } from '../fhir/security-contexts.js';
import { assertDistinctHeaders, subscriptionPlan } from './subscription-plan.js';
import {
  SubscriptionRepository,
  type QueuedNotification,
  type SubscriptionOwner,
} from './subscription.repository.js';
import { SUBSCRIPTIONS_USER } from './subscriptions-user.js';

/**
 * The active Subscriptions one account may own. Each is matched at every write of its type,
 * one query in the write's transaction: 2,000 of them, which one doctor wrote in 4.5 s, made
 * each Observation write (an HL7 result's too) take a second rather than 10 ms, for everyone.
 */
export const MAX_ACTIVE_PER_OWNER = 100;

interface Watcher {
  id: string;
  /** The resource type its criteria search. */
  type: string;
  criteria: string;
  owner: AuthenticatedUser;
  /** Its `end`, in epoch ms: from then it matches nothing (R4), before the notifier turns it off. */
  end?: number;
}

/** The versions a transaction wrote of watched types: type, then id, then version. */
type Written = Map<string, Map<string, number>>;

/**
 * What a transaction did that matters here: what it wrote of watched types, and its own
 * Subscription changes, which its own writes see at once and others only once it commits.
 */
interface InTransaction {
  written: Written;
  own: Map<string, Watcher | undefined>;
  /** Its deletions of resources that matched, matched as they were before. */
  deleted: QueuedNotification[];
  /**
   * Deletions announced to come (a Bundle's, a cascade's), matched together ahead: by
   * Subscription id, whether each id matched. Used once, at its deletion, if the Subscription
   * is matched as it was then (a re-read makes new watchers of the same); forgotten if the
   * resource is written before it.
   */
  ahead: Map<string, Ahead>;
}

/** What a Subscription's criteria, as `key`, matched ahead among deletions to come. */
interface Ahead {
  type: string;
  key: string;
  matched: Map<string, boolean>;
}

/**
 * What a Subscription's criteria, as `key`, matched among deletions each to come in a
 * transaction of its own (a batch Bundle's): by id, the version matched and whether it matched.
 */
interface AheadApart {
  type: string;
  key: string;
  matched: Map<string, { version: number; matched: boolean }>;
}

/** What this instance committed about one Subscription: matched as `watcher`, or not at all. */
interface Change {
  seq: number;
  id: string;
  watcher: Watcher | undefined;
}

/**
 * The active Subscriptions, by the type they watch, and the two hooks on FHIR writes: a
 * Subscription is checked when it is written (a 4xx rolls the write back), and the other
 * writes of a transaction are matched against the Subscriptions of their type just before it
 * commits, so that a notification is queued exactly when the change commits: one query per
 * Subscription for all of them, however many resources a Bundle or an HL7 message writes.
 * Held in memory so that a write of a type nobody watches costs nothing; re-read from the
 * database by the notifier's loop, which is how one instance learns of another's
 * Subscriptions (within SUBSCRIPTION_POLL_MS × 5). A transaction's own Subscription changes
 * count for its own writes at once and for the rest once it commits; a re-read that began
 * before that may not see them, so they are applied again on top of it.
 */
@Injectable()
export class SubscriptionRegistry implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('Subscriptions');
  private byType = new Map<string, Watcher[]>();
  private readonly endpoints: string[];
  /** This instance's committed changes that a re-read in progress may have missed. */
  private changes: Change[] = [];
  private lastSeq = 0;
  private refreshing: Promise<void> = Promise.resolve();
  /** Within a batch Bundle: its deletions matched ahead, by Subscription id. */
  private readonly apart = new AsyncLocalStorage<Map<string, AheadApart>>();

  constructor(
    private readonly config: AppConfig,
    private readonly writes: ResourceWrites,
    private readonly search: SearchService,
    private readonly definitions: FhirDefinitions,
    private readonly repository: SubscriptionRepository,
    private readonly unitOfWork: UnitOfWork,
    private readonly access: ResourceAccess,
    private readonly resources: ResourceRepository,
    private readonly contexts: SecurityContexts,
  ) {
    this.endpoints = config.subscriptions.endpoints;
  }

  onModuleInit(): void {
    this.writes.on('Subscription', (write) => this.subscriptionWritten(write));
    this.writes.onAny(
      (type) => this.watched(type),
      (write) => this.match(write),
    );
    this.writes.onAnyDelete(
      (type) => this.watched(type),
      (deletion) => this.matchDeletion(deletion),
    );
    this.writes.onAnyDeleting(
      (type) => this.watched(type),
      (type, ids) => this.matchAhead(type, ids),
    );
    this.writes.onDeletingApart((resources, work) => this.matchAheadApart(resources, work));
  }

  /**
   * The active Subscriptions, read once at start: in the service the notifier's loop keeps them
   * current, and the admin CLI's writes (import, HL7 reprocessing) are matched against them too,
   * their notifications delivered by the service. Not for backup and restore, which write no
   * resources and run on a schema of any version, or none (a restore into an empty database):
   * the query failing there was caught, but TypeORM had already logged it, an ERROR atop the
   * output of a restore that succeeded.
   */
  async onApplicationBootstrap(): Promise<void> {
    if (this.config.checksSchema) {
      await this.refresh();
    }
  }

  /** One re-read at a time: each keeps the changes that committed after it began. */
  refresh(): Promise<void> {
    const reread = this.refreshing.then(() => this.reread());
    this.refreshing = reread.catch(() => undefined);
    return reread;
  }

  private async reread(): Promise<void> {
    const since = this.lastSeq;
    const next = new Map<string, Watcher[]>();
    for (const subscription of await this.repository.active()) {
      add(next, {
        id: subscription.id,
        type: subscription.criteriaType,
        criteria: subscription.criteria,
        owner: userOf(subscription.owner),
        ...(subscription.end ? { end: subscription.end.getTime() } : {}),
      });
    }
    // What committed before `since` was there for the read to see.
    this.changes = this.changes.filter((change) => change.seq > since);
    for (const change of this.changes) apply(next, change);
    this.byType = next;
  }

  private async subscriptionWritten({ user, resource }: ResourceWrite): Promise<void> {
    const id = resource.id!;
    if (user.id === SUBSCRIPTIONS_USER.id && resource['status'] === 'error') {
      // The notifier stopping it: for a reason of its own, which may be that it no longer
      // passes the checks below (an endpoint since dropped from SUBSCRIPTION_ENDPOINTS).
      await this.repository.setState(id, 'error', false);
      this.forget(id);
      return;
    }
    const plan = subscriptionPlan(resource, this.endpoints, (type) =>
      this.definitions.isResourceType(type),
    );
    if (user.id === SUBSCRIPTIONS_USER.id) {
      // The notifier activating it, or setting it to error: the owner and criteria stay.
      await this.repository.setState(id, plan.status, plan.active, plan.end);
      if (!plan.active) this.forget(id);
      return;
    }
    assertDistinctHeaders(plan);
    await this.search.assertCriteria(user, plan.criteriaType, plan.criteria);
    // The CLI's import loads what another server held, for an operator: all of its
    // Subscriptions, whoever wrote them there, come to the one import account.
    if (
      plan.active &&
      !user.loadsRecords &&
      (await this.repository.activeOwnedBy(user.id, id)) >= MAX_ACTIVE_PER_OWNER
    ) {
      throw AppError.of(
        422,
        'too-costly',
        `An account may own at most ${MAX_ACTIVE_PER_OWNER} active Subscriptions, each matched at every write of its type: set some off or delete them`,
        ['Subscription.status'],
      );
    }
    const owner = ownerOf(user);
    await this.repository.save(id, plan, owner);
    const watcher: Watcher = {
      id,
      type: plan.criteriaType,
      criteria: plan.criteria,
      owner: userOf(owner),
      ...(plan.end ? { end: plan.end.getTime() } : {}),
    };
    this.set(id, plan.active ? watcher : undefined);
  }

  /** Whether writes of `type` are matched: a committed Subscription, or the transaction's own. */
  private watched(type: string): boolean {
    if (this.byType.has(type)) return true;
    const own = this.unitOfWork.existingStateOf<InTransaction>(this)?.own;
    return own !== undefined && [...own.values()].some((watcher) => watcher?.type === type);
  }

  /** Notes the write, to be matched with the transaction's others before it commits. */
  private match({ resource }: ResourceWrite): Promise<void> {
    const type = resource.resourceType;
    const id = resource.id!;
    const versionId = Number(resource.meta?.versionId);
    if (!this.unitOfWork.inTransaction) {
      // Its type watched only since the write began, which then took no transaction.
      return this.notify({
        written: new Map([[type, new Map([[id, versionId]])]]),
        own: new Map(),
        deleted: [],
        ahead: new Map(),
      });
    }
    const { written, ahead } = this.inTransaction();
    // Matched ahead as it was, it is matched again at its deletion as it is then.
    for (const { type: watched, matched } of ahead.values()) {
      if (watched === type) matched.delete(id);
    }
    const versions = written.get(type) ?? new Map<string, number>();
    written.set(type, versions);
    // Written twice, a resource is matched (and notified) as the transaction leaves it.
    versions.set(id, versionId);
    return Promise.resolve();
  }

  /**
   * A deletion is matched at once, in its transaction, against the version it deletes: once
   * stored, the resource matches no search. Until 2026-12-07 deletions notified nobody, and a
   * receiver kept the deleted record (often one entered in error) until it polled. Queued
   * with the transaction's other notifications, just before it commits.
   */
  private async matchDeletion({ resource, versionId }: ResourceDeletion): Promise<void> {
    const type = resource.resourceType;
    const id = resource.id!;
    // A deletion always runs in a transaction (ResourceRepository.writeNext's, or the Bundle's
    // or cascade's it joins), and nothing writes the resource before it there: a transaction
    // Bundle's DELETE entries run first, and HL7 messages delete nothing.
    const state = this.inTransaction();
    const deletedVersion = Number(resource.meta?.versionId);
    for (const watcher of this.watchersOf(type, state.own)) {
      const ahead = state.ahead.get(watcher.id);
      const matched = ahead?.key === keyOf(watcher) ? ahead.matched : undefined;
      const apart = this.apart.getStore()?.get(watcher.id);
      const matchedApart = apart?.key === keyOf(watcher) ? apart.matched : undefined;
      const pinned = matchedApart?.get(id);
      // Matched apart, it stands only for the version matched: one the batch wrote since is
      // matched again.
      const known =
        matched?.get(id) ?? (pinned?.version === deletedVersion ? pinned.matched : undefined);
      matched?.delete(id);
      matchedApart?.delete(id);
      if (known ?? (await this.matchedBy(watcher, type, [id])).has(id)) {
        state.deleted.push({ subscriptionId: watcher.id, type, id, versionId });
      }
    }
  }

  /**
   * Matches the deletions a Bundle or a cascade is about to make, before any of them: one
   * query per Subscription for all of them, where matching each at its deletion cost one per
   * resource and Subscription (100 Observations deleted with 50 Subscriptions on Observation
   * were 5,000 queries, 11–14 s, in the one transaction). Only criteria that read the resource
   * alone: another resource deleted first (a chain's target, a `_has` referrer, a Binary's
   * securityContext) may change what they match by then, so those are matched at each
   * deletion, as before. Each result is used at the resource's deletion, unless it is written
   * first.
   */
  private async matchAhead(type: string, ids: readonly string[]): Promise<void> {
    if (!this.unitOfWork.inTransaction || ids.length < 2 || !this.access.countsInSql(type)) {
      return;
    }
    const state = this.inTransaction();
    for (const watcher of this.watchersOf(type, state.own)) {
      if (!readsItselfOnly(watcher)) continue;
      const matched = await this.matchedBy(watcher, type, [...ids]);
      // Criteria refused there stopped the Subscription: it is matched no more.
      const key = keyOf(watcher);
      const live = this.watchersOf(type, state.own);
      if (!live.some((now) => now.id === watcher.id && keyOf(now) === key)) continue;
      const earlier = state.ahead.get(watcher.id);
      const ahead = earlier?.key === key ? earlier.matched : new Map<string, boolean>();
      for (const id of ids) ahead.set(id, matched.has(id));
      state.ahead.set(watcher.id, { type, key, matched: ahead });
    }
  }

  /**
   * Runs `work`, whose deletions of `resources` each take a transaction of their own (a batch
   * Bundle's entries), with them matched together first, in a transaction of this: one query
   * per Subscription, as for a transaction's, where each deletion matched on its own cost one
   * per resource and Subscription. Each result is kept with the version it matched, read before
   * and after the queries (versions only grow: the same both times, the queries saw it), and
   * used at the deletion of that version only: what the batch or anyone else wrote meanwhile is
   * matched at its deletion, as before. The same criteria as matchAhead: those that read the
   * resource alone.
   */
  private async matchAheadApart<T>(
    resources: readonly { type: string; id: string }[],
    work: () => Promise<T>,
  ): Promise<T> {
    const byType = new Map<string, string[]>();
    for (const { type, id } of resources) {
      if (!this.watched(type) || !this.access.countsInSql(type)) continue;
      byType.set(type, [...new Set([...(byType.get(type) ?? []), id])]);
    }
    const found = new Map<string, AheadApart>();
    for (const [type, ids] of byType) {
      const watchers = this.watchersOf(type, new Map()).filter(readsItselfOnly);
      if (ids.length < 2 || watchers.length === 0) continue;
      await this.unitOfWork.run(async () => {
        const before = await this.repository.currentVersions(type, ids);
        for (const watcher of watchers) {
          const matched = await this.matchedBy(watcher, type, ids);
          found.set(watcher.id, {
            type,
            key: keyOf(watcher),
            matched: new Map(ids.map((id) => [id, { version: 0, matched: matched.has(id) }])),
          });
        }
        const after = await this.repository.currentVersions(type, ids);
        for (const ahead of found.values()) {
          if (ahead.type !== type) continue;
          for (const [id, result] of ahead.matched) {
            const version = before.get(id);
            if (version === undefined || after.get(id) !== version) ahead.matched.delete(id);
            else result.version = version;
          }
        }
      });
    }
    return found.size === 0 ? work() : this.apart.run(found, work);
  }

  /** The current transaction's state, made (with its matching before commit) on first use. */
  private inTransaction(): InTransaction {
    return this.unitOfWork.stateOf<InTransaction>(
      this,
      () => ({ written: new Map(), own: new Map(), deleted: [], ahead: new Map() }),
      (state) => this.notify(state),
    );
  }

  /** The live Subscriptions of `type`, with the transaction's own in place of their old state. */
  private watchersOf(type: string, own: Map<string, Watcher | undefined>): Watcher[] {
    const now = Date.now();
    return [
      ...(this.byType.get(type) ?? []).filter((watcher) => !own.has(watcher.id)),
      ...[...own.values()].filter((watcher): watcher is Watcher => watcher?.type === type),
    ].filter((watcher) => watcher.end === undefined || watcher.end > now);
  }

  /** Matches the transaction's writes, then queues their notifications and its deletions'. */
  private async notify({ written, own, deleted }: InTransaction): Promise<void> {
    const queued: QueuedNotification[] = [...deleted];
    for (const [type, versions] of written) {
      const ids = [...versions.keys()];
      for (const watcher of this.watchersOf(type, own)) {
        const matched = await this.matchedBy(watcher, type, ids);
        for (const id of ids.filter((written) => matched.has(written))) {
          queued.push({ subscriptionId: watcher.id, type, id, versionId: versions.get(id)! });
        }
      }
    }
    await this.repository.addNotifications(queued);
  }

  /**
   * Which of `ids` the watcher's criteria match. A Subscription never fails the write it is
   * matched with: the query runs in a savepoint, and criteria that are refused (stored before
   * this version checked them: a year 0000 refused now, a value PostgreSQL cannot read, a
   * parameter no longer offered) stop their Subscription, which the notifier then sets to
   * `error` with the reason. An owner who may no longer search the type stops nothing: their
   * access may come back. Only a database that cannot serve (down, a deadlock) fails the write,
   * as it would fail it anyway.
   */
  private async matchedBy(watcher: Watcher, type: string, ids: string[]): Promise<Set<string>> {
    try {
      return await this.unitOfWork.savepoint(async () =>
        this.listable(
          watcher.owner,
          type,
          await this.search.matchingAmong(watcher.owner, type, watcher.criteria, ids),
        ),
      );
    } catch (error) {
      if (error instanceof AppError && error.status === 403) {
        this.logger.warn(
          { subscription: watcher.id, reason: error.message },
          'Subscription criteria could not be evaluated',
        );
        return new Set();
      }
      if (!(error instanceof AppError) && databaseProblem(error) !== undefined) throw error;
      // AppError messages carry no PHI; the database's may quote a value: only its code.
      const code = (error as { code?: unknown }).code;
      const reason =
        error instanceof AppError
          ? error.message
          : `PostgreSQL refused them (${typeof code === 'string' ? code : 'no code'})`;
      this.logger.error(
        { subscription: watcher.id, type, reason },
        'Subscription criteria failed: the Subscription is stopped, the write goes on',
      );
      await this.stop(watcher, reason);
      return new Set();
    }
  }

  /**
   * Of the matched ids, those the owner's search would list. A Binary follows its
   * securityContext, which the criteria's SQL cannot check (a search checks each resource it
   * lists): until 2026-12-07 a Binary whose context is a restricted record was notified of,
   * telling the endpoint when a sealed letter was written.
   */
  private async listable(
    owner: AuthenticatedUser,
    type: string,
    matched: Set<string>,
  ): Promise<Set<string>> {
    if (matched.size === 0 || this.access.countsInSql(type)) return matched;
    const resources = [];
    for (const id of matched) {
      const row = await this.resources.findCurrent(type, id);
      if (row && !row.deleted && row.content) resources.push(parseContent(row));
    }
    const contexts = await this.contexts.of(resources);
    return new Set(
      resources
        .filter((resource) =>
          this.access.isListable(owner, resource, false, contexts.get(resource)),
        )
        .map((resource) => resource.id!),
    );
  }

  /** Stops a Subscription whose criteria failed, for the notifier to set it to `error`. */
  private async stop({ id, type, criteria }: Watcher, reason: string): Promise<void> {
    const failure = `Its criteria could not be evaluated (${reason}); correct them and set status to requested to start again`;
    await this.unitOfWork
      .savepoint(() => this.repository.fail(id, { type, query: criteria }, failure))
      .catch((error: unknown) =>
        // Matched again at the next write, it is stopped then.
        this.logger.error(
          { subscription: id, reason: (error as Error).name },
          'Subscription could not be stopped',
        ),
      );
    this.forget(id);
  }

  /** Stops matching a Subscription (switched off, or given up by the notifier). */
  forget(id: string): void {
    this.set(id, undefined);
  }

  /**
   * Matches `id` as `watcher` (or not at all): in the writing transaction from now on, and
   * everywhere once it commits, even through a re-read that began before; a rollback leaves
   * nothing behind.
   */
  private set(id: string, watcher: Watcher | undefined): void {
    if (this.unitOfWork.inTransaction) this.inTransaction().own.set(id, watcher);
    this.unitOfWork.afterCommit(() => {
      const change = { seq: ++this.lastSeq, id, watcher };
      this.changes.push(change);
      apply(this.byType, change);
    });
  }
}

/** A watcher's criteria and owner: what it matches, the same in a watcher re-read. */
function keyOf({ type, criteria, owner }: Watcher): string {
  return JSON.stringify([type, criteria, owner]);
}

/** Whether the criteria read only the resource's own index: no chain, no `_has`. */
function readsItselfOnly({ criteria }: Watcher): boolean {
  try {
    return parseSearchRequest(queryRecord(criteria)).criteria.every(
      (criterion) => !criterion.chain && !criterion.has,
    );
  } catch {
    // Matched at each deletion, where a refusal is handled.
    return false;
  }
}

function add(byType: Map<string, Watcher[]>, watcher: Watcher): void {
  byType.set(watcher.type, [...(byType.get(watcher.type) ?? []), watcher]);
}

function apply(byType: Map<string, Watcher[]>, { id, watcher }: Change): void {
  for (const [watched, watchers] of byType) {
    const kept = watchers.filter((existing) => existing.id !== id);
    if (kept.length === 0) byType.delete(watched);
    else if (kept.length !== watchers.length) byType.set(watched, kept);
  }
  if (watcher) add(byType, watcher);
}

function ownerOf(user: AuthenticatedUser): SubscriptionOwner {
  return {
    id: user.id,
    username: user.username,
    roles: [...user.roles],
    ...(user.scopes ? { scope: user.scopes.map(formatScope).join(' ') } : {}),
    ...(user.patient ? { patient: user.patient } : {}),
    ...(user.clientId ? { clientId: user.clientId } : {}),
  };
}

/** The owner as a searching user: their roles, and the scopes and patient of their token. */
function userOf(owner: SubscriptionOwner): AuthenticatedUser {
  return {
    id: owner.id,
    username: owner.username,
    roles: owner.roles.filter(isRole),
    amr: [],
    authTime: 0,
    ...smartContext(owner.scope, owner.patient),
    ...(owner.clientId ? { clientId: owner.clientId } : {}),
  };
}
