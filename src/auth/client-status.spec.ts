import { jest } from '@jest/globals';
import type { SmartAppRepository } from './apps/smart-app.repository.js';
import type { AuthenticatedUser } from './authenticated-user.js';
import type { BackendClientRepository } from './backend-clients/backend-client.repository.js';
import { ClientStatus } from './client-status.js';

const APP = '0b6f3f0e-3c1a-4c55-9d7e-5a2b1f9c8e01';

describe('ClientStatus', () => {
  let apps: jest.Mocked<Pick<SmartAppRepository, 'isActive'>>;
  let clients: jest.Mocked<Pick<BackendClientRepository, 'isActive'>>;
  const token = (clientId?: string): AuthenticatedUser => ({
    id: '7f1c2a9e-4a53-4c1e-9a57-3c1f0e2b8d11',
    username: 'doc',
    roles: ['doctor'],
    amr: ['pwd'],
    authTime: 0,
    ...(clientId !== undefined ? { clientId } : {}),
  });
  const status = () =>
    new ClientStatus(
      apps as unknown as SmartAppRepository,
      clients as unknown as BackendClientRepository,
    );

  beforeEach(() => {
    apps = { isActive: jest.fn() };
    clients = { isActive: jest.fn() };
  });

  it('reads nothing for a token issued to no app or client', async () => {
    await expect(status().allows(token())).resolves.toBe(true);
    expect(apps.isActive).not.toHaveBeenCalled();
  });

  it('allows an active app or backend client, and not one disabled, deleted or malformed', async () => {
    apps.isActive.mockResolvedValue(true);
    await expect(status().allows(token(APP))).resolves.toBe(true);
    apps.isActive.mockResolvedValue(false);
    clients.isActive.mockResolvedValue(true);
    await expect(status().allows(token(APP))).resolves.toBe(true);
    clients.isActive.mockResolvedValue(false);
    await expect(status().allows(token(APP))).resolves.toBe(false);
    await expect(status().allows(token('not-a-uuid'))).resolves.toBe(false);
  });
});
