import type { AuthenticatedUser } from '../auth/authenticated-user.js';

/** Who writes what HL7 feeds bring: a system account with the integration role. */
export const HL7_USER: AuthenticatedUser = {
  id: 'hl7',
  username: 'hl7',
  roles: ['integration'],
  amr: [],
  authTime: 0,
  // A lab result or an address change for a restricted patient must not be refused (AE) until
  // someone breaks the glass: the feed discloses nothing, and its message is audited.
  internal: true,
};
