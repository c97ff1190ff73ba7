import { readFile } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../../audit/audit-trail.js';
import {
  BackendClientsService,
  type BackendClientSummary,
  type ClientKeysInput,
} from './backend-clients.service.js';

interface ClientOptions {
  name?: string;
  user?: string;
  jwksFile?: string;
  jwksUrl?: string;
  scope?: string;
}

function required<K extends keyof ClientOptions>(
  options: ClientOptions,
  key: K,
  flag: string,
): string {
  const value = options[key];
  if (!value) throw new Error(`${flag} is required`);
  return value;
}

/** The public keys file: a JWKS (`{"keys": [...]}`) as JSON. */
async function readJwks(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (error) {
    throw new Error(`--jwks-file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function print(client: BackendClientSummary): void {
  process.stdout.write(
    `${client.id}\t${client.name}\tuser=${client.username}\tscope=${client.scope}\t` +
      `${client.active ? 'active' : 'disabled'}\t${client.keys}\n`,
  );
}

/** The CLI's client commands, each audited. */
@Injectable()
abstract class ClientsCommand extends CommandRunner {
  constructor(
    protected readonly clients: BackendClientsService,
    protected readonly trail: AuditTrail,
  ) {
    super();
  }
}

abstract class ClientCommand extends ClientsCommand {
  @Option({ flags: '--name <name>', description: 'The client' })
  parseName(value: string): string {
    return value;
  }
}

/** Commands that take a client's public keys: a JWKS file, or the URL it publishes one at. */
abstract class KeysCommand extends ClientCommand {
  protected async keysOf(options: ClientOptions): Promise<ClientKeysInput> {
    if ((options.jwksFile === undefined) === (options.jwksUrl === undefined)) {
      throw new Error('Give either --jwks-file or --jwks-url');
    }
    return options.jwksUrl !== undefined
      ? { jwksUrl: options.jwksUrl }
      : { jwks: await readJwks(options.jwksFile!) };
  }

  @Option({
    flags: '--jwks-file <path>',
    description: "The client's public signing keys, a JWKS (EC P-256/384/521 or RSA 2048+)",
  })
  parseJwksFile(value: string): string {
    return value;
  }

  @Option({
    flags: '--jwks-url <url>',
    description: 'Where the client publishes its JWKS (https): it rotates its keys there',
  })
  parseJwksUrl(value: string): string {
    return value;
  }
}

@Command({
  name: 'client:create',
  description:
    'Register a SMART backend client (client_credentials with a signed assertion) acting as a system account; prints its client id',
})
export class ClientCreateCommand extends KeysCommand {
  async run(_params: string[], options: ClientOptions): Promise<void> {
    const name = required(options, 'name', '--name');
    const user = required(options, 'user', '--user');
    const scope = required(options, 'scope', '--scope');
    const keys = await this.keysOf(options);
    const details = { detail: `client=${name} user=${user} scope=${scope}` };
    print(
      await this.trail.command('client:create', details, () =>
        this.clients.register(name, user, keys, scope),
      ),
    );
  }

  @Option({ flags: '--user <username>', description: 'The system account the client acts as' })
  parseUser(value: string): string {
    return value;
  }

  @Option({
    flags: '--scope <scopes>',
    description: 'The widest scope it may be granted, e.g. "system/*.rs"',
  })
  parseScope(value: string): string {
    return value;
  }
}

@Command({
  name: 'client:set-keys',
  description:
    "Replace a backend client's public keys (rotation: include the old and the new key, later the new one only)",
})
export class ClientSetKeysCommand extends KeysCommand {
  async run(_params: string[], options: ClientOptions): Promise<void> {
    const name = required(options, 'name', '--name');
    const keys = await this.keysOf(options);
    print(
      await this.trail.command('client:set-keys', { detail: `client=${name}` }, () =>
        this.clients.setKeys(name, keys),
      ),
    );
  }
}

@Command({
  name: 'client:disable',
  description:
    'Refuse a backend client any further token, end those it holds, and stop its Subscriptions',
})
export class ClientDisableCommand extends ClientCommand {
  async run(_params: string[], options: ClientOptions): Promise<void> {
    const name = required(options, 'name', '--name');
    print(
      await this.trail.command('client:disable', { detail: `client=${name}` }, () =>
        this.clients.disable(name),
      ),
    );
  }
}

@Command({
  name: 'client:list',
  description: 'List backend clients with their account, scope and keys',
})
export class ClientListCommand extends ClientsCommand {
  async run(): Promise<void> {
    (await this.trail.command('client:list', {}, () => this.clients.list())).forEach(print);
  }
}
