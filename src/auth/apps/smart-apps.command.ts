import { Injectable } from '@nestjs/common';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../../audit/audit-trail.js';
import { SmartAppsService, type SmartAppSummary } from './smart-apps.service.js';

interface AppOptions {
  name?: string;
  redirectUri?: string[];
  scope?: string;
}

function print(app: SmartAppSummary): void {
  process.stdout.write(
    `${app.id}\t${app.name}\tscope=${app.scope}\t${app.active ? 'active' : 'disabled'}\t` +
      `${app.redirectUris.join(' ')}\n`,
  );
}

function requiredName(options: AppOptions): string {
  if (!options.name) throw new Error('--name is required');
  return options.name;
}

/** The CLI's SMART app commands, each audited. */
@Injectable()
abstract class AppsCommand extends CommandRunner {
  constructor(
    protected readonly apps: SmartAppsService,
    protected readonly trail: AuditTrail,
  ) {
    super();
  }
}

abstract class AppCommand extends AppsCommand {
  @Option({ flags: '--name <name>', description: 'The app' })
  parseName(value: string): string {
    return value;
  }
}

@Command({
  name: 'app:create',
  description:
    'Register a SMART app (public client: authorization code with PKCE); prints its client_id',
})
export class AppCreateCommand extends AppCommand {
  async run(_params: string[], options: AppOptions): Promise<void> {
    const name = requiredName(options);
    const redirectUris = options.redirectUri ?? [];
    if (!options.scope) throw new Error('--scope is required');
    const scope = options.scope;
    const details = { detail: `app=${name} scope=${scope} redirect=${redirectUris.join(' ')}` };
    print(
      await this.trail.command('app:create', details, () =>
        this.apps.register(name, redirectUris, scope),
      ),
    );
  }

  @Option({
    flags: '--redirect-uri <uri>',
    description: 'Where codes are sent, compared exactly; repeat for several',
  })
  parseRedirectUri(value: string, previous: string[] = []): string[] {
    return [...previous, value];
  }

  @Option({
    flags: '--scope <scopes>',
    description:
      'The widest scope it may be granted, e.g. "launch/patient patient/*.rs offline_access"',
  })
  parseScope(value: string): string {
    return value;
  }
}

@Command({
  name: 'app:disable',
  description:
    'Refuse a SMART app further sign-ins and codes, end its tokens, and stop its Subscriptions',
})
export class AppDisableCommand extends AppCommand {
  async run(_params: string[], options: AppOptions): Promise<void> {
    const name = requiredName(options);
    print(
      await this.trail.command('app:disable', { detail: `app=${name}` }, () =>
        this.apps.disable(name),
      ),
    );
  }
}

@Command({ name: 'app:list', description: 'List SMART apps with their scope and redirect URIs' })
export class AppListCommand extends AppsCommand {
  async run(): Promise<void> {
    (await this.trail.command('app:list', {}, () => this.apps.list())).forEach(print);
  }
}
