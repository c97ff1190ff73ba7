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
    expect(exportOwnerOf(doctor)).toEqual({ userId: 'u1', scope: null, patient: null });
    expect(exportOwnerOf(scoped('user/Patient.read patient/*.rs', 'p1'))).toEqual({
      userId: 'u1',
      scope: 'patient/*.rs user/Patient.rs',
      patient: 'p1',
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
});
