import type { AuthenticatedUser } from '../auth/authenticated-user.js';

/** Who writes what HL7 feeds bring: a system account with the integration role. */
export const HL7_USER: AuthenticatedUser = {
  id: 'hl7',
  username: 'hl7',
  roles: ['integration'],
  amr: [],
  authTime: 0,
};
