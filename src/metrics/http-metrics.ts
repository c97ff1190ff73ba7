import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { routeOf } from '../audit/http-audit.js';
import { Metrics } from './metrics.js';

/** Sign-in routes: a 401 there (or the token endpoint's 400 invalid_grant) is a failed sign-in. */
const SIGN_IN = new Set(['/auth/login', '/auth/login/mfa', '/auth/refresh', '/auth/token']);

/** Counts and times every response by its route template (an unknown route is 'unmatched'). */
@Injectable()
export class HttpMetrics implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: Metrics,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', (request, reply, done) => {
      const route = routeOf(request) ?? 'unmatched';
      const status = reply.statusCode;
      const labels = { method: request.method, route, status: String(status) };
      this.metrics.httpRequests.inc(labels);
      this.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
      if (status === 429) {
        this.metrics.rateLimited.inc({ route });
      } else if (
        SIGN_IN.has(route) &&
        (status === 401 || (route === '/auth/token' && status === 400))
      ) {
        this.metrics.loginFailures.inc({ route });
      }
      done();
    });
  }
}
