import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { AppError } from '../common/errors/app-error.js';
import { matchedRoute } from '../common/http/matched-route.js';
import { plainJsonAnswer, unencodedPlus } from '../common/http/media-types.js';
import { addVary } from '../common/http/vary.js';

/** `_format` values and Accept media ranges CareVault can answer: FHIR JSON only. */
const JSON_FORMATS = new Set([
  'json',
  'application/json',
  'application/fhir+json',
  'application/json+fhir',
]);
const ANY = new Set(['*/*', 'application/*']);
/** FHIR's XML media types: never produced, and a Binary's bytes are not what they ask for. */
const FHIR_XML = new Set(['application/fhir+xml', 'application/xml+fhir']);
/** The `fhirVersion` media type parameter values of FHIR R4 (http.html#version-parameter). */
const R4 = new Set(['4.0', '4.0.1']);
/** The methods whose body a FHIR route reads: a Content-Type on any other labels nothing. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const BINARY_READ = /^\/fhir\/Binary\/[A-Za-z0-9.-]{1,64}(\/_history\/[^/?]+)?(\?|$)/;

/**
 * Whether a Binary read should answer in the Binary's own format: FHIR R4 says so unless the
 * request asks for a FHIR format explicitly (`_format`, or an Accept naming R4 JSON).
 */
export function wantsNativeBinary(request: FastifyRequest): boolean {
  const query = request.query as Record<string, unknown> | undefined;
  if (query?.['_format'] !== undefined) return false;
  const accept = request.headers.accept ?? '';
  return !accepted(accept).some((range) => isJson(range) && servedVersion(range));
}

/**
 * 406 for a FHIR request that asks for a format other than JSON (`_format=xml`,
 * `Accept: application/fhir+xml`), as the FHIR specification asks, rather than an answer in a
 * format the client did not ask for, and 415 for a body whose Content-Type names another FHIR
 * version (`fhirVersion=5.0`), which would otherwise be stored as if it were R4. Bulk Data files
 * (NDJSON) are not FHIR JSON and are left to their own route. Registered as an onRequest hook
 * (before the body is read); the refusal is audited like any other.
 */
export function refuseOtherFormats(
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  if (!request.url.startsWith('/fhir') || request.url.startsWith('/fhir/$export-file/')) {
    done();
    return;
  }
  const query = request.query as Record<string, string | string[] | undefined> | undefined;
  const formats = [query?.['_format'] ?? []].flat();
  // Without _format, Accept chooses the answer (its type, a Binary's own bytes, or a 406), and
  // a cache that kept one must not give it to another Accept; a 304 carries this too. A
  // _format is in the URL, which a cache keys already.
  if (formats.length === 0) addVary(reply, 'Accept');
  // A Binary is read in its own format (a PDF as application/pdf) unless FHIR content is asked
  // for (binary.html); FHIR content other than R4 JSON is refused as on any other read. Read as
  // FHIR JSON, it is labelled as Accept chose, as any other read is: until 2026-12-07 it was
  // application/fhir+json to `Accept: application/json` too. Its own bytes keep their own type.
  if (formats.length === 0 && request.method === 'GET' && BINARY_READ.test(request.url)) {
    const accept = request.headers.accept?.trim() || '*/*';
    if (negotiateJson(accept) === PLAIN_JSON) plainJsonAnswer(request);
    done(binaryRefusal(accept));
    return;
  }
  if (BODY_METHODS.has(request.method) && !servedVersion(request.headers['content-type'] ?? '')) {
    done(
      AppError.of(
        415,
        'not-supported',
        'Only FHIR R4 bodies are accepted: fhirVersion=4.0 ($versions)',
      ),
    );
    return;
  }
  // A search's form body may hold a _format, which overrides Accept: both are judged once it
  // is parsed (refuseOtherFormatsInForms).
  if (formats.length === 0 && isPostedSearch(request)) {
    done();
    return;
  }
  done(formatRefusal(request, formats));
}

/**
 * _format overrides Accept (http.html: for a client that cannot set the header), so it is
 * judged alone when given, and names FHIR JSON. Otherwise Accept chooses the media type of the
 * answer (negotiateJson), which plainJsonAnswer keeps for the reply's Content-Type.
 */
function formatRefusal(request: FastifyRequest, formats: string[]): AppError | undefined {
  if (formats.length > 0) {
    return !formats.every(isJson)
      ? NOT_JSON()
      : !formats.every(servedVersion)
        ? NOT_R4()
        : undefined;
  }
  const accept = request.headers.accept;
  const type = negotiateJson(accept);
  if (type === undefined) return notAcceptable(accept ?? '');
  if (type === PLAIN_JSON) plainJsonAnswer(request);
  return undefined;
}

/** The JSON media types answered, FHIR JSON's own first: the same bytes, labelled either way. */
const FHIR_JSON_TYPE = 'application/fhir+json';
const PLAIN_JSON = 'application/json';
export type JsonMediaType = typeof FHIR_JSON_TYPE | typeof PLAIN_JSON;

/** The specificity of a media range that names a type answered (RFC 9110 section 12.5.1). */
const SPECIFICITY: Record<string, number> = { '*/*': 0, 'application/*': 1 };

/**
 * The media type an Accept header is answered in (RFC 9110 sections 12.4.2 and 12.5.1): each
 * type answered weighs the `q` of the most specific range that matches it (the range of any
 * type, then `application/*`, then the type, then the type with a `fhirVersion`; a range naming
 * a version other than R4 matches nothing), and the heavier wins, FHIR JSON on a tie; none when
 * both weigh 0 (`q=0`, or no range matches them), which is a 406. `application/json+fhir`
 * (DSTU2's name) is FHIR JSON. No header, or an empty one, takes anything. Until 2026-12-07 a
 * range with q=0 only took its own type out, so that `application/fhir+json;q=0` next to the
 * range of any type was answered as application/fhir+json.
 */
export function negotiateJson(accept: string | undefined): JsonMediaType | undefined {
  if (accept === undefined || accept === FHIR_JSON_TYPE) return FHIR_JSON_TYPE;
  // Per type answered: the specificity of the best match so far (-1: none), and its weight.
  let fhirRank = -1;
  let fhirQ = 0;
  let plainRank = -1;
  let plainQ = 0;
  let empty = true;
  for (const range of accept.split(',')) {
    const [name = '', ...parameters] = range.split(';');
    const type = name.trim().toLowerCase();
    if (type === '') continue;
    empty = false;
    const wildcard = SPECIFICITY[type];
    const fhir =
      wildcard !== undefined || type === FHIR_JSON_TYPE || type === 'application/json+fhir';
    const plain = wildcard !== undefined || type === PLAIN_JSON;
    if (!fhir && !plain) continue;
    let q = 1;
    let rank = wildcard ?? 2;
    let served = true;
    for (const parameter of parameters) {
      const equals = parameter.indexOf('=');
      const key = parameter.slice(0, equals).trim().toLowerCase();
      if (key === 'q') {
        const weight = parseFloat(parameter.slice(equals + 1));
        q = Number.isNaN(weight) ? 1 : weight;
      } else if (key === 'fhirversion') {
        served = R4.has(
          parameter
            .slice(equals + 1)
            .trim()
            .replace(/^"|"$/g, ''),
        );
        rank = wildcard ?? 3;
      }
    }
    if (!served) continue;
    if (fhir && rank >= fhirRank) {
      fhirQ = rank > fhirRank ? q : Math.max(fhirQ, q);
      fhirRank = rank;
    }
    if (plain && rank >= plainRank) {
      plainQ = rank > plainRank ? q : Math.max(plainQ, q);
      plainRank = rank;
    }
  }
  if (empty) return FHIR_JSON_TYPE;
  if (fhirQ <= 0 && plainQ <= 0) return undefined;
  return plainQ > fhirQ ? PLAIN_JSON : FHIR_JSON_TYPE;
}

/**
 * Why an Accept header takes no JSON answered: it offers JSON only of another FHIR version
 * (`fhirVersion=5.0`; a client may offer R3 and R4, and gets R4), or no JSON at all.
 */
function notAcceptable(accept: string): AppError {
  const json = accepted(accept).filter((range) => isJson(range) || ANY.has(mediaType(range)));
  return json.length > 0 && !json.some(servedVersion) ? NOT_R4() : NOT_JSON();
}

function isPostedSearch(request: FastifyRequest): boolean {
  const route = matchedRoute(request) ?? '';
  return request.method === 'POST' && route.startsWith('/fhir/') && route.endsWith('/_search');
}

/**
 * The format asked of a search whose parameters may be in its form body (POST `_search`: all of
 * them may, search.html), judged as refuseOtherFormats judges any other request's, with a
 * `_format` in the body as one in the URL: until 2026-12-07 the body's was left out, and
 * `_format=xml` there had a JSON Bundle for an answer. Registered as a preValidation hook, once
 * the body is parsed.
 */
export function refuseOtherFormatsInForms(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  if (!isPostedSearch(request)) {
    done();
    return;
  }
  const query = request.query as Record<string, unknown> | undefined;
  const body = request.body;
  const inBody = typeof body === 'object' && body !== null ? body : {};
  // A field left empty asks for nothing (postedCriteria), and a value that is not text is
  // refused there.
  const formats = [query?.['_format'] ?? [], (inBody as Record<string, unknown>)['_format'] ?? []]
    .flat()
    .filter((format): format is string => typeof format === 'string' && format !== '');
  done(formatRefusal(request, formats));
}

const NOT_JSON = () =>
  AppError.of(
    406,
    'not-supported',
    'Only FHIR JSON is produced: ask for application/fhir+json (_format=json)',
  );
const NOT_R4 = () =>
  AppError.of(406, 'not-supported', 'Only FHIR R4 is served: fhirVersion=4.0 ($versions)');

/**
 * A Binary read's refusal: none when its Accept names no FHIR media type (the bytes answer it)
 * or has a range that the bytes (any non-FHIR range) or R4 JSON answer; a 406 when it asks for
 * FHIR content only, and none it can have (`application/fhir+xml`, JSON of another version).
 */
function binaryRefusal(accept: string): AppError | undefined {
  const ranges = accepted(accept);
  const fhir = (range: string) => isJson(range) || FHIR_XML.has(unencodedPlus(mediaType(range)));
  if (
    !ranges.some(fhir) ||
    ranges.some((range) => !fhir(range) || (isJson(range) && servedVersion(range)))
  ) {
    return undefined;
  }
  return ranges.some(isJson) ? NOT_R4() : NOT_JSON();
}

function isJson(range: string): boolean {
  return JSON_FORMATS.has(unencodedPlus(mediaType(range)));
}

const RESOURCE_TYPES = ['application/fhir+json', 'application/json'];
const RESOURCE_BODY = {
  types: new Set(RESOURCE_TYPES),
  diagnostics: 'Unsupported content type: send application/fhir+json or application/json',
};
const PATCH_BODY = {
  types: new Set([...RESOURCE_TYPES, 'application/json-patch+json']),
  diagnostics:
    'Unsupported content type: send application/json-patch+json, or a FHIRPath Patch as ' +
    'application/fhir+json',
};
/**
 * The FHIR routes whose body is a resource (a Bundle, Parameters) or a patch. Until 2026-12-07
 * the operations after `$match` were left out, and a form or a JSON Patch sent to one was a
 * 400 ("The body of an operation is a Parameters resource") rather than this 415.
 */
const BODIES: Record<string, typeof RESOURCE_BODY> = {
  'POST /fhir': RESOURCE_BODY,
  'POST /fhir/:type': RESOURCE_BODY,
  'PUT /fhir/:type': RESOURCE_BODY,
  'PUT /fhir/:type/:id': RESOURCE_BODY,
  'POST /fhir/:type/$validate': RESOURCE_BODY,
  'POST /fhir/Patient/$match': RESOURCE_BODY,
  'POST /fhir/:type/:id/$validate': RESOURCE_BODY,
  'POST /fhir/Patient/:id/$everything': RESOURCE_BODY,
  'POST /fhir/Observation/$lastn': RESOURCE_BODY,
  'POST /fhir/ValueSet/$expand': RESOURCE_BODY,
  'POST /fhir/ValueSet/$validate-code': RESOURCE_BODY,
  'POST /fhir/CodeSystem/$lookup': RESOURCE_BODY,
  'POST /fhir/$export': RESOURCE_BODY,
  'POST /fhir/Patient/$export': RESOURCE_BODY,
  'POST /fhir/Group/:id/$export': RESOURCE_BODY,
  'PATCH /fhir/:type': PATCH_BODY,
  'PATCH /fhir/:type/:id': PATCH_BODY,
};
/** Bodies the HTTP adapter parses (into a record, a patch), which a Binary cannot keep as bytes. */
const PARSED = new Set(['application/x-www-form-urlencoded', 'application/json-patch+json']);

/**
 * 415 for a FHIR resource, Bundle or patch sent in a format that is not one: the adapter parses
 * a form (for `_search`) and a JSON Patch (for PATCH) on any route, and a create or update
 * would read such a record as a resource. A Binary keeps its own formats (a PDF, an image:
 * see NativeContent). Registered as an onRequest hook, before the body is read; the refusal is
 * audited like any other.
 */
export function refuseOtherBodies(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  const contentType = request.headers['content-type'];
  const route = matchedRoute(request) ?? '';
  const body = BODIES[`${request.method} ${route}`];
  if (contentType === undefined || !body) {
    done();
    return;
  }
  const type = mediaType(contentType);
  const binary = (request.params as { type?: unknown } | undefined)?.type === 'Binary';
  done(
    body.types.has(type) || (binary && !PARSED.has(type))
      ? undefined
      : AppError.of(415, 'not-supported', body.diagnostics),
  );
}

/** The media ranges of an Accept header that do not refuse their type with q=0. */
function accepted(accept: string): string[] {
  return accept.split(',').filter((range) => {
    const q = /;\s*q\s*=\s*([0-9.]+)/i.exec(range)?.[1];
    return q === undefined || Number(q) > 0;
  });
}

function mediaType(range: string): string {
  return (range.split(';')[0] ?? '').trim().toLowerCase();
}

/** Whether a media range or type names no `fhirVersion`, or R4's. */
function servedVersion(range: string): boolean {
  const version = /;\s*fhirversion\s*=\s*"?([^";\s]+)/i.exec(range)?.[1];
  return version === undefined || R4.has(version);
}
