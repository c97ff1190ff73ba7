import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { formatScope } from '../../auth/smart-scopes.js';

/**
 * Who an export job belongs to: a user, through tokens of one set of scopes and one patient,
 * issued to one client (or to none).
 */
export interface ExportOwner {
  userId: string;
  /**
   * The SMART client the token was issued to (a backend client, an app); null for the user's own
   * token. Several backend clients may act as one system account.
   */
  clientId: string | null;
  /** The token's SMART resource scopes, sorted and space-separated; null without scopes. */
  scope: string | null;
  patient: string | null;
  /**
   * The account's session epoch (0 for an external identity's): a disable, a new password or an
   * MFA reset moves it on, and the account's tokens since then do not own what came before.
   */
  sessionEpoch: number;
}

/** The owner a token makes of the job it starts. */
export function exportOwnerOf(user: AuthenticatedUser): ExportOwner {
  return {
    userId: user.id,
    clientId: user.clientId ?? null,
    scope:
      user.scopes === undefined
        ? null
        : [...new Set(user.scopes.map(formatScope))].sort().join(' '),
    patient: user.patient ?? null,
    sessionEpoch: user.sessionEpoch ?? 0,
  };
}

/**
 * Whether a token may see a job (its status and files) or delete it: a token of its user with
 * the same scopes and patient as the one that started it, issued to the same client (or to
 * none), of the same session epoch. The user alone is not enough: a patient-scoped token
 * exchanged from the user's own would otherwise open the user's population export, a token
 * with the user's full rights would open what a narrowed one started (each export is what its
 * token may see, so each token sees its own), and one backend client would read what another
 * client of the same system account exported.
 */
export function ownsExport(user: AuthenticatedUser, job: ExportOwner): boolean {
  const owner = exportOwnerOf(user);
  return (
    owner.userId === job.userId &&
    owner.clientId === job.clientId &&
    owner.scope === job.scope &&
    owner.patient === job.patient &&
    owner.sessionEpoch === job.sessionEpoch
  );
}
