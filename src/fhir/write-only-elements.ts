import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/**
 * What a header value reads as once stored. A Subscription's `channel.header` holds the
 * receiver's credentials (`Authorization: Bearer …`): the notifier needs them, nobody reading
 * the Subscription does, so they are write-only, like a password field.
 */
export const MASKED = '[stored]';

type Channel = { header?: unknown; endpoint?: unknown };

/**
 * Where a Subscription sits in the resource written or shown, as JSON keys and indexes: `[]` for
 * the resource itself, `['contained', 0]`, `['entry', 2, 'resource']` for one a stored Bundle
 * holds, `['parameter', 0, 'resource']` in a Parameters, and so on at any depth. Every one holds
 * the receiver's credentials, though only a stored Subscription's are ever sent.
 */
type Path = readonly (string | number)[];

/**
 * The resource as it may be shown: a Subscription's header values masked, its names kept, and
 * so those of every Subscription it holds (contained, in a Bundle entry or a parameter, at any
 * depth). Unchanged, it is returned as is (stored-json.ts).
 */
export function withoutWriteOnly(resource: FhirResource): FhirResource {
  return eachSubscription(resource, (subscription) => {
    const channel = channelOf(subscription);
    if (!channel || !Array.isArray(channel.header)) return subscription;
    return {
      ...subscription,
      channel: {
        ...channel,
        header: channel.header.map((header: unknown) =>
          typeof header === 'string' ? `${nameOf(header)}: ${MASKED}` : header,
        ),
      },
    };
  });
}

/**
 * Whether a write sends write-only values of its own (not masked): then it is a new version
 * even when they equal the stored ones. Were it "unchanged" for the right value and a new
 * version for a wrong one, a writer could confirm a guessed credential it may not read.
 */
export function sendsWriteOnly(resource: FhirResource): boolean {
  return subscriptionsIn(resource).some(({ subscription }) => {
    const header = channelOf(subscription)?.header;
    return (
      Array.isArray(header) && header.some((value) => typeof value === 'string' && !isMasked(value))
    );
  });
}

/**
 * The resource to store: a header sent back masked (a client that read the Subscription,
 * changed its status and wrote it again) takes the value stored under its name in `previous`
 * (for a Subscription `previous` holds, in the one of its id at the same place: see `storedAs`).
 * One masked with nothing to take its value from is a 422: storing the mask would send it.
 * So is one masked when the endpoint changed: credentials go only where they were given for,
 * or anyone who may write the Subscription could forward them to another receiver.
 */
export function withWriteOnlyKept(
  resource: FhirResource,
  previous: FhirResource | undefined,
): FhirResource {
  const held = subscriptionsIn(previous);
  return eachSubscription(resource, (subscription, path) =>
    keptIn(
      subscription,
      path.length === 0 ? previous : storedAs(subscription, path, held),
      path.length === 0
        ? { path: '', expression: 'Subscription' }
        : {
            path: `${pathText(path)}.`,
            expression: `${resource.resourceType}.${pathText(path)}`,
          },
    ),
  );
}

function keptIn(
  subscription: FhirResource,
  previous: FhirResource | undefined,
  where: { path: string; expression: string },
): FhirResource {
  const channel = channelOf(subscription);
  if (!channel || !Array.isArray(channel.header)) return subscription;
  const header = channel.header as unknown[];
  if (!header.some(isMasked)) return subscription;
  if (previous && endpointOf(channel) !== endpointOf(channelOf(previous))) {
    throw AppError.of(
      422,
      'value',
      `${where.path}channel.endpoint changed: send the header values again (stored ones go only to the endpoint they were given for)`,
      [`${where.expression}.channel.header`],
    );
  }
  const before = channelOf(previous)?.header;
  const stored = new Map<string, string>();
  for (const value of Array.isArray(before) ? (before as unknown[]) : []) {
    if (typeof value === 'string' && !isMasked(value)) {
      stored.set(nameOf(value).toLowerCase(), value);
    }
  }
  return {
    ...subscription,
    channel: {
      ...channel,
      header: header.map((value, index) => {
        if (!isMasked(value)) return value;
        const kept = stored.get(nameOf(value).toLowerCase());
        if (kept === undefined) {
          throw AppError.of(
            422,
            'value',
            `${where.path}channel.header[${index}] is masked (${MASKED}) and no stored header of that name is there to keep: send its value`,
            [`${where.expression}.channel.header[${index}]`],
          );
        }
        return kept;
      }),
    },
  };
}

/**
 * The stored Subscription a nested one sent stands for: the one of its id in the same kind of
 * place (`contained[]`, `entry[].resource`), which may have moved since, as Bundle entries do;
 * without an id, or with one several places share, only the one at that very place.
 */
function storedAs(
  subscription: FhirResource,
  path: Path,
  held: { subscription: FhirResource; path: Path }[],
): FhirResource | undefined {
  const kind = kindOf(path);
  const same = held.filter(
    (one) =>
      one.path.length > 0 && one.subscription.id === subscription.id && kindOf(one.path) === kind,
  );
  const there = same.find((one) => pathText(one.path) === pathText(path));
  return (there ?? (same.length === 1 && subscription.id !== undefined ? same[0] : undefined))
    ?.subscription;
}

/**
 * Where R4 lets an element hold a resource (the elements of type Resource): contained ones, a
 * Bundle's entries and their outcomes, a Parameters' parameters and their parts. Only these are
 * walked, so a read of a resource that holds none costs a few property checks, not a walk of
 * every element.
 */
const BUNDLE_ENTRY_RESOURCES: readonly (readonly string[])[] = [
  ['resource'],
  ['response', 'outcome'],
];

/**
 * `resource` with `change` made to every Subscription in it, itself included, at any depth (a
 * Subscription's own contained ones too); the same object when nothing changed, and so each
 * array and object on the way to a change.
 */
function eachSubscription(
  resource: FhirResource,
  change: (subscription: FhirResource, path: Path) => FhirResource,
): FhirResource {
  const visitResource = (value: unknown, path: Path): unknown => {
    if (!isObject(value)) return value;
    const own = isSubscription(value) ? (change(value, path) as Json) : value;
    let next: Json | undefined;
    const set = (key: string, after: unknown): void => {
      if (after !== own[key]) (next ??= { ...own })[key] = after;
    };
    set('contained', eachItem(own['contained'], [...path, 'contained'], visitResource));
    if (own['resourceType'] === 'Bundle') {
      set('entry', eachItem(own['entry'], [...path, 'entry'], visitEntry));
    } else if (own['resourceType'] === 'Parameters') {
      set('parameter', eachItem(own['parameter'], [...path, 'parameter'], visitPart));
    }
    return next ?? own;
  };
  const visitEntry = (value: unknown, path: Path): unknown =>
    BUNDLE_ENTRY_RESOURCES.reduce((entry, keys) => visitAlong(entry, path, keys), value);
  // A parameter's parts are parameters again, each with a resource and parts of its own.
  const visitPart = (value: unknown, path: Path): unknown => {
    if (!isObject(value)) return value;
    const withResource = visitAlong(value, path, ['resource']);
    if (!isObject(withResource)) return withResource;
    const parts = eachItem(withResource['part'], [...path, 'part'], visitPart);
    return parts === withResource['part'] ? withResource : { ...withResource, part: parts };
  };
  // The resource at `keys` below `value` (an entry's `response.outcome`), visited.
  const visitAlong = (value: unknown, path: Path, keys: readonly string[]): unknown => {
    if (keys.length === 0) return visitResource(value, path);
    if (!isObject(value)) return value;
    const [key, ...rest] = keys;
    const child = value[key!];
    if (child === undefined) return value;
    const after = visitAlong(child, [...path, key!], rest);
    return after === child ? value : { ...value, [key!]: after };
  };
  return visitResource(resource, []) as FhirResource;
}

/** `items` with `visit` made to each; the same array when nothing changed (or not an array). */
function eachItem(
  items: unknown,
  path: Path,
  visit: (item: unknown, path: Path) => unknown,
): unknown {
  if (!Array.isArray(items)) return items;
  let next: unknown[] | undefined;
  items.forEach((item: unknown, index) => {
    const after = visit(item, [...path, index]);
    if (after !== item) (next ??= [...(items as unknown[])])[index] = after;
  });
  return next ?? items;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every Subscription in `resource`, itself included, with where it is. */
function subscriptionsIn(
  resource: FhirResource | undefined,
): { subscription: FhirResource; path: Path }[] {
  const found: { subscription: FhirResource; path: Path }[] = [];
  if (resource) {
    eachSubscription(resource, (subscription, path) => {
      found.push({ subscription, path });
      return subscription;
    });
  }
  return found;
}

/** `entry[1].resource` for `['entry', 1, 'resource']`. */
function pathText(path: Path): string {
  return path
    .map((step, index) =>
      typeof step === 'number' ? `[${step}]` : index === 0 ? step : `.${step}`,
    )
    .join('');
}

/** The place without its indexes: `entry[].resource`, `contained[]`. */
function kindOf(path: Path): string {
  return pathText(path).replace(/\[\d+\]/g, '[]');
}

function isSubscription(value: unknown): value is FhirResource {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { resourceType?: unknown }).resourceType === 'Subscription'
  );
}

function channelOf(resource: FhirResource | undefined): Channel | undefined {
  if (resource?.resourceType !== 'Subscription') return undefined;
  const channel = (resource as { channel?: unknown }).channel;
  return typeof channel === 'object' && channel !== null ? channel : undefined;
}

/** The endpoint as a URL compares (`HTTPS://Host/x` is `https://host/x`), or as written. */
function endpointOf(channel: Channel | undefined): unknown {
  const endpoint = channel?.endpoint;
  if (typeof endpoint !== 'string') return endpoint;
  try {
    return new URL(endpoint).href;
  } catch {
    return endpoint;
  }
}

function nameOf(header: string): string {
  const colon = header.indexOf(':');
  return (colon === -1 ? header : header.slice(0, colon)).trim();
}

function isMasked(header: unknown): header is string {
  return typeof header === 'string' && header.slice(header.indexOf(':') + 1).trim() === MASKED;
}
