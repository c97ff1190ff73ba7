import { Injectable } from '@nestjs/common';
import { Counter, Histogram, Registry } from 'prom-client';

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * CareVault's Prometheus instruments, in one registry of its own (no global state). Labels are
 * route templates, methods and statuses, never values from a request: a URL can hold PHI.
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'carevault_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'carevault_http_request_duration_seconds',
    help: 'Time from request to response, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  readonly auditWrite = new Histogram({
    name: 'carevault_audit_write_seconds',
    help: "Time to write audit rows: 'queued' (committed on their own), 'transaction' (with the change they describe)",
    labelNames: ['mode'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  readonly hl7Messages = new Counter({
    name: 'carevault_hl7_messages_total',
    help: 'HL7 v2 messages received, by outcome: processed, error, rejected, ignored (HL7_IGNORE), or duplicate (a resend answered again)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly loginFailures = new Counter({
    name: 'carevault_login_failures_total',
    help: 'Sign-in calls refused (wrong password, code or token, locked account), by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'carevault_rate_limited_total',
    help: 'Requests refused with 429 by the rate limits, by route template',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  /** Times `work` into the audit-write histogram. */
  async timeAuditWrite<T>(mode: 'queued' | 'transaction', work: () => Promise<T>): Promise<T> {
    const end = this.auditWrite.startTimer({ mode });
    try {
      return await work();
    } finally {
      end();
    }
  }
}
