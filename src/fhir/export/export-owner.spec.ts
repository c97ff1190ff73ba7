import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { parseScopes } from '../../auth/smart-scopes.js';
import { exportOwnerOf, ownsExport } from './export-owner.js';

const doctor: AuthenticatedUser = {
  id: 'u1',
  username: 'drlee',
  roles: ['doctor'],
  amr: ['pwd', 'otp'],
  authTime: 0,
};
const scoped = (scope: string, patient?: string): AuthenticatedUser => ({
  ...doctor,
  scopes: parseScopes(scope)!,
  ...(patient ? { patient } : {}),
});

describe('export job owner', () => {
  it('keeps the scopes as SMART v2 spells them, sorted, and null without scopes', () => {
    expect(exportOwnerOf(doctor)).toEqual({
      userId: 'u1',
      clientId: null,
      scope: null,
      patient: null,
      sessionEpoch: 0,
    });
    expect(exportOwnerOf(scoped('user/Patient.read patient/*.rs', 'p1'))).toEqual({
      userId: 'u1',
      clientId: null,
      scope: 'patient/*.rs user/Patient.rs',
      patient: 'p1',
      sessionEpoch: 0,
    });
  });

  it('is the same user with the same scopes and patient, however they are written', () => {
    const job = exportOwnerOf(scoped('patient/*.rs', 'p1'));
    expect(ownsExport(scoped('patient/*.read', 'p1'), job)).toBe(true);
    expect(ownsExport(doctor, job)).toBe(false);
    expect(ownsExport(scoped('patient/*.rs', 'p2'), job)).toBe(false);
    expect(ownsExport({ ...scoped('patient/*.rs', 'p1'), id: 'u2' }, job)).toBe(false);
    expect(ownsExport(scoped('patient/*.rs', 'p1'), exportOwnerOf(doctor))).toBe(false);
    expect(ownsExport(doctor, exportOwnerOf(doctor))).toBe(true);
  });

  it('is the client the token was issued to: another client of the same account is not its owner', () => {
    const system = (clientId?: string): AuthenticatedUser => ({
      ...scoped('system/*.rs'),
      ...(clientId ? { clientId } : {}),
    });
    const job = exportOwnerOf(system('c1'));
    expect(job.clientId).toBe('c1');
    expect(ownsExport(system('c1'), job)).toBe(true);
    expect(ownsExport(system('c2'), job)).toBe(false);
    expect(ownsExport(system(), job)).toBe(false);
    expect(ownsExport(system('c1'), exportOwnerOf(system()))).toBe(false);
  });

  it("is of the account's session epoch: a token after a disable, a new password or an MFA reset is not its owner", () => {
    const job = exportOwnerOf({ ...doctor, sessionEpoch: 3 });
    expect(ownsExport({ ...doctor, sessionEpoch: 3 }, job)).toBe(true);
    expect(ownsExport({ ...doctor, sessionEpoch: 4 }, job)).toBe(false);
    // A token from before tokens carried the epoch is of the first one, 0.
    expect(ownsExport(doctor, exportOwnerOf({ ...doctor, sessionEpoch: 0 }))).toBe(true);
  });
});
