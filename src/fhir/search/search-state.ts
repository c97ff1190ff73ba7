import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../../auth/authenticated-user.js';
import { AppError } from '../../common/errors/app-error.js';
import { ClientSealer, type SealPurpose } from '../../crypto/client-sealer.js';
import type { CursorCodec } from '../cursor.js';
import type { Cursor } from './search-bundle.js';

type Query = Record<string, string | string[] | undefined>;

/**
 * Sealed search state is bound to who searched, in which sign-in session (a backend client's
 * token has none), and what: until 2026-12-07 it opened in any session of the user.
 */
function purposeOf(user: AuthenticatedUser, type: string): SealPurpose {
  return ['search-state', type, user.id, ...(user.sessionId !== undefined ? [user.sessionId] : [])];
}

/**
 * How long a search's links work: paging a result is done within minutes, and a link copied
 * from a log or a browser history should not reopen the criteria for ever.
 */
export const SEARCH_STATE_TTL_MS = 60 * 60 * 1000;

interface SealedState {
  query: Query;
  cursor?: string;
  /** Expiry, milliseconds since the epoch. */
  exp: number;
}

/**
 * The state of a search whose criteria came in a form body (POST _search): its links carry
 * them sealed in `_state`, never in the URL, where logs and proxies would keep them.
 */
@Injectable()
export class SearchState {
  constructor(private readonly sealer: ClientSealer) {}

  /**
   * Links of a search whose criteria must stay out of URLs: the criteria and cursor are sealed
   * (AES-GCM, bound to this user and type, for SEARCH_STATE_TTL_MS) into one opaque `_state`
   * parameter.
   */
  links(
    user: AuthenticatedUser,
    baseUrl: string,
    type: string,
    path: string,
    query: Query,
    next: Cursor | undefined,
    previous: Cursor | undefined,
    cursors: CursorCodec,
  ): { relation: string; url: string }[] {
    const criteria = Object.fromEntries(
      Object.entries(query).filter(([name]) => name !== '_cursor' && name !== '_state'),
    );
    const exp = Date.now() + SEARCH_STATE_TTL_MS;
    const link = (cursor: Cursor | undefined): string => {
      const sealed: SealedState = {
        query: criteria,
        ...(cursor ? { cursor: cursors.seal(cursor) } : {}),
        exp,
      };
      const state = this.sealer.seal(JSON.stringify(sealed), purposeOf(user, type));
      return `${baseUrl}/${path}?_state=${state}`;
    };
    return [
      { relation: 'self', url: link(undefined) },
      ...(next ? [{ relation: 'next', url: link(next) }] : []),
      ...(previous ? [{ relation: 'previous', url: link(previous) }] : []),
    ];
  }

  /**
   * The criteria and cursor of a link; a 400 for one altered or another's, a 410 for one
   * expired, as an expired `_cursor` is (HAPI answers 410 Gone to a page of an expired search):
   * until 2026-12-07 an expired one was the 400 of an altered one, so a client could not tell a
   * link that had aged from one it had broken. Only the user, in the session it was sealed in,
   * can open one, so the 410 tells no one else anything about it.
   */
  unseal(user: AuthenticatedUser, type: string, state: string): { query: Query; cursor?: string } {
    let sealed: SealedState | undefined;
    try {
      sealed = JSON.parse(this.sealer.open(state, purposeOf(user, type))) as SealedState;
    } catch {
      sealed = undefined;
    }
    if (!sealed) {
      throw AppError.invalid('_state is not a link of this search for this user: search again');
    }
    // A state sealed before links expired has no `exp`: it is older than any that has.
    if (!(typeof sealed.exp === 'number' && sealed.exp > Date.now())) {
      throw AppError.of(
        410,
        'processing',
        `This search's link has expired (a link works for ${SEARCH_STATE_TTL_MS / 60_000} minutes): search again`,
      );
    }
    return { query: sealed.query, ...(sealed.cursor ? { cursor: sealed.cursor } : {}) };
  }
}
