import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { readSecret } from '../cli/read-secret.js';
import { ROLES } from './roles.js';
import { UsersService, type UserSummary } from './users.service.js';

interface UsernameOptions {
  username?: string;
}

function required(options: UsernameOptions): string {
  if (!options.username) {
    throw new Error('--username is required');
  }
  return options.username;
}

function print(user: UserSummary): void {
  process.stdout.write(
    `${user.username}\t${user.roles.join(',')}\t${user.active ? 'active' : 'disabled'}\t` +
      `mfa=${user.mfaEnabled ? 'on' : 'off'}${user.locked ? '\tlocked' : ''}\n`,
  );
}

abstract class UsernameCommand extends CommandRunner {
  @Option({ flags: '--username <username>', description: 'The user' })
  parseUsername(value: string): string {
    return value;
  }
}

@Command({
  name: 'user:create',
  description:
    'Create a user; the password is read from stdin or prompted, never taken from arguments',
})
export class UserCreateCommand extends UsernameCommand {
  constructor(
    private readonly users: UsersService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: UsernameOptions & { role?: string[] }): Promise<void> {
    const username = required(options);
    const password = await readSecret(`Password for ${username}: `);
    const roles = options.role ?? [];
    const details = { detail: `username=${username} roles=${roles.join(',')}` };
    print(
      await this.trail.command('user:create', details, () =>
        this.users.create(username, roles, password),
      ),
    );
  }

  @Option({
    flags: '--role <role>',
    description: `${ROLES.join(', ')} (repeatable)`,
  })
  parseRole(value: string, previous: string[] = []): string[] {
    return [...previous, value];
  }
}

@Command({ name: 'user:disable', description: 'Disable a user and end their sessions' })
export class UserDisableCommand extends UsernameCommand {
  constructor(
    private readonly users: UsersService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: UsernameOptions): Promise<void> {
    const username = required(options);
    print(
      await this.trail.command('user:disable', { detail: `username=${username}` }, () =>
        this.users.disable(username),
      ),
    );
  }
}

@Command({
  name: 'user:reset-mfa',
  description: "Remove a user's TOTP secret so they can enrol again",
})
export class UserResetMfaCommand extends UsernameCommand {
  constructor(
    private readonly users: UsersService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(_params: string[], options: UsernameOptions): Promise<void> {
    const username = required(options);
    print(
      await this.trail.command('user:reset-mfa', { detail: `username=${username}` }, () =>
        this.users.resetMfa(username),
      ),
    );
  }
}

@Command({ name: 'user:list', description: 'List users with their roles and state' })
export class UserListCommand extends CommandRunner {
  constructor(
    private readonly users: UsersService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(): Promise<void> {
    (await this.trail.command('user:list', {}, () => this.users.list())).forEach(print);
  }
}
