import { AppError } from '../../common/errors/app-error.js';
import type { SearchConditions } from './search-conditions.js';
import type { SearchDefinitions } from './search-definitions.js';
import type { IncludeSpec } from './search-request.js';

/**
 * AuditEvents are the audit trail's own rows (src/audit), never in the store that searches
 * read: `_revinclude=AuditEvent:entity` would add none, as if nobody had touched the record.
 * The trail is searched at GET /fhir/AuditEvent.
 */
const OUTSIDE_THE_STORE: ReadonlySet<string> = new Set(['AuditEvent']);

/**
 * The `_revinclude` values a search of each type takes, `Source:param` by the type searched:
 * the reference parameters of the stored types that may point to it. What /metadata declares
 * as `searchRevInclude`; `assertRevInclude` refuses the others.
 */
export function revIncludesByTarget(
  sourceTypes: readonly string[],
  definitions: Pick<SearchDefinitions, 'paramsOf'>,
): Map<string, string[]> {
  const byTarget = new Map<string, string[]>();
  for (const source of sourceTypes.filter((type) => !OUTSIDE_THE_STORE.has(type))) {
    for (const param of definitions.paramsOf(source)) {
      if (param.type !== 'reference') continue;
      for (const target of param.targets) {
        byTarget.set(target, [...(byTarget.get(target) ?? []), `${source}:${param.code}`]);
      }
    }
  }
  return byTarget;
}

/**
 * Refuses a `_revinclude` of a search of `type` that /metadata does not declare, whether the
 * search matches anything or not: one that can add nothing (`Patient?_revinclude=
 * Encounter:location`) was a 200 that a client read as "nothing refers to it". With `:iterate`
 * it also follows what the first round added, of other types, so it needs only to be a
 * reference parameter of a stored type.
 */
export function assertRevInclude(
  type: string,
  spec: IncludeSpec,
  isResourceType: (type: string) => boolean,
  conditions: Pick<SearchConditions, 'param'>,
): void {
  const value = `${spec.sourceType}:${spec.param}`;
  if (!isResourceType(spec.sourceType)) {
    throw AppError.invalid(`_revinclude=${value}: ${spec.sourceType} is not a resource type`);
  }
  if (OUTSIDE_THE_STORE.has(spec.sourceType)) {
    throw AppError.of(
      400,
      'not-supported',
      `_revinclude cannot add ${spec.sourceType} resources: search them at /fhir/${spec.sourceType}`,
    );
  }
  const param = conditions.param(spec.sourceType, spec.param);
  if (param.type !== 'reference') {
    throw AppError.invalid(`${value} is not a reference parameter`);
  }
  const target = spec.targetType ?? type;
  if (!spec.iterate && (target !== type || !param.targets.includes(type))) {
    throw AppError.invalid(
      `_revinclude=${value} cannot add resources to a search of ${type}: ${value} does not refer to ${type} (see searchRevInclude in /fhir/metadata)`,
    );
  }
}

/**
 * Refuses an `_include` of a search of `type` whose source type is another one, without
 * `:iterate`: the first round follows the matches' references only, so
 * `Observation?_include=Patient:link` added nothing, with a 200 that did not say so (until
 * 2026-12-06). With `:iterate` it follows what a round included, of any type.
 */
export function assertIncludeSource(type: string, spec: IncludeSpec): void {
  if (spec.iterate || spec.sourceType === '*' || spec.sourceType === type) return;
  const value = [spec.sourceType, spec.param, spec.targetType].filter(Boolean).join(':');
  throw AppError.invalid(
    `_include=${value} cannot add resources to a search of ${type}: it follows references of ${spec.sourceType} resources, and only :iterate follows those of what was included`,
  );
}
