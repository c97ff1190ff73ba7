import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { parseIsoDateOrInstant } from '../common/iso-dates.js';
import type { GrantWithUses } from './break-glass.repository.js';
import { BreakGlassService } from './break-glass.service.js';

const DAY_MS = 86_400_000;

/**
 * The privacy officer's review of emergency access: every grant since a date, who, which
 * patient, why, until when (or that it ended with the account's sessions), and how many
 * restricted records it opened. Tab-separated.
 */
@Command({
  name: 'audit:break-glass-report',
  description: 'List break-glass grants (default: the last 30 days) with their uses',
})
export class BreakGlassReportCommand extends CommandRunner {
  constructor(
    private readonly breakGlass: BreakGlassService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: { since?: Date }): Promise<void> {
    const since = options.since ?? new Date(Date.now() - 30 * DAY_MS);
    // The report names patients and shows the reasons given: it is itself an access to record.
    const rows = await this.trail.command(
      'audit:break-glass-report',
      (found) => ({ patientIds: [...new Set(found.map(({ grant }) => grant.patientId))].sort() }),
      () => this.breakGlass.report(since),
    );
    process.stdout.write('granted_at\tuser\tpatient\texpires_at\trecords_opened\treason\n');
    const now = new Date();
    for (const row of rows) {
      const { grant, uses } = row;
      const reason = grant.reason.replace(/\s+/g, ' ');
      process.stdout.write(
        `${grant.createdAt.toISOString()}\t${grant.username}\t${grant.patientId}\t` +
          `${endOf(row, now)}\t${uses}\t${reason}\n`,
      );
    }
    process.stderr.write(`${rows.length} grant(s) since ${since.toISOString()}\n`);
  }

  @Option({
    flags: '--since <date>',
    description: 'Day (UTC) or instant with its offset (default: 30 days ago)',
  })
  parseSince(value: string): Date {
    const date = parseIsoDateOrInstant(value);
    if (!date) {
      throw new Error(
        '--since must be a date (2026-11-01, UTC) or an instant with its offset (2026-11-01T10:00:00-05:00)',
      );
    }
    return date;
  }
}

/**
 * When a grant ends: its expiry, unless the account's sessions have ended since it was opened
 * (a disable, a new password, an MFA reset move the epoch on), which end it with them. When they
 * did is not stored: a grant still within its time has ended early, at an unknown time; one past
 * its expiry may have ended at it or before.
 */
function endOf({ grant, accountEpoch }: GrantWithUses, now: Date): string {
  const expiry = grant.expiresAt.toISOString();
  if (accountEpoch === undefined || accountEpoch === grant.sessionEpoch) return expiry;
  return grant.expiresAt > now
    ? "ended with the account's sessions"
    : `${expiry} or before, with the account's sessions`;
}
