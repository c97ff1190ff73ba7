import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import { isTypedNameOf, type FhirResource } from './fhir-types.js';

/** `_summary` values that return part of each resource (`count` and `false` are the search's). */
export type SummaryMode = 'true' | 'text' | 'data';

/** What a client asked to get of each resource: a `_summary` mode or an `_elements` list. */
export type SubsetRequest = { summary: SummaryMode } | { elements: readonly string[] };

const SUBSETTED = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
};

/**
 * Whether the resource carries the SUBSETTED tag: it is part of a resource (a `_summary` or
 * `_elements` answer), which R4 says must not be used to overwrite the whole (search.html).
 */
export function isSubsetted(resource: FhirResource): boolean {
  const tags = (resource.meta as { tag?: unknown } | undefined)?.tag;
  return (
    Array.isArray(tags) &&
    tags.some(
      (tag: { system?: unknown; code?: unknown } | null) =>
        tag?.system === SUBSETTED.system && tag.code === SUBSETTED.code,
    )
  );
}

interface TypeElements {
  /** Top-level elements marked isSummary in the base definition. */
  summary: ReadonlySet<string>;
  /** Top-level elements with a minimum cardinality above 0. */
  mandatory: ReadonlySet<string>;
  /** Choice elements (`deceased` for `deceased[x]`), stored under typed names. */
  choices: ReadonlySet<string>;
}

/**
 * `_summary` and `_elements` (FHIR R4 search.html#summary): the top-level elements each mode
 * keeps, from the base StructureDefinitions' `isSummary` and cardinalities. What is left out is
 * marked with the SUBSETTED tag, so a client does not take the part for the whole (or write it
 * back as an update).
 */
export class Subsets {
  private readonly byType = new Map<string, TypeElements>();

  constructor(resources: Bundle<StructureDefinition>) {
    for (const entry of resources.entry ?? []) {
      const definition = entry.resource;
      if (definition?.kind !== 'resource' || !definition.type || !definition.snapshot) continue;
      const summary = new Set<string>();
      const mandatory = new Set<string>();
      const choices = new Set<string>();
      for (const element of definition.snapshot.element ?? []) {
        const [type, name, ...deeper] = (element.path ?? '').split('.');
        if (type !== definition.type || !name || deeper.length > 0) continue;
        const bare = name.replace(/\[x\]$/, '');
        if (bare !== name) choices.add(bare);
        if (element.isSummary) summary.add(bare);
        if ((element.min ?? 0) > 0) mandatory.add(bare);
      }
      this.byType.set(definition.type, { summary, mandatory, choices });
    }
  }

  /** The part of the resource the request asks for, tagged SUBSETTED. */
  apply(resource: FhirResource, request: SubsetRequest): FhirResource {
    const elements = this.byType.get(resource.resourceType);
    if (!elements) return resource;
    const keep = keeper(elements, request);
    const kept: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(resource)) {
      // `_birthDate` (a primitive's id and extensions) goes with `birthDate`.
      const concrete = key.startsWith('_') ? key.slice(1) : key;
      const name = elementOf(concrete, elements.choices);
      if (key === 'resourceType' || keep(name, concrete)) kept[key] = value;
    }
    const meta = (resource.meta ?? {}) as { tag?: unknown[] };
    kept['meta'] = { ...meta, tag: [...(meta.tag ?? []), SUBSETTED] };
    return kept as FhirResource;
  }
}

/**
 * Whether to keep an element, by its name (`value` for `value[x]`) and the name it has in the
 * JSON (`valueQuantity`).
 */
function keeper(
  elements: TypeElements,
  request: SubsetRequest,
): (name: string, concrete: string) => boolean {
  if ('elements' in request) {
    // Mandatory elements come whether asked for or not, as the specification recommends. A
    // choice is asked for by its name (`value`) or by the type it holds (`valueQuantity`,
    // which leaves a `valueString` out): clients write both, and the latter was dropped.
    const asked = new Set(request.elements);
    return (name, concrete) =>
      name === 'id' ||
      name === 'meta' ||
      asked.has(name) ||
      (concrete !== name && asked.has(concrete)) ||
      elements.mandatory.has(name);
  }
  switch (request.summary) {
    case 'true':
      return (name) => elements.summary.has(name);
    case 'text':
      return (name) =>
        name === 'id' || name === 'meta' || name === 'text' || elements.mandatory.has(name);
    case 'data':
      return (name) => name !== 'text';
  }
}

/** The element a JSON key belongs to: `deceasedBoolean` is `deceased`. */
function elementOf(key: string, choices: ReadonlySet<string>): string {
  for (const choice of choices) {
    if (isTypedNameOf(key, choice)) return choice;
  }
  return key;
}
