import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from '../fhir/fhir-types.js';

/** What a Subscription asks of the notifier, checked. */
export interface SubscriptionPlan {
  /** The type the criteria search (`Observation` of `Observation?code=…`). */
  criteriaType: string;
  /** The criteria's query, without the type and `?` (may be empty: every resource of the type). */
  criteria: string;
  endpoint: string;
  headers: [string, string][];
  status: string;
  /** `requested` or `active`, and not past its `end`. */
  active: boolean;
  /** Its `end`, past which it matches nothing and the notifier turns it `off`. */
  end?: Date;
}

const TYPE = /^[A-Z][A-Za-z]{0,63}$/;
// A value is visible ASCII, spaces and tabs: a control character (NUL) makes fetch throw before
// sending, with the value in its message, and every delivery would fail.
const HEADER = /^([A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}):[ \t]*([\x20-\x7e\t]{1,4096})$/;
/** Headers the HTTP client sets itself, or that would change how the request is read. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  // Read by receivers or the proxies before them as the request's path or method (IIS and
  // Symfony route by X-Original-URL and X-Rewrite-URL; many frameworks take a method override)
  // or as the client's address: each would take the POST, from this server's address, outside
  // the SUBSCRIPTION_ENDPOINTS prefix or past a receiver's check of who calls (until 2026-12-08
  // let through). X-Forwarded-* are refused by prefix, below.
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-real-ip',
  'forwarded',
]);
/** Name prefixes refused as RESERVED_HEADERS are: proxies' own (Proxy-*, X-Forwarded-*). */
const RESERVED_PREFIXES = ['proxy-', 'x-forwarded-'];
const MAX_HEADERS = 10;
const ACTIVE = new Set(['requested', 'active']);

const refuse = (diagnostics: string, element: string): AppError =>
  AppError.of(422, 'not-supported', diagnostics, [`Subscription.${element}`]);

/**
 * Checks a Subscription against what CareVault delivers: rest-hook channels, without a payload
 * (R4's "empty" notification: a POST with no body, after which the receiver reads what changed
 * with its own token, so no record leaves in the notification), to an endpoint under one of
 * the configured prefixes. Throws a 422 saying which element and why.
 */
export function subscriptionPlan(
  subscription: FhirResource,
  allowedEndpoints: readonly string[],
  isResourceType: (type: string) => boolean,
  now = new Date(),
): SubscriptionPlan {
  const { criteria, channel, status, end } = subscription as {
    criteria?: unknown;
    channel?: { type?: unknown; endpoint?: unknown; payload?: unknown; header?: unknown };
    status?: unknown;
    end?: unknown;
  };
  if (allowedEndpoints.length === 0) {
    throw refuse(
      'Subscriptions are off on this server: SUBSCRIPTION_ENDPOINTS names where notifications may go',
      'channel.endpoint',
    );
  }
  if (channel?.type !== 'rest-hook') {
    throw refuse('Only rest-hook channels are offered', 'channel.type');
  }
  if (channel.payload !== undefined) {
    throw refuse(
      'Notifications carry no payload: the receiver reads what changed with its own token. Leave channel.payload out',
      'channel.payload',
    );
  }
  const endpoint = allowedEndpoint(channel.endpoint, allowedEndpoints);
  const headers = (Array.isArray(channel.header) ? channel.header : []).map(
    (header: unknown): [string, string] => {
      const [, name, value] = typeof header === 'string' ? (HEADER.exec(header) ?? []) : [];
      if (!name || !value) {
        throw refuse('Each channel.header is "Name: value"', 'channel.header');
      }
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.has(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
        throw refuse(`channel.header may not set ${name}`, 'channel.header');
      }
      return [name, value];
    },
  );
  if (headers.length > MAX_HEADERS) {
    throw refuse(`At most ${MAX_HEADERS} channel.header entries`, 'channel.header');
  }
  const text = typeof criteria === 'string' ? criteria : '';
  const question = text.indexOf('?');
  const criteriaType = question === -1 ? text : text.slice(0, question);
  if (!TYPE.test(criteriaType) || !isResourceType(criteriaType)) {
    throw AppError.invalid('criteria is a search of one resource type: Type?parameters', [
      'Subscription.criteria',
    ]);
  }
  const ends = typeof end === 'string' ? Date.parse(end) : NaN;
  return {
    criteriaType,
    criteria: question === -1 ? '' : text.slice(question + 1),
    endpoint,
    headers,
    status: typeof status === 'string' ? status : '',
    active:
      typeof status === 'string' &&
      ACTIVE.has(status) &&
      (Number.isNaN(ends) || ends > now.getTime()),
    ...(Number.isNaN(ends) ? {} : { end: new Date(ends) }),
  };
}

/**
 * The plan of a stored Subscription as the notifier takes it: undefined when it is refused now
 * (its endpoint no longer among SUBSCRIPTION_ENDPOINTS, say), which delivers it nothing.
 */
export function storedPlan(
  subscription: FhirResource,
  allowedEndpoints: readonly string[],
  isResourceType: (type: string) => boolean,
): SubscriptionPlan | undefined {
  try {
    return subscriptionPlan(subscription, allowedEndpoints, isResourceType);
  } catch {
    return undefined;
  }
}

/**
 * Why a stored Subscription is refused now (its endpoint no longer among SUBSCRIPTION_ENDPOINTS,
 * say), in the words of the check, which quote no URL or header value; undefined when it is not.
 */
export function refusalOf(
  subscription: FhirResource,
  allowedEndpoints: readonly string[],
  isResourceType: (type: string) => boolean,
): string | undefined {
  try {
    subscriptionPlan(subscription, allowedEndpoints, isResourceType);
    return undefined;
  } catch (error) {
    return error instanceof AppError ? error.message : undefined;
  }
}

/**
 * Refuses two `channel.header`s of one name (as HTTP compares them, case aside), when the
 * owner writes a Subscription. Shown masked (`X-Key: [stored]`), a header written back takes the
 * value stored under its name, so two of one name would both come back as one of them; and
 * HTTP would send them joined into one. One stored before this check is not delivered: the
 * notifier sets it to `error` (see repeatedHeader).
 */
export function assertDistinctHeaders(plan: Pick<SubscriptionPlan, 'headers'>): void {
  const name = repeatedHeader(plan.headers);
  if (name !== undefined) {
    throw AppError.invalid(
      `channel.header names ${name} more than once: give each header once (values may be comma-separated)`,
      ['Subscription.channel.header'],
    );
  }
}

/**
 * The first header name given a second time (as HTTP compares names, case aside), as spelled
 * there; undefined when each is given once. Sent, the two would go as one header with both
 * values joined, which is neither value the receiver was given: a credential that fails, or
 * one that passes where only the other should.
 */
export function repeatedHeader(
  headers: readonly (readonly [string, string])[],
): string | undefined {
  const seen = new Set<string>();
  for (const [name] of headers) {
    if (seen.has(name.toLowerCase())) return name;
    seen.add(name.toLowerCase());
  }
  return undefined;
}

/**
 * The endpoint, when it lies under an allowed prefix: same origin, and a path under the
 * prefix's, compared after the URL is normalized (`..` resolved) and segment by segment, so
 * that neither `https://hooks.example.org.evil.net`, `https://hooks.example.org/fhir/../admin`
 * nor `https://hooks.example.org/fhir-admin` passes for `https://hooks.example.org/fhir`.
 */
function allowedEndpoint(value: unknown, allowed: readonly string[]): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw refuse('channel.endpoint must be an http(s) URL', 'channel.endpoint');
  }
  if (url.username || url.password) {
    throw refuse(
      'channel.endpoint may not hold credentials: send them in channel.header',
      'channel.endpoint',
    );
  }
  if (url.pathname.split('/').some(readsAsAnotherPath)) {
    throw refuse(
      'channel.endpoint has a path segment a receiver may read as another path (an encoded slash, or ..; and .;)',
      'channel.endpoint',
    );
  }
  const permitted = allowed.some((prefix) => {
    const base = new URL(prefix);
    // Without its trailing slash: `/fhir/` and `/fhir` both allow `/fhir` and `/fhir/…`.
    const path = base.pathname.replace(/\/+$/, '');
    return (
      base.origin === url.origin && (url.pathname === path || url.pathname.startsWith(`${path}/`))
    );
  });
  if (!permitted) {
    throw refuse(
      'channel.endpoint is not among the endpoints this server may notify (SUBSCRIPTION_ENDPOINTS)',
      'channel.endpoint',
    );
  }
  return url.href;
}

/**
 * Whether a path segment, which the URL takes as a name, may be read as another path by the
 * receiver or a proxy before it: decoded, a slash or backslash (many proxies decode `%2F`), or
 * `.` and `..` followed by `;` (Tomcat and Spring drop a segment's `;…`, so `..;` is `..`).
 * Each could take the POST and its headers outside the prefix, to `/admin` of its host.
 */
function readsAsAnotherPath(segment: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return true;
  }
  const name = decoded.split(';')[0];
  return /[/\\]/.test(decoded) || name === '.' || name === '..';
}
