import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/**
 * What a header value reads as once stored. A Subscription's `channel.header` holds the
 * receiver's credentials (`Authorization: Bearer …`): the notifier needs them, nobody reading
 * the Subscription does, so they are write-only, like a password field.
 */
export const MASKED = '[stored]';

type Channel = { header?: unknown; endpoint?: unknown };

/** The resource as it may be shown: a Subscription's header values masked, its names kept. */
export function withoutWriteOnly(resource: FhirResource): FhirResource {
  const channel = channelOf(resource);
  if (!channel || !Array.isArray(channel.header)) return resource;
  return {
    ...resource,
    channel: {
      ...channel,
      header: channel.header.map((header: unknown) =>
        typeof header === 'string' ? `${nameOf(header)}: ${MASKED}` : header,
      ),
    },
  };
}

/**
 * Whether a write sends write-only values of its own (not masked): then it is a new version
 * even when they equal the stored ones. Were it "unchanged" for the right value and a new
 * version for a wrong one, a writer could confirm a guessed credential it may not read.
 */
export function sendsWriteOnly(resource: FhirResource): boolean {
  const header = channelOf(resource)?.header;
  return (
    Array.isArray(header) && header.some((value) => typeof value === 'string' && !isMasked(value))
  );
}

/**
 * The resource to store: a header sent back masked (a client that read the Subscription,
 * changed its status and wrote it again) takes the value stored under its name in `previous`.
 * One masked with nothing to take its value from is a 422: storing the mask would send it.
 * So is one masked when the endpoint changed: credentials go only where they were given for,
 * or anyone who may write the Subscription could forward them to another receiver.
 */
export function withWriteOnlyKept(
  resource: FhirResource,
  previous: FhirResource | undefined,
): FhirResource {
  const channel = channelOf(resource);
  if (!channel || !Array.isArray(channel.header)) return resource;
  const header = channel.header as unknown[];
  if (!header.some(isMasked)) return resource;
  if (previous && endpointOf(channel) !== endpointOf(channelOf(previous))) {
    throw AppError.of(
      422,
      'value',
      `channel.endpoint changed: send the header values again (stored ones go only to the endpoint they were given for)`,
      ['Subscription.channel.header'],
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
    ...resource,
    channel: {
      ...channel,
      header: header.map((value, index) => {
        if (!isMasked(value)) return value;
        const kept = stored.get(nameOf(value).toLowerCase());
        if (kept === undefined) {
          throw AppError.of(
            422,
            'value',
            `channel.header[${index}] is masked (${MASKED}) and no stored header of that name is there to keep: send its value`,
            [`Subscription.channel.header[${index}]`],
          );
        }
        return kept;
      }),
    },
  };
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
