import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import type { CodingInput } from '../operation-input.js';
import { normalizeString } from '../search/normalize.js';
import type { Expansion } from '../value-sets.js';

export const MAX_EXPANSION_COUNT = 1000;

type Query = Record<string, string | string[] | undefined>;

/**
 * Terminology operations over the value sets and code systems of the R4 definitions (FHIR's
 * own, v2 and v3): the ones that required bindings are checked against, so what a form offers
 * and what the server accepts are the same lists. Value sets that draw on external code systems
 * (LOINC, SNOMED CT) or select codes by filter are not expanded here: a terminology server's job.
 */
@Injectable()
export class TerminologyService {
  constructor(private readonly definitions: FhirDefinitions) {}

  /** ValueSet/$expand: url, and `filter` (words of the code or display), `offset`, `count`. */
  expand(query: Query): Record<string, unknown> {
    const { url, version, expansion } = this.expansionOf(single(query, 'url', true)!);
    const filter = single(query, 'filter');
    const words = filter ? normalizeString(filter).split(' ') : [];
    const offset = integer(query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const count = integer(query, 'count', MAX_EXPANSION_COUNT, 0, MAX_EXPANSION_COUNT);
    const matching = [...expansion.codings].filter(([coding, display]) => {
      const text = normalizeString(`${coding.slice(coding.lastIndexOf('|') + 1)} ${display ?? ''}`);
      return words.every((word) => text.includes(word));
    });
    return {
      resourceType: 'ValueSet',
      url,
      ...(version ? { version } : {}),
      status: 'active',
      expansion: {
        identifier: `urn:uuid:${randomUUID()}`,
        timestamp: new Date().toISOString(),
        total: matching.length,
        offset,
        parameter: [
          ...(filter ? [{ name: 'filter', valueString: filter }] : []),
          { name: 'offset', valueInteger: offset },
          { name: 'count', valueInteger: count },
        ],
        contains: matching.slice(offset, offset + count).map(([coding, display]) => ({
          system: coding.slice(0, coding.lastIndexOf('|')),
          code: coding.slice(coding.lastIndexOf('|') + 1),
          ...(display ? { display } : {}),
        })),
      },
    };
  }

  /**
   * ValueSet/$validate-code: url, system and code (and display, checked when given), or, by
   * POST, `codings` (a `coding`, a `codeableConcept`'s): valid when one of them is, the answer
   * of the first that is (else of the first), as R4's definition has it for a CodeableConcept.
   */
  validateCode(
    query: Query,
    given: ReadonlyMap<string, CodingInput[]> = new Map(),
  ): Record<string, unknown> {
    const url = single(query, 'url', true)!;
    if (given.size > 1 || (given.get('coding')?.length ?? 0) > 1) {
      throw AppError.invalid('Give one coding or one codeableConcept');
    }
    const codings = [...given.values()].flat();
    const { expansion } = this.expansionOf(url);
    if (codings.length === 0) {
      const code = single(query, 'code', true)!;
      const [system, display] = [single(query, 'system'), single(query, 'display')];
      return validateOne(expansion, url, code, system, display).answer;
    }
    if (['code', 'system', 'display'].some((name) => query[name] !== undefined)) {
      throw AppError.invalid('Give code (with system, display) or a coding, not both');
    }
    const answers = codings.map((coding) => {
      if (!coding.code) throw AppError.invalid('A coding to validate has a code', ['coding']);
      return validateOne(expansion, url, coding.code, coding.system, coding.display);
    });
    return (answers.find(({ valid }) => valid) ?? answers[0]!).answer;
  }

  /**
   * CodeSystem/$lookup: system and code, or, by POST, a `coding`; 404 for a code the code
   * system does not hold.
   */
  lookup(
    query: Query,
    given: ReadonlyMap<string, CodingInput[]> = new Map(),
  ): Record<string, unknown> {
    const codings = given.get('coding') ?? [];
    if (codings.length > 1) throw AppError.invalid('Give one coding');
    const coding = codings[0];
    if (coding && ['code', 'system'].some((name) => query[name] !== undefined)) {
      throw AppError.invalid('Give system and code, or a coding, not both');
    }
    const named = coding ? { system: coding.system, code: coding.code } : query;
    const system = single(named, 'system', true)!;
    const code = single(named, 'code', true)!;
    const codeSystem = this.definitions.codeSystem(system);
    if (!codeSystem?.concepts) {
      throw AppError.of(
        404,
        'not-found',
        `${system} is not a code system whose codes this server holds (the R4 definitions' own, v2 and v3)`,
      );
    }
    if (!codeSystem.concepts.has(code)) {
      throw AppError.notFound(`${code} is not a code of ${system}`);
    }
    const display = codeSystem.concepts.get(code);
    return parameters([
      ...(codeSystem.name ? [{ name: 'name', valueString: codeSystem.name }] : []),
      { name: 'code', valueCode: code },
      ...(display ? [{ name: 'display', valueString: display }] : []),
    ]);
  }

  /**
   * The value set a canonical names (`url`, or `url|version`): a version other than the one
   * held is a 404, where until 2026-12-06 it was ignored and the answer echoed it as if held.
   */
  private expansionOf(canonical: string): { url: string; version?: string; expansion: Expansion } {
    const [url, asked] = canonical.split('|') as [string, string | undefined];
    const expansion = this.definitions.expansion(url);
    if (!expansion) {
      throw AppError.of(
        422,
        'not-supported',
        `${canonical} is not a value set this server can expand: only those of the R4 definitions that draw on their own code systems`,
      );
    }
    const version = this.definitions.valueSetVersion(url);
    if (asked !== undefined && asked !== version) {
      throw AppError.of(
        404,
        'not-found',
        `Version ${asked} of ${url} is not held here${version ? `: ${version} is` : ''}`,
      );
    }
    return { url, ...(version ? { version } : {}), expansion };
  }
}

/** One code of a value set checked: its answer, and whether it is valid. */
function validateOne(
  expansion: Expansion,
  url: string,
  code: string,
  system: string | undefined,
  display: string | undefined,
): { valid: boolean; answer: Record<string, unknown> } {
  const found = system
    ? expansion.codings.has(`${system}|${code}`)
      ? ([`${system}|${code}`, expansion.codings.get(`${system}|${code}`)] as const)
      : undefined
    : [...expansion.codings].find(([coding]) => coding.endsWith(`|${code}`));
  const known = found?.[1];
  const result =
    found !== undefined && (display === undefined || known === undefined || known === display);
  const message = !found
    ? `${system ? `${system}|` : ''}${code} is not in the value set ${url}`
    : !result
      ? `The display for ${code} is "${known}", not "${display}"`
      : undefined;
  return {
    valid: result,
    answer: parameters([
      { name: 'result', valueBoolean: result },
      ...(message ? [{ name: 'message', valueString: message }] : []),
      ...(known ? [{ name: 'display', valueString: known }] : []),
    ]),
  };
}

function parameters(parameter: Record<string, unknown>[]): Record<string, unknown> {
  return { resourceType: 'Parameters', parameter };
}

function single(query: Query, name: string, required = false): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw AppError.invalid(`${name} may be given once`, [name]);
  if (required && (value === undefined || value === '')) {
    throw AppError.invalid(`${name} is required`, [name]);
  }
  return value === '' ? undefined : value;
}

function integer(query: Query, name: string, fallback: number, min: number, max: number): number {
  const value = single(query, name);
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!/^\d{1,9}$/.test(value) || number < min || number > max) {
    throw AppError.invalid(`${name} is an integer from ${min} to ${max}`, [name]);
  }
  return number;
}
