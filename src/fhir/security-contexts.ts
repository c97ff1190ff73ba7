import { Injectable } from '@nestjs/common';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { SearchRepository } from './search/search.repository.js';

const REFERENCE = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9.-]{1,64})$/;

/**
 * The resources Binaries' securityContexts name (`DocumentReference/…`), whose access rules the
 * Binaries follow (FHIR R4 Binary; see ResourceAccess). A Patient is not loaded: ResourceAccess
 * reads it from the reference.
 */
@Injectable()
export class SecurityContexts {
  constructor(
    private readonly definitions: FhirDefinitions,
    private readonly repository: SearchRepository,
  ) {}

  /** For each Binary among `resources` whose context is stored and live: that resource, as now. */
  async of(resources: readonly FhirResource[]): Promise<Map<FhirResource, FhirResource>> {
    const named = new Map<FhirResource, string>();
    const idsByType = new Map<string, Set<string>>();
    for (const resource of resources) {
      const target = this.targetOf(resource);
      if (!target) continue;
      named.set(resource, `${target.type}/${target.id}`);
      idsByType.set(target.type, (idsByType.get(target.type) ?? new Set()).add(target.id));
    }
    if (named.size === 0) return new Map();
    const loaded = new Map<string, FhirResource>();
    for (const [type, ids] of idsByType) {
      for (const row of await this.repository.load(type, [...ids])) {
        loaded.set(`${type}/${row.id}`, JSON.parse(row.content as string) as FhirResource);
      }
    }
    const contexts = new Map<FhirResource, FhirResource>();
    for (const [resource, key] of named) {
      const context = loaded.get(key);
      if (context) contexts.set(resource, context);
    }
    return contexts;
  }

  /** The one resource's context (a read, a write). */
  async ofOne(resource: FhirResource): Promise<FhirResource | undefined> {
    return this.targetOf(resource) ? (await this.of([resource])).get(resource) : undefined;
  }

  private targetOf(resource: FhirResource): { type: string; id: string } | undefined {
    if (resource.resourceType !== 'Binary') return undefined;
    const reference = (resource['securityContext'] as { reference?: unknown } | undefined)
      ?.reference;
    const match = typeof reference === 'string' ? REFERENCE.exec(reference) : null;
    if (!match || match[1] === 'Patient' || !this.definitions.isResourceType(match[1]!)) {
      return undefined;
    }
    return { type: match[1]!, id: match[2]! };
  }
}
