import { AppError } from '../common/errors/app-error.js';
import type { FhirResource } from './fhir-types.js';
import { MASKED, withWriteOnlyKept, withoutWriteOnly } from './write-only-elements.js';

const subscription = (header: unknown[]): FhirResource => ({
  resourceType: 'Subscription',
  id: 's1',
  status: 'active',
  channel: { type: 'rest-hook', endpoint: 'https://hooks.example.org/x', header },
});
const headersOf = (resource: FhirResource): unknown =>
  (resource as unknown as { channel: { header: unknown } }).channel.header;

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
});
