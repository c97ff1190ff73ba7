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

  describe('Subscriptions a resource holds anywhere (a stored Bundle, a Parameters)', () => {
    /** A collection Bundle, as a client may store one, of `resources`. */
    const collection = (...resources: FhirResource[]): FhirResource => ({
      resourceType: 'Bundle',
      type: 'collection',
      entry: resources.map((resource) => ({ resource })),
    });
    const entriesOf = (resource: FhirResource): FhirResource[] =>
      (resource as unknown as { entry: { resource: FhirResource }[] }).entry.map(
        (entry) => entry.resource,
      );
    const parameters = (inner: FhirResource): FhirResource => ({
      resourceType: 'Parameters',
      parameter: [{ name: 'found', part: [{ name: 'bundle', resource: inner }] }],
    });

    it('masks them at any depth and leaves the stored resource as it was', () => {
      const stored = parameters(
        collection(
          subscription(['Authorization: Bearer abc']),
          collection(container(subscription(['X-Key: deep']))),
        ),
      );
      const shown = withoutWriteOnly(stored);
      const text = JSON.stringify(shown);
      expect(text).not.toContain('abc');
      expect(text).not.toContain('deep');
      expect(text.match(/\[stored\]/g)).toHaveLength(2);
      expect(JSON.stringify(stored)).toContain('abc');
      const plain = parameters(collection(container()));
      expect(withoutWriteOnly(plain)).toBe(plain);
    });

    it('counts a value sent in clear at any depth as sent', () => {
      expect(sendsWriteOnly(collection(collection(subscription(['A: b']))))).toBe(true);
      expect(sendsWriteOnly(collection(collection(subscription([`A: ${MASKED}`]))))).toBe(false);
    });

    it('keeps a header sent back masked from the Subscription of that id, moved or not', () => {
      const other = { ...subscription(['Authorization: Bearer xyz']), id: 's2' };
      const previous = collection(subscription(['Authorization: Bearer abc']), other);
      const masked = withoutWriteOnly(previous);
      const [first, second] = entriesOf(masked);
      const kept = withWriteOnlyKept(collection(second!, first!), previous);
      expect(entriesOf(kept).map(headersOf)).toEqual([
        ['Authorization: Bearer xyz'],
        ['Authorization: Bearer abc'],
      ]);
      const nested = parameters(previous);
      expect(JSON.stringify(withWriteOnlyKept(withoutWriteOnly(nested), nested))).toBe(
        JSON.stringify(nested),
      );
    });

    it('refuses a masked header with nothing stored in that place, naming where it is', () => {
      const previous = collection(subscription(['Authorization: Bearer abc']));
      const sent = collection({ ...subscription([`Authorization: ${MASKED}`]), id: 'new' });
      expect(() => withWriteOnlyKept(sent, previous)).toThrow(
        /^entry\[0\].resource.channel.header\[0\] is masked/,
      );
      // Without an id, only the Subscription at that very place stands for it.
      const anonymous = { ...subscription(['Authorization: Bearer abc']), id: undefined };
      const before = collection(container(), anonymous);
      const moved = collection(withoutWriteOnly(anonymous), container());
      expect(() => withWriteOnlyKept(moved, before)).toThrow(/^entry\[0\].resource.channel/);
      expect(() => withWriteOnlyKept(parameters(sent), parameters(previous))).toThrow(
        /^parameter\[0\].part\[0\].resource.entry\[0\].resource.channel.header\[0\]/,
      );
    });
  });
});
