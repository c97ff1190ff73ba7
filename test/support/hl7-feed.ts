import { MllpListener } from '../../src/hl7/mllp/mllp-listener.js';
import { tokenFor } from './auth.js';
import { authorizedHttp, type HttpFn } from './http.js';
import { MllpTestClient } from './mllp.js';
import { createTestApp, type TestApp } from './test-app.js';

/**
 * A running app fed over MLLP and read back over FHIR: what the specs of v2-to-FHIR mapping
 * share. Messages go on one connection (its ACKs in order); reads are a doctor's.
 */
export interface Hl7Feed {
  readonly testApp: TestApp;
  /** Sends the messages and gives their ACKs, in order. */
  send(...messages: string[]): Promise<string[]>;
  /** The resources a search under /fhir finds (it must answer 200). */
  search(query: string): Promise<Record<string, any>[]>;
  /** The one resource a search under /fhir finds. */
  one(query: string): Promise<Record<string, any>>;
  close(): Promise<void>;
}

export async function openHl7Feed(): Promise<Hl7Feed> {
  const testApp = await createTestApp();
  let sender: MllpTestClient;
  let http: HttpFn;
  try {
    sender = await MllpTestClient.connect(testApp.app.get(MllpListener).address()!.port);
    http = authorizedHttp(await tokenFor(testApp, 'doctor'));
  } catch (error) {
    await testApp.close();
    throw error;
  }
  const search = async (query: string): Promise<Record<string, any>[]> => {
    const found = await http('GET', `${testApp.url}/fhir/${query}`);
    expect(found.status).toBe(200);
    return (found.body.entry ?? []).map(
      (entry: { resource: Record<string, any> }) => entry.resource,
    );
  };
  return {
    testApp,
    send: (...messages) => sender.exchange(messages),
    search,
    async one(query) {
      const found = await search(query);
      expect(found).toHaveLength(1);
      return found[0]!;
    },
    async close() {
      sender.close();
      await testApp.close();
    },
  };
}
