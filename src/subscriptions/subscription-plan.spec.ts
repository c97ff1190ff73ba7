import { AppError } from '../common/errors/app-error.js';
import { assertDistinctHeaders, subscriptionPlan } from './subscription-plan.js';

const ALLOWED = ['https://hooks.example.org/fhir/', 'http://127.0.0.1:8080'];
const known = (type: string): boolean => ['Observation', 'Patient'].includes(type);

function subscription(change: Record<string, unknown> = {}, channel: Record<string, unknown> = {}) {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'lab results',
    criteria: 'Observation?code=http://loinc.org|2345-7',
    channel: { type: 'rest-hook', endpoint: 'https://hooks.example.org/fhir/lab', ...channel },
    ...change,
  };
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    const outcome = (error as AppError).issues[0]!;
    return `${(error as AppError).status} ${outcome.expression?.[0]}: ${outcome.diagnostics}`;
  }
  return 'accepted';
}

describe('Subscription plans', () => {
  it('reads the criteria, endpoint, headers and whether it is active', () => {
    expect(
      subscriptionPlan(
        subscription({}, { header: ['Authorization: Bearer abc', 'X-Tenant:  north'] }),
        ALLOWED,
        known,
      ),
    ).toEqual({
      criteriaType: 'Observation',
      criteria: 'code=http://loinc.org|2345-7',
      endpoint: 'https://hooks.example.org/fhir/lab',
      headers: [
        ['Authorization', 'Bearer abc'],
        ['X-Tenant', 'north'],
      ],
      status: 'requested',
      active: true,
    });
    expect(subscriptionPlan(subscription({ criteria: 'Patient' }), ALLOWED, known).criteria).toBe(
      '',
    );
    expect(subscriptionPlan(subscription({ status: 'off' }), ALLOWED, known).active).toBe(false);
    expect(subscriptionPlan(subscription({ status: 'error' }), ALLOWED, known).active).toBe(false);
    const now = new Date('2026-12-03T12:00:00Z');
    expect(
      subscriptionPlan(subscription({ end: '2026-12-03T11:00:00Z' }), ALLOWED, known, now).active,
    ).toBe(false);
    expect(subscriptionPlan(subscription({ end: '2026-12-04' }), ALLOWED, known, now)).toEqual(
      expect.objectContaining({ active: true, end: new Date('2026-12-04T00:00:00Z') }),
    );
  });

  it('refuses what it would not deliver, naming the element', () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, string][] = [
      [
        {},
        { type: 'websocket' },
        '422 Subscription.channel.type: Only rest-hook channels are offered',
      ],
      [
        {},
        { payload: 'application/fhir+json' },
        '422 Subscription.channel.payload: Notifications carry no payload',
      ],
      [
        {},
        { endpoint: 'https://hooks.example.org.evil.net/fhir/' },
        '422 Subscription.channel.endpoint: channel.endpoint is not among',
      ],
      [
        {},
        { endpoint: 'https://hooks.example.org/fhir/../admin' },
        '422 Subscription.channel.endpoint: channel.endpoint is not among',
      ],
      [
        {},
        { endpoint: 'https://hooks.example.org/other' },
        '422 Subscription.channel.endpoint: channel.endpoint is not among',
      ],
      [
        {},
        { endpoint: 'https://u:p@hooks.example.org/fhir/x' },
        '422 Subscription.channel.endpoint: channel.endpoint may not hold credentials',
      ],
      [
        {},
        { endpoint: 'ftp://hooks.example.org/fhir/' },
        '422 Subscription.channel.endpoint: channel.endpoint must be an http(s) URL',
      ],
      [
        {},
        { endpoint: undefined },
        '422 Subscription.channel.endpoint: channel.endpoint must be an http(s) URL',
      ],
      [
        {},
        { header: ['Host: evil'] },
        '422 Subscription.channel.header: channel.header may not set Host',
      ],
      [
        {},
        { header: ['X-Original-URL: /admin'] },
        '422 Subscription.channel.header: channel.header may not set X-Original-URL',
      ],
      [
        {},
        { header: ['x-forwarded-for: 10.0.0.1'] },
        '422 Subscription.channel.header: channel.header may not set x-forwarded-for',
      ],
      [
        {},
        { header: ['X-A: b\r\nX-B: c'] },
        '422 Subscription.channel.header: Each channel.header is "Name: value"',
      ],
      [
        {},
        { header: ['X-A: b\u0000c'] },
        '422 Subscription.channel.header: Each channel.header is "Name: value"',
      ],
      [
        { criteria: 'Nonsense?x=1' },
        {},
        '400 Subscription.criteria: criteria is a search of one resource type',
      ],
      [
        { criteria: '?code=1' },
        {},
        '400 Subscription.criteria: criteria is a search of one resource type',
      ],
    ];
    for (const [change, channel, expected] of cases) {
      expect(
        refusal(() => subscriptionPlan(subscription(change, channel), ALLOWED, known)),
      ).toContain(expected);
    }
    // The path prefix of an allowed origin without a path is the whole origin.
    expect(
      refusal(() =>
        subscriptionPlan(
          subscription({}, { endpoint: 'http://127.0.0.1:8080/any' }),
          ALLOWED,
          known,
        ),
      ),
    ).toBe('accepted');
    expect(
      refusal(() =>
        subscriptionPlan(
          subscription({}, { endpoint: 'http://127.0.0.1:8081/any' }),
          ALLOWED,
          known,
        ),
      ),
    ).toContain('not among');
  });

  it('allows a path under the prefix, segment by segment, not one that merely starts alike', () => {
    const accepted = (endpoint: string, allowed: string) =>
      refusal(() => subscriptionPlan(subscription({}, { endpoint }), [allowed], known));
    for (const allowed of ['https://hooks.example.org/fhir', 'https://hooks.example.org/fhir/']) {
      for (const endpoint of [
        'https://hooks.example.org/fhir',
        'https://hooks.example.org/fhir/',
        'https://hooks.example.org/fhir/lab',
        'https://hooks.example.org/fhir/lab/x?ward=north',
      ]) {
        expect([allowed, endpoint, accepted(endpoint, allowed)]).toEqual([
          allowed,
          endpoint,
          'accepted',
        ]);
      }
      for (const endpoint of [
        'https://hooks.example.org/fhir-admin/x',
        'https://hooks.example.org/fhirx',
        'https://hooks.example.org/fhir.json',
        'https://hooks.example.org/',
      ]) {
        expect([allowed, endpoint, accepted(endpoint, allowed)]).toEqual([
          allowed,
          endpoint,
          expect.stringContaining('not among'),
        ]);
      }
    }
  });

  it('refuses a path that a receiver may read as leaving the prefix, though the URL does not', () => {
    // `..;` is `..` to Tomcat and Spring, an encoded slash or dot is decoded by many proxies:
    // each would take the POST and its headers to `/admin` of the receiver's host.
    for (const endpoint of [
      'https://hooks.example.org/fhir/..;/admin',
      'https://hooks.example.org/fhir/.;/../admin',
      'https://hooks.example.org/fhir/..%2Fadmin',
      'https://hooks.example.org/fhir/x/..%2f..%2fadmin',
      'https://hooks.example.org/fhir/..%5Cadmin',
      'https://hooks.example.org/fhir/%2E%2E%2fadmin',
      'https://hooks.example.org/fhir/.%2e%2fadmin',
    ]) {
      expect([
        endpoint,
        refusal(() => subscriptionPlan(subscription({}, { endpoint }), ALLOWED, known)),
      ]).toEqual([endpoint, expect.stringMatching(/^422 Subscription.channel.endpoint: /)]);
    }
    // Dots and semicolons within a name are names.
    for (const endpoint of [
      'https://hooks.example.org/fhir/lab.v2/a;b',
      'https://hooks.example.org/fhir/..x/%41',
    ]) {
      expect(refusal(() => subscriptionPlan(subscription({}, { endpoint }), ALLOWED, known))).toBe(
        'accepted',
      );
    }
  });

  it('refuses a header name given twice, case aside, which write-back would collapse', () => {
    const plan = (header: string[]) =>
      subscriptionPlan(subscription({}, { header }), ALLOWED, known);
    expect(
      refusal(() => assertDistinctHeaders(plan(['X-Key: one', 'Authorization: b', 'x-key: two']))),
    ).toBe(
      '400 Subscription.channel.header: channel.header names x-key more than once: give each header once (values may be comma-separated)',
    );
    expect(refusal(() => assertDistinctHeaders(plan(['X-Key: one', 'X-Keys: two'])))).toBe(
      'accepted',
    );
  });

  it('refuses every Subscription when no endpoint is configured', () => {
    expect(refusal(() => subscriptionPlan(subscription(), [], known))).toContain(
      'Subscriptions are off on this server',
    );
  });
});
