import type { AuthenticatedUser } from '../auth/authenticated-user.js';

/**
 * Who sets a Subscription's status to `error` when its notifications keep failing: a system
 * account, so that the Subscription keeps the owner whose access its criteria are evaluated with.
 */
export const SUBSCRIPTIONS_USER: AuthenticatedUser = {
  id: 'subscriptions',
  username: 'subscriptions',
  roles: ['integration'],
  amr: [],
  authTime: 0,
};
