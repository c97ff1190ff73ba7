import { createResource } from '../support/http.js';
import { openHl7Feed, type Hl7Feed } from '../support/hl7-feed.js';
import { tokenFor } from '../support/auth.js';
import { authorizedHttp } from '../support/http.js';
import { labPatient, labResult, LAB_SYSTEM } from '../../bench/workloads.js';

/**
 * W5 (issue 7) measures lab results about patients the hospital has registered. Its seeded
 * patients must be what the results' PID names, or each patient's first result also updates
 * the Patient (until 2026-12-07 it added the assigning authority's name to the MRN: most of a
 * 15 s run's messages took that path, 25 statements where a known patient's take 17).
 */
describe('benchmark workloads', () => {
  let feed: Hl7Feed;

  beforeAll(async () => {
    feed = await openHl7Feed();
  });

  afterAll(async () => {
    await feed?.close();
  });

  it("W5's results leave the lab patient it seeded as it was", async () => {
    const clerk = authorizedHttp(await tokenFor(feed.testApp, 'doctor'));
    const n = Math.floor(Math.random() * 1_000_000);
    const id = await createResource(clerk, `${feed.testApp.url}/fhir`, labPatient(n));
    const [ack] = await feed.send(labResult(`W5T${n}`, n, n + 1).toString('utf8'));
    expect(ack).toMatch(/\rMSA\|AA\|/);
    const patient = await feed.one(`Patient?identifier=${LAB_SYSTEM}|P-${n}`);
    expect(patient.id).toBe(id);
    expect(patient.meta.versionId).toBe('1');
    expect(await feed.search(`Observation?subject=Patient/${id}`)).toHaveLength(10);
  });
});
