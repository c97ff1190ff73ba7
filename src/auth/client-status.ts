import { Injectable } from '@nestjs/common';
import { isUuid } from '../common/ids.js';
import { ACCOUNT_STATE_TTL_MS, MAX_ENTRIES } from './account-status.js';
import { SmartAppRepository } from './apps/smart-app.repository.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import { BackendClientRepository } from './backend-clients/backend-client.repository.js';
import { CachedReads } from './cached-reads.js';

/**
 * Whether the SMART app or backend client an access token was issued to (its `client_id`) is
 * still registered and active. Access ends when the authorization does (164.312(a)(1)): a
 * disabled app's or client's tokens are refused within ACCOUNT_STATE_TTL_MS, on every instance
 * and after a change made from the CLI, as a disabled account's are (AccountStatus), rather than
 * at their expiry.
 */
@Injectable()
export class ClientStatus {
  private readonly states: CachedReads<boolean>;

  constructor(apps: SmartAppRepository, clients: BackendClientRepository) {
    // The claim does not say which kind of client it names; app ids and client ids are UUIDs
    // drawn apart, so one table at most has the row.
    this.states = new CachedReads(
      ACCOUNT_STATE_TTL_MS,
      MAX_ENTRIES,
      async (id) => (await apps.isActive(id)) || (await clients.isActive(id)),
    );
  }

  async allows(user: AuthenticatedUser): Promise<boolean> {
    if (user.clientId === undefined) return true;
    // Our own signed claim; anything else is no client of ours (and no query to fail on).
    return isUuid(user.clientId) && (await this.states.get(user.clientId));
  }
}
