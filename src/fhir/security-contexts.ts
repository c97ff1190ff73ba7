import { Injectable } from '@nestjs/common';
import { patientIdOf } from '../access/patient-compartment.js';
import { isRestrictedIn, RESTRICTED_LABEL } from '../access/resource-access.js';
import { FhirDefinitions } from './fhir-definitions.js';
import type { FhirResource } from './fhir-types.js';
import { literalReference } from './literal-reference.js';
import { ResourceRepository } from './resource.repository.js';
import { parseContent } from './resource-versions.js';

/**
 * What a Binary follows when its securityContext names nothing stored (never written, or not
 * a reference this server reads): restricted with no patient, it opens to no one. Failing open
 * would hand a document's bytes to anyone whose client wrote its context in a form unread here.
 */
function unresolved(reference: unknown): FhirResource {
  return {
    resourceType: 'Unresolved',
    id: typeof reference === 'string' ? reference.slice(0, 200) : 'unresolved',
    meta: {
      security: [RESTRICTED_LABEL],
    },
  };
}

/**
 * The resources Binaries' securityContexts name (`DocumentReference/…`), whose access rules the
 * Binaries follow (FHIR R4 Binary; see ResourceAccess). A Patient is not loaded: ResourceAccess
 * reads it from the reference. A deleted context counts as it was before its deletion: deleting
 * a restricted document must not open its bytes.
 */
@Injectable()
export class SecurityContexts {
  constructor(
    private readonly definitions: FhirDefinitions,
    private readonly repository: ResourceRepository,
  ) {}

  /** For each Binary among `resources` with a context other than a Patient: that resource. */
  async of(resources: readonly FhirResource[]): Promise<Map<FhirResource, FhirResource>> {
    const contexts = new Map<FhirResource, FhirResource>();
    const named = new Map<FhirResource, string>();
    const targets = new Map<string, { type: string; id: string }>();
    for (const resource of resources) {
      if (resource.resourceType !== 'Binary') continue;
      const context = resource['securityContext'] as { reference?: unknown } | undefined;
      if (context === undefined || patientIdOf(context) !== undefined) continue;
      const reference = context.reference;
      const target = this.targetOf(reference);
      if (!target) {
        contexts.set(resource, unresolved(reference));
        continue;
      }
      const key = `${target.type}/${target.id}`;
      named.set(resource, key);
      targets.set(key, target);
    }
    if (named.size === 0) return contexts;
    const loaded = new Map(
      (await this.repository.latestLive([...targets.values()])).map((row) => [
        `${row.resourceType}/${row.id}`,
        parseContent(row),
      ]),
    );
    for (const [resource, key] of named) {
      contexts.set(resource, loaded.get(key) ?? unresolved(key));
    }
    return contexts;
  }

  /** The one resource's context (a read, a write). */
  async ofOne(resource: FhirResource): Promise<FhirResource | undefined> {
    return resource.resourceType === 'Binary'
      ? (await this.of([resource])).get(resource)
      : undefined;
  }

  /**
   * The record as it is now when it is restricted (its current content, or the last before
   * its deletion): security labels apply to the versions written before them too, so an
   * earlier version of a record restricted since opens only as the record does.
   */
  async restrictedNow(
    type: string,
    id: string,
  ): Promise<{ resource: FhirResource; context?: FhirResource } | undefined> {
    const [latest] = await this.repository.latestLive([{ type, id }]);
    if (!latest) return undefined;
    const resource = parseContent(latest);
    const context = await this.ofOne(resource);
    if (!isRestrictedIn(resource, context)) return undefined;
    return context ? { resource, context } : { resource };
  }

  /**
   * Relative or absolute, and one version of it (`DocumentReference/1/_history/2`), as
   * patientIdOf reads it: another server's resource (PUBLIC_URL) is none of this one's, so its
   * Binary opens to no one here (until 2026-12-06 it followed this server's of the same id).
   */
  private targetOf(reference: unknown): { type: string; id: string } | undefined {
    const literal = typeof reference === 'string' ? literalReference(reference) : undefined;
    if (!literal || literal.foreign || !this.definitions.isResourceType(literal.type)) {
      return undefined;
    }
    return { type: literal.type, id: literal.id };
  }
}
