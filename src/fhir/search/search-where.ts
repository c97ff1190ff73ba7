import { Injectable } from '@nestjs/common';
import { PatientCompartment } from '../../access/patient-compartment.js';
import {
  CONFIDENTIALITY,
  MEMBER_LISTS,
  RESTRICTING_CODES,
  ResourceAccess,
} from '../../access/resource-access.js';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { mayUseFhir } from '../../auth/permissions.js';
import { isPatientConfined } from '../../auth/smart-scopes.js';
import { AppError } from '../../common/errors/app-error.js';
import { queryRecord } from '../../common/http/query-record.js';
import { SearchConditions, type Subject } from './search-conditions.js';
import { SECURITY_CONTEXT_PARAM } from './index-rows.js';
import { patientBinariesSql } from './patient-binaries.js';
import { SearchDefinitions } from './search-definitions.js';
import { SearchIncludes } from './search-includes.js';
import { MAX_SUBQUERIES, parseSearchRequest, type SearchRequest } from './search-request.js';
import { SqlParams } from './sql-params.js';

/**
 * A search's criteria as the SQL condition on its resources (`r`), with the caller's access
 * rules in it: the types it reaches, the patient compartment, restricted records.
 */
@Injectable()
export class SearchWhere {
  constructor(
    private readonly searchDefinitions: SearchDefinitions,
    private readonly conditions: SearchConditions,
    private readonly access: ResourceAccess,
    private readonly compartment: PatientCompartment,
    private readonly includes: SearchIncludes,
  ) {}

  criteriaWhere(
    user: AuthenticatedUser,
    type: string,
    criteria: string,
    params: SqlParams,
  ): string {
    if (!mayUseFhir(user, type, 'search')) {
      throw AppError.forbidden(`Access denied: you may not search ${type} resources`);
    }
    const request = parseSearchRequest(queryRecord(criteria));
    // `subject:identifier=…|MRN` names a patient by identifier as surely as `identifier` does.
    const phi = request.criteria
      .flatMap(({ code, modifier, chain, has }) => [
        this.searchDefinitions.isPhiSearch(type, code) && code,
        chain && this.searchDefinitions.isPhiSearch(chain.targetType, chain.code) && chain.code,
        has && this.searchDefinitions.isPhiSearch(has.type, has.code) && has.code,
        ...[modifier, chain?.modifier, has?.modifier].map((m) => m && `:${m}`),
      ])
      .find(
        (code): code is string =>
          typeof code === 'string' && (code === ':identifier' || !code.startsWith(':')),
      );
    if (phi !== undefined) {
      // Kept with the Subscription or the export job in plaintext, a name or MRN would sit
      // outside the encrypted record.
      throw AppError.invalid(
        `Stored criteria may not search direct identifiers (${phi}): name the resource by id instead, such as subject=Patient/123`,
      );
    }
    if (request.include.length > 0 || request.revinclude.length > 0 || request.sort.length > 0) {
      throw AppError.invalid(
        'Stored criteria filter resources: _include, _revinclude and _sort have no place in them',
        ['Subscription.criteria'],
      );
    }
    return this.where(user, type, request, params);
  }

  where(
    user: AuthenticatedUser,
    type: string,
    request: SearchRequest,
    params: SqlParams,
    options: { withRestricted?: boolean; compartment?: string; typeSql?: string } = {},
  ): string {
    // Restricted records never appear in search results: they open one at a time, by
    // break-glass. A patient-scoped token sees only its patient's compartment (types outside it
    // are open). What a chain or _has reaches must meet both too.
    const visible = (on: Subject, p: SqlParams): string => {
      const conditions = options.withRestricted ? [] : [notRestricted(on, p)];
      if (this.access.listsNone(user, on.type)) conditions.push('FALSE');
      if (
        isPatientConfined(user.scopes, user.patient, on.type, 'search') &&
        this.compartment.hasCompartment(on.type)
      ) {
        conditions.push(this.inCompartment(user.patient!, on, p, MEMBER_LISTS.has(on.type)));
      }
      if (on.type === 'Binary' && this.access.confinesTo(user, on.type, 'search')) {
        conditions.push(this.binaryInCompartment(user.patient!, on, p));
      }
      return conditions.length > 0 ? conditions.join(' AND ') : 'TRUE';
    };
    const subject: Subject = { type, typeSql: 'r.resource_type', idSql: 'r.id', row: 'r', visible };
    this.assertMayReach(user, type, request);
    const parts = [`r.resource_type = ${options.typeSql ?? params.add(type)}`, 'NOT r.deleted'];
    for (const criterion of request.criteria) {
      parts.push(this.conditions.condition(subject, criterion, params));
    }
    parts.push(visible(subject, params));
    if (options.compartment !== undefined) {
      if (!this.compartment.hasCompartment(type)) {
        throw AppError.invalid(
          `${type} resources are not in the Patient compartment: search /${type} instead`,
        );
      }
      parts.push(this.inCompartment(options.compartment, subject, params));
    }
    // A chain through a reference to any resource (`List?item.identifier`) searches each of
    // the ~140 types that have the parameter, and each `ne` value is two lookups: MAX_CRITERIA
    // does not see them. 20 such chains were 6,000 subqueries, 1.8 s of planning on an empty
    // database; one is 300.
    if (params.subqueries > MAX_SUBQUERIES) {
      throw AppError.of(
        400,
        'too-costly',
        `A search takes at most ${MAX_SUBQUERIES} index lookups (a criterion, each type a chain reaches, each ne value); this one needs ${params.subqueries}: name the type of a chain (item:Patient.identifier) or give fewer values`,
      );
    }
    return parts.join(' AND ');
  }

  /**
   * The resource is in this patient's compartment: it is the patient, or refers to them by one
   * of the parameters the Patient CompartmentDefinition names for its type. `sole`: and to no
   * other patient by them (a Group a patient-scoped token may see, see MEMBER_LISTS).
   */
  private inCompartment(patientId: string, on: Subject, params: SqlParams, sole = false): string {
    const patient = params.add(patientId);
    const links = this.compartment.paramsOf(on.type);
    if (links.length === 0) return on.type === 'Patient' ? `${on.idSql} = ${patient}` : 'FALSE';
    const linked = params.add(links);
    const byLink = (target: string) => {
      const p = params.alias('p');
      return `EXISTS (SELECT 1 FROM search_reference ${p} WHERE ${p}.resource_type = ${on.typeSql} AND ${p}.resource_id = ${on.idSql} AND ${p}.param = ANY(${linked}::text[]) AND ${p}.target_type = 'Patient' AND ${p}.target_id ${target})`;
    };
    const byReference = sole
      ? `(${byLink(`= ${patient}`)} AND NOT ${byLink(`<> ${patient}`)})`
      : byLink(`= ${patient}`);
    return on.type === 'Patient' ? `(${on.idSql} = ${patient} OR ${byReference})` : byReference;
  }

  /**
   * The Binary may be the patient's (see CompartmentScope.binaries), by the Binaries the
   * patient's index rows lead to (patientBinariesSql), not by a test of every Binary. What it
   * leaves in, the check of each row read decides; until 2026-12-07 that check saw every Binary.
   */
  private binaryInCompartment(patientId: string, on: Subject, params: SqlParams): string {
    const { contextLinks } = this.access.binaryContexts();
    const binaries = patientBinariesSql({
      patient: params.add(patientId),
      contextParam: params.add(SECURITY_CONTEXT_PARAM),
      linkTypes: params.add(contextLinks.map((link) => link.type)),
      linkParams: params.add(contextLinks.map((link) => link.param)),
    });
    return `(${on.typeSql}, ${on.idSql}) IN (${binaries})`;
  }

  /**
   * The types a search reaches besides its own must be ones the caller may search (`_has`,
   * chains) or read (`_include`, `_revinclude` that name them): else a role that may not read
   * Observations could learn from `Patient?_has:Observation:subject:code=…` who had a test, or
   * read them through `Patient?_revinclude=Observation:subject`. A `_revinclude` lists what
   * refers to the matches, as a search by reference would: it needs its type's search right
   * besides read (a `user/Observation.r` token listed Observations by it until 2026-12-07).
   */
  private assertMayReach(user: AuthenticatedUser, type: string, request: SearchRequest): void {
    const refuse = (what: string, other: string, interaction: 'search' | 'read') => {
      if (!mayUseFhir(user, other, interaction)) {
        throw AppError.forbidden(
          `Access denied: ${what} reaches ${other} resources, which you may not ${interaction}`,
        );
      }
    };
    for (const criterion of request.criteria) {
      if (criterion.has) refuse(`_has:${criterion.has.type}`, criterion.has.type, 'search');
      if (criterion.chain) {
        const param = this.conditions.param(type, criterion.code);
        for (const target of this.conditions.chainTargets(param, criterion.chain)) {
          refuse(`${criterion.code}.${criterion.chain.code}`, target, 'search');
        }
      }
    }
    for (const spec of request.include) {
      if (spec.sourceType !== '*' && spec.param !== '*') this.includes.assertReferenceParam(spec);
      if (spec.targetType) refuse('_include', spec.targetType, 'read');
    }
    for (const spec of request.revinclude) {
      refuse('_revinclude', spec.sourceType, 'read');
      refuse('_revinclude', spec.sourceType, 'search');
    }
  }

  private isKnown(type: string, code: string, hasType?: string): boolean {
    return (code === '_has' && hasType !== undefined) || this.conditions.isSearchable(type, code);
  }
}

/** The restricting codes as SQL literals: constants, the same in every statement. */
const RESTRICTING_SQL = RESTRICTING_CODES.map((code) => `'${code}'`).join(', ');

/** Not labelled restricted (meta.security R or V, see RESTRICTING_CODES), by its index row. */
function notRestricted(on: Subject, params: SqlParams): string {
  const x = params.alias('x');
  return `NOT EXISTS (SELECT 1 FROM search_token ${x} WHERE ${x}.resource_type = ${on.typeSql} AND ${x}.resource_id = ${on.idSql} AND ${x}.param = '_security' AND ${x}.system = ${params.add(CONFIDENTIALITY)} AND ${x}.code IN (${RESTRICTING_SQL}))`;
}
