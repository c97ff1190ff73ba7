import { isTypedNameOf, type FhirResource } from '../fhir-types.js';
import { literalReference } from '../literal-reference.js';

/**
 * One step of a search parameter's expression that the index extractor can walk on the JSON
 * itself: an element (`address`), a choice element of one type (`value.ofType(Quantity)`), a
 * reference filter (`where(resolve() is Patient)`) or a property filter
 * (`where(system='email')`). Together these cover nearly every R4 definition; the FHIRPath
 * engine, which they replace, was a fifth of a transaction's CPU.
 */
export type PathStep =
  | { element: string; ofType?: string }
  | { resolvesTo: string }
  | { property: string; equals: string };

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const ELEMENT = /^[a-z][A-Za-z0-9]*$/;
const OF_TYPE = /^ofType\(([A-Za-z][A-Za-z0-9]*)\)$/;
const RESOLVES_TO = /^where\(resolve\(\) is ([A-Z][A-Za-z]*)\)$/;
/** Types the engine's `ofType` tests by a shape that `isOfType` does not repeat. */
const SYSTEM_TYPES = new Set(['Date', 'Time']);
const EQUALS = /^where\(([a-z][A-Za-z0-9]*)\s*=\s*'([^'\\]*)'\)$/;

/**
 * The branches of a shared definition's union expression that apply to one type
 * (`Patient.name | Practitioner.name` gives `Patient.name` for Patient), so a resource is not
 * evaluated against every other type's paths. Expressions that are not such a union stay whole.
 */
export function branchesFor(type: string, expression: string): string {
  const branches = expression.split(' | ').map((branch) => branch.trim());
  const own = branches.filter(
    (branch) => branch.startsWith(`${type}.`) || branch.startsWith(`(${type}.`),
  );
  return own.length > 0 ? own.join(' | ') : expression;
}

/**
 * The steps of an expression's branches (already narrowed to one type, `A | B`), or undefined
 * when any branch holds something else (`as`, indexes, other functions): that parameter stays
 * with the engine.
 */
export function parsePlainPaths(type: string, branches: string): PathStep[][] | undefined {
  const paths: PathStep[][] = [];
  for (const branch of branches.split(' | ')) {
    const [head, ...parts] = splitSteps(ungroup(branch.trim()));
    if (head !== type || parts.length === 0) return undefined;
    const steps: PathStep[] = [];
    for (const part of parts) {
      const ofType = OF_TYPE.exec(part)?.[1];
      const previous = steps[steps.length - 1];
      if (ofType !== undefined) {
        if (!previous || !('element' in previous) || previous.ofType) return undefined;
        if (SYSTEM_TYPES.has(ofType)) return undefined;
        previous.ofType = ofType;
        continue;
      }
      const resolvesTo = RESOLVES_TO.exec(part)?.[1];
      const equals = EQUALS.exec(part);
      if (ELEMENT.test(part)) steps.push({ element: part });
      else if (resolvesTo !== undefined) steps.push({ resolvesTo });
      else if (equals) steps.push({ property: equals[1]!, equals: equals[2]! });
      else return undefined;
    }
    paths.push(steps);
  }
  return paths;
}

/**
 * The values of parsed paths, walked on the JSON as the FHIRPath engine (@medplum/core) walks
 * them: arrays flattened, a choice element found under its typed name and kept when the engine
 * would count it of that type, references kept when the engine's `resolve()` would give that
 * type. Undefined when only the engine knows the answer: a bare element absent where a choice
 * element stands under its typed name (`effectiveDateTime` for `effective`), or `ofType` on an
 * element present under its bare name. A validated resource never holds a choice element under
 * its bare name, so a key that is present is the element itself. Duplicates across branches are
 * left to `dedupe`. `index-extractor.spec.ts` compares the two on every Synthea resource.
 */
export function plainValues(
  resource: FhirResource,
  paths: readonly (readonly PathStep[])[],
): unknown[] | undefined {
  const values: unknown[] = [];
  for (const steps of paths) {
    let current: unknown[] = [resource];
    for (const step of steps) {
      const next: unknown[] = [];
      for (const item of current) {
        if ('resolvesTo' in step) {
          if (resolvedType(item) === step.resolvesTo) next.push(item);
          continue;
        }
        if (!isObject(item)) continue;
        if ('property' in step) {
          if (single(item[step.property]) === step.equals) next.push(item);
          continue;
        }
        let children: unknown;
        if (step.ofType) {
          children = choiceValues(item, step.element, step.ofType);
          if (children === undefined) return undefined;
        } else {
          children = item[step.element];
          if (children === undefined || children === null) {
            if (Object.keys(item).some((key) => isTypedNameOf(key, step.element))) {
              return undefined;
            }
            continue;
          }
        }
        for (const child of Array.isArray(children) ? children : [children]) {
          if (child !== null && child !== undefined) next.push(child);
        }
      }
      current = next;
    }
    // One at a time: spread as arguments, 200,000 given names (a 1 MB body) overflowed the
    // stack, and the write was a 500 (until 2026-12-07).
    for (const value of current) values.push(value);
  }
  return values;
}

/**
 * `element.ofType(type)` on one object: the values under the element's typed names that the
 * engine counts as that type, or undefined when the element is there under its bare name,
 * whose type only the definitions know.
 */
function choiceValues(item: Json, element: string, type: string): unknown[] | undefined {
  if (item[element] !== undefined) return undefined;
  const values: unknown[] = [];
  for (const key of Object.keys(item)) {
    if (!isTypedNameOf(key, element)) continue;
    const value = item[key];
    if (isOfType(typeCodeOf(key.slice(element.length)), value, type)) values.push(value);
  }
  return values;
}

/**
 * The engine's `ofType` test (@medplum/core 5): a Quantity is any object with a numeric
 * `value`, a Period one with a dateTime start or end, the System types by the value's shape
 * (a DateTime is any string in dateTime form, a valueString too); other types are the
 * element's declared type. (`parsePlainPaths` leaves System Date and Time to the engine.)
 */
function isOfType(typeCode: string, value: unknown, type: string): boolean {
  switch (type) {
    case 'Boolean':
      return typeof value === 'boolean';
    case 'Decimal':
    case 'Integer':
      return typeof value === 'number';
    case 'DateTime':
      return isDateTime(value);
    case 'Period':
      return isObject(value) && (isDateTime(value['start']) || isDateTime(value['end']));
    case 'Quantity':
      return isObject(value) && typeof value['value'] === 'number';
    default:
      return typeCode === type || (isObject(value) && value['resourceType'] === type);
  }
}

/** The engine's dateTime pattern, as @medplum/core 5 writes it. */
const DATE_TIME =
  /^(\d(\d(\d[1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2]\d|3[0-1])(T([01]\d|2[0-3])(:[0-5]\d:([0-5]\d|60)(\.\d{1,9})?)?)?)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)?)?)?$/;

function isDateTime(value: unknown): boolean {
  return typeof value === 'string' && DATE_TIME.test(value);
}

const PRIMITIVES = new Set([
  'base64Binary',
  'boolean',
  'canonical',
  'code',
  'date',
  'dateTime',
  'decimal',
  'id',
  'instant',
  'integer',
  'markdown',
  'oid',
  'positiveInt',
  'string',
  'time',
  'unsignedInt',
  'uri',
  'url',
  'uuid',
]);

/** A typed name's suffix as a type code: `DateTime` is `dateTime`, `Quantity` stays. */
function typeCodeOf(suffix: string): string {
  const primitive = suffix.charAt(0).toLowerCase() + suffix.slice(1);
  return PRIMITIVES.has(primitive) ? primitive : suffix;
}

/**
 * The type `resolve()` gives a reference without loading it: the part before `?` of a
 * conditional reference, the type of `Type/id`, relative or absolute (until 2026-12-06 an
 * absolute URL gave none, as the engine's split on `/` does, so `patient` missed what `subject`
 * found), else the first segment, or the `type` of a logical reference by identifier.
 */
function resolvedType(item: unknown): string | undefined {
  let reference: string | undefined;
  if (typeof item === 'string') reference = item;
  else if (isObject(item)) {
    if (isObject(item['resource'])) return item['resource']['resourceType'] as string;
    if (typeof item['reference'] === 'string' && item['reference'] !== '') {
      reference = item['reference'];
    } else if (typeof item['type'] === 'string' && item['type'] && item['identifier']) {
      return item['type'];
    }
  }
  if (reference?.includes('?')) return reference.split('?')[0];
  const literal = reference ? literalReference(reference) : undefined;
  if (literal) return literal.type;
  if (reference?.includes('/')) return reference.split('/')[0];
  return undefined;
}

/** A property's one value, as FHIRPath's `=` compares it (a collection of several is unequal). */
function single(value: unknown): unknown {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
}

/** Drops the parentheses around a branch's start: `(A.b.ofType(C)).d` is `A.b.ofType(C).d`. */
function ungroup(branch: string): string {
  if (!branch.startsWith('(')) return branch;
  let depth = 0;
  for (let i = 0; i < branch.length; i++) {
    if (branch[i] === '(') depth++;
    else if (branch[i] === ')' && --depth === 0) {
      return branch.slice(1, i) + branch.slice(i + 1);
    }
  }
  return branch;
}

/** Splits at the dots outside parentheses and quotes. */
function splitSteps(branch: string): string[] {
  const steps: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < branch.length; i++) {
    const c = branch[i];
    if (c === "'") quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === '.') {
      steps.push(branch.slice(start, i));
      start = i + 1;
    }
  }
  steps.push(branch.slice(start));
  return steps;
}
