import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { isValidId } from '../fhir/fhir-types.js';
import { routeOf } from './http-audit.js';
import { AuditRepository } from './audit.repository.js';

/**
 * The patient a refused request asked for, where only its body names it: a break-glass request
 * refused before it opened anything (no recent MFA, no right to it, a body that fails
 * validation) is still an attempt on that patient's records, which their accounting of
 * disclosures must list. Named only when a Patient of that id was ever stored: the body may
 * hold an MRN typed in place of the id, which the row would keep in plaintext.
 */
@Injectable()
export class RefusedPatients {
  constructor(private readonly repository: AuditRepository) {}

  async of(request: FastifyRequest, status: number): Promise<string[]> {
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
}
