import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';
import {
  MASKED,
  sendsWriteOnly,
  withWriteOnlyKept,
  withoutWriteOnly,
} from './write-only-elements.js';

const subscription = (header: unknown[]): FhirResource => ({
  resourceType: 'Subscription',
  id: 's1',
  status: 'active',
  channel: { type: 'rest-hook', endpoint: 'https://hooks.example.org/x', header },
});
const headersOf = (resource: FhirResource): unknown =>
  (resource as unknown as { channel: { header: unknown } }).channel.header;
/** A Patient that contains `subscriptions` (and an Organization, which is left alone). */
const container = (...subscriptions: FhirResource[]): FhirResource => ({
  resourceType: 'Patient',
  id: 'p1',
  contained: [{ resourceType: 'Organization', id: 'o1' }, ...subscriptions],
});
const containedOf = (resource: FhirResource): FhirResource[] =>
  (resource as unknown as { contained: FhirResource[] }).contained;

describe('write-only elements (Subscription.channel.header values)', () => {
  it('masks every header value and keeps the names', () => {
    const shown = withoutWriteOnly(
      subscription(['Authorization: Bearer abc', 'X-Tenant:north', 'Odd']),
    );
    expect(headersOf(shown)).toEqual([
      `Authorization: ${MASKED}`,
      `X-Tenant: ${MASKED}`,
      `Odd: ${MASKED}`,
    ]);
    expect(JSON.stringify(shown)).not.toContain('abc');
  });

  it('leaves other resources, and Subscriptions without headers, as they are', () => {
    const patient = { resourceType: 'Patient', channel: { header: ['A: b'] } } as FhirResource;
    expect(withoutWriteOnly(patient)).toBe(patient);
    const bare = { resourceType: 'Subscription', channel: { type: 'rest-hook' } } as FhirResource;
    expect(withoutWriteOnly(bare)).toBe(bare);
  });

  it('gives a header sent back masked the value stored under its name, whatever its case', () => {
    const previous = subscription(['Authorization: Bearer abc', 'X-Tenant: north']);
    const sent = subscription([`authorization: ${MASKED}`, 'X-Tenant: south']);
    expect(headersOf(withWriteOnlyKept(sent, previous))).toEqual([
      'Authorization: Bearer abc',
      'X-Tenant: south',
    ]);
  });

  it('keeps a resource with no masked header as sent', () => {
    const sent = subscription(['Authorization: Bearer new']);
    expect(withWriteOnlyKept(sent, undefined)).toBe(sent);
  });

  it('refuses a masked header with no stored value to keep, naming it', () => {
    const attempt = (previous: FhirResource | undefined) => () =>
      withWriteOnlyKept(subscription(['X-A: 1', `X-Key: ${MASKED}`]), previous);
    expect(attempt(undefined)).toThrow(AppError);
    expect(attempt(undefined)).toThrow(/channel.header\[1\] is masked/);
    expect(attempt(subscription([`X-Key: ${MASKED}`]))).toThrow(/channel.header\[1\] is masked/);
    expect(attempt(subscription(['X-Other: 1']))).toThrow(/send its value/);
  });

  it('masks a contained Subscription the same way, leaving the stored one as it was', () => {
    const stored = container(subscription(['Authorization: Bearer abc']));
    const shown = withoutWriteOnly(stored);
    expect(containedOf(shown).map((one) => one.resourceType)).toEqual([
      'Organization',
      'Subscription',
    ]);
    expect(headersOf(containedOf(shown)[1]!)).toEqual([`Authorization: ${MASKED}`]);
    expect(JSON.stringify(stored)).toContain('abc');
    // Nothing to mask: the resource itself, so that a Bundle may send its stored text.
    const plain = container();
    expect(withoutWriteOnly(plain)).toBe(plain);
  });

  it('keeps a contained header sent back masked from the contained Subscription of that id', () => {
    const previous = container(subscription(['Authorization: Bearer abc']));
    const sent = container(subscription([`Authorization: ${MASKED}`, 'X-Tenant: south']));
    expect(headersOf(containedOf(withWriteOnlyKept(sent, previous))[1]!)).toEqual([
      'Authorization: Bearer abc',
      'X-Tenant: south',
    ]);
    const other = container({ ...subscription([`Authorization: ${MASKED}`]), id: 's2' });
    expect(() => withWriteOnlyKept(other, previous)).toThrow(
      /^contained\[1\].channel.header\[0\] is masked/,
    );
    const moved = container({
      ...subscription([`Authorization: ${MASKED}`]),
      channel: { type: 'rest-hook', endpoint: 'https://other.example.org/', header: [] },
    });
    expect(() =>
      withWriteOnlyKept(
        container({
          ...subscription([`Authorization: ${MASKED}`]),
          channel: {
            type: 'rest-hook',
            endpoint: 'https://other.example.org/',
            header: [`Authorization: ${MASKED}`],
          },
        }),
        previous,
      ),
    ).toThrow(/^contained\[1\].channel.endpoint changed/);
    expect(withWriteOnlyKept(moved, previous)).toBe(moved);
  });

  it('counts a contained header value sent in clear as sent', () => {
    expect(sendsWriteOnly(container(subscription(['Authorization: Bearer abc'])))).toBe(true);
    expect(sendsWriteOnly(container(subscription([`Authorization: ${MASKED}`])))).toBe(false);
    expect(sendsWriteOnly(container())).toBe(false);
  });
});
