import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIObject } from '@nestjs/swagger';
import { buildOpenApiDocument } from '../../src/common/http/swagger.js';
import { OPENAPI_EXAMPLES } from '../../src/fhir/openapi-examples.js';
import { tokenFor } from '../support/auth.js';
import { http } from '../support/http.js';
import { declaredRoutes } from '../support/routes.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

function operations(document: OpenAPIObject) {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (item[method] ? [{ path, method, operation: item[method] }] : [])),
  );
}

describe('the OpenAPI document behind Swagger UI', () => {
  let testApp: TestApp;
  let document: OpenAPIObject;

  beforeAll(async () => {
    testApp = await createTestApp();
    document = buildOpenApiDocument(testApp.app);
  });

  afterAll(async () => {
    await testApp.close();
  });

  it('is a valid OpenAPI document', async () => {
    // The validator dereferences in place: it gets a copy.
    await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeDefined();
  });

  it('documents every route the controllers declare', () => {
    const documented = new Set(
      operations(document).map(({ path, method }) => `${method.toUpperCase()} ${path}`),
    );
    const routes = declaredRoutes(testApp.app).map(
      ({ method, path }) => `${method} ${path.replace(/:([A-Za-z]+)/g, '{$1}')}`,
    );
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.filter((route) => !documented.has(route))).toEqual([]);
  });

  it('gives each operation a unique id, a defined security scheme and an OperationOutcome for errors', () => {
    const schemes = Object.keys(document.components?.securitySchemes ?? {});
    expect(schemes).toEqual(['bearer']);
    const ids = operations(document).map(({ operation }) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, operation } of operations(document)) {
      for (const requirement of operation.security ?? []) {
        for (const name of Object.keys(requirement)) expect(schemes).toContain(name);
      }
      const error = operation.responses['default'] as
        { content?: Record<string, { schema?: unknown }> } | undefined;
      const errors = Object.values(error?.content ?? {});
      expect({ route: `${method} ${path}`, errors: errors.length }).toEqual({
        route: `${method} ${path}`,
        errors: 1,
      });
      expect(errors[0]!.schema).toEqual({ $ref: '#/components/schemas/OperationOutcome' });
    }
    expect(document.components?.schemas?.['OperationOutcome']).toBeDefined();
    // Request DTOs show their fields (Swagger UI's example body), not an empty object.
    const dtos = Object.entries(document.components?.schemas ?? {}).filter(([name]) =>
      name.endsWith('Dto'),
    );
    expect(dtos.length).toBeGreaterThanOrEqual(6);
    for (const [name, schema] of dtos) {
      expect({
        name,
        fields: Object.keys((schema as { properties?: object }).properties ?? {}),
      }).not.toEqual({ name, fields: [] });
    }
  });

  it('lists every resource type for the generic routes and the search parameters of each typed one', () => {
    const type = document.paths['/fhir/{type}/{id}']!.get!.parameters!.find(
      (parameter) => 'name' in parameter && parameter.name === 'type',
    ) as { schema: { enum: string[] } };
    expect(type.schema.enum).toEqual(expect.arrayContaining(['Patient', 'Observation', 'Bundle']));
    expect(type.schema.enum.length).toBeGreaterThan(140);
    const search = document.paths['/fhir/Patient']!.get!;
    const names = (search.parameters ?? []).map((parameter) =>
      'name' in parameter ? parameter.name : '',
    );
    expect(names).toEqual(
      expect.arrayContaining(['family', 'birthdate', 'identifier', '_count', '_sort']),
    );
    expect(names).not.toContain('type');
    const family = (search.parameters ?? []).find(
      (parameter) => 'name' in parameter && parameter.name === 'family',
    ) as { description: string };
    expect(family.description).toContain('PHI');
  });

  it('documents what $lastn, $everything, form searches and conditional writes take, as the server takes it', async () => {
    const names = (operation: { parameters?: unknown[] }) =>
      (operation.parameters ?? []).map((parameter) => (parameter as { name: string }).name);
    const lastn = document.paths['/fhir/Observation/$lastn']!.get!;
    expect(names(lastn)).toEqual(
      expect.arrayContaining([
        ...['max', 'patient', 'subject', 'code', 'category', 'date'],
        ...['_include', '_revinclude', '_elements', '_summary'],
      ]),
    );
    expect(names(lastn)).not.toContain('_count');
    const everything = document.paths['/fhir/Patient/{id}/$everything']!.get!;
    expect(names(everything)).toEqual(['id', 'start', 'end', '_type', '_since', '_count']);
    const form = (path: string) =>
      Object.keys(
        (
          document.paths[path]!.post!.requestBody as {
            content: Record<string, { schema: { properties: object } }>;
          }
        ).content['application/x-www-form-urlencoded']!.schema.properties,
      );
    for (const path of ['/fhir/{type}/_search', '/fhir/{compartment}/{id}/{type}/_search']) {
      expect(form(path)).toEqual(expect.arrayContaining(['_count', '_sort', '_include']));
    }
    expect(form('/fhir/Patient/_search')).toEqual(
      expect.arrayContaining(['identifier', 'family', 'birthdate', '_count']),
    );
    for (const method of ['put', 'patch', 'delete'] as const) {
      const generic = document.paths['/fhir/{type}']![method]!;
      expect(generic.parameters).toContainEqual(
        expect.objectContaining({ name: 'criteria', in: 'query', required: true, explode: true }),
      );
      const typed = document.paths['/fhir/Patient']![method]!;
      expect(names(typed)).toEqual(expect.arrayContaining(['identifier', 'family', '_id']));
      expect(names(typed)).not.toContain('criteria');
      if (method !== 'delete') expect(typed.requestBody).toBeDefined();
    }

    // The server takes each as documented.
    const authorization = `Bearer ${await tokenFor(testApp, 'doctor')}`;
    const fhir = `${testApp.url}/fhir`;
    const mrn = `urn:oid:2.16.840.1.113883.19.5|MRN-${Date.now()}`;
    const [system, value] = mrn.split('|');
    const update = document.paths['/fhir/Patient']!.put!;
    const body = {
      ...(update.requestBody as { content: Record<string, { example: object }> }).content[
        'application/fhir+json'
      ]!.example,
      identifier: [{ system, value }],
    };
    // The criteria as Swagger UI sends the generic route's (style form, explode): name=value.
    const criteria = new URLSearchParams({ identifier: mrn }).toString();
    const created = await http('PUT', `${fhir}/Patient?${criteria}`, {
      body,
      headers: { authorization },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(
      (await http('PUT', `${fhir}/Patient?${criteria}`, { body, headers: { authorization } }))
        .status,
    ).toBe(200);
    const found = await http('POST', `${fhir}/Patient/_search`, {
      // As Swagger UI sends the form: the fields left empty too, which ask for nothing.
      raw: `${criteria}&_count=&_revinclude=&family=`,
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect([
      found.status,
      found.body.entry?.map((e: { resource: { id: string } }) => e.resource.id),
    ]).toEqual([200, [id]]);
    const values: Record<string, string> = {
      start: '2020',
      end: '2030-12-31',
      _type: 'Patient,Observation',
      _since: '2000-01-01T00:00:00Z',
      _count: '10',
    };
    expect(names(everything).slice(1)).toEqual(Object.keys(values));
    const all = await http(
      'GET',
      `${fhir}/Patient/${id}/$everything?${new URLSearchParams(values).toString()}`,
      {
        headers: { authorization },
      },
    );
    expect([all.status, all.body.entry?.[0]?.resource?.id]).toEqual([200, id]);
    const last = await http(
      'GET',
      `${fhir}/Observation/$lastn?max=3&patient=${id}&category=vital-signs&code=8867-4`,
      { headers: { authorization } },
    );
    expect([last.status, last.body.resourceType]).toEqual([200, 'Bundle']);
  });

  it('lists what the history, terminology and export operations take, so Swagger UI can send it', () => {
    const names = (path: string) =>
      (document.paths[path]!.get!.parameters ?? [])
        .filter((parameter) => 'in' in parameter && parameter.in === 'query')
        .map((parameter) => (parameter as { name: string }).name);
    // Without them Try it out could only send a bare GET: $expand without its url is a 400.
    for (const path of ['/fhir/_history', '/fhir/{type}/_history', '/fhir/{type}/{id}/_history']) {
      expect({ path, names: names(path) }).toEqual({ path, names: ['_count', '_since', '_at'] });
    }
    expect(names('/fhir/ValueSet/$expand')).toEqual(['url', 'filter', 'offset', 'count']);
    expect(names('/fhir/ValueSet/$validate-code')).toEqual(['url', 'system', 'code', 'display']);
    expect(names('/fhir/CodeSystem/$lookup')).toEqual(['system', 'code']);
    for (const path of ['/fhir/$export', '/fhir/Patient/$export', '/fhir/Group/{id}/$export']) {
      expect({ path, names: names(path) }).toEqual({
        path,
        names: ['_type', '_since', '_typeFilter', '_outputFormat'],
      });
    }
  });

  it('has example bodies that the server accepts as they are', async () => {
    const authorization = `Bearer ${await tokenFor(testApp, 'doctor')}`;
    const types = Object.keys(OPENAPI_EXAMPLES);
    expect(types.length).toBeGreaterThanOrEqual(10);
    // The other examples refer to Patient/example, which the Patient update example creates.
    const update = document.paths['/fhir/Patient/{id}']!.put!;
    const patient = await http('PUT', `${testApp.url}/fhir/Patient/example`, {
      body: (update.requestBody as { content: Record<string, { example: unknown }> }).content[
        'application/fhir+json'
      ]!.example,
      headers: { authorization },
    });
    expect([200, 201]).toContain(patient.status);
    for (const type of types) {
      const create = document.paths[`/fhir/${type}`]!.post!;
      const media = (create.requestBody as { content: Record<string, { example: unknown }> })
        .content['application/fhir+json']!;
      const res = await http('POST', `${testApp.url}/fhir/${type}`, {
        body: media.example,
        headers: { authorization },
      });
      expect({ type, status: res.status, body: res.status === 201 ? '' : res.text }).toEqual({
        type,
        status: 201,
        body: '',
      });
      // Each of its PATCH examples applies to a resource created so, as Swagger UI sends them.
      const patch = document.paths[`/fhir/${type}/{id}`]!.patch!;
      const examples = Object.values(
        (patch.requestBody as { content: Record<string, { examples: Record<string, unknown> }> })
          .content,
      )[0]!.examples as Record<string, { value: unknown }>;
      expect(Object.keys(examples).sort()).toEqual(['fhirPathPatch', 'jsonPatch']);
      for (const [name, example] of Object.entries(examples)) {
        const target = await http('POST', `${testApp.url}/fhir/${type}`, {
          body: media.example,
          headers: { authorization },
        });
        const patched = await http('PATCH', `${testApp.url}/fhir/${type}/${target.body.id}`, {
          body: example.value,
          headers: {
            authorization,
            'content-type':
              name === 'jsonPatch' ? 'application/json-patch+json' : 'application/fhir+json',
          },
        });
        expect({ type, name, status: patched.status, body: patched.text }).toMatchObject({
          type,
          name,
          status: 200,
        });
        expect(patched.body.language).toBe('en');
      }
    }
  });
});
