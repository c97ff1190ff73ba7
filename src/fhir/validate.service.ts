import { Injectable } from '@nestjs/common';
import { AppError, type Issue } from '../common/errors/app-error.js';
import { operationOutcome, type OperationOutcome } from '../common/errors/operation-outcome.js';
import { FhirDefinitions } from './fhir-definitions.js';
import { ResourceValidator } from './resource-validator.js';
import { isValidId, type FhirResource } from './fhir-types.js';
import type { OperationQuery } from './operation-input.js';
import { writeRefusal } from './write-refusals.js';

interface ValidateInput {
  resource: unknown;
  mode?: string;
  profile?: string;
}

/** What the URL of $validate may carry besides mode and profile: the response's format. */
const FORMAT_PARAMS = new Set(['_format', '_pretty']);

/**
 * `POST /fhir/{type}/$validate` and `POST /fhir/{type}/{id}/$validate` (FHIR R4
 * Resource-validate, at type and instance level): the checks a create or update makes of a
 * body (R4 definitions, required bindings, id syntax, and what a write refuses in a valid
 * resource: src/fhir/write-refusals.ts), run without storing anything, so an integrator can
 * test messages before sending them. The answer is 200 with an OperationOutcome whether the
 * resource is valid or not; 4xx means the validation could not be run (no resource, an
 * unknown type, a profile or mode this server does not check).
 */
@Injectable()
export class ValidateService {
  constructor(
    private readonly definitions: FhirDefinitions,
    private readonly validator: ResourceValidator,
  ) {}

  /**
   * @param instanceId - the id in the URL of `POST /fhir/{type}/{id}/$validate`: the body is
   * checked as an update of that resource (mode `update`, the same id), as R4 invokes
   * Resource-validate on an instance.
   */
  async validate(
    type: string,
    body: unknown,
    instanceId?: string,
    query: OperationQuery = {},
  ): Promise<OperationOutcome> {
    this.definitions.assertResourceType(type);
    const input = inputOf(type, body, query);
    if (instanceId !== undefined) {
      if (input.mode !== undefined && input.mode !== 'update') {
        throw AppError.of(400, 'not-supported', '$validate on a resource checks mode update only');
      }
      input.mode = 'update';
    }
    if (input.mode !== undefined && input.mode !== 'create' && input.mode !== 'update') {
      throw AppError.of(400, 'not-supported', '$validate checks mode create or update only');
    }
    const base = `http://hl7.org/fhir/StructureDefinition/${type}`;
    if (input.profile !== undefined && input.profile !== base) {
      throw AppError.of(400, 'not-supported', `$validate checks the base profile only (${base})`);
    }
    const resource = input.resource;
    if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
      throw AppError.of(
        400,
        'required',
        '$validate needs a resource: the body, or Parameters.resource',
      );
    }
    const issues: Issue[] = [];
    const { resourceType, id } = resource as FhirResource;
    if (resourceType !== type) {
      issues.push(
        problem('resourceType in the body must match the type in the URL', 'resourceType'),
      );
    }
    if (input.mode === 'update' && id === undefined) {
      issues.push(problem('An update needs the resource id', `${type}.id`));
    } else if (instanceId !== undefined && id !== instanceId) {
      issues.push(problem('Resource id must match the id in the URL', `${type}.id`));
    }
    if (id !== undefined && (typeof id !== 'string' || !isValidId(id))) {
      issues.push(
        problem('Invalid resource id: 1 to 64 letters, digits, "-" or "."', `${type}.id`),
      );
    }
    if (issues.length === 0) {
      try {
        await this.validator.validate(resource as FhirResource);
      } catch (error) {
        if (!(error instanceof AppError) || error.status !== 400) throw error;
        // Not push(...): a resource of 200,000 invalid values has as many issues, too many
        // call arguments for the stack (a 500 until 2026-12-07).
        for (const issue of error.issues) issues.push(issue);
      }
    }
    const refusal = issues.length === 0 ? writeRefusal(resource as FhirResource) : undefined;
    if (refusal) {
      // Without a mode the resource may be meant for a Bundle's entry, where a conditional or
      // urn:uuid: reference is right; a write of it alone is refused all the same.
      issues.push(
        input.mode === undefined ? { ...refusal.issue, severity: 'warning' } : refusal.issue,
      );
    }
    return operationOutcome(
      issues.length > 0
        ? issues
        : [{ severity: 'information', code: 'informational', diagnostics: 'All OK' }],
    );
  }
}

function problem(diagnostics: string, expression: string) {
  return {
    severity: 'error' as const,
    code: 'invalid' as const,
    diagnostics,
    expression: [expression],
  };
}

/**
 * The resource, mode and profile: mode and profile from the URL (operations.html: a POST's
 * primitive parameters may be given there) and a Parameters body, the resource from the body
 * or the body itself. Until 2026-12-06 the URL's were ignored, and a profile this server does
 * not check was answered "All OK". Each is given once at most (0..1 in Resource-validate).
 */
function inputOf(type: string, body: unknown, query: OperationQuery): ValidateInput {
  const given = { mode: [] as string[], profile: [] as string[] };
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || FORMAT_PARAMS.has(name)) continue;
    if (name !== 'mode' && name !== 'profile') {
      const takes = '$validate takes mode and profile in the URL';
      throw AppError.invalid(/^[A-Za-z0-9_-]{1,64}$/.test(name) ? `${takes}, not ${name}` : takes);
    }
    given[name].push(...[value].flat());
  }
  const input = bodyInput(type, body);
  if (input.mode !== undefined) given.mode.push(input.mode);
  if (input.profile !== undefined) given.profile.push(input.profile);
  for (const name of ['mode', 'profile'] as const) {
    const [value, ...more] = given[name];
    if (more.length > 0) throw AppError.invalid(`$validate takes one ${name}`);
    if (value !== undefined) input[name] = value;
  }
  return input;
}

/**
 * The resource, mode and profile of a body: a Parameters body's, or the body as the resource
 * (also a Parameters resource to validate, which names no `resource` parameter).
 */
function bodyInput(type: string, body: unknown): ValidateInput {
  const parameters = body as {
    resourceType?: unknown;
    parameter?: {
      name?: unknown;
      resource?: unknown;
      valueCode?: unknown;
      valueUri?: unknown;
      valueCanonical?: unknown;
    }[];
  } | null;
  if (
    parameters?.resourceType !== 'Parameters' ||
    !Array.isArray(parameters.parameter) ||
    (type === 'Parameters' && !parameters.parameter.some((p) => p.name === 'resource'))
  ) {
    return { resource: body };
  }
  const input: ValidateInput = { resource: undefined };
  for (const parameter of parameters.parameter) {
    if (parameter.name === 'resource') input.resource = parameter.resource;
    if (parameter.name === 'mode' && typeof parameter.valueCode === 'string') {
      input.mode = parameter.valueCode;
    }
    const profile = parameter.valueCanonical ?? parameter.valueUri;
    if (parameter.name === 'profile' && typeof profile === 'string') input.profile = profile;
  }
  return input;
}
