import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { isUuid } from '../common/ids.js';
import { isValidId } from '../fhir/fhir-types.js';
import type { AuditScope } from './audit-context.js';
import { namedResource, routeOf } from './http-audit.js';
import { AuditRepository } from './audit.repository.js';

/**
 * What the audit row of a request may name that nothing checked: the request stopped (at a
 * guard, at its body) before the service looked up what it names, or its handler answered
 * without opening it (a compartment search).
 */
@Injectable()
export class RefusedRequests {
  constructor(private readonly repository: AuditRepository) {}

  /**
   * The patient a refused request asked for, where only its body names it: a break-glass request
   * refused before it opened anything (no recent MFA, no right to it, a body that fails
   * validation) is still an attempt on that patient's records, which their accounting of
   * disclosures must list. Named only when a Patient of that id was ever stored: the body may
   * hold an MRN typed in place of the id, which the row would keep in plaintext.
   */
  async patientsOf(request: FastifyRequest, status: number): Promise<string[]> {
    if (status < 400 || status >= 500 || request.method !== 'POST') return [];
    if (routeOf(request) !== '/auth/break-glass') return [];
    const patient = (request.body as { patient?: unknown } | undefined)?.patient;
    if (typeof patient !== 'string' || !isValidId(patient)) return [];
    try {
      return (await this.repository.isPatientId(patient)) ? [patient] : [];
    } catch {
      // The database cannot answer: the row's write will say so, and fail closed.
      return [];
    }
  }

  /**
   * Whether the resource a refused request's URL names (`/fhir/Patient/MRN-4417`) was never
   * stored, so that its row leaves the id out as it does when the service found nothing there
   * (AuditScope.unstored): refused by a guard (401, 403) or a body that does not parse, the
   * request kept an MRN typed in an id's place until 2026-12-06. A flood refused for its rate
   * (429) is not looked up, one query per refusal: its rows name no unchecked id. Nor is one
   * when the database cannot answer, unless `failClosed` (a request that succeeded: its row
   * must not lose a patient it disclosed to a statement that timed out, so the lookup's error
   * fails it, as a failed audit write does).
   */
  async neverStored(
    request: FastifyRequest,
    status: number,
    scope?: AuditScope,
    failClosed = false,
  ): Promise<boolean> {
    const named = namedResource(request, routeOf(request));
    if (!named || scope?.entities.has(named)) return false;
    if (scope?.unstored.has(named) || status === 429) return true;
    const [type, id] = named.split('/') as [string, string];
    // AuditEvents are the trail's own rows, not stored resources: their ids are the server's
    // UUIDs (an AuditEvent read lost its id to this lookup, which found no such resource).
    if (type === 'AuditEvent') return !isUuid(id.toLowerCase());
    try {
      return !(await this.repository.isStored(type, id));
    } catch (error) {
      if (failClosed) throw error;
      return true;
    }
  }
}
