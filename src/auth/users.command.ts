import { Injectable } from '@nestjs/common';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { ResourceRepository } from '../fhir/resource.repository.js';
import { readSecret } from '../cli/read-secret.js';
import { ROLES } from './roles.js';
import { UsersService, type UserSummary } from './users.service.js';

interface UsernameOptions {
  username?: string;
}

interface UserChangeOptions extends UsernameOptions {
  roles?: string[];
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

/**
 * A change to one account named by --username, audited as the command it is. Subclasses inject
 * nothing of their own: Nest takes the constructor's parameters from this class.
 */
@Injectable()
abstract class UserChangeCommand extends UsernameCommand {
  /** The command's name, as the audit row records it. */
  protected abstract readonly auditName: string;

  constructor(
    protected readonly users: UsersService,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  protected abstract change(username: string, options: UserChangeOptions): Promise<UserSummary>;

  /**
   * What the audit row says of the change asked for, besides the account's name: no secret. Known
   * before the change runs, so that a refused or failed attempt is recorded with it too.
   */
  protected detailOf(_options: UserChangeOptions): string {
    return '';
  }

  async run(_params: string[], options: UserChangeOptions): Promise<void> {
    const username = required(options);
    const details = { detail: `username=${username}${this.detailOf(options)}` };
    print(await this.trail.command(this.auditName, details, () => this.change(username, options)));
  }
}

@Command({
  name: 'user:disable',
  description: 'Disable a user, end their sessions and stop their Subscriptions',
})
export class UserDisableCommand extends UserChangeCommand {
  protected readonly auditName = 'user:disable';
  protected change(username: string): Promise<UserSummary> {
    return this.users.disable(username);
  }
}

@Command({ name: 'user:enable', description: 'Enable a disabled user again' })
export class UserEnableCommand extends UserChangeCommand {
  protected readonly auditName = 'user:enable';
  protected change(username: string): Promise<UserSummary> {
    return this.users.enable(username);
  }
}

@Command({
  name: 'user:set-password',
  description:
    "Set a user's password (a forgotten one), unlock the account and end its sessions; the password is read from stdin or prompted",
})
export class UserSetPasswordCommand extends UserChangeCommand {
  protected readonly auditName = 'user:set-password';
  protected async change(username: string): Promise<UserSummary> {
    const password = await readSecret(`New password for ${username}: `);
    return this.users.setPassword(username, password);
  }
}

@Command({
  name: 'user:reset-mfa',
  description: "Remove a user's TOTP secret so they can enrol again",
})
export class UserResetMfaCommand extends UserChangeCommand {
  protected readonly auditName = 'user:reset-mfa';
  protected change(username: string): Promise<UserSummary> {
    return this.users.resetMfa(username);
  }
}

@Command({
  name: 'user:set-roles',
  description: "Replace a user's roles and end their sessions (tokens carry the roles they had)",
})
export class UserSetRolesCommand extends UserChangeCommand {
  protected readonly auditName = 'user:set-roles';
  protected change(username: string, options: UserChangeOptions): Promise<UserSummary> {
    return this.users.setRoles(username, options.roles ?? []);
  }

  protected override detailOf(options: UserChangeOptions): string {
    return ` roles=${[...new Set(options.roles)].join(',')}`;
  }

  @Option({
    flags: '--roles <roles>',
    description: `Comma-separated, each one of ${ROLES.join(', ')}`,
    required: true,
  })
  parseRoles(value: string): string[] {
    return value.split(',').map((role) => role.trim());
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

@Command({
  name: 'user:set-fhir-user',
  description:
    'Link a user to their FHIR identity (Practitioner/<id>…), which SMART apps granted fhirUser learn; --clear removes it',
})
export class UserSetFhirUserCommand extends UsernameCommand {
  constructor(
    private readonly users: UsersService,
    private readonly resources: ResourceRepository,
    private readonly trail: AuditTrail,
  ) {
    super();
  }

  async run(
    _params: string[],
    options: UsernameOptions & { fhirUser?: string; clear?: boolean },
  ): Promise<void> {
    const username = required(options);
    const reference = options.fhirUser ?? null;
    // What was asked, checked inside the audited command: a refused attempt is recorded by the
    // account it aimed at, as a failed change is (until 2026-12-07 these refusals left no row).
    const asked = [
      `username=${username}`,
      ...(reference !== null
        ? [`fhirUser=${reference}`]
        : options.clear
          ? ['fhirUser=(none)']
          : []),
      ...(reference !== null && options.clear ? ['clear'] : []),
    ];
    const user = await this.trail.command(
      'user:set-fhir-user',
      { detail: asked.join(' ') },
      async () => {
        if ((reference === null) === (options.clear !== true)) {
          throw new Error('Give either --fhir-user <Type/id> or --clear');
        }
        if (reference !== null) {
          const [type, id] = reference.split('/');
          const row = type && id ? await this.resources.findCurrent(type, id) : null;
          if (!row || row.deleted) throw new Error(`${reference} is not a stored resource`);
        }
        return this.users.setFhirUser(username, reference);
      },
    );
    process.stdout.write(`${user.username}\tfhirUser=${reference ?? '(none)'}\n`);
  }

  @Option({ flags: '--fhir-user <reference>', description: 'e.g. Practitioner/123' })
  parseFhirUser(value: string): string {
    return value;
  }

  @Option({ flags: '--clear', description: 'Remove the link' })
  parseClear(): boolean {
    return true;
  }
}
