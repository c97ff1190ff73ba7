/**
 * A conditional reference: `Patient?identifier=http://hospital/mrn|123` in a Reference, a search
 * that the server replaces with the one resource it matches (FHIR R4 http.html#trules). It is
 * how a feed links a result to a patient it knows only by MRN.
 */
export interface ConditionalReference {
  /** Where it sits (`Observation.subject`), for errors: the criteria may hold an MRN. */
  path: string;
  reference: string;
  type: string;
  criteria: string;
}

const CONDITIONAL = /^([A-Z][A-Za-z]{0,63})\?(.+)$/s;

/**
 * Every conditional reference in a resource (contained resources included, not the entries of a
 * Bundle resource: a document or message kept as it was sent).
 */
export function conditionalReferences(resource: unknown): ConditionalReference[] {
  const found: ConditionalReference[] = [];
  const type = (resource as { resourceType?: unknown } | null)?.resourceType;
  walk(resource, typeof type === 'string' ? type : 'Resource', found);
  return found;
}

function walk(value: unknown, path: string, found: ConditionalReference[]): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, path, found);
    return;
  }
  if (typeof value !== 'object' || value === null) {
    return;
  }
  const object = value as Record<string, unknown>;
  // A Bundle resource (a document) keeps its entries as they are, searches included.
  const bundle = object.resourceType === 'Bundle';
  for (const key in object) {
    const item = object[key];
    if (bundle && key === 'entry') continue;
    if (key === 'reference' && typeof item === 'string') {
      const match = CONDITIONAL.exec(item);
      if (match) found.push({ path, reference: item, type: match[1]!, criteria: match[2]! });
    } else if (typeof item === 'object' && item !== null) {
      walk(item, `${path}.${key}`, found);
    }
  }
}
