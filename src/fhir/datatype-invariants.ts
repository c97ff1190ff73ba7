import './websocket-shim.js';
import { getDataType, type Constraint, type InternalTypeSchema } from '@medplum/core';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';

/**
 * Invariants this server checks with its own code, which knows more than R4's expression:
 * ele-1 (json-rules.ts), per-1 (period-order.ts: a start and end of different precisions,
 * which the FHIRPath `<=` leaves empty), ref-1 (local-references.ts).
 */
const CHECKED_ELSEWHERE = new Set(['ele-1', 'per-1', 'ref-1']);

/**
 * rng-2's `low <= high` compares Quantities by their units in FHIRPath, but @medplum/core
 * compares the bare values, so a Range of 500 mg to 1 g was refused; with no UCUM conversion at
 * hand, a Range whose bounds have different units (codes, or units when neither has a code) is
 * taken unchecked, as a wrong refusal of a result costs more than a missed check.
 */
const RANGE_IN_ORDER =
  'low.empty() or high.empty()' +
  ' or (low.code.exists() and high.code.exists() and (low.code != high.code or low.system != high.system))' +
  ' or (low.code.empty() and high.code.empty() and low.unit != high.unit)' +
  ' or (low <= high)';

/**
 * `hasValue()` in @medplum/core is `exists()`: a value absent with only an extension (a
 * data-absent-reason) reads as the extension's object, which is not `> 0`, so age-1 refused an
 * Age with no value. A number's text begins with a digit (or `-` and one); the object's does
 * not. (`toDecimal()` as the test took 1e-7, as JavaScript writes 0.0000001, for no number, so
 * an Age of -0.00000015 was taken.)
 */
const HAS_NO_NUMBER = "value.toString().matches('^-?[0-9]').not()";

/**
 * cnt-3's "the value SHALL be a whole number" is `value.toString().contains('.').not()` in R4,
 * but @medplum/core writes 0.0000001 as `1e-7`, with no ".", so such a Count was taken. A whole
 * number leaves nothing when divided by 1. A Count written `2.0` is the number 2 once parsed
 * (README: trailing zeros are not kept), and is taken and kept as 2.
 */
const NOT_WHOLE = "value.toString().contains('.').not()";
const WHOLE = '(value mod 1) = 0';

/** The expression evaluated for an invariant: R4's, or one @medplum/core evaluates rightly. */
function evaluated(key: string, expression: string): string {
  if (key === 'rng-2') return RANGE_IN_ORDER;
  if (key === 'age-1' || key === 'cnt-3') {
    return expression.replace('value.hasValue().not()', HAS_NO_NUMBER).replace(NOT_WHOLE, WHOLE);
  }
  return expression;
}

/**
 * Gives each element the invariants of its data type. R4 writes the invariants of a data type
 * (qty-3, sqty-1, rng-2, rat-1, att-1, cpt-2, age-1, mqty-1…) on the root of the type's
 * StructureDefinition, and a resource's snapshot does not copy them onto its elements of that
 * type; @medplum/core's validator checks an element against the element's own constraints only,
 * so none of them was evaluated: a reference range whose low is above its high, a unit code with
 * no system, a negative age, a SimpleQuantity with a comparator (a dose of "< 5 mg") were stored
 * until 2026-12-07. The invariants are taken from the definitions and evaluated by the
 * validator's own FHIRPath engine, as an element's are. For an element of several types
 * (value[x]), each type's invariants are guarded by `$this is Type`. A profile named on a type
 * (SimpleQuantity, MoneyQuantity) adds its invariants.
 *
 * @param types - R4's profiles-types.json, already indexed by @medplum/core.
 * @param resources - R4's profiles-resources.json, already indexed.
 */
export function addDatatypeInvariants(
  types: Bundle<StructureDefinition>,
  resources: Bundle<StructureDefinition>,
): void {
  const invariants = datatypeInvariants(types);
  for (const bundle of [types, resources]) {
    for (const { resource } of bundle.entry ?? []) {
      if (!resource?.type || resource.derivation === 'constraint' || resource.abstract) continue;
      if (resource.kind !== 'complex-type' && resource.kind !== 'resource') continue;
      const schema = getDataType(resource.type);
      for (const each of [schema, ...schema.innerTypes]) addTo(each, invariants);
    }
  }
}

/** Each complex type's (by code) and profile's (by URL) root invariants of severity error. */
function datatypeInvariants(types: Bundle<StructureDefinition>): Map<string, Constraint[]> {
  const invariants = new Map<string, Constraint[]>();
  for (const { resource } of types.entry ?? []) {
    if (resource?.kind !== 'complex-type' || !resource.type || !resource.url) continue;
    const constraints: Constraint[] = [];
    for (const constraint of resource.snapshot?.element?.[0]?.constraint ?? []) {
      const { key, severity, expression, human } = constraint;
      if (!key || severity !== 'error' || !expression || CHECKED_ELSEWHERE.has(key)) continue;
      constraints.push({
        key,
        severity,
        expression: evaluated(key, expression),
        description: human ?? '',
      });
    }
    if (constraints.length === 0) continue;
    invariants.set(
      resource.derivation === 'constraint' ? resource.url : resource.type,
      constraints,
    );
  }
  return invariants;
}

function addTo(schema: InternalTypeSchema, invariants: ReadonlyMap<string, Constraint[]>): void {
  for (const element of Object.values(schema.elements)) {
    const constraints = element.constraints ?? [];
    const added: Constraint[] = [];
    const choice = element.type.length > 1;
    for (const { code, profile } of element.type) {
      const own = [invariants.get(code), ...(profile ?? []).map((url) => invariants.get(url))];
      const keys = new Set<string>();
      for (const constraint of own.flat()) {
        if (!constraint || keys.has(constraint.key)) continue;
        keys.add(constraint.key);
        // iif, not `or`: the engine evaluates both sides of an `or`, and an element name that
        // the value's type lacks (`low` of a Quantity) costs it some 50 µs.
        const expression = choice
          ? `iif($this is ${code}, (${constraint.expression}), true)`
          : constraint.expression;
        // The definitions are indexed again by each FhirDefinitions (a test's, the worker's).
        if (constraints.some((c) => c.key === constraint.key && c.expression === expression)) {
          continue;
        }
        added.push({ ...constraint, expression });
      }
    }
    if (added.length > 0) element.constraints = [...constraints, ...added];
  }
}
