import type { OpenAPIObject } from '@nestjs/swagger';
import { OPENAPI_EXAMPLES, patchExamples } from './openapi-examples.js';
import { EVERYTHING_PARAMS, MAX_EVERYTHING_COUNT } from './search/everything.service.js';
import type { SearchParam } from './search/search-definitions.js';
import { DEFAULT_COUNT, MAX_COUNT, MAX_LAST } from './search/search-request.js';

type Operation = OpenAPIObject['paths'][string]['get'] & object;
type Parameter = Exclude<NonNullable<Operation['parameters']>[number], { $ref: string }>;
type RequestBody = Exclude<Operation['requestBody'], { $ref: string } | undefined>;

export const FHIR_JSON = 'application/fhir+json';
const FORM = 'application/x-www-form-urlencoded';
const GENERIC_TAG = 'FHIR: any resource type';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** Parameters every search takes, whatever the type. */
const RESULT_PARAMETERS: Parameter[] = [
  query('_id', 'Logical id; several with commas'),
  query('_lastUpdated', 'Date with a prefix, e.g. ge2026-01-01'),
  query('_count', `Page size, default ${DEFAULT_COUNT}, at most ${MAX_COUNT}`),
  query('_sort', 'Comma-separated parameter names, "-" for descending, e.g. -_lastUpdated'),
  query('_include', 'e.g. Observation:subject (":iterate" follows further, capped)'),
  query('_revinclude', 'e.g. Observation:subject'),
  query('_total', 'none | estimate | accurate'),
  query('_summary', 'true | text | data (part of each resource, tagged SUBSETTED) | count | false'),
  query('_elements', 'Comma-separated top-level elements to return (mandatory ones come too)'),
];

/** What `Patient/{id}/$everything` takes (everything.service.ts), each with what it does. */
const EVERYTHING: Record<(typeof EVERYTHING_PARAMS)[number], string> = {
  start: 'Care dates from, e.g. 2026-01-01 (any precision); resources without one come too',
  end: 'Care dates until, e.g. 2026-12-31 (any precision); resources without one come too',
  _type: 'Only these resource types, comma-separated, e.g. Observation,Encounter',
  _since: 'Only resources changed at or after this instant, e.g. 2026-01-01T00:00:00Z',
  _count: `Page size (at most ${MAX_EVERYTHING_COUNT}); without it, one Bundle of everything`,
};

/**
 * The criteria of a conditional update, patch or delete on `/fhir/{type}`: any search
 * parameters of the type, sent as `?name=value&…` (OpenAPI's free-form query object).
 */
const CRITERIA: Parameter = {
  name: 'criteria',
  in: 'query',
  required: true,
  style: 'form',
  explode: true,
  description:
    'Search criteria that name the resource, e.g. identifier=system|value: several matches are a 412',
  schema: { type: 'object', additionalProperties: { type: 'string' } },
  example: { identifier: 'urn:oid:2.16.840.1.113883.19.5|MRN-000123' },
};

const DESCRIPTIONS: Record<SearchParam['type'], string> = {
  string: 'string: starts with (case- and accent-insensitive); :exact, :contains, :missing',
  token: 'token: system|code, |code, system| or code; :not, :text, :missing',
  date: 'date: eq ne gt lt ge le sa eb ap prefixes, any precision',
  reference: 'reference: Type/id or id; chain one level, e.g. subject:Patient.identifier=...',
  number: 'number, with a comparison prefix',
  quantity: 'quantity: [prefix]value|system|code, e.g. ge5.4|http://unitsofmeasure.org|mmol/L',
  uri: 'uri: exact; :below, :above',
};

export interface FhirOpenApiSource {
  resourceTypes: readonly string[];
  searchParams: (type: string) => readonly SearchParam[];
}

/**
 * Completes the FHIR part of the OpenAPI document that Nest builds from the controllers:
 * - the generic `/fhir/{type}` routes list every registered type and the common search
 *   parameters;
 * - each type with an example (OPENAPI_EXAMPLES) gets its own copies of those routes, under a
 *   tag of its own, with the example as the body and its own search parameters, so that an
 *   integrator finds `POST /fhir/Patient` ready to try. Copies for all 140-odd types made a
 *   1.6 MB document whose page took over a minute to show the Patient section in headless
 *   Chromium; the generic routes cover the rest;
 * - FHIR routes are documented as answering `application/fhir+json`, which Swagger UI then
 *   asks for (an Accept that weighs `application/json` higher gets that label on the same
 *   bytes: negotiateJson), and every route of the API documents its errors as an
 *   OperationOutcome.
 */
export function describeFhirApi(document: OpenAPIObject, source: FhirOpenApiSource): void {
  const generic = Object.entries(document.paths).filter(([path]) =>
    path.startsWith('/fhir/{type}'),
  );
  for (const [, item] of generic) {
    for (const operation of operations(item)) {
      operation.tags = [GENERIC_TAG];
      const type = operation.parameters?.find(
        (parameter): parameter is Parameter => 'name' in parameter && parameter.name === 'type',
      );
      if (type) type.schema = { type: 'string', enum: [...source.resourceTypes] };
      if (isSearch(operation))
        operation.parameters = [...(operation.parameters ?? []), ...RESULT_PARAMETERS];
      if (isConditional(operation))
        operation.parameters = [...(operation.parameters ?? []), CRITERIA];
    }
  }
  for (const operation of Object.values(document.paths).flatMap(operations)) {
    // Form searches of any type, and compartment ones: the common parameters, and any other.
    if (isSearchByPost(operation)) operation.requestBody = formBody(RESULT_PARAMETERS);
  }
  describeOperations(document, source);
  const tags = [];
  for (const [type, example] of Object.entries(OPENAPI_EXAMPLES)) {
    if (!source.resourceTypes.includes(type)) continue;
    tags.push({ name: type, description: `FHIR R4 ${type}` });
    for (const [path, item] of generic) {
      const copy = structuredClone(item);
      for (const operation of operations(copy)) {
        specialize(operation, type, example, source.searchParams(type));
      }
      document.paths[path.replace('{type}', type)] = copy;
    }
  }
  document.tags = [...tags, { name: GENERIC_TAG }, ...(document.tags ?? [])];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const operation of operations(item)) {
      if (path.startsWith('/fhir')) answerFhirJson(operation);
      operation.responses['default'] ??= {
        description: 'An error, as a FHIR OperationOutcome',
        content: {
          [path.startsWith('/fhir') ? FHIR_JSON : 'application/json']: {
            schema: { $ref: '#/components/schemas/OperationOutcome' },
          },
        },
      };
    }
  }
}

function specialize(
  operation: Operation,
  type: string,
  example: Record<string, unknown>,
  params: readonly SearchParam[],
): void {
  operation.tags = [type];
  operation.operationId = `${type}_${operation.operationId ?? ''}`;
  operation.summary = operation.summary?.replaceAll('{type}', type);
  operation.parameters = (operation.parameters ?? []).filter(
    (parameter) => !('name' in parameter) || parameter.name !== 'type',
  );
  for (const parameter of operation.parameters) {
    if ('name' in parameter && parameter.name === 'id') parameter.example = 'example';
  }
  const content =
    operation.requestBody && 'content' in operation.requestBody
      ? operation.requestBody.content
      : undefined;
  if (content && Object.values(content).some((media) => isResourceSchema(media.schema))) {
    const body = operation.operationId.endsWith('_update')
      ? { ...example, id: 'example' }
      : example;
    operation.requestBody = {
      required: true,
      content: {
        [FHIR_JSON]: { schema: { $ref: '#/components/schemas/Resource' }, example: body },
      },
    };
  }
  if (/_(conditionalP|p)atch$/.test(operation.operationId) && content) {
    for (const media of Object.values(content)) media.examples = patchExamples(type);
  }
  const own = ownParameters(params);
  if (isSearch(operation)) {
    operation.parameters = [...operation.parameters, ...own];
  }
  if (isSearchByPost(operation)) operation.requestBody = formBody([...own, ...RESULT_PARAMETERS]);
  if (isConditional(operation)) {
    // The type's own parameters, each an input, in place of the free-form criteria.
    operation.parameters = [
      ...operation.parameters.filter((p) => !('name' in p) || p.name !== CRITERIA.name),
      ...RESULT_PARAMETERS.slice(0, 2),
      ...own,
    ];
  }
}

/** `Observation/$lastn` and `Patient/{id}/$everything`: what each takes besides the path. */
function describeOperations(document: OpenAPIObject, source: FhirOpenApiSource): void {
  for (const operation of Object.values(document.paths).flatMap(operations)) {
    if (operation.operationId === 'FhirController_lastN') {
      const needed = ' ($lastn needs patient or subject)';
      operation.parameters = [
        {
          name: 'max',
          in: 'query',
          required: false,
          description: `How many of each code, newest first: 1 to ${MAX_LAST}, default 1`,
          schema: { type: 'integer', minimum: 1, maximum: MAX_LAST, default: 1 },
        },
        ...ownParameters(source.searchParams('Observation')).map((parameter) =>
          ['patient', 'subject'].includes(parameter.name)
            ? { ...parameter, description: `${parameter.description ?? ''}${needed}` }
            : parameter,
        ),
        // Its answer is one page in its own order (SearchService.lastN refuses the others).
        ...RESULT_PARAMETERS.filter((parameter) => !['_count', '_sort'].includes(parameter.name)),
      ];
    }
    if (operation.operationId === 'FhirController_everything') {
      operation.parameters = [
        ...(operation.parameters ?? []),
        ...EVERYTHING_PARAMS.map((name) => query(name, EVERYTHING[name])),
      ];
    }
  }
}

/** A type's own search parameters (not `_id`, `_lastUpdated`…), described by their type. */
function ownParameters(params: readonly SearchParam[]): Parameter[] {
  return params
    .filter((param) => !param.code.startsWith('_'))
    .map((param) =>
      query(
        param.code,
        param.phi
          ? `${DESCRIPTIONS[param.type]} (PHI: exact match on a blind index; no :contains)`
          : DESCRIPTIONS[param.type],
      ),
    );
}

/**
 * The body of `POST …/_search`: a form of search parameters, the listed ones as fields (what
 * Swagger UI shows) and any other the type has. Each field's example is empty: Swagger UI
 * would fill in "string" and send it (`_count=string`, a 400); it leaves out empty fields.
 */
function formBody(parameters: readonly Parameter[]): RequestBody {
  return {
    required: false,
    content: {
      [FORM]: {
        schema: {
          type: 'object',
          properties: Object.fromEntries(
            parameters.map((p) => [
              p.name,
              { type: 'string', description: p.description ?? '', example: '' },
            ]),
          ),
          additionalProperties: { type: 'string' },
        },
      },
    },
  };
}

function answerFhirJson(operation: Operation): void {
  for (const response of Object.values(operation.responses)) {
    if (!response || !('content' in response) || !response.content?.['application/json']) continue;
    response.content = { [FHIR_JSON]: response.content['application/json'] };
  }
}

function isSearch(operation: Operation): boolean {
  return operation.operationId?.endsWith('FhirController_search') ?? false;
}

function isSearchByPost(operation: Operation): boolean {
  return /FhirController_(compartmentS|s)earchByPost$/.test(operation.operationId ?? '');
}

function isConditional(operation: Operation): boolean {
  return /FhirController_conditional(Update|Patch|Delete)$/.test(operation.operationId ?? '');
}

function isResourceSchema(schema: unknown): boolean {
  return (schema as { $ref?: string } | undefined)?.$ref === '#/components/schemas/Resource';
}

function operations(item: OpenAPIObject['paths'][string]): Operation[] {
  return METHODS.flatMap((method) => (item[method] ? [item[method]] : []));
}

function query(name: string, description: string): Parameter {
  return { name, in: 'query', required: false, description, schema: { type: 'string' } };
}
