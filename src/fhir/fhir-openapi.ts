import type { OpenAPIObject } from '@nestjs/swagger';
import { OPENAPI_EXAMPLES, patchExamples } from './openapi-examples.js';
import type { SearchParam } from './search/search-definitions.js';
import { DEFAULT_COUNT, MAX_COUNT } from './search/search-request.js';

type Operation = OpenAPIObject['paths'][string]['get'] & object;
type Parameter = Exclude<NonNullable<Operation['parameters']>[number], { $ref: string }>;

export const FHIR_JSON = 'application/fhir+json';
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
 * - FHIR routes answer `application/fhir+json`, and every route of the API documents its errors
 *   as an OperationOutcome.
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
    }
  }
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
  if (operation.operationId.endsWith('_patch') && content) {
    for (const media of Object.values(content)) media.examples = patchExamples(type);
  }
  if (isSearch(operation)) {
    const own = params
      .filter((param) => !param.code.startsWith('_'))
      .map((param) =>
        query(
          param.code,
          param.phi
            ? `${DESCRIPTIONS[param.type]} (PHI: exact match on a blind index; no :contains)`
            : DESCRIPTIONS[param.type],
        ),
      );
    operation.parameters = [...operation.parameters, ...own];
  }
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

function isResourceSchema(schema: unknown): boolean {
  return (schema as { $ref?: string } | undefined)?.$ref === '#/components/schemas/Resource';
}

function operations(item: OpenAPIObject['paths'][string]): Operation[] {
  return METHODS.flatMap((method) => (item[method] ? [item[method]] : []));
}

function query(name: string, description: string): Parameter {
  return { name, in: 'query', required: false, description, schema: { type: 'string' } };
}
