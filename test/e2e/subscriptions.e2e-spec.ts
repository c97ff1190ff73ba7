import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { ResourceEntity } from '../../src/fhir/resource.entity.js';
import { SubscriptionRegistry } from '../../src/subscriptions/subscription-registry.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp, type HttpFn, createResource } from '../support/http.js';
import { BUILT, childEnv, runNode } from '../support/process.js';
import {
  eventually,
  LOINC,
  loincObservation as observation,
  observationSubscription,
  startSubscriptionsApp,
  type Received,
  type SubscriptionsTestApp,
} from '../support/subscriptions.js';
import type { TestApp } from '../support/test-app.js';

describe('FHIR Subscriptions (R4 rest-hook, no payload)', () => {
  let subscriptionsApp: SubscriptionsTestApp;
  let hooks: string;
  let received: Received[];
  let testApp: TestApp;
  let db: DataSource;
  let doctor: HttpFn;
  let fhir: string;
  const run = randomUUID().slice(0, 8);

  const subscription = (code: string, endpoint: string, change: Record<string, unknown> = {}) =>
    observationSubscription(code, endpoint, 'Authorization: Bearer hook-secret', change);
  const create = (as: HttpFn, resource: Record<string, unknown>) =>
    createResource(as, fhir, resource);
  const notifications = (subscriptionId: string) =>
    db.query<
      { resource_id: string; status: string; attempts: number; last_error: string | null }[]
    >(
      `SELECT resource_id, status, attempts, last_error FROM subscription_notification
        WHERE subscription_id = $1 ORDER BY seq`,
      [subscriptionId],
    );
  const hits = (path: string): Received[] => received.filter((hit) => hit.path === path);
  /** The audit rows of the statuses the notifier gave the Subscription: `detail version` each. */
  const statusAudit = async (subscriptionId: string): Promise<string[]> =>
    (
      await db.query<{ detail: string; resource_version: string }[]>(
        `SELECT detail, resource_version FROM audit_event
          WHERE subtype = 'subscription-notification' AND action = 'update' AND resource_id = $1
          ORDER BY recorded_at`,
        [subscriptionId],
      )
    ).map((row) => `${row.detail} ${row.resource_version}`);

  beforeAll(async () => {
    subscriptionsApp = await startSubscriptionsApp((path) => {
      if (path.includes('redirect')) {
        return {
          status: 307,
          headers: { location: 'http://169.254.169.254/latest/meta-data/?token=x' },
        };
      }
      return { status: path.includes('failing') ? 503 : 204 };
    });
    ({ testApp, fhir, db, hooks, received } = subscriptionsApp);
    doctor = authorizedHttp(await tokenFor(testApp, 'doctor'));
  });

  /** Posts an ORU^R01 with one potassium result of `code` to /hl7/v2; returns the ACK. */
  async function postResult(code: string, id: string, order = id): Promise<string> {
    const message = [
      `MSH|^~\\&|LAB|NORTH|CV|HOSP|20240101||ORU^R01|${id}|P|2.5.1`,
      `PID|1||${id}^^^NORTH&2.16.840.1.8&ISO^MR||Feed^Pat`,
      `OBR|1||${order}^NORTH^2.16.840.1.8^ISO|${code}^Potassium^LN|||202401010800+0000||||||||||||||||F`,
      `OBX|1|NM|${code}^Potassium^LN||5.9|mmol/L^^UCUM|||||F`,
    ].join('\r');
    const posted = await fetch(`${testApp.url}/hl7/v2`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await tokenFor(testApp, 'integration')}`,
        'content-type': 'x-application/hl7-v2+er7',
      },
      body: message,
    });
    return posted.text();
  }

  afterAll(() => subscriptionsApp.close());

  it('refuses Subscriptions it would not honour, saying why', async () => {
    const refusal = async (resource: Record<string, unknown>, as = doctor) => {
      const res = await as('POST', `${fhir}/Subscription`, { body: resource });
      return `${res.status} ${res.body.issue?.[0]?.diagnostics}`;
    };
    const code = `s-${run}-0`;
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          channel: { type: 'rest-hook', endpoint: `${hooks}x`, payload: 'application/fhir+json' },
        }),
      ),
    ).toMatch(/^422 Notifications carry no payload/);
    expect(await refusal(subscription(code, 'http://169.254.169.254/latest/meta-data/'))).toMatch(
      /^422 channel.endpoint is not among the endpoints this server may notify/,
    );
    expect(
      await refusal(subscription(code, `${hooks}x`, { channel: { type: 'websocket' } })),
    ).toMatch(/^422 Only rest-hook channels are offered/);
    // Read back masked and written again, both would take one stored value.
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          channel: {
            type: 'rest-hook',
            endpoint: `${hooks}x`,
            header: ['X-Ward: north', 'x-ward: south'],
          },
        }),
      ),
    ).toMatch(/^400 channel.header names x-ward more than once/);
    expect(
      await refusal(subscription(code, `${hooks}x`, { criteria: 'Observation?colour=blue' })),
    ).toMatch(/^400 /);
    // A name kept with the Subscription would sit outside the encrypted record.
    expect(
      await refusal(
        subscription(code, `${hooks}x`, { criteria: 'Observation?subject.name=Smith' }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(name\)/);
    // So would an MRN given through the :identifier modifier of a reference.
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          criteria: 'Observation?subject:identifier=http://hosp/mrn|MRN777',
        }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(:identifier\)/);
    // So would a document's description, which the index holds as hashes.
    expect(
      await refusal(
        subscription(code, `${hooks}x`, { criteria: 'DocumentReference?description=letter' }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(description\)/);
    // So would the free text of a composite whose second part is a PHI string, asked directly
    // or through _has.
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          criteria: 'Observation?code-value-string=8251-1$Zqxcanaryfam',
        }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(code-value-string\)/);
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          criteria: 'Patient?_has:Observation:subject:code-value-string=8251-1$Zqxcanaryfam',
        }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(code-value-string\)/);
    expect(
      await refusal(
        subscription(code, `${hooks}x`, {
          criteria: 'DiagnosticReport?result.code-value-string=8251-1$Zqxcanaryfam',
        }),
      ),
    ).toMatch(/^400 Stored criteria may not search direct identifiers \(code-value-string\)/);
    // Billing may not search Observations, so may not watch them either.
    expect(
      await refusal(
        subscription(code, `${hooks}x`),
        authorizedHttp(await tokenFor(testApp, 'billing')),
      ),
    ).toMatch(/^403 /);
    // Nothing was stored.
    const stored = await doctor(
      'GET',
      `${fhir}/Subscription?criteria:contains=${code}&_summary=count`,
    );
    expect(stored.body.total).toBe(0);
  });

  it('notifies the endpoint, with its headers and no body, of each change that matches, and only those', async () => {
    const code = `s-${run}-1`;
    const path = `/hooks/lab-${run}`;
    const id = await create(doctor, subscription(code, `${hooks}lab-${run}`));

    const patient = await create(doctor, {
      resourceType: 'Patient',
      name: [{ family: `Sub-${run}` }],
    });
    const matching = await create(
      doctor,
      observation(code, { subject: { reference: `Patient/${patient}` } }),
    );
    await create(doctor, observation(`other-${run}`));
    const hit = await eventually('the notification', () => Promise.resolve(hits(path)[0]));
    expect(hit).toMatchObject({ method: 'POST', body: '' });
    expect(hit.headers['authorization']).toBe('Bearer hook-secret');
    // Accepted, it is made active by the server, as R4 describes, keeping its owner: a new
    // version, audited as the system's change.
    const active = await eventually('the Subscription made active', async () => {
      const stored = await doctor('GET', `${fhir}/Subscription/${id}`);
      return stored.body.status === 'active' ? stored.body : undefined;
    });
    expect(await statusAudit(id)).toEqual([`active accepted ${active.meta.versionId}`]);

    // An update that still matches, and one in a transaction Bundle, are changes too.
    const current = await doctor('GET', `${fhir}/Observation/${matching}`);
    await doctor('PUT', `${fhir}/Observation/${matching}`, {
      body: { ...current.body, valueQuantity: { value: 6.1, unit: 'mmol/L' } },
    });
    const bundle = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ request: { method: 'POST', url: 'Observation' }, resource: observation(code) }],
      },
    });
    expect(bundle.status).toBe(200);
    const rows = await eventually('every notification delivered', async () => {
      const all = await notifications(id);
      return all.length === 3 && all.every((row) => row.status === 'sent') ? all : undefined;
    });
    expect(rows.map((row) => row.resource_id).slice(0, 2)).toEqual([matching, matching]);
    // A delivered notification answers for those queued behind it: at most one POST each.
    expect(hits(path).length).toBeGreaterThanOrEqual(1);
    expect(hits(path).length).toBeLessThanOrEqual(3);

    // The delivery is audited as the system's, naming the Subscription and the endpoint's origin only.
    const [audit] = await db.query<{ outcome: string; route: string; detail: string }[]>(
      `SELECT outcome, route, detail FROM audit_event
        WHERE subtype = 'subscription-notification' AND resource_id = $1 AND action = 'execute'
        ORDER BY recorded_at LIMIT 1`,
      [id],
    );
    expect(audit).toMatchObject({ outcome: 'success', route: new URL(hooks).origin });
    expect(audit!.detail).toMatch(/^sent notifications=\d+ attempts=1$/);
  });

  it('keeps the write and the other Subscriptions when stored criteria are refused now', async () => {
    const code = `s-${run}-each`;
    const broken = await create(doctor, subscription(code, `${hooks}broken-${run}`));
    const working = await create(doctor, subscription(code, `${hooks}each-${run}`));
    // Once the notifier has made them active, no write of theirs is left to come.
    for (const id of [broken, working]) {
      await eventually('the Subscription made active', async () => {
        const stored = await doctor('GET', `${fhir}/Subscription/${id}`);
        return stored.body.status === 'active' ? true : undefined;
      });
    }
    // As after an upgrade that dropped a search parameter: stored criteria now refused.
    await db.query(
      `UPDATE fhir_subscription SET criteria = criteria || '&no-such-parameter=1' WHERE id = $1`,
      [broken],
    );
    await testApp.app.get(SubscriptionRegistry).refresh();

    const observed = await create(doctor, observation(code));
    const rows = await eventually('the notification', async () => {
      const all = await notifications(working);
      return all.length > 0 ? all : undefined;
    });
    expect(rows.map((row) => row.resource_id)).toEqual([observed]);
    expect(await notifications(broken)).toEqual([]);
    expect((await doctor('DELETE', `${fhir}/Subscription/${broken}`)).status).toBe(204);
  });

  it('refuses criteria PostgreSQL cannot run; ones stored before stop, with the reason, and fail no write', async () => {
    const code = `s-${run}-bad`;
    // 17,000 decimals: more than PostgreSQL's numeric reads (it was accepted, and then every
    // Observation write failed with a 500, and every ORU^R01 with AE).
    const overflow = `value-quantity=0.${'1'.repeat(17_000)}`;
    for (const criteria of [
      'Observation?date=ge0000',
      'Observation?code=%00',
      `Observation?code=${LOINC}|${code}&${overflow}`,
    ]) {
      const res = await doctor('POST', `${fhir}/Subscription`, {
        body: subscription(code, `${hooks}bad-${run}`, { criteria }),
      });
      expect({ criteria: criteria.slice(0, 50), status: res.status }).toEqual({
        criteria: criteria.slice(0, 50),
        status: 400,
      });
    }

    const unreadable = await create(doctor, subscription(code, `${hooks}unreadable-${run}`));
    const yearZero = await create(doctor, subscription(code, `${hooks}year-zero-${run}`));
    const working = await create(doctor, subscription(code, `${hooks}working-${run}`));
    for (const id of [unreadable, yearZero, working]) {
      await eventually('the Subscription made active', async () => {
        const stored = await doctor('GET', `${fhir}/Subscription/${id}`);
        return stored.body.status === 'active' ? true : undefined;
      });
    }
    // As stored before criteria were run when written.
    await db.query(`UPDATE fhir_subscription SET criteria = criteria || $2 WHERE id = $1`, [
      unreadable,
      `&${overflow}`,
    ]);
    await db.query(`UPDATE fhir_subscription SET criteria = criteria || $2 WHERE id = $1`, [
      yearZero,
      '&date=ge0000',
    ]);
    await testApp.app.get(SubscriptionRegistry).refresh();

    const observed = await create(doctor, observation(code));
    expect(await postResult(code, `BAD-${run}`)).toContain('MSA|AA|');
    const rows = await notifications(working);
    expect(rows.map((row) => row.resource_id)).toContain(observed);
    expect(rows).toHaveLength(2);
    expect(await notifications(unreadable)).toEqual([]);
    expect(await notifications(yearZero)).toEqual([]);

    // Set to error with the reason, without the value the database refused.
    for (const [id, reason] of [
      // Stored before search refused such numbers: now refused when matched, as any criteria.
      [unreadable, 'A number search value looks like'],
      [yearZero, 'Dates in searches look like'],
    ] as const) {
      const stored = await eventually('the Subscription set to error', async () => {
        const res = await doctor('GET', `${fhir}/Subscription/${id}`);
        return res.body.status === 'error' ? res.body : undefined;
      });
      expect(stored.error).toContain(`Its criteria could not be evaluated (${reason}`);
      expect(stored.error).toMatch(/set status to requested to start again$/);
      expect(stored.error).not.toContain('1111');
      expect((await statusAudit(id)).at(-1)).toBe(`error criteria-failed ${stored.meta.versionId}`);
    }
    const [state] = await db.query<{ active: boolean; failure: string | null }[]>(
      `SELECT active, failure FROM fhir_subscription WHERE id = $1`,
      [unreadable],
    );
    expect(state).toEqual({ active: false, failure: null });
  });

  it('notifies of results that arrive from an HL7 feed', async () => {
    const code = `s-${run}-hl7`;
    const id = await create(doctor, subscription(code, `${hooks}feed-${run}`));
    expect(await postResult(code, `SUB-${run}`, `ORD-${run}`)).toContain('MSA|AA|');
    const [notification] = await notifications(id);
    const result = await doctor('GET', `${fhir}/Observation/${notification!.resource_id}`);
    expect(result.body.code.coding[0]).toMatchObject({ system: LOINC, code });
    await eventually('the notification', () => Promise.resolve(hits(`/hooks/feed-${run}`)[0]));
  });

  it('notifies of what the admin CLI imports, the service delivering it', async () => {
    const code = `s-${run}-cli`;
    const id = await create(doctor, subscription(code, `${hooks}import-${run}`));
    const dir = await mkdtemp(join(tmpdir(), 'carevault-sub-import-'));
    try {
      const file = join(dir, 'results.json');
      await writeFile(
        file,
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { request: { method: 'POST', url: 'Observation' }, resource: observation(code) },
            { request: { method: 'POST', url: 'Observation' }, resource: observation(`o-${run}`) },
          ],
        }),
      );
      const imported = await runNode(
        BUILT.cli,
        ['import', file],
        childEnv({
          DATABASE_URL: process.env['DATABASE_URL']!,
          PHI_MASTER_KEY: process.env['PHI_MASTER_KEY']!,
          DATA_DIR: process.env['DATA_DIR']!,
          NODE_ENV: 'test',
        }),
      );
      expect(imported.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const [queued, ...others] = await notifications(id);
    expect(others).toEqual([]);
    const result = await doctor('GET', `${fhir}/Observation/${queued!.resource_id}`);
    expect(result.body.code.coding[0]).toMatchObject({ system: LOINC, code });
    await eventually('the notification', () => Promise.resolve(hits(`/hooks/import-${run}`)[0]));
  });

  it('keeps channel.header values write-only: shown masked everywhere, kept when written back', async () => {
    const code = `s-${run}-secret`;
    const path = `/hooks/secret-${run}`;
    const masked = ['Authorization: [stored]', 'X-Ward: [stored]'];
    const created = await doctor('POST', `${fhir}/Subscription`, {
      body: subscription(code, `${hooks}secret-${run}`, {
        channel: {
          type: 'rest-hook',
          endpoint: `${hooks}secret-${run}`,
          header: ['Authorization: Bearer hook-secret', 'X-Ward: north'],
        },
      }),
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body.channel.header).toEqual(masked);
    const shown = [
      await doctor('GET', `${fhir}/Subscription/${id}`),
      await doctor('GET', `${fhir}/Subscription/${id}/_history/1`),
    ].map((res) => res.body);
    const search = await doctor('GET', `${fhir}/Subscription?_id=${id}`);
    const history = await doctor('GET', `${fhir}/Subscription/${id}/_history`);
    shown.push(
      ...[search, history].map((res) => (res.body.entry as { resource: unknown }[])[0]!.resource),
    );
    for (const body of shown) {
      expect(body).toMatchObject({ id, channel: { header: masked } });
    }
    for (const res of [created, search, history]) {
      expect(JSON.stringify(res.body)).not.toContain('hook-secret');
    }

    // Read, changed and written back as shown, it keeps the stored values.
    const current = await eventually('the Subscription made active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? res.body : undefined;
    });
    const rewritten = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...current, reason: 'Potassium for the night shift' },
    });
    expect(rewritten.status).toBe(200);
    expect(rewritten.body.channel.header).toEqual(masked);
    await create(doctor, observation(code));
    const hit = await eventually('the notification', () => Promise.resolve(hits(path)[0]));
    expect(hit.headers).toMatchObject({ authorization: 'Bearer hook-secret', 'x-ward': 'north' });

    // A masked value with nothing stored under its name would send the mask: refused.
    const unknown = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: {
        ...current,
        channel: { ...current.channel, header: [...masked, 'X-Tenant: [stored]'] },
      },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.issue[0].diagnostics).toMatch(/^channel.header\[2\] is masked/);
    const copied = await doctor('POST', `${fhir}/Subscription`, {
      body: { ...current, id: undefined, meta: undefined },
    });
    expect(copied.status).toBe(422);

    // A patch sees the values masked too: copying one out, or testing a guess, learns nothing.
    const patch = (operations: object[]) =>
      doctor('PATCH', `${fhir}/Subscription/${id}`, {
        raw: JSON.stringify(operations),
        headers: { 'content-type': 'application/json-patch+json' },
      });
    const copiedOut = await patch([{ op: 'copy', from: '/channel/header/0', path: '/reason' }]);
    expect(copiedOut.status).toBe(200);
    expect(copiedOut.body.reason).toBe('Authorization: [stored]');
    expect(copiedOut.body.channel.header).toEqual(masked);
    const guess = await patch([
      { op: 'test', path: '/channel/header/0', value: 'Authorization: Bearer hook-secret' },
    ]);
    expect(guess.status).not.toBe(200);
    // Sending a value is a new version even when it is the stored one: were it "unchanged",
    // a PUT would confirm a guess.
    const before = (await doctor('GET', `${fhir}/Subscription/${id}`)).body;
    const guessed = ['Authorization: Bearer hook-secret', 'X-Ward: [stored]'];
    const sameValue = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...before, channel: { ...before.channel, header: guessed } },
    });
    expect(sameValue.status).toBe(200);
    expect(sameValue.body.meta.versionId).not.toBe(before.meta.versionId);
    // Stored values go only to the endpoint they were given for.
    const elsewhere = `${hooks}elsewhere-${run}`;
    const moved = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...sameValue.body, channel: { ...sameValue.body.channel, endpoint: elsewhere } },
    });
    expect(moved.status).toBe(422);
    expect(moved.body.issue[0].diagnostics).toContain('endpoint changed');
    const movedByPatch = await patch([
      { op: 'replace', path: '/channel/endpoint', value: elsewhere },
    ]);
    expect(movedByPatch.status).toBe(422);
    const all = await doctor('GET', `${fhir}/Subscription/${id}/_history`);
    expect(JSON.stringify(all.body)).not.toContain('hook-secret');
  });

  it('masks the header values of a Subscription contained in another resource, wherever it is shown, and keeps them', async () => {
    const family = `Contained-${run}`;
    const secret = `contained-secret-${run}`;
    const watch = {
      resourceType: 'Subscription',
      id: 'watch',
      status: 'off',
      reason: 'Kept with the patient by a client',
      criteria: `Observation?code=${LOINC}|s-${run}-contained`,
      channel: {
        type: 'rest-hook',
        endpoint: `${hooks}contained-${run}`,
        header: [`Authorization: Bearer ${secret}`, 'X-Ward: north'],
      },
    };
    const masked = ['Authorization: [stored]', 'X-Ward: [stored]'];
    // Demographics no other test's patients share: $match tests count their candidates.
    const patient = {
      resourceType: 'Patient',
      name: [{ family, given: ['Ines'] }],
      birthDate: '1966-11-23',
      contained: [watch],
      // Referred to, as a contained resource must be (dom-3).
      extension: [
        { url: 'https://example.org/fhir/watched-by', valueReference: { reference: '#watch' } },
      ],
    };
    const created = await doctor('POST', `${fhir}/Patient`, { body: patient });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const bundle = await doctor('POST', fhir, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'POST', url: 'Patient' }, resource: patient },
          { request: { method: 'GET', url: `Patient/${id}` } },
        ],
      },
    });
    const shown = {
      created,
      read: await doctor('GET', `${fhir}/Patient/${id}`),
      vread: await doctor('GET', `${fhir}/Patient/${id}/_history/1`),
      search: await doctor('GET', `${fhir}/Patient?_id=${id}`),
      searchByName: await doctor('GET', `${fhir}/Patient?family=${family}`),
      history: await doctor('GET', `${fhir}/Patient/${id}/_history`),
      typeHistory: await doctor('GET', `${fhir}/Patient/_history?_count=5`),
      everything: await doctor('GET', `${fhir}/Patient/${id}/$everything`),
      match: await doctor('POST', `${fhir}/Patient/$match`, {
        body: {
          resourceType: 'Parameters',
          parameter: [
            {
              name: 'resource',
              resource: {
                resourceType: 'Patient',
                name: [{ family, given: ['Ines'] }],
                birthDate: '1966-11-23',
              },
            },
          ],
        },
      }),
      bundle,
    };
    for (const [what, res] of Object.entries(shown)) {
      const text = JSON.stringify(res.body);
      expect({
        what,
        ok: res.status < 300,
        shown: text.includes(id),
        leaks: text.includes(secret),
      }).toEqual({ what, ok: true, shown: true, leaks: false });
    }
    const containedOf = (body: { contained: unknown[] }) =>
      (body.contained[0] as { channel: { header: string[] } }).channel.header;
    expect(containedOf(shown.read.body)).toEqual(masked);
    expect(containedOf(bundle.body.entry[0].resource)).toEqual(masked);
    expect(containedOf(bundle.body.entry[1].resource)).toEqual(masked);
    expect(
      shown.search.body.entry.map((entry: { resource: { contained: unknown[] } }) =>
        containedOf(entry.resource),
      ),
    ).toEqual([masked]);

    // Read, changed and written back as shown, or patched, it keeps the stored values.
    const storedHeaders = async () => {
      const row = await db.manager.findOneByOrFail(ResourceEntity, { resourceType: 'Patient', id });
      return containedOf(JSON.parse(row.content!) as { contained: unknown[] });
    };
    const current = shown.read.body as Record<string, unknown>;
    const rewritten = await doctor('PUT', `${fhir}/Patient/${id}`, {
      body: { ...current, gender: 'female' },
    });
    expect(rewritten.status).toBe(200);
    expect(containedOf(rewritten.body)).toEqual(masked);
    const patched = await doctor('PATCH', `${fhir}/Patient/${id}`, {
      raw: JSON.stringify([{ op: 'replace', path: '/gender', value: 'other' }]),
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(patched.status).toBe(200);
    expect(await storedHeaders()).toEqual([`Authorization: Bearer ${secret}`, 'X-Ward: north']);
    // A masked value with nothing stored under its name is refused, naming where it is.
    const unknown = await doctor('PUT', `${fhir}/Patient/${id}`, {
      body: {
        ...patched.body,
        contained: [{ ...watch, channel: { ...watch.channel, header: ['X-Tenant: [stored]'] } }],
      },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.issue[0].diagnostics).toMatch(
      /^contained\[0\].channel.header\[0\] is masked/,
    );
    // Sending a value is a new version even when it is the stored one (no guess confirmed).
    const guessed = await doctor('PUT', `${fhir}/Patient/${id}`, {
      body: {
        ...patched.body,
        contained: [
          {
            ...watch,
            channel: {
              ...watch.channel,
              header: [`Authorization: Bearer ${secret}`, 'X-Ward: [stored]'],
            },
          },
        ],
      },
    });
    expect(guessed.status).toBe(200);
    expect(guessed.body.meta.versionId).not.toBe(patched.body.meta.versionId);
    expect(
      JSON.stringify((await doctor('GET', `${fhir}/Patient/${id}/_history`)).body),
    ).not.toContain(secret);
  });

  it('masks the header values of a Subscription a stored Bundle or Parameters holds, at any depth, and keeps them', async () => {
    const secret = `nested-secret-${run}`;
    const watch = (id: string) => ({
      resourceType: 'Subscription',
      id,
      status: 'off',
      reason: 'Kept in a collection by a client',
      criteria: `Observation?code=${LOINC}|s-${run}-nested`,
      channel: {
        type: 'rest-hook',
        endpoint: `${hooks}nested-${run}`,
        header: [`Authorization: Bearer ${secret}-${id}`],
      },
    });
    const inner = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: watch('b') }] };
    const outer = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: watch('a') }, { resource: inner }],
    };
    const parameters = {
      resourceType: 'Parameters',
      parameter: [{ name: 'kept', part: [{ name: 'bundle', resource: outer }] }],
    };
    const bundle = await doctor('POST', `${fhir}/Bundle`, { body: outer });
    // Parameters has no RESTful endpoint (R4): it is kept inside a Bundle.
    const params = await doctor('POST', `${fhir}/Bundle`, {
      body: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: parameters }] },
    });
    expect([bundle.status, params.status]).toEqual([201, 201]);
    const id = bundle.body.id as string;
    const shown = {
      bundle,
      params,
      read: await doctor('GET', `${fhir}/Bundle/${id}`),
      vread: await doctor('GET', `${fhir}/Bundle/${id}/_history/1`),
      history: await doctor('GET', `${fhir}/Bundle/${id}/_history`),
      typeHistory: await doctor('GET', `${fhir}/Bundle/_history?_count=5`),
      search: await doctor('GET', `${fhir}/Bundle?_id=${id}`),
      parametersRead: await doctor('GET', `${fhir}/Bundle/${params.body.id as string}`),
      batch: await doctor('POST', fhir, {
        body: {
          resourceType: 'Bundle',
          type: 'batch',
          entry: [{ request: { method: 'GET', url: `Bundle/${id}` } }],
        },
      }),
    };
    for (const [what, res] of Object.entries(shown)) {
      const text = JSON.stringify(res.body);
      expect({ what, ok: res.status < 300, leaks: text.includes(secret) }).toEqual({
        what,
        ok: true,
        leaks: false,
      });
      expect({ what, masked: text.includes('Authorization: [stored]') }).toEqual({
        what,
        masked: true,
      });
    }

    // Read, its entries swapped and written back as shown, it keeps the stored values.
    const storedContent = async () =>
      JSON.parse(
        (await db.manager.findOneByOrFail(ResourceEntity, { resourceType: 'Bundle', id })).content!,
      ) as { entry: { resource: { id?: string; channel?: { header: string[] } } }[] };
    const read = shown.read.body as { entry: unknown[] };
    const swapped = await doctor('PUT', `${fhir}/Bundle/${id}`, {
      body: { ...read, entry: [...read.entry].reverse() },
    });
    expect(swapped.status).toBe(200);
    expect(JSON.stringify(swapped.body)).not.toContain(secret);
    const after = await storedContent();
    expect(after.entry[1]!.resource.channel!.header).toEqual([`Authorization: Bearer ${secret}-a`]);
    expect(JSON.stringify(after.entry[0])).toContain(`${secret}-b`);
    // A masked value with nothing stored in its place is refused, naming where it is.
    const unknown = await doctor('PUT', `${fhir}/Bundle/${id}`, {
      body: {
        ...read,
        entry: [
          {
            resource: {
              ...watch('c'),
              channel: { ...watch('c').channel, header: ['Authorization: [stored]'] },
            },
          },
        ],
      },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.issue[0].diagnostics).toMatch(
      /^entry\[0\].resource.channel.header\[0\] is masked/,
    );
  });

  it('leaves out restricted records, switched-off and deleted Subscriptions', async () => {
    const code = `s-${run}-2`;
    const watching = await create(doctor, subscription(code, `${hooks}restricted-${run}`));
    const off = await create(doctor, subscription(code, `${hooks}off-${run}`, { status: 'off' }));
    await create(
      doctor,
      observation(code, {
        meta: {
          security: [
            { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
          ],
        },
      }),
    );
    expect(await notifications(watching)).toEqual([]);
    expect(await notifications(off)).toEqual([]);

    await create(doctor, observation(code));
    expect((await notifications(watching)).length).toBe(1);
    expect((await doctor('DELETE', `${fhir}/Subscription/${watching}`)).status).toBe(204);
    await create(doctor, observation(code));
    // Queued before the next registry read, but cancelled rather than sent once it is gone.
    await eventually('the notifications settled', async () => {
      const rows = await notifications(watching);
      return rows.every((row) => row.status !== 'pending') ? rows : undefined;
    });
    expect(hits(`/hooks/restricted-${run}`).length).toBeLessThanOrEqual(1);
  });

  it('retries a failing endpoint, then sets the Subscription to error with the reason', async () => {
    const code = `s-${run}-3`;
    const id = await create(doctor, subscription(code, `${hooks}failing-${run}`));
    await create(doctor, observation(code));
    const stored = await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? res.body : undefined;
    });
    expect(stored.error).toBe(
      'Notifications failed 3 times (last: HTTP 503); set status to requested to start again',
    );
    expect((await statusAudit(id)).at(-1)).toBe(`error delivery-failed ${stored.meta.versionId}`);
    expect(hits(`/hooks/failing-${run}`).length).toBe(3);
    expect(await notifications(id)).toEqual([
      expect.objectContaining({ status: 'dead', attempts: 3, last_error: 'HTTP 503' }),
    ]);
    // The owner's criteria are kept: set back to requested (at an endpoint that answers), it
    // works again, made active without the old reason; what was given up is sent there.
    const again = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: subscription(code, `${hooks}mended-${run}`, { id, status: 'requested' }),
    });
    expect(again.status).toBe(200);
    const active = await eventually('the Subscription made active again', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? res.body : undefined;
    });
    expect(active).not.toHaveProperty('error');
    expect((await statusAudit(id)).at(-1)).toBe(`active accepted ${active.meta.versionId}`);
    await eventually('what was given up, sent', () =>
      Promise.resolve(hits(`/hooks/mended-${run}`)[0]),
    );
    await create(doctor, observation(code));
    expect((await notifications(id)).length).toBe(2);
  });

  it('records a refused redirect by its cause, without the URL', async () => {
    const code = `s-${run}-redirect`;
    const id = await create(doctor, subscription(code, `${hooks}redirect-${run}?key=k`));
    await create(doctor, observation(code));
    const stored = await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? res.body : undefined;
    });
    expect(stored.error).toMatch(/\(last: unexpected redirect\)/);
    expect(await notifications(id)).toEqual([
      expect.objectContaining({ status: 'dead', last_error: 'unexpected redirect' }),
    ]);
    // Not followed.
    expect(hits(`/hooks/redirect-${run}?key=k`).length).toBe(3);
  });

  it('sends nothing for a Subscription stored with a header name twice: it is set to error, saying why', async () => {
    const code = `s-${run}-twice`;
    const path = `/hooks/twice-${run}`;
    const id = await create(doctor, subscription(code, `${hooks}twice-${run}`));
    await eventually('the Subscription made active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? true : undefined;
    });
    // As a version from before such headers were refused stored it: HTTP would send one
    // `x-ward: north, south`, neither value the receiver gave.
    const row = await db.manager.findOneByOrFail(ResourceEntity, {
      resourceType: 'Subscription',
      id,
    });
    const stored = JSON.parse(row.content!) as { channel: Record<string, unknown> };
    stored.channel['header'] = [
      'X-Ward: north',
      'Authorization: Bearer hook-secret',
      'x-ward: south',
    ];
    await db.manager.save(ResourceEntity, { ...row, content: JSON.stringify(stored) });

    await create(doctor, observation(code));
    const refused = await eventually('the Subscription set to error', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'error' ? res.body : undefined;
    });
    expect(refused.error).toBe(
      'Not sent: channel.header names x-ward more than once (stored before that was refused), which would go as one header of both values; give each header once and set status to requested to start again',
    );
    expect(hits(path)).toEqual([]);
    expect(await notifications(id)).toEqual([
      expect.objectContaining({ status: 'cancelled', attempts: 0, last_error: 'duplicate-header' }),
    ]);
    const audit = await db.query<{ action: string; outcome: string; detail: string }[]>(
      `SELECT action, outcome, detail FROM audit_event
        WHERE subtype = 'subscription-notification' AND resource_id = $1 ORDER BY recorded_at`,
      [id],
    );
    expect(audit).toEqual([
      { action: 'update', outcome: 'success', detail: 'active accepted' },
      { action: 'update', outcome: 'success', detail: 'error duplicate-header' },
    ]);

    // Its owner gives each header once, and it works again.
    const again = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: {
        ...refused,
        status: 'requested',
        channel: { ...refused.channel, header: ['X-Ward: south', 'Authorization: [stored]'] },
      },
    });
    expect(again.status).toBe(200);
    await eventually('the Subscription made active again', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? true : undefined;
    });
    await create(doctor, observation(code));
    const hit = await eventually('the notification', () => Promise.resolve(hits(path)[0]));
    expect(hit.headers).toMatchObject({ 'x-ward': 'south', authorization: 'Bearer hook-secret' });
  });

  it('matches nothing past its end, and is turned off then', async () => {
    const code = `s-${run}-end`;
    const end = new Date(Date.now() + 2_000);
    const id = await create(
      doctor,
      subscription(code, `${hooks}ending-${run}`, { end: end.toISOString() }),
    );
    await eventually('the Subscription made active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? true : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, end.getTime() - Date.now() + 100));
    await create(doctor, observation(code));
    // Not queued (and then cancelled): the registry no longer matches it.
    expect(await notifications(id)).toEqual([]);
    const off = await eventually('the Subscription turned off', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'off' ? res.body : undefined;
    });
    expect(off.end).toBe(end.toISOString());
    expect(hits(`/hooks/ending-${run}`)).toEqual([]);
    expect((await statusAudit(id)).at(-1)).toBe(`off ended ${off.meta.versionId}`);
    // One written with its end already past is turned off too, never made active: it stayed
    // `requested` for good until 2026-12-06.
    const late = await create(
      doctor,
      subscription(code, `${hooks}ended-${run}`, { end: '2026-01-01T00:00:00Z' }),
    );
    const lateOff = await eventually('the late Subscription turned off', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${late}`);
      return res.body.status === 'off' ? res.body : undefined;
    });
    expect(lateOff.meta.versionId).toBe('2');
  });

  it('activates a Subscription it could not write once its owner has changed it', async () => {
    const code = `s-${run}-unwritable`;
    const id = await create(
      doctor,
      subscription(code, `${hooks}unwritable-${run}`, { status: 'off' }),
    );
    // As a version from before `reason` was required stored it, `requested`: set to `active`
    // as it stands, it is refused (a 4xx), and would be every round.
    const row = await db.manager.findOneByOrFail(ResourceEntity, {
      resourceType: 'Subscription',
      id,
    });
    const stored = JSON.parse(row.content!) as Record<string, unknown>;
    delete stored['reason'];
    await db.manager.save(ResourceEntity, {
      ...row,
      content: JSON.stringify({ ...stored, status: 'requested' }),
    });
    await db.query(
      `UPDATE fhir_subscription SET status = 'requested', active = true WHERE id = $1`,
      [id],
    );
    const attempted = async () =>
      (
        await db.query<{ at: Date | null }[]>(
          `SELECT status_attempted_at AS at FROM fhir_subscription WHERE id = $1`,
          [id],
        )
      )[0]?.at?.getTime();
    // Taken up in two rounds: the first one's attempt is over.
    const first = await eventually('a first attempt', attempted);
    await eventually('a second attempt', async () =>
      ((await attempted()) ?? first) > first ? true : undefined,
    );
    const refused = await doctor('GET', `${fhir}/Subscription/${id}`);
    expect(refused.body.status).toBe('requested');

    // Its owner sends it again, valid: the new version is set to `active`.
    const fixed = await doctor('PUT', `${fhir}/Subscription/${id}`, {
      body: { ...refused.body, reason: 'New results for the ward dashboard' },
    });
    expect(fixed.status).toBe(200);
    const active = await eventually('the Subscription made active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? res.body : undefined;
    });
    expect(await statusAudit(id)).toEqual([`active accepted ${active.meta.versionId}`]);
  });

  it('activates a Subscription queued behind more than a round of ones it cannot change', async () => {
    const code = `s-${run}-stuck`;
    // Restricted: no account may write them, the notifier's included, so they stay `requested`
    // (ACTIVATIONS_PER_ROUND is 20). Taken in the order they were written, these came first in
    // every round, and the one written after them was never made active.
    const restricted = {
      security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
    };
    const stuck: string[] = [];
    for (let i = 0; i < 25; i++) {
      stuck.push(
        await create(doctor, subscription(code, `${hooks}stuck-${run}`, { meta: restricted })),
      );
    }
    const id = await create(doctor, subscription(code, `${hooks}behind-${run}`));
    const active = await eventually('the Subscription made active', async () => {
      const res = await doctor('GET', `${fhir}/Subscription/${id}`);
      return res.body.status === 'active' ? res.body : undefined;
    });
    expect(await statusAudit(id)).toEqual([`active accepted ${active.meta.versionId}`]);
    // Tried, and left as they were.
    const [tried] = await db.query<{ requested: string; untried: string }[]>(
      `SELECT count(*) FILTER (WHERE status = 'requested') AS requested,
              count(*) FILTER (WHERE status_attempted_at IS NULL) AS untried
         FROM fhir_subscription WHERE id = ANY($1)`,
      [stuck],
    );
    expect(tried).toEqual({ requested: '25', untried: '0' });
    // No one may delete a restricted record without break-glass, which is for a patient's.
    await db.query(`UPDATE fhir_subscription SET active = false WHERE id = ANY($1)`, [stuck]);
  });
});
