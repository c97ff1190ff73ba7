import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { FieldCipher, type CipherContext } from '../../crypto/field-cipher.js';
import { encodeCursor } from '../cursor.js';
import type { Cursor } from './search-bundle.js';

type Query = Record<string, string | string[] | undefined>;

/** Sealed search state is bound to who searched and what, like a PHI value to its row. */
function stateContext(user: AuthenticatedUser, type: string): CipherContext {
  return { table: 'search', column: 'state', row: [type, user.id] };
}

/**
 * The state of a search whose criteria came in a form body (POST _search): its links carry
 * them sealed in `_state`, never in the URL, where logs and proxies would keep them.
 */
@Injectable()
export class SearchState {
  constructor(private readonly cipher: FieldCipher) {}

  /**
   * Links of a search whose criteria must stay out of URLs: the criteria and cursor are sealed
   * (AES-GCM, bound to this user and type) into one opaque `_state` parameter.
   */
  links(
    user: AuthenticatedUser,
    baseUrl: string,
    type: string,
    path: string,
    query: Query,
    next: Cursor | undefined,
    previous: Cursor | undefined,
  ): { relation: string; url: string }[] {
    const criteria = Object.fromEntries(
      Object.entries(query).filter(([name]) => name !== '_cursor' && name !== '_state'),
    );
    const link = (cursor: Cursor | undefined): string => {
      const state = this.cipher.encrypt(
        JSON.stringify({ query: criteria, ...(cursor ? { cursor: encodeCursor(cursor) } : {}) }),
        stateContext(user, type),
      );
      return `${baseUrl}/${path}?_state=${state}`;
    };
    return [
      { relation: 'self', url: link(undefined) },
      ...(next ? [{ relation: 'next', url: link(next) }] : []),
      ...(previous ? [{ relation: 'previous', url: link(previous) }] : []),
    ];
  }

  unseal(user: AuthenticatedUser, type: string, state: string): { query: Query; cursor?: string } {
    try {
      return JSON.parse(this.cipher.decrypt(state, stateContext(user, type))) as {
        query: Query;
        cursor?: string;
      };
    } catch {
      throw AppError.invalid('_state is not a link of this search for this user: search again');
    }
  }
}
