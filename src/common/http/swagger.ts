import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { operationId } from '../../fhir/fhir-controllers.js';
import { FhirDefinitions } from '../../fhir/fhir-definitions.js';
import { describeFhirApi } from '../../fhir/fhir-openapi.js';
import { SearchDefinitions } from '../../fhir/search/search-definitions.js';
import { SOFTWARE_VERSION } from '../software.js';

/** Swagger UI at /docs and the OpenAPI document at /docs-json. */
export function setupSwagger(app: INestApplication): void {
  SwaggerModule.setup('docs', app, buildOpenApiDocument(app), {
    jsonDocumentUrl: 'docs-json',
    // Tags start closed: the page opens on the list of sections, with a filter box over them.
    swaggerOptions: { docExpansion: 'none', filter: true, displayRequestDuration: true },
  });
}

/** The OpenAPI document of every route, with the FHIR schemas the routes refer to. */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('CareVault API')
    .setDescription(
      'FHIR R4 REST API (application/fhir+json). Every error is a FHIR OperationOutcome.',
    )
    .setVersion(SOFTWARE_VERSION)
    // The name the controllers' @ApiBearerAuth() refers to: Swagger UI's Authorize button.
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'access_token from POST /auth/login (or /auth/login/mfa)',
      },
      'bearer',
    )
    .build();
  const document = SwaggerModule.createDocument(app, config, { operationIdFactory: operationId });
  document.components = {
    ...document.components,
    schemas: {
      ...document.components?.schemas,
      Resource: {
        type: 'object',
        description: 'A FHIR R4 resource; resourceType names its type',
        required: ['resourceType'],
        properties: { resourceType: { type: 'string' }, id: { type: 'string' } },
        additionalProperties: true,
      },
      OperationOutcome: {
        type: 'object',
        required: ['resourceType', 'issue'],
        properties: {
          resourceType: { type: 'string', enum: ['OperationOutcome'] },
          issue: {
            type: 'array',
            items: {
              type: 'object',
              required: ['severity', 'code'],
              properties: {
                severity: { type: 'string', enum: ['fatal', 'error', 'warning', 'information'] },
                code: { type: 'string', example: 'invalid' },
                diagnostics: { type: 'string' },
                expression: { type: 'array', items: { type: 'string' } },
              },
            },
          },
        },
      },
    },
  };
  const search = app.get(SearchDefinitions);
  describeFhirApi(document, {
    resourceTypes: app.get(FhirDefinitions).restfulTypes,
    searchParams: (type) => search.paramsOf(type),
  });
  // Logging in comes first on the page: nothing else can be tried without a token.
  document.tags = [
    { name: 'Authentication', description: 'Log in here, then Authorize with the access_token' },
    ...(document.tags ?? []),
  ];
  return document;
}
