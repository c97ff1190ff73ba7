import { randomUUID } from 'node:crypto';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn } from '../support/http.js';
import {
  observationSubscription,
  startSubscriptionsApp,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';

/**
 * SUBSCRIPTION_ENDPOINTS keeps notifications to paths under its prefixes. A header that a
 * receiver, or a proxy before it, reads as the request's path or method (IIS and Symfony take
 * X-Original-URL and X-Rewrite-URL for the path, many frameworks X-HTTP-Method-Override for the
 * method) or as the client's address (X-Forwarded-For, Forwarded) would take the server's POST,
 * from the server's address, outside the prefix or past a receiver's address check.
 */
describe('Subscriptions: headers a receiver reads as another path, method or client', () => {
  let app: SubscriptionsTestApp;
  let doctor: HttpFn;
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    app = await startSubscriptionsApp();
    doctor = authorizedHttp(await tokenFor(app.testApp, 'doctor'));
  });

  afterAll(async () => {
    await app.close();
  });

  it('refuses them when a Subscription is written', async () => {
    for (const header of [
      'X-Original-URL: /admin/users',
      'X-Rewrite-URL: /admin/users',
      'X-HTTP-Method-Override: DELETE',
      'X-HTTP-Method: DELETE',
      'X-Method-Override: DELETE',
      'X-Forwarded-For: 10.0.0.1',
      'X-Forwarded-Host: internal.example.org',
      'X-Real-IP: 10.0.0.1',
      'Forwarded: for=10.0.0.1',
    ]) {
      const res = await doctor('POST', `${app.fhir}/Subscription`, {
        body: observationSubscription(`routing-${run}`, `${app.hooks}x`, header),
      });
      expect({ header, status: res.status, diagnostics: res.body.issue?.[0]?.diagnostics }).toEqual(
        {
          header,
          status: 422,
          diagnostics: `channel.header may not set ${header.split(':')[0]!}`,
        },
      );
    }
    // Headers of the receiver's own still go.
    const ok = await doctor('POST', `${app.fhir}/Subscription`, {
      body: observationSubscription(`routing-${run}`, `${app.hooks}x`, 'X-Ward: north'),
    });
    expect(ok.status).toBe(201);
  });
});
