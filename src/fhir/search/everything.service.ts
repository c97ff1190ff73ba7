import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { PatientCompartment } from '../../access/patient-compartment.js';
import { MEMBER_LISTS, ResourceAccess } from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { AppError } from '../../common/errors/app-error.js';
import { decodeCursor, PageCursors, type CursorCodec } from '../cursor.js';
import { ResourceRepository } from '../resource.repository.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { FhirResource } from '../fhir-types.js';
import type { ResourceEntity } from '../resource.entity.js';
import { parseSince } from '../history-params.js';
import { FhirService } from '../fhir.service.js';
import { UnitOfWork } from '../../database/unit-of-work.js';
import { dateRange, type DateRange } from './date-range.js';
import { SearchDefinitions } from './search-definitions.js';
import { SearchRepository } from './search.repository.js';
import type { SearchBundle } from './search-bundle.js';
import { entries } from '../bundle.js';
import { withoutWriteOnly } from '../write-only-elements.js';
import { edgeOf, fillPage } from '../full-page.js';

type Query = Record<string, string | string[] | undefined>;

/** The most resources one $everything answers with (a lifetime record can be large). */
const MAX_RESOURCES = 10_000;

/**
 * The care date of the compartment's types that have no `date` parameter (R4's clinical date is
 * `date`, on Observation, Encounter, Procedure, Immunization, DiagnosticReport and 12 more): the
 * parameter a `start`/`end` window is applied to.
 */
const CARE_DATES: Record<string, string> = {
  Condition: 'onset-date',
  MedicationRequest: 'authoredon',
  MedicationAdministration: 'effective-time',
  MedicationDispense: 'whenhandedover',
  MedicationStatement: 'effective',
  ServiceRequest: 'authored',
  Claim: 'created',
  ExplanationOfBenefit: 'created',
};

/** The largest `_count` of one page of $everything, as of a search. */
export const MAX_EVERYTHING_COUNT = 1000;

/** What $everything takes besides its `_cursor` (and `_format`, `_pretty`): the OpenAPI document lists them. */
export const EVERYTHING_PARAMS = ['start', 'end', '_type', '_since', '_count'] as const;

/** A resource of the answer, by the key that orders its pages. */
interface Key {
  type: string;
  id: string;
  key: string;
  mode: 'match' | 'include';
}

/** A key as a page reads it, with its resource once found listable. */
interface Member {
  member: Key;
  resource?: FhirResource;
}

interface Options {
  types?: Set<string>;
  since?: Date;
  /** `_count`: pages of this many, the patient first, then by type and id, after `cursor`. */
  count?: number;
  cursor?: string;
  /** The first page's instant (see `complete` in everything), which a later page's cursor carries. */
  complete?: Date;
  /** start and end: the care dates asked for, [low, high). */
  window?: { low: Date; high: Date };
}

/**
 * Patient/{id}/$everything: the patient and every resource in their compartment (the official
 * CompartmentDefinition), with the shared resources they refer to (search.mode `include`),
 * limited to the types the caller may read and to what they may see, and to `_type` and
 * `_since` when given (what an app syncing a record asks for), and to the care dates between
 * `start` and `end`.
 */
@Injectable()
export class EverythingService {
  /**
   * The types a reference from the record brings in: those shared by every patient, outside
   * what ResourceAccess confines (the Patient compartment, Binary, a stored Bundle…).
   */
  private readonly referableTypes: readonly string[];

  constructor(
    private readonly fhir: FhirService,
    private readonly repository: SearchRepository,
    private readonly compartment: PatientCompartment,
    private readonly access: ResourceAccess,
    private readonly definitions: FhirDefinitions,
    private readonly searchDefinitions: SearchDefinitions,
    private readonly unitOfWork: UnitOfWork,
    private readonly cursors: PageCursors,
    private readonly resources: ResourceRepository,
  ) {
    this.referableTypes = definitions.resourceTypes.filter((type) => access.isShared(type));
  }

  async everything(
    user: AuthenticatedUser,
    id: string,
    query: Query,
    baseUrl: string,
  ): Promise<SearchBundle> {
    const cursors = this.cursors.for(user, '$everything');
    const options = this.options(query, cursors);
    const { types, since, window } = options;
    const inTypes = (type: string): boolean => !types || types.has(type);
    const recent = (lastUpdated: Date): boolean => !since || lastUpdated >= since;
    const read = await this.fhir.read(user, 'Patient', id);
    const after = options.cursor;
    // With `_since`, an app syncing the record polls: the Bundle's lastUpdated is then the
    // instant up to which every version is committed (ResourceRepository.completeUpTo), taken
    // before the members are read, and every page says its first page's, as a search by
    // _lastUpdated does. Until 2026-12-07 it was the time of the answer: a transaction Bundle or
    // feed message committing after it, with versions stamped before it, was missed by the
    // next poll.
    const complete = since
      ? (options.complete ?? (await this.resources.completeUpTo()))
      : undefined;
    // The members, their count and the page come from one snapshot: read statement by
    // statement, a resource deleted between the count and the load was counted in `total`
    // and missing from the entries. (The patient's read is apart: it may record a
    // break-glass use, a write.)
    const { total, page, edge } = await this.unitOfWork.snapshot(async () => {
      const readable = (type: string): boolean => inTypes(type) && mayUseFhir(user, type, 'read');
      // The members are listed, as `Patient/{id}/Observation` lists them: their types need the
      // right to search too. With `r` alone (read by id) a token listed every Observation of
      // the patient until 2026-12-07. What they refer to is brought in, as _include does: read.
      const listable = (type: string): boolean =>
        readable(type) && mayUseFhir(user, type, 'search');
      // Only the parameters that define the compartment count, not any reference to the
      // patient.
      // A patient-scoped token's Groups are those its patient is the only member of, which the
      // index does not tell apart: it gets none here (search Group?member=… for them).
      const links = [...this.compartment.linkedTypes()]
        .filter(([type]) => listable(type))
        .filter(
          ([type]) => !MEMBER_LISTS.has(type) || !this.access.confinesTo(user, type, 'search'),
        )
        .flatMap(([type, params]) => params.map((param) => ({ type, param })));
      // Counted in resources, not references: counting references (two for each Observation)
      // cut a record of 20,000 Observations to 5,000 of them, answered as if whole.
      const found = await this.repository.compartmentMembers(id, links, since, MAX_RESOURCES + 1);
      if (found.length > MAX_RESOURCES) {
        throw tooLong();
      }
      const members = await this.confined(user, id, links, found);
      // Pages follow one order, and a page starts after the last key of the one before: what
      // is written while a client pages shifts nothing. The order, the window and the total
      // come from the index, so that a page loads and decrypts its own rows only: `_count=1`
      // of a record of 10,000 loaded all of them, 1.7 s of a blocked event loop for each page.
      const placed = window ? await this.inWindow(members, window) : members;
      const self: Key = { type: 'Patient', id, key: `0 Patient/${id}`, mode: 'match' };
      const keys = placed.map((member): Key => ({
        ...member,
        key: `1 ${member.type}/${member.id}`,
        mode: 'match',
      }));
      if (inTypes('Patient') && recent(read.lastUpdated)) {
        keys.push(self);
      }
      // R4's Patient-everything: "any resource referenced from the patient ... plus resources
      // in the patient compartment", and those referenced by them as the server sees fit. As
      // HAPI, one level of references from the patient and the members listed (those the
      // caller may read: a Practitioner that only an Observation names tells of that
      // Observation), to the shared types: another patient's record is never brought in.
      const referenced = await this.repository.referencedBy(
        [{ type: 'Patient', id }, ...placed],
        this.referableTypes.filter(readable),
        since,
        MAX_RESOURCES + 1,
      );
      keys.push(
        ...referenced.map((target): Key => ({
          ...target,
          key: `2 ${target.type}/${target.id}`,
          mode: 'include',
        })),
      );
      if (keys.length > MAX_RESOURCES) {
        throw tooLong();
      }
      const sorted = keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const rest = after === undefined ? sorted : sorted.filter(({ key }) => key > after);
      // What the index placed that the caller may not list after all (its content says
      // otherwise) is skipped while reading, so that the page is full (see fillPage): filtered
      // once the page was cut, it came back short (until 2026-12-07).
      const count = options.count ?? rest.length;
      const filled = await fillPage(
        count,
        (previous: Member | undefined, limit): Promise<Member[]> => {
          const from = previous === undefined ? 0 : rest.indexOf(previous.member) + 1;
          return Promise.resolve(rest.slice(from, from + limit).map((member) => ({ member })));
        },
        async (reads) => {
          const rows = await this.load(
            reads.map(({ member }) => member).filter((member) => member !== self),
          );
          return reads.flatMap(({ member }): Member[] => {
            if (member === self) return [{ member, resource: read.resource }];
            const row = rows.get(`${member.type}/${member.id}`);
            if (!row) return [];
            const resource = withoutWriteOnly(JSON.parse(row.content as string) as FhirResource);
            // The index has left restricted records out already; recorded once on the page.
            return this.access.isListable(user, resource, false) ? [{ member, resource }] : [];
          });
        },
      );
      const page = filled.kept.slice(0, count).map(({ member, resource }) => {
        if (member !== self) this.access.recordListed(resource!);
        return { resource: resource!, mode: member.mode };
      });
      // A searchset's total counts its matches, not what was added to them.
      const total = sorted.filter((key) => key.mode === 'match').length;
      return { total, page, edge: edgeOf(filled, count)?.member };
    });
    const url = `${baseUrl}/Patient/${id}/$everything`;
    const next =
      options.count !== undefined && edge
        ? [{ relation: 'next', url: `${url}${selfQuery(query, cursors, edge.key, complete)}` }]
        : [];
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      meta: { lastUpdated: (complete ?? new Date()).toISOString() },
      type: 'searchset',
      total,
      link: [
        { relation: 'self', url: `${url}${selfQuery(query, cursors, after, options.complete)}` },
        ...next,
      ],
      ...entries(
        page.map(({ resource, mode }) => ({
          fullUrl: `${baseUrl}/${resource.resourceType}/${String(resource.id)}`,
          resource,
          search: { mode },
        })),
      ),
    };
  }

  /** The live rows of these resources, by `Type/id`, a statement for each type. */
  private async load(
    members: readonly { type: string; id: string }[],
  ): Promise<Map<string, ResourceEntity>> {
    const rows = new Map<string, ResourceEntity>();
    for (const [type, ids] of byType(members)) {
      for (const row of await this.repository.load(type, ids)) {
        rows.set(`${type}/${row.id}`, row);
      }
    }
    return rows;
  }

  /** The members with a care date in the window, or none to place them by (careDateFilter). */
  private async inWindow<T extends { type: string; id: string }>(
    members: readonly T[],
    window: { low: Date; high: Date },
  ): Promise<T[]> {
    const kept = new Set<string>();
    for (const [type, ids] of byType(members)) {
      const inWindow = await this.careDateFilter(type, ids, window);
      ids.filter(inWindow).forEach((memberId) => kept.add(`${type}/${memberId}`));
    }
    return members.filter((member) => kept.has(`${member.type}/${member.id}`));
  }

  /**
   * Which of these resources have a care date in the window. A resource with none (a type
   * without one, such as Coverage, or an Observation without `effective`) is kept: a window
   * must not hide what it cannot place.
   */
  private async careDateFilter(
    type: string,
    ids: string[],
    window: { low: Date; high: Date },
  ): Promise<(id: string) => boolean> {
    const param = this.careDateParam(type);
    if (!param) return () => true;
    const ranges = await this.repository.dateRanges(type, param, ids);
    return (id) => {
      const dates = ranges.get(id);
      return !dates || dates.some((d) => d.low < window.high && d.high > window.low);
    };
  }

  /**
   * Of another patient's members, those a patient-scoped token may list: in its own patient's
   * compartment too. Its patient's compartment holds another record of the same person (a
   * Patient.link), whose $everything it may ask for; the members are that record's, and those
   * the token may not see were counted in `total` and followed to the shared records they name
   * (an oncologist), though left out of the entries, until 2026-12-07.
   */
  private async confined(
    user: AuthenticatedUser,
    id: string,
    links: readonly { type: string; param: string }[],
    members: { type: string; id: string }[],
  ): Promise<{ type: string; id: string }[]> {
    const own = user.patient;
    if (own === undefined || own === id) return members;
    const isConfined = (type: string): boolean => this.access.confinesTo(user, type, 'search');
    const inOwn = await this.repository.inCompartment(
      own,
      links.filter(({ type }) => isConfined(type)),
      members.filter(({ type }) => isConfined(type)),
    );
    const kept = new Set(inOwn.map((member) => `${member.type}/${member.id}`));
    return members.filter(
      (member) =>
        !isConfined(member.type) ||
        (member.type === 'Patient' && member.id === own) ||
        kept.has(`${member.type}/${member.id}`),
    );
  }
  private careDateParam(type: string): string | undefined {
    const param = this.searchDefinitions.param(type, 'date') ? 'date' : CARE_DATES[type];
    return param && this.searchDefinitions.param(type, param)?.type === 'date' ? param : undefined;
  }

  /** `_type` (comma-separated, repeatable), `_since`, and the care-date window `start`/`end`. */
  private options(query: Query, cursors: CursorCodec): Options {
    const options: Options = {};
    const bound = (name: 'start' | 'end'): DateRange | undefined => {
      const raw = query[name];
      if (raw === undefined) return undefined;
      const range = typeof raw === 'string' ? dateRange(raw) : undefined;
      if (!range) {
        throw AppError.invalid(`${name} must be a date such as 2024, 2024-03 or 2024-03-01`);
      }
      return range;
    };
    const start = bound('start');
    const end = bound('end');
    if (start || end) {
      options.window = {
        low: start?.low ?? new Date(-8.64e15),
        high: end?.high ?? new Date(8.64e15),
      };
    }
    for (const [name, raw] of Object.entries(query)) {
      if (name === '_type') {
        const types = [raw ?? []]
          .flat()
          .flatMap((value) => value.split(','))
          .map((type) => type.trim());
        types.forEach((type) => this.definitions.assertResourceType(type));
        options.types = new Set(types);
      } else if (name === '_since') {
        options.since = parseSince(raw);
      } else if (name === '_count') {
        if (typeof raw !== 'string' || !/^\d{1,4}$/.test(raw) || Number(raw) < 1) {
          throw AppError.invalid(`_count must be a number from 1 to ${MAX_EVERYTHING_COUNT}`);
        }
        options.count = Math.min(Number(raw), MAX_EVERYTHING_COUNT);
      } else if (name === '_cursor') {
        const cursor = decodeCursor(raw, isEverythingCursor, '$everything', cursors);
        options.cursor = typeof cursor === 'string' ? cursor : cursor.k;
        if (typeof cursor !== 'string' && cursor.c !== undefined)
          options.complete = new Date(cursor.c);
      } else if (!['start', 'end', '_format', '_pretty'].includes(name)) {
        const takes = `$everything takes ${EVERYTHING_PARAMS.join(', ')}`;
        throw AppError.invalid(
          /^[A-Za-z0-9_-]{1,64}$/.test(name) ? `${takes}, not ${name}` : takes,
        );
      }
    }
    return options;
  }
}

function tooLong(): AppError {
  return AppError.of(400, 'too-long', `More than ${MAX_RESOURCES} resources: use Bulk Data export`);
}

/** The ids of these resources, by type. */
function byType(members: readonly { type: string; id: string }[]): Map<string, string[]> {
  const ids = new Map<string, string[]>();
  for (const member of members) {
    const list = ids.get(member.type) ?? [];
    list.push(member.id);
    ids.set(member.type, list);
  }
  return ids;
}

/**
 * A page's cursor: the key it starts after, and with `_since` its first page's instant (`c`).
 * A plain key is a cursor sealed before 2026-12-07.
 */
type EverythingCursor = string | { k: string; c?: string };

function isEverythingCursor(value: unknown): value is EverythingCursor {
  if (typeof value === 'string') return true;
  if (typeof value !== 'object' || value === null) return false;
  const { k, c } = value as { k?: unknown; c?: unknown };
  return (
    typeof k === 'string' &&
    (c === undefined || (typeof c === 'string' && !Number.isNaN(Date.parse(c))))
  );
}

function selfQuery(query: Query, cursors: CursorCodec, cursor?: string, complete?: Date): string {
  const search = new URLSearchParams();
  for (const name of EVERYTHING_PARAMS) {
    for (const value of [query[name] ?? []].flat()) search.append(name, value);
  }
  if (cursor !== undefined) {
    const sealed: EverythingCursor = complete ? { k: cursor, c: complete.toISOString() } : cursor;
    search.set('_cursor', cursors.seal(sealed));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
