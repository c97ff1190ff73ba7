import { Injectable } from '@nestjs/common';
import { BlindIndexer } from '../../crypto/blind-index.js';
import { AppError } from '../../common/errors/app-error.js';
import { FhirDefinitions } from '../fhir-definitions.js';
import { startsWithTerm, unitPrefixTerm } from './blind-terms.js';
import { sqlTimestamp } from './date-range.js';
import { blindField } from './index-extractor.js';
import { searchForms } from './normalize.js';
import { SearchIndexStatus } from './search-index-status.js';
import { instantCondition, splitPrefix, unsupported } from './prefixes.js';
import { compositeSearchKey } from './composite-keys.js';
import { SearchDefinitions, type CompositeParam, type SearchParam } from './search-definitions.js';
import type { Criterion } from './search-request.js';
import { blindProbes } from './blind-probes.js';
import { unescapeSearch } from './search-escapes.js';
import { likeEscape, type SqlParams } from './sql-params.js';
import { phiTerms, tokenTerm } from './phi-terms.js';
import {
  dateValue,
  missingCondition,
  noModifier,
  TABLE,
  valueCondition,
} from './value-conditions.js';

/**
 * The most codes the value sets of a search's `:in` and `:not-in` criteria expand to together,
 * each counted once a criterion, and for each type a chain reaches.
 */
export const MAX_EXPANDED = 10_000;

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
    private readonly status: SearchIndexStatus,
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
      if (criterion.modifier !== 'not') noModifier(criterion.modifier, '_id');
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
      const matches = criterion.values.flatMap((value) =>
        searchForms(unescapeSearch(value), this.status.legacyForms, this.status.unmarkedForms).map(
          (form) => `${alias}.value LIKE ${params.add(`${likeEscape(form)}%`)}`,
        ),
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
      valueCondition(
        alias,
        param.type,
        criterion.modifier,
        value,
        params,
        this.status.legacyForms,
        this.status.unmarkedForms,
      ),
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
    const expanded = criterion.values.flatMap((value) => {
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
    // Each code once: the same URL 100 times was 136,000 codes to bind and match, and 20 such
    // criteria 12 s; and a bound for the search however many value sets it names.
    const codings = [...new Set(expanded)];
    params.expandedCodes += codings.length;
    if (params.expandedCodes > MAX_EXPANDED) {
      throw AppError.of(
        400,
        'too-costly',
        `The :in and :not-in criteria of a search expand to at most ${MAX_EXPANDED} codes together (a chain's for each type it reaches); this one has ${params.expandedCodes}: name fewer value sets, or the type of a chain`,
      );
    }
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
    noModifier(criterion.modifier, 'composite parameters');
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
      const condition = valueCondition(
        alias,
        composite.second.type,
        undefined,
        value,
        params,
        this.status.legacyForms,
        this.status.unmarkedForms,
      );
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
      const forms = searchForms(
        unescapeSearch(value),
        this.status.legacyForms,
        this.status.unmarkedForms,
      );
      if (forms[0]!.length === 0) {
        throw AppError.invalid(`${composite.code} needs a value with letters or digits`);
      }
      return forms.flatMap((normalized) => {
        const { term } = startsWithTerm(normalized);
        const older = this.status.unitPrefixes ? unitPrefixTerm(normalized) : undefined;
        return (composite.unionOf ?? [composite.code]).flatMap((code) => {
          const param = `${code}${key.slice(composite.code.length)}`;
          return (older === undefined ? [term] : [term, older]).map((each) => {
            const hash = this.blind.compute(blindField(subject.type, code), each);
            return `(${alias}.param = ${params.add(param)} AND ${alias}.hash = ${params.add(hash)})`;
          });
        });
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

  /** PHI parameters: equality of keyed hashes of the criterion's terms (phiTerms), nothing else. */
  private phi(
    subject: Subject,
    param: SearchParam,
    criterion: Criterion,
    params: SqlParams,
  ): string {
    const field = blindField(subject.type, param.code);
    const hash = (term: string): string => this.blind.compute(field, term);
    const { terms, excluded, negate } = phiTerms(
      param,
      criterion,
      params.warnings,
      this.status.legacyForms,
      this.status.unitPrefixes,
      this.status.unmarkedForms,
    );
    const hashes = terms.map(hash);
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
    for (const other of excluded.map(hash)) {
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
    noModifier(criterion.modifier, '_lastUpdated');
    const alias = subject.row ?? params.alias('u');
    const matches = criterion.values.map((raw) => {
      const { prefix, rest } = splitPrefix(raw);
      const range = dateValue(rest, prefix);
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
}
