import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';

/**
 * What a header value reads as once stored. A Subscription's `channel.header` holds the
 * receiver's credentials (`Authorization: Bearer …`): the notifier needs them, nobody reading
 * the Subscription does, so they are write-only, like a password field.
 */
export const MASKED = '[stored]';

type Channel = { header?: unknown };

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
 * The resource to store: a header sent back masked (a client that read the Subscription,
 * changed its status and wrote it again) takes the value stored under its name in `previous`.
 * One masked with nothing to take its value from is a 422: storing the mask would send it.
 */
export function withWriteOnlyKept(
  resource: FhirResource,
  previous: FhirResource | undefined,
): FhirResource {
  const channel = channelOf(resource);
  if (!channel || !Array.isArray(channel.header)) return resource;
  const header = channel.header as unknown[];
  if (!header.some(isMasked)) return resource;
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

function nameOf(header: string): string {
  const colon = header.indexOf(':');
  return (colon === -1 ? header : header.slice(0, colon)).trim();
}

function isMasked(header: unknown): header is string {
  return typeof header === 'string' && header.slice(header.indexOf(':') + 1).trim() === MASKED;
}
