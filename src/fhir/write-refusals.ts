import type { Issue } from '../common/errors/app-error.js';
import { conditionalReferences } from './conditional-references.js';
import type { FhirResource } from './fhir-types.js';
import { unresolvedBundleReference } from './local-references.js';

/** What a write refuses in a resource that validates, and the status it refuses it with. */
export interface WriteRefusal {
  status: 400 | 422;
  issue: Issue;
}

/**
 * What a write (create, update) of a resource refuses though it is valid R4, which
 * `$validate` also says (an error with a mode, a warning without one, as the resource may be
 * meant for a Bundle's entry): a batch or transaction Bundle, a conditional reference, a
 * `urn:uuid:` reference. Each in the order a write meets them; undefined when none.
 */
export function writeRefusal(resource: FhirResource): WriteRefusal | undefined {
  return unstorableBundle(resource) ?? conditionalReference(resource) ?? bundleReference(resource);
}

/**
 * A batch or transaction Bundle is a request to run, not a record to keep: one sent to
 * `/fhir/Bundle` (or as a Bundle entry) was stored with a 201 and none of its entries ran, so
 * the client took them for written (HAPI FHIR refuses it too). Documents, collections and
 * messages are kept as they are.
 */
export function unstorableBundle(resource: FhirResource): WriteRefusal | undefined {
  const { type } = resource as { type?: unknown };
  if (resource.resourceType !== 'Bundle' || (type !== 'batch' && type !== 'transaction')) {
    return undefined;
  }
  return refusal(
    422,
    'processing',
    `A Bundle of type ${type} is not stored as a resource: POST it to the base URL (/fhir) to run its entries`,
    'Bundle.type',
  );
}

/** A conditional reference (`Type?criteria`), which only a transaction or batch resolves. */
export function conditionalReference(resource: FhirResource): WriteRefusal | undefined {
  const conditional = conditionalReferences(resource)[0];
  if (!conditional) return undefined;
  return refusal(
    400,
    'invalid',
    `${conditional.path} is a conditional reference (Type?criteria): send it in a transaction or batch Bundle, which resolves it`,
    conditional.path,
  );
}

/** A `urn:uuid:` reference, which names an entry of the Bundle a resource is sent in. */
export function bundleReference(resource: FhirResource): WriteRefusal | undefined {
  const unresolved = unresolvedBundleReference(resource);
  if (!unresolved) return undefined;
  return refusal(
    400,
    'invalid',
    'A urn:uuid: reference names an entry of the Bundle it is sent in; on its own, a resource refers to others as Type/id',
    unresolved,
  );
}

function refusal(
  status: WriteRefusal['status'],
  code: Issue['code'],
  diagnostics: string,
  expression: string,
): WriteRefusal {
  return { status, issue: { severity: 'error', code, diagnostics, expression: [expression] } };
}
