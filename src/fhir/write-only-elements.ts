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
 * Where a Subscription sits in the resource written or shown: the resource itself, or one it
 * contains (`contained[index]`, whose header values are credentials too, though never sent).
 */
type Place = { contained?: number };

/**
 * The resource as it may be shown: a Subscription's header values masked, its names kept, and
 * so those of every Subscription it contains. Unchanged, it is returned as is (stored-json.ts).
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
  return [resource, ...containedOf(resource)].some((one) => {
    const header = channelOf(one)?.header;
    return (
      Array.isArray(header) && header.some((value) => typeof value === 'string' && !isMasked(value))
    );
  });
}

/**
 * The resource to store: a header sent back masked (a client that read the Subscription,
 * changed its status and wrote it again) takes the value stored under its name in `previous`
 * (for a contained Subscription, in the one `previous` contains with its id).
 * One masked with nothing to take its value from is a 422: storing the mask would send it.
 * So is one masked when the endpoint changed: credentials go only where they were given for,
 * or anyone who may write the Subscription could forward them to another receiver.
 */
export function withWriteOnlyKept(
  resource: FhirResource,
  previous: FhirResource | undefined,
): FhirResource {
  return eachSubscription(resource, (subscription, place) =>
    keptIn(
      subscription,
      place.contained === undefined
        ? previous
        : containedOf(previous).find((one) => one.id === subscription.id),
      place.contained === undefined
        ? { path: '', expression: 'Subscription' }
        : {
            path: `contained[${place.contained}].`,
            expression: `${resource.resourceType}.contained[${place.contained}]`,
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
 * `resource` with `change` made to it and to each resource it contains (FHIR: contained
 * resources contain none themselves); the same object when nothing changed.
 */
function eachSubscription(
  resource: FhirResource,
  change: (subscription: FhirResource, place: Place) => FhirResource,
): FhirResource {
  const changed = resource.resourceType === 'Subscription' ? change(resource, {}) : resource;
  const contained = (changed as { contained?: unknown }).contained;
  if (!Array.isArray(contained)) return changed;
  let any = false;
  const next = contained.map((one: unknown, index) => {
    if (!isSubscription(one)) return one;
    const after = change(one, { contained: index });
    any ||= after !== one;
    return after;
  });
  return any ? { ...changed, contained: next } : changed;
}

/** The Subscriptions `resource` contains. */
function containedOf(resource: FhirResource | undefined): FhirResource[] {
  const contained = (resource as { contained?: unknown } | undefined)?.contained;
  return Array.isArray(contained) ? contained.filter(isSubscription) : [];
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
