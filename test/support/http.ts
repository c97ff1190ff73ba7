import { expect } from '@jest/globals';

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** fetch with JSON in and out; the body is parsed when the response has one. */
export async function http<T = any>(
  method: string,
  url: string,
  options: { body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Uint8Array | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/fhir+json';
  }
  const response = await fetch(url, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

export type HttpFn = typeof http;

/** `http` with a bearer token on every request (unless the call sets its own Authorization). */
export function authorizedHttp(token: string): HttpFn {
  return (method, url, options = {}) =>
    http(method, url, {
      ...options,
      headers: { authorization: `Bearer ${token}`, ...options.headers },
    });
}

/**
 * POSTs `body` to its type's endpoint (`fhir` is the base, `…/fhir`) as `as`, expects 201, and
 * gives the new id: a refusal fails the test with the OperationOutcome's issues in view.
 */
export async function createResource(
  as: HttpFn,
  fhir: string,
  body: Record<string, unknown>,
): Promise<string> {
  const res = await as('POST', `${fhir}/${String(body['resourceType'])}`, { body });
  expect([res.status, res.body?.issue]).toEqual([201, undefined]);
  return res.body.id as string;
}

/** Stores `count` copies of a resource, POSTed in batch Bundles of `per` entries. */
export async function createMany(
  as: HttpFn,
  fhir: string,
  resource: Record<string, unknown>,
  count: number,
  per = 250,
): Promise<void> {
  for (let done = 0; done < count; done += per) {
    const entry = Array.from({ length: Math.min(per, count - done) }, () => ({
      request: { method: 'POST', url: String(resource['resourceType']) },
      resource,
    }));
    const res = await as('POST', fhir, { body: { resourceType: 'Bundle', type: 'batch', entry } });
    expect(res.status).toBe(200);
  }
}
