import { Injectable } from '@nestjs/common';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { AppError } from '../../common/errors/app-error.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { isAbsoluteUrl, literalReference } from '../literal-reference.js';
import { dateCoverTerms, exactTerm, startsWithTerm, tokenTerms } from './blind-terms.js';
import {
  dateRange,
  datePrecision,
  END_INSTANT,
  FIRST_INSTANT,
  sqlTimestamp,
} from './date-range.js';
import { blindField } from './index-extractor.js';
import { normalizePhone, normalizeString } from './normalize.js';
import { PHI_PREFIX_MIN } from './phi-parameters.js';
import {
  instantCondition,
  rangeCondition,
  splitPrefix,
  unsupported,
  type Prefix,
} from './prefixes.js';
import { compositeSearchKey } from './composite-keys.js';
import {
  SearchDefinitions,
  type CompositeParam,
  type IndexedParamType,
  type SearchParam,
} from './search-definitions.js';
import type { Criterion } from './search-request.js';
import { blindProbes } from './blind-probes.js';
import { splitUnescaped, tokenParts, unescapeSearch } from './search-escapes.js';
import { likeEscape, type SqlParams } from './sql-params.js';

/** The blind term a PHI token value (`system|value`, `|value`, `value`) is searched by. */
function tokenTerm(code: string, raw: string): string {
  const parts = tokenParts(raw);
  const system = parts.system;
  let value = parts.code;
  if (value === '') {
    throw AppError.invalid(
      `${code} needs a value: identifiers are matched by keyed hashes of system and value`,
    );
  }
  if (code === 'phone' || system === 'phone') value = normalizePhone(value);
  const [byValue, bySystem] = tokenTerms(system, value);
  return system === null ? byValue! : bySystem!;
}

/** The resource a condition is about: SQL expressions for its type and id. */
export interface Subject {
  type: string;
  typeSql: string;
  idSql: string;
  /** The alias of the subject's own resource row, where the query reads it (`r`). */
  row?: string;
  /**
   * What a resource a chain or `_has` reaches must also meet to count, as the results do (not
   * restricted, in a patient-scoped token's compartment): else `Patient?_has:Encounter:…` tells
   * what a record the caller may not open holds.
   */
  visible?: (reached: Subject, params: SqlParams) => string;
}

const TABLE: Record<SearchParam['type'], string> = {
  token: 'search_token',
  string: 'search_string',
  date: 'search_date',
  reference: 'search_reference',
  number: 'search_number',
  quantity: 'search_quantity',
  uri: 'search_uri',
};

/**
 * Turns search criteria into SQL conditions over the index tables: an EXISTS per criterion,
 * values OR-ed inside it, every value a bound parameter. PHI parameters match keyed hashes only.
 */
@Injectable()
export class SearchConditions {
  constructor(
    private readonly definitions: SearchDefinitions,
    private readonly blind: BlindIndexer,
    private readonly fhir: FhirDefinitions,
  ) {}

  condition(subject: Subject, criterion: Criterion, params: SqlParams): string {
    if (criterion.has) {
      return this.has(subject, criterion, params);
    }
    if (
      (criterion.code === '_id' || criterion.code === '_lastUpdated') &&
      criterion.modifier === 'missing' &&
      !criterion.chain
    ) {
      // Every resource has an id and a lastUpdated: none is missing them.
      return missingCondition(criterion, () => 'TRUE');
    }
    if (criterion.code === '_id') {
      if (criterion.modifier !== 'not') this.noModifier(criterion.modifier, '_id');
      const match = `${subject.idSql} = ANY(${params.add(criterion.values)}::text[])`;
      return criterion.modifier === 'not' ? `NOT (${match})` : match;
    }
    if (criterion.code === '_lastUpdated') {
      return this.lastUpdated(subject, criterion, params);
    }
    const composite = this.definitions.composite(subject.type, criterion.code);
    if (composite && !criterion.chain) {
      return this.composite(subject, composite, criterion, params);
    }
    const param = this.param(subject.type, criterion.code);
    if (criterion.chain) {
      return this.chain(subject, param, criterion, params);
    }
    if (criterion.modifier === 'missing') {
      return missingCondition(criterion, () => {
        const coded = this.exists(subject, param, () => 'TRUE', params);
        if (param.type !== 'token' || param.phi) return coded;
        // A CodeableConcept with text alone has a value (`:text` finds it): until 2026-12-06
        // `code:missing=true` found it too.
        const alias = params.alias('x');
        const text = `EXISTS (SELECT 1 FROM search_string ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(`${param.code}:text`)})`;
        return `(${coded} OR ${text})`;
      });
    }
    if (param.type === 'reference' && criterion.modifier === 'identifier') {
      // `subject:identifier=system|value`: the logical references' identifiers, indexed as
      // blind hashes (IndexExtractor) and matched as an identifier search is.
      const plain: Criterion = { ...criterion };
      delete plain.modifier;
      const identifiers = { ...param, code: `${param.code}:identifier`, type: 'token' as const };
      return this.phi(subject, { ...identifiers, phi: true }, plain, params);
    }
    if (param.phi) {
      return this.phi(subject, param, criterion, params);
    }
    if (param.type === 'token' && criterion.modifier === 'text') {
      // Token :text matches the start of the display text, case- and accent-insensitively.
      const alias = params.alias('x');
      const matches = criterion.values.map(
        (value) =>
          `${alias}.value LIKE ${params.add(`${likeEscape(normalizeString(unescapeSearch(value)))}%`)}`,
      );
      return `EXISTS (SELECT 1 FROM search_string ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(`${param.code}:text`)} AND (${matches.join(' OR ')}))`;
    }
    if (
      param.type === 'token' &&
      (criterion.modifier === 'in' || criterion.modifier === 'not-in')
    ) {
      return this.inValueSet(subject, param, criterion, params);
    }
    const negate = criterion.modifier === 'not';
    const alias = params.alias('i');
    const matches = criterion.values.map((value) =>
      this.valueCondition(alias, param.type, criterion.modifier, value, params),
    );
    const inner = `EXISTS (SELECT 1 FROM ${TABLE[param.type]} ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(param.code)} AND (${matches.join(' OR ')}))`;
    return negate ? `NOT ${inner}` : inner;
  }

  /**
   * `code:in=<ValueSet url>`: a code (with its system) of the value set, expanded from the R4
   * definitions; `:not-in` none of them. Several URLs are OR-ed, as several values are.
   */
  private inValueSet(
    subject: Subject,
    param: SearchParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    const codings = criterion.values.flatMap((value) => {
      const url = value.split('|')[0]!;
      const expansion = this.fhir.expansion(url);
      if (!expansion) {
        throw unsupported(
          /^https?:\/\/[\w./-]{1,200}$/.test(url)
            ? `:${criterion.modifier} takes a value set of the R4 definitions that expands from them; ${url} is not one`
            : `:${criterion.modifier} takes the canonical URL of a value set of the R4 definitions`,
        );
      }
      return [...expansion.codings.keys()];
    });
    const alias = params.alias('v');
    const systems = params.add(codings.map((coding) => coding.slice(0, coding.lastIndexOf('|'))));
    const codes = params.add(codings.map((coding) => coding.slice(coding.lastIndexOf('|') + 1)));
    const inner = `EXISTS (SELECT 1 FROM search_token ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(param.code)} AND (${alias}.system, ${alias}.code) IN (SELECT * FROM unnest(${systems}::text[], ${codes}::text[])))`;
    return criterion.modifier === 'not-in' ? `NOT ${inner}` : inner;
  }

  /** Whether `type` can be searched by `code` (an indexed parameter, `_id` or `_lastUpdated`). */
  isSearchable(type: string, code: string): boolean {
    return (
      code === '_id' ||
      code === '_lastUpdated' ||
      this.definitions.param(type, code) !== undefined ||
      this.definitions.composite(type, code) !== undefined
    );
  }

  param(type: string, code: string): SearchParam {
    const param = this.definitions.param(type, code);
    if (!param && this.definitions.composite(type, code)) {
      throw AppError.invalid(
        `${code} is a composite search parameter of ${type}: it is searched by code and value (${code}=system|code$value), and cannot be chained, included or sorted on`,
      );
    }
    const unindexed = param ? undefined : this.definitions.unindexedType(type, code);
    if (unindexed) {
      throw AppError.of(
        400,
        'not-supported',
        `${code} is a ${unindexed} search parameter of ${type}, which CareVault does not support`,
      );
    }
    if (!param) {
      throw AppError.invalid(
        /^[A-Za-z0-9_-]{1,64}$/.test(code)
          ? `Unknown search parameter ${code} for ${type}`
          : `Unknown search parameter for ${type}`,
      );
    }
    return param;
  }

  /**
   * `code-value-quantity=http://loinc.org|8480-6$gt140`: a row of the value's table under the
   * key of the code (see `compositeKeys`), compared as a plain value of that type.
   */
  private composite(
    subject: Subject,
    composite: CompositeParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    this.noModifier(criterion.modifier, 'composite parameters');
    if (composite.phi) {
      return this.phiComposite(subject, composite, criterion, params);
    }
    const alias = params.alias('k');
    const matches = criterion.values.map((raw) => {
      const { key, value } = compositeSearchKey(composite.code, raw);
      // A union (combo-…) is searched on the rows of the composites it is made of.
      const keys = (composite.unionOf ?? [composite.code]).map(
        (code) => `${code}${key.slice(composite.code.length)}`,
      );
      const condition = this.valueCondition(alias, composite.second.type, undefined, value, params);
      const param =
        keys.length === 1 ? `= ${params.add(keys[0])}` : `= ANY(${params.add(keys)}::text[])`;
      return `(${alias}.param ${param} AND ${condition})`;
    });
    return `EXISTS (SELECT 1 FROM ${TABLE[composite.second.type]} ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND (${matches.join(' OR ')}))`;
  }

  /**
   * `code-value-string=http://loinc.org|8480-6$positive`: the hash of the value's starts-with
   * term under the key of the code, as a PHI string parameter is searched.
   */
  private phiComposite(
    subject: Subject,
    composite: CompositeParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    const alias = params.alias('k');
    const matches = criterion.values.flatMap((raw) => {
      const { key, value } = compositeSearchKey(composite.code, raw);
      const normalized = normalizeString(unescapeSearch(value));
      if (normalized.length === 0) {
        throw AppError.invalid(`${composite.code} needs a value with letters or digits`);
      }
      const { term } = startsWithTerm(normalized);
      return (composite.unionOf ?? [composite.code]).map((code) => {
        const hash = this.blind.compute(blindField(subject.type, code), term);
        const param = `${code}${key.slice(composite.code.length)}`;
        return `(${alias}.param = ${params.add(param)} AND ${alias}.hash = ${params.add(hash)})`;
      });
    });
    return `EXISTS (SELECT 1 FROM search_blind ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND (${matches.join(' OR ')}))`;
  }

  private exists(
    subject: Subject,
    param: SearchParam,
    where: (alias: string) => string,
    params: SqlParams,
  ): string {
    const table = param.phi ? 'search_blind' : TABLE[param.type];
    const alias = params.alias('m');
    return `EXISTS (SELECT 1 FROM ${table} ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(param.code)} AND ${where(alias)})`;
  }

  private valueCondition(
    alias: string,
    type: IndexedParamType,
    modifier: string | undefined,
    raw: string,
    params: SqlParams,
  ): string {
    switch (type) {
      case 'token': {
        if (modifier && modifier !== 'not') {
          throw unsupported(`The :${modifier} modifier is not supported on token parameters`);
        }
        const { system, code } = tokenParts(raw);
        if (system === null) {
          return `${alias}.code = ${params.add(code)}`;
        }
        if (code === '') {
          return `${alias}.system = ${params.add(system)}`;
        }
        return system === ''
          ? `(${alias}.system IS NULL AND ${alias}.code = ${params.add(code)})`
          : `(${alias}.system = ${params.add(system)} AND ${alias}.code = ${params.add(code)})`;
      }
      case 'string': {
        const text = unescapeSearch(raw);
        const value = normalizeString(text);
        if (modifier === 'exact') {
          // Found through the normalized value's index, then compared as written.
          return `(${alias}.value = ${params.add(value)} AND ${alias}.exact = ${params.add(text)})`;
        }
        if (modifier === 'contains') {
          return `${alias}.value LIKE ${params.add(`%${likeEscape(value)}%`)}`;
        }
        if (modifier) {
          throw unsupported(`The :${modifier} modifier is not supported on string parameters`);
        }
        return `${alias}.value LIKE ${params.add(`${likeEscape(value)}%`)}`;
      }
      case 'date': {
        this.noModifier(modifier, 'date');
        const { prefix, rest } = splitPrefix(raw);
        const range = this.dateValue(rest, prefix);
        return rangeCondition(
          prefix,
          `${alias}.low`,
          `${alias}.high`,
          () => `${params.add(sqlTimestamp(range.low))}::timestamptz`,
          () => `${params.add(sqlTimestamp(range.high))}::timestamptz`,
        );
      }
      case 'reference': {
        if (modifier && !/^[A-Z]/.test(modifier)) {
          throw unsupported(`The :${modifier} modifier is not supported on reference parameters`);
        }
        const target = parseReference(raw, modifier);
        return target.type
          ? `(${alias}.target_type = ${params.add(target.type)} AND ${alias}.target_id = ${params.add(target.id)})`
          : `${alias}.target_id = ${params.add(target.id)}`;
      }
      case 'number': {
        this.noModifier(modifier, 'number');
        const { prefix, rest } = splitPrefix(raw);
        return numberCondition(prefix, `${alias}.value`, rest, params);
      }
      case 'quantity': {
        this.noModifier(modifier, 'quantity');
        const quantity = splitUnescaped(raw, '|');
        if (quantity.length > 3) {
          // A fourth part is no quantity: `1|2|3|4` found nothing, with a 200, until 2026-12-06.
          throw AppError.invalid(
            'A quantity search value is number|system|code, such as 5.4|http://unitsofmeasure.org|mmol/L',
          );
        }
        const [number = '', system, code] = quantity;
        const { prefix, rest } = splitPrefix(number);
        // A quantity with a comparator (`<5.4`) states a bound, not its value: no value
        // comparison can say it matches, so none finds it (`:missing` still does).
        const parts = [
          numberCondition(prefix, `${alias}.value`, rest, params),
          `${alias}.comparator IS NULL`,
        ];
        if (system) parts.push(`${alias}.system = ${params.add(system)}`);
        if (code && system) parts.push(`${alias}.code = ${params.add(code)}`);
        // R4: with no system, "the unit – either the code or the stated human unit (unit)".
        if (code && !system) {
          const unit = params.add(code);
          parts.push(`(${alias}.code = ${unit} OR ${alias}.unit = ${unit})`);
        }
        return `(${parts.join(' AND ')})`;
      }
      case 'uri': {
        const uri = unescapeSearch(raw);
        if (modifier === 'below') {
          return `${alias}.value LIKE ${params.add(`${likeEscape(uri)}%`)}`;
        }
        this.noModifier(modifier, 'uri');
        return `${alias}.value = ${params.add(uri)}`;
      }
    }
  }

  /**
   * Of a conditional lookup's criteria, the first plain PHI token one (`identifier=system|value`),
   * whose index rows name every resource the lookup can match (SearchRepository.ids); none when
   * there is no such criterion. Throws nothing: the criteria are checked where they are built.
   */
  candidateCriterion(type: string, criteria: readonly Criterion[]): Criterion | undefined {
    return criteria.find((criterion) => {
      if (criterion.has || criterion.chain || criterion.modifier) return false;
      if (this.definitions.composite(type, criterion.code)) return false;
      const param = this.definitions.param(type, criterion.code);
      return param?.phi === true && param.type === 'token';
    });
  }

  /**
   * The resources a candidate criterion (candidateCriterion) names, as blindProbes of its
   * values. The criterion stays in the WHERE clause, which decides what matches.
   */
  candidates(type: string, criterion: Criterion, params: SqlParams): string {
    const field = blindField(type, criterion.code);
    const hashes = criterion.values.map((raw) =>
      this.blind.compute(field, tokenTerm(criterion.code, raw)),
    );
    return blindProbes(type, criterion.code, hashes, params);
  }

  /** PHI parameters: equality of keyed hashes, nothing else. */
  private phi(
    subject: Subject,
    param: SearchParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    const field = blindField(subject.type, param.code);
    const hash = (term: string): string => this.blind.compute(field, term);
    const { modifier } = criterion;
    let negate = false;
    const hashes: string[] = [];
    // `ne` is one value's prefix, not the criterion's: `birthdate=ne1980,ge2000` is either.
    const excluded: string[] = [];
    for (const raw of criterion.values) {
      switch (param.type) {
        case 'string': {
          if (modifier === 'contains') {
            throw AppError.invalid(
              `:contains is not available on ${param.code}: names, identifiers, addresses and free text are stored encrypted and indexed only as keyed hashes of whole values and prefixes`,
            );
          }
          if (modifier && modifier !== 'exact') {
            throw unsupported(`The :${modifier} modifier is not supported on ${param.code}`);
          }
          const normalized = normalizeString(unescapeSearch(raw));
          if (normalized.length === 0) {
            throw AppError.invalid(`${param.code} needs a value with letters or digits`);
          }
          if (modifier === 'exact') {
            hashes.push(hash(exactTerm(normalized)));
            break;
          }
          // A two-letter family name (Ng, Li, Wu) must be findable: such a value matches whole
          // name parts, and the searchset says so, as no shorter prefix is indexed.
          const { term, wholePart } = startsWithTerm(normalized);
          if (wholePart) {
            params.warnings.add(
              `${param.code} values shorter than ${PHI_PREFIX_MIN} characters match whole name or address parts only (as :exact), not the parts that start with them: prefixes of PHI are indexed from ${PHI_PREFIX_MIN} characters`,
            );
          }
          hashes.push(hash(term));
          break;
        }
        case 'token': {
          if (modifier === 'not') negate = true;
          else if (modifier)
            throw unsupported(`The :${modifier} modifier is not supported on ${param.code}`);
          hashes.push(hash(tokenTerm(param.code, raw)));
          break;
        }
        case 'date': {
          this.noModifier(modifier, param.code);
          const { prefix, rest } = splitPrefix(raw);
          const range = dateRange(rest);
          if (!range) {
            throw AppError.invalid(
              `${param.code} must be a date such as 1980, 1980-04 or 1980-04-12 (years 0001 to 9999)`,
            );
          }
          const precision = datePrecision(rest);
          if (precision === 't') {
            // The index holds the (UTC) day of a value at most: a time cannot be compared, and
            // was dropped, so that `sa` and `eb` of one instant found the same people.
            throw unsupported(
              `${param.code} is searched by year, month or day (1980, 1980-04, 1980-04-12), not by time: it is indexed as keyed hashes of days, months and years only`,
            );
          }
          if (prefix === 'eq' || prefix === 'ne') {
            const iso = range.low.toISOString();
            const term =
              precision === 'y'
                ? `y:${iso.slice(0, 4)}`
                : precision === 'm'
                  ? `m:${iso.slice(0, 7)}`
                  : `d:${iso.slice(0, 10)}`;
            (prefix === 'ne' ? excluded : hashes).push(hash(term));
          } else if (prefix === 'ap') {
            throw unsupported(`ap is not supported on ${param.code}`);
          } else {
            const bounds: Record<string, [Date | null, Date | null]> = {
              gt: [range.high, null],
              sa: [range.high, null],
              ge: [range.low, null],
              lt: [null, range.low],
              eb: [null, range.low],
              le: [null, range.high],
            };
            const [from, to] = bounds[prefix]!;
            // sa and eb: the dates wholly after (before) the value, not those that only reach
            // past it (R4: the range above the search value contains the target's range).
            const within = prefix === 'sa' || prefix === 'eb';
            hashes.push(...dateCoverTerms(from, to, within).map(hash));
          }
          break;
        }
        case 'reference':
        case 'number':
        case 'quantity':
        case 'uri':
          throw unsupported(`${param.code} cannot be searched`);
      }
    }
    const either: string[] = [];
    if (hashes.length > 0) {
      // One hash is an equality, so the index hands matches over in resource id order (see the
      // covering-search-indexes migration); a list (OR, date ranges) is an ANY.
      const match =
        hashes.length === 1 ? `= ${params.add(hashes[0])}` : `= ANY(${params.add(hashes)}::text[])`;
      const exists = this.exists(subject, param, (alias) => `${alias}.hash ${match}`, params);
      either.push(negate ? `NOT ${exists}` : exists);
    }
    // `ne`: a value other than this one. A resource without any has no value to differ, and
    // was found (`birthdate=ne1980-04-12` listed every patient of unknown birth date).
    for (const other of excluded) {
      const valued = this.exists(subject, param, () => 'TRUE', params);
      const same = this.exists(
        subject,
        param,
        (alias) => `${alias}.hash = ${params.add(other)}`,
        params,
      );
      either.push(`(${valued} AND NOT ${same})`);
    }
    return either.length === 1 ? either[0]! : `(${either.join(' OR ')})`;
  }

  private chain(
    subject: Subject,
    param: SearchParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    const chain = criterion.chain!;
    if (param.type !== 'reference') {
      throw AppError.invalid(`${param.code} is not a reference parameter: it cannot be chained`);
    }
    const targetTypes = this.chainTargets(param, chain);
    if (targetTypes.length === 0) {
      throw AppError.invalid(
        `${param.code} points to no type that has a search parameter ${chain.code}`,
      );
    }
    const alias = params.alias('c');
    const byType = targetTypes.map((targetType) => {
      const reached: Subject = {
        type: targetType,
        typeSql: `${alias}.target_type`,
        idSql: `${alias}.target_id`,
      };
      const inner = this.condition(
        reached,
        {
          code: chain.code,
          ...(chain.modifier ? { modifier: chain.modifier } : {}),
          values: criterion.values,
        },
        params,
      );
      const visible = subject.visible ? ` AND ${subject.visible(reached, params)}` : '';
      return `${alias}.target_type = ${params.add(targetType)} AND ${inner}${visible}`;
    });
    const targets = byType.length === 1 ? byType[0] : `((${byType.join(') OR (')}))`;
    return `EXISTS (SELECT 1 FROM search_reference ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.resource_id = ${subject.idSql} AND ${alias}.param = ${params.add(param.code)} AND ${targets})`;
  }

  /**
   * The types a chain searches. Unnamed, any type the reference may point to that has the
   * chained parameter (as HAPI FHIR reads it): subject.family means a Patient's, subject.name a
   * Patient's, a Group's or a Location's.
   */
  chainTargets(param: SearchParam, chain: NonNullable<Criterion['chain']>): string[] {
    return chain.targetType
      ? [chain.targetType]
      : param.targets.filter((type) => this.isSearchable(type, chain.code));
  }

  private has(subject: Subject, criterion: Criterion, params: SqlParams): string {
    const has = criterion.has!;
    const reference = this.param(has.type, has.reference);
    if (reference.type !== 'reference') {
      throw AppError.invalid(`_has needs a reference parameter of ${has.type}`);
    }
    const alias = params.alias('h');
    const reached: Subject = {
      type: has.type,
      typeSql: `${alias}.resource_type`,
      idSql: `${alias}.resource_id`,
    };
    const inner = this.condition(
      reached,
      {
        code: has.code,
        ...(has.modifier ? { modifier: has.modifier } : {}),
        values: criterion.values,
      },
      params,
    );
    const visible = subject.visible ? ` AND ${subject.visible(reached, params)}` : '';
    return `EXISTS (SELECT 1 FROM search_reference ${alias} WHERE ${alias}.resource_type = ${params.add(has.type)} AND ${alias}.param = ${params.add(has.reference)} AND ${alias}.target_type = ${subject.typeSql} AND ${alias}.target_id = ${subject.idSql} AND ${inner}${visible})`;
  }

  private lastUpdated(subject: Subject, criterion: Criterion, params: SqlParams): string {
    this.noModifier(criterion.modifier, '_lastUpdated');
    const alias = subject.row ?? params.alias('u');
    const matches = criterion.values.map((raw) => {
      const { prefix, rest } = splitPrefix(raw);
      const range = this.dateValue(rest, prefix);
      return instantCondition(
        prefix,
        `${alias}.last_updated`,
        () => `${params.add(sqlTimestamp(range.low))}::timestamptz`,
        () => `${params.add(sqlTimestamp(range.high))}::timestamptz`,
      );
    });
    // On the subject's own row the condition can use its last_updated index; a chain's or
    // _has's subject is an index row, whose resource is looked up.
    return subject.row
      ? `(${matches.join(' OR ')})`
      : `EXISTS (SELECT 1 FROM resource ${alias} WHERE ${alias}.resource_type = ${subject.typeSql} AND ${alias}.id = ${subject.idSql} AND (${matches.join(' OR ')}))`;
  }

  private dateValue(raw: string, prefix: Prefix): { low: Date; high: Date } {
    const range = dateRange(raw);
    if (!range) {
      throw AppError.invalid(
        'Dates in searches look like 2024, 2024-05, 2024-05-17 or 2024-05-17T10:00:00Z, in the years 0001 to 9999 (UTC)',
      );
    }
    if (prefix !== 'ap') {
      return range;
    }
    // ap: within 10% of the distance from now, at least a day.
    const margin = Math.max(86_400_000, Math.abs(Date.now() - range.low.getTime()) * 0.1);
    // Kept within the years PostgreSQL reads (dateRange), which no stored date leaves either.
    return {
      low: new Date(Math.max(range.low.getTime() - margin, FIRST_INSTANT.getTime())),
      high: new Date(Math.min(range.high.getTime() + margin, END_INSTANT.getTime())),
    };
  }

  private noModifier(modifier: string | undefined, what: string): void {
    if (modifier) {
      throw unsupported(`The :${modifier} modifier is not supported on ${what}`);
    }
  }
}

/** `:missing=true` or `:missing=false`, given the SQL that holds when the parameter has a value. */
function missingCondition(criterion: Criterion, exists: () => string): string {
  if (criterion.values.every((value) => value === 'true')) return `NOT ${exists()}`;
  if (criterion.values.every((value) => value === 'false')) return exists();
  throw AppError.invalid(':missing takes true or false');
}

/**
 * `Patient/123`, `123` (any type, or the :Type modifier's) or an absolute URL ending so: this
 * server's as its id, another server's (PUBLIC_URL says which is which) as the whole URL, as the
 * index keeps it.
 */
function parseReference(
  raw: string,
  typeModifier: string | undefined,
): { type?: string; id: string } {
  const literal = literalReference(raw);
  if (literal) {
    return { type: literal.type, id: literal.id };
  }
  if (isAbsoluteUrl(raw)) {
    // Read by the looser pattern below, another server's URL would find this server's id.
    throw AppError.invalid(
      "A reference search value that is a URL ends in Type/id, and another server's is at most 1,024 bytes",
    );
  }
  const match = /^(?:.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})$/.exec(raw);
  if (match) {
    return { type: match[1]!, id: match[2]! };
  }
  if (!/^[A-Za-z0-9.-]{1,64}$/.test(raw)) {
    throw AppError.invalid(
      'A reference search value is Type/id, an id, or a URL ending in Type/id',
    );
  }
  return { ...(typeModifier ? { type: typeModifier } : {}), id: raw };
}

/**
 * A number comparison. Equality honours the value's precision (100 means [99.5, 100.5), 100.0
 * means [99.95, 100.05), 1e2 means [50, 150) and 1.00e2 [99.5, 100.5): as many significant
 * figures as the digits written); the other prefixes compare with the value itself; ap is
 * within 10%.
 */
function numberCondition(prefix: Prefix, column: string, raw: string, params: SqlParams): string {
  // 100 digits either side and a 3-digit exponent: PostgreSQL's numeric refuses more than 16,383
  // decimals (a 500).
  const match = /^[+-]?\d{1,100}(?:\.(\d{1,100}))?(?:[eE]([+-]?\d{1,3}))?$/.exec(raw);
  if (!match) {
    throw AppError.invalid(
      'A number search value looks like 5, 5.4 or 5.4e2 (after an optional prefix), 100 digits at most on either side of the point and 3 in the exponent',
    );
  }
  // The power of ten of the last digit written, negated: 2 for 1.25, -1 for 1e1, 1 for 1.00e1.
  const decimals = (match[1]?.length ?? 0) - Number(match[2] ?? 0);
  // Half a unit of the last digit, as decimal text: PostgreSQL's numeric adds it exactly, where
  // floating point made 1.1's range end at 1.1500000000000001 (and found 1.15).
  const half = decimals >= 0 ? `0.${'0'.repeat(decimals)}5` : `5${'0'.repeat(-decimals - 1)}`;
  // Added only when used: PostgreSQL cannot type an unused parameter.
  const v = (): string => `${params.add(raw)}::numeric`;
  const precise = (): string => {
    const value = v();
    const margin = `${params.add(half)}::numeric`;
    return `(${column} >= ${value} - ${margin} AND ${column} < ${value} + ${margin})`;
  };
  switch (prefix) {
    case 'eq':
      return precise();
    case 'ne':
      return `NOT ${precise()}`;
    case 'gt':
    case 'sa':
      return `${column} > ${v()}`;
    case 'lt':
    case 'eb':
      return `${column} < ${v()}`;
    case 'ge':
      return `${column} >= ${v()}`;
    case 'le':
      return `${column} <= ${v()}`;
    case 'ap': {
      // Within 10% of the value, either side, both ends included.
      const value = v();
      return `(${column} >= ${value} - abs(${value}) * 0.1 AND ${column} <= ${value} + abs(${value}) * 0.1)`;
    }
  }
}
