import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { AppError } from '../common/errors/app-error.js';

/** `_format` values and Accept media ranges CareVault can answer: FHIR JSON only. */
const JSON_FORMATS = new Set([
  'json',
  'application/json',
  'application/fhir+json',
  'application/json+fhir',
]);
const ANY = new Set(['*/*', 'application/*']);
/** The `fhirVersion` media type parameter values of FHIR R4 (http.html#version-parameter). */
const R4 = new Set(['4.0', '4.0.1']);
const BINARY_READ = /^\/fhir\/Binary\/[A-Za-z0-9.-]{1,64}(\/_history\/[^/?]+)?(\?|$)/;

/**
 * Whether a Binary read should answer in the Binary's own format: FHIR R4 says so unless the
 * request asks for a FHIR format explicitly (`_format`, or an Accept naming FHIR JSON).
 */
export function wantsNativeBinary(request: FastifyRequest): boolean {
  const query = request.query as Record<string, unknown> | undefined;
  if (query?.['_format'] !== undefined) return false;
  const accept = request.headers.accept ?? '';
  return !accept.split(',').some((range) => JSON_FORMATS.has(mediaType(range)));
}

/**
 * 406 for a FHIR request that asks for a format other than JSON (`_format=xml`,
 * `Accept: application/fhir+xml`), as the FHIR specification asks, rather than an answer in a
 * format the client did not ask for. Bulk Data files (NDJSON) are not FHIR JSON and are left to
 * their own route. Registered as an onRequest hook; the refusal is audited like any other.
 */
export function refuseOtherFormats(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  if (!request.url.startsWith('/fhir') || request.url.startsWith('/fhir/$export-file/')) {
    done();
    return;
  }
  const query = request.query as Record<string, string | string[] | undefined> | undefined;
  const formats = [query?.['_format'] ?? []].flat();
  // A Binary is read in its own format (a PDF as application/pdf) unless FHIR JSON is asked for.
  if (formats.length === 0 && request.method === 'GET' && BINARY_READ.test(request.url)) {
    done();
    return;
  }
  const accept = request.headers.accept?.trim() || '*/*';
  const ranges = accept.split(',');
  const json = (range: string) => JSON_FORMATS.has(mediaType(range));
  const producible =
    formats.every((format) => json(format)) &&
    ranges.some((range) => json(range) || ANY.has(mediaType(range)));
  const r4 = formats.every(servedVersion) && ranges.every(servedVersion);
  done(
    !producible
      ? AppError.of(
          406,
          'not-supported',
          'Only FHIR JSON is produced: ask for application/fhir+json (_format=json)',
        )
      : !r4
        ? AppError.of(406, 'not-supported', 'Only FHIR R4 is served: fhirVersion=4.0 ($versions)')
        : undefined,
  );
}

function mediaType(range: string): string {
  return (range.split(';')[0] ?? '').trim().toLowerCase();
}

/** Whether a media range names no `fhirVersion`, or R4's. */
function servedVersion(range: string): boolean {
  const version = /;\s*fhirversion\s*=\s*"?([^";\s]+)/i.exec(range)?.[1];
  return version === undefined || R4.has(version);
}
