import { Injectable } from '@nestjs/common';
import { importJWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { AppError } from '../../common/errors/app-error.js';
import { isLoopback } from '../../common/http/loopback.js';
import type { Role } from '../roles.js';
import { formatScope, parseScopes } from '../smart-scopes.js';
import { UserRepository } from '../user.repository.js';
import { BackendClientRepository, type BackendClient } from './backend-client.repository.js';
import { clientKeySet, keyAlgorithm, type ClientKeySet } from './client-keys.js';

/**
 * Roles a backend client may never act in: theirs are the rights about people (user
 * administration, break-glass, security labels), and they are what a recent MFA guards,
 * which a client's signed assertion stands in for.
 */
export const PERSON_ROLES: readonly Role[] = ['admin', 'doctor', 'nurse'];

const NAME = /^[a-z0-9][a-z0-9._-]{1,63}$/;

export interface BackendClientSummary {
  id: string;
  name: string;
  username: string;
  scope: string;
  active: boolean;
  /** The registered keys' ids, or the URL the client publishes its keys at. */
  keys: string;
}

/** A client's public keys as an administrator gives them: a JWKS, or the URL of one. */
export type ClientKeysInput = { jwks: unknown } | { jwksUrl: string };

type Keys = Pick<BackendClient, 'jwks' | 'jwksUrl'>;

/** Registration of SMART backend clients, for the admin CLI. */
@Injectable()
export class BackendClientsService {
  constructor(
    private readonly clients: BackendClientRepository,
    private readonly users: UserRepository,
  ) {}

  /** Registers a client acting as `username`'s account, with its public keys and widest scope. */
  async register(
    name: string,
    username: string,
    keys: ClientKeysInput,
    scope: string,
  ): Promise<BackendClientSummary> {
    if (!NAME.test(name)) {
      throw AppError.invalid('name: 2 to 64 lower-case letters, digits, ".", "_" or "-"');
    }
    const user = await this.users.findByUsername(username);
    if (!user) throw AppError.notFound(`No user ${username}`);
    assertSystemAccount(user.roles);
    const scopes = parseScopes(scope) ?? [];
    const items = scope.split(/\s+/).filter(Boolean);
    if (
      scopes.length === 0 ||
      scopes.length !== items.length ||
      items.some((i) => i.includes('?'))
    ) {
      throw AppError.invalid(
        'scope: one or more SMART system scopes such as system/*.rs or system/Observation.rs, without search parameters',
      );
    }
    if (scopes.some((item) => item.context !== 'system')) {
      throw AppError.invalid('scope: a backend client is granted system/ scopes only');
    }
    if (await this.clients.findByName(name)) {
      throw AppError.of(409, 'duplicate', 'A client with this name exists');
    }
    const client: BackendClient = {
      id: randomUUID(),
      name,
      userId: user.id,
      ...(await usableKeys(keys)),
      scope: scopes.map(formatScope).join(' '),
      active: true,
      createdAt: new Date(),
    };
    await this.clients.insert(client);
    return summary(client, user.username);
  }

  async list(): Promise<BackendClientSummary[]> {
    const clients = await this.clients.list();
    const users = new Map((await this.users.list()).map((user) => [user.id, user.username]));
    return clients.map((client) => summary(client, users.get(client.userId) ?? '?'));
  }

  /**
   * Refuses the client's further token requests, and the tokens it holds stop within seconds
   * (ClientStatus; it has no refresh tokens). Its Subscriptions stop, which the Subscription
   * notifier reads from the client's state.
   */
  async disable(name: string): Promise<BackendClientSummary> {
    const client = await this.require(name);
    await this.clients.setActive(client.id, false);
    return this.summaryOf({ ...client, active: false });
  }

  /**
   * Replaces the client's public keys (rotation: register the new key, then drop the old one;
   * a client with a JWKS URL rotates there, without an administrator).
   */
  async setKeys(name: string, input: ClientKeysInput): Promise<BackendClientSummary> {
    const client = await this.require(name);
    const keys = await usableKeys(input);
    await this.clients.setKeys(client.id, keys);
    return this.summaryOf({ ...client, ...keys });
  }

  private async require(name: string): Promise<BackendClient> {
    const client = await this.clients.findByName(name);
    if (!client) throw AppError.notFound(`No client ${name}`);
    return client;
  }

  private async summaryOf(client: BackendClient): Promise<BackendClientSummary> {
    const user = await this.users.findById(client.userId);
    return summary(client, user?.username ?? '?');
  }
}

/** Refuses an account that holds a role about people (checked again at every token request). */
export function assertSystemAccount(roles: readonly Role[]): void {
  const person = roles.filter((role) => PERSON_ROLES.includes(role));
  if (person.length > 0) {
    throw AppError.invalid(
      `A backend client cannot act as an account with the role ${person.join(', ')}: use a system account (integration, exporter, billing, auditor)`,
    );
  }
}

/**
 * A JWKS, checked as public signing keys and each imported once to prove it parses; or a JWKS
 * URL, https (http on loopback only, for a client on the same machine), read when a token is
 * asked for.
 */
async function usableKeys(input: ClientKeysInput): Promise<Keys> {
  if ('jwksUrl' in input) {
    let url: URL | undefined;
    try {
      url = new URL(input.jwksUrl);
    } catch {
      url = undefined;
    }
    if (
      !url ||
      !(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname)))
    ) {
      throw AppError.invalid('jwks-url: an https URL (http only on loopback)');
    }
    return { jwks: null, jwksUrl: url.href };
  }
  let keys: ClientKeySet;
  try {
    keys = clientKeySet(input.jwks);
    for (const key of keys.keys) {
      await importJWK(key, keyAlgorithm(key));
    }
  } catch (error) {
    throw AppError.invalid(`jwks: ${(error as Error).message}`);
  }
  return { jwks: keys, jwksUrl: null };
}

function summary(client: BackendClient, username: string): BackendClientSummary {
  return {
    id: client.id,
    name: client.name,
    username,
    scope: client.scope,
    active: client.active,
    keys: client.jwks
      ? `keys=${client.jwks.keys.map((key) => key.kid ?? '').join(',')}`
      : `jwks_url=${client.jwksUrl}`,
  };
}
