import type { BlindIndexer } from '../../src/crypto/blind-index.js';
import { dateTerms, stringTerms, tokenTerms } from '../../src/fhir/search/blind-terms.js';
import { compositeKeys } from '../../src/fhir/search/composite-keys.js';
import { dateRange } from '../../src/fhir/search/date-range.js';
import { dedupe, emptyRows, type IndexRows } from '../../src/fhir/search/index-rows.js';
import { normalizePhone, normalizeString } from '../../src/fhir/search/normalize.js';

/**
 * The search index rows CareVault's IndexExtractor writes for the benchmark's Patient and
 * Observation bodies (bench/run.ts), by hand instead of by FHIRPath over every search
 * parameter: only the elements those bodies have are looked at. Rows come in CareVault's
 * order (by parameter code), and check.ts compares them with CareVault's, hash for hash.
 * A body with other elements gets fewer rows here than in CareVault.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | null =>
  typeof value === 'string' && value.length > 0 ? value : null;
const objects = (value: unknown): Json[] =>
  (Array.isArray(value) ? value : [value]).filter(isObject);
const strings = (value: unknown): string[] =>
  (Array.isArray(value) ? value : [value]).filter(
    (item): item is string => typeof item === 'string' && item.length > 0,
  );

/** HumanName and Address parts, in IndexExtractor's order. */
const PARTS = [
  'family',
  'given',
  'prefix',
  'suffix',
  'text',
  'line',
  'city',
  'district',
  'state',
  'postalCode',
  'country',
];
const parts = (value: Json): string[] => PARTS.flatMap((key) => strings(value[key]));

/** system|code of a Coding, a CodeableConcept, an Identifier or a ContactPoint. */
function tokens(value: unknown): { system: string | null; code: string }[] {
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') {
    return [{ system: null, code: String(value) }];
  }
  if (!isObject(value)) return [];
  if (Array.isArray(value['coding'])) return value['coding'].flatMap(tokens);
  const code = text(value['code']) ?? text(value['value']);
  return code ? [{ system: text(value['system']), code }] : [];
}

/** CodeableConcept.text and Coding.display, normalized, for `:text`. */
function tokenTexts(value: unknown): string[] {
  if (!isObject(value)) return [];
  const texts = [text(value['text']), text(value['display'])];
  for (const coding of objects(value['coding'])) texts.push(text(coding['display']));
  return texts
    .filter((item): item is string => item !== null)
    .map(normalizeString)
    .filter((item) => item.length > 0);
}

function addTokens(rows: IndexRows, param: string, values: unknown[]): void {
  for (const value of values) {
    for (const token of tokens(value)) rows.tokens.push({ param, ...token });
    for (const display of tokenTexts(value)) {
      rows.strings.push({ param: `${param}:text`, value: display, exact: null });
    }
  }
}

/** Contact points as PHI tokens: phone numbers by their digits. */
const contactTerms = (contacts: Json[]): string[] =>
  contacts.flatMap((contact) =>
    tokens(contact).flatMap(({ system, code }) =>
      tokenTerms(system, system === 'phone' ? normalizePhone(code) : code),
    ),
  );

export function patientRows(patient: Json, blind: BlindIndexer): IndexRows {
  const rows = emptyRows();
  const names = objects(patient['name']);
  const addresses = objects(patient['address']);
  const telecom = objects(patient['telecom']);
  const hashed = (param: string, terms: string[]): void => {
    for (const term of terms) {
      rows.blind.push({ param, hash: blind.compute(`search:Patient.${param}`, term) });
    }
  };
  const bySystem = (system: string) => telecom.filter((contact) => contact['system'] === system);
  const birthDate = text(patient['birthDate']);

  addTokens(rows, 'active', [patient['active']]);
  hashed('address', addresses.flatMap(parts).flatMap(stringTerms));
  hashed('address-city', addresses.flatMap((a) => strings(a['city'])).flatMap(stringTerms));
  for (const country of addresses.flatMap((a) => strings(a['country']))) {
    const value = normalizeString(country);
    if (value) rows.strings.push({ param: 'address-country', value, exact: country });
  }
  hashed(
    'address-postalcode',
    addresses.flatMap((a) => strings(a['postalCode'])).flatMap(stringTerms),
  );
  for (const state of addresses.flatMap((a) => strings(a['state']))) {
    const value = normalizeString(state);
    if (value) rows.strings.push({ param: 'address-state', value, exact: state });
  }
  addTokens(
    rows,
    'address-use',
    addresses.map((a) => a['use']),
  );
  hashed('birthdate', birthDate ? dateTerms(birthDate) : []);
  // `deceased.exists() and deceased != false`: false for a Patient without the element too.
  const deceased = patient['deceasedBoolean'] ?? patient['deceasedDateTime'];
  addTokens(rows, 'deceased', [deceased !== undefined && deceased !== false]);
  hashed('email', contactTerms(bySystem('email')));
  hashed('family', names.flatMap((n) => strings(n['family'])).flatMap(stringTerms));
  addTokens(rows, 'gender', [patient['gender']]);
  hashed('given', names.flatMap((n) => strings(n['given'])).flatMap(stringTerms));
  hashed(
    'identifier',
    objects(patient['identifier']).flatMap((identifier) =>
      tokens(identifier).flatMap(({ system, code }) => tokenTerms(system, code)),
    ),
  );
  addTokens(
    rows,
    'language',
    objects(patient['communication']).map((c) => c['language']),
  );
  hashed('name', names.flatMap(parts).flatMap(stringTerms));
  hashed('phone', contactTerms(bySystem('phone')));
  hashed('telecom', contactTerms(telecom));
  return dedupe(rows);
}

const REFERENCE =
  /^(?:[a-z]+:\/\/.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})(?:\/_history\/.*)?$/;

export function observationRows(observation: Json): IndexRows {
  const rows = emptyRows();
  const code = observation['code'];
  const components = objects(observation['component']);
  addTokens(rows, 'code', [code]);
  const quantities = (values: unknown[]) =>
    values.filter(isObject).flatMap((q) =>
      typeof q['value'] === 'number'
        ? [
            {
              value: q['value'],
              system: text(q['system']),
              code: text(q['code']) ?? text(q['unit']),
              unit: text(q['unit']),
              comparator: text(q['comparator']),
            },
          ]
        : [],
    );
  for (const q of quantities([
    observation['valueQuantity'],
    ...components.map((c) => c['valueQuantity']),
  ])) {
    rows.quantities.push({ param: 'combo-value-quantity', ...q });
  }
  addTokens(rows, 'combo-code', [code, ...components.map((c) => c['code'])]);
  const effective = text(observation['effectiveDateTime']);
  const range = effective ? dateRange(effective) : undefined;
  if (range) rows.dates.push({ param: 'date', ...range });
  const subject = text(
    isObject(observation['subject']) ? observation['subject']['reference'] : null,
  );
  const target = subject ? REFERENCE.exec(subject) : null;
  if (target) {
    const reference = {
      targetType: target[1]!,
      targetId: target[2]!,
      local: !target.input.includes('://'),
    };
    if (reference.targetType === 'Patient')
      rows.references.push({ param: 'patient', ...reference });
    rows.references.push({ param: 'subject', ...reference });
  }
  addTokens(rows, 'status', [observation['status']]);
  for (const q of quantities([observation['valueQuantity']])) {
    rows.quantities.push({ param: 'value-quantity', ...q });
  }
  // Composites: each element's value under its own code's keys (the combo- ones read these).
  const composite = (param: string, element: Json): void => {
    for (const q of quantities([element['valueQuantity']])) {
      for (const token of tokens(element['code'])) {
        for (const key of compositeKeys(param, token)) rows.quantities.push({ param: key, ...q });
      }
    }
  };
  composite('code-value-quantity', observation);
  for (const component of components) composite('component-code-value-quantity', component);
  return dedupe(rows);
}
