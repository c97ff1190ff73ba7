import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { AppError } from '../common/errors/app-error.js';
import { ClientSealer } from '../crypto/client-sealer.js';

/**
 * How long a page's cursor opens: a day, far beyond a client paging a search or a history sync
 * (minutes), so that a link kept in a log or a browser history does not page for ever.
 */
export const CURSOR_TTL_MS = 24 * 60 * 60 * 1000;

/** Seals a page's cursor for one user's links of one list, and opens it back. */
export interface CursorCodec {
  seal(cursor: unknown): string;
  /**
   * The cursor's JSON value; throws CursorExpired past its lifetime, anything else when the
   * text is not one sealed by `seal`.
   */
  open(raw: string): unknown;
}

/** A cursor sealed here, opened after CURSOR_TTL_MS. */
export class CursorExpired extends Error {}

/** What is sealed: the cursor, and when it stops opening (milliseconds since the epoch). */
interface Sealed {
  c: unknown;
  exp: number;
}

function isSealed(value: unknown): value is Sealed {
  const sealed = value as Partial<Sealed> | null;
  return typeof sealed === 'object' && sealed !== null && typeof sealed.exp === 'number';
}

/**
 * A page's cursor as its links carry it (`_cursor`): the sort keys of the page's edge, sealed
 * (ClientSealer, bound to the user, its sign-in session and the list) for CURSOR_TTL_MS. The
 * edge may be a row the caller is not shown (a restricted record, another patient's): until
 * 2026-12-07 a cursor was JSON in base64url, and a patient's app paging
 * `Observation/_history?_count=1` read the id and write time of every patient's Observations
 * from its next links. Until then too a cursor never expired and opened in any session of its
 * user. One issued before, or in another session, is refused as any other text is (400, follow
 * the Bundle links); one past its lifetime is a 410.
 */
@Injectable()
export class PageCursors {
  constructor(private readonly sealer: ClientSealer) {}

  for(user: AuthenticatedUser, list: string): CursorCodec {
    // A backend client's token has no session: its cursors are bound to the client alone.
    const purpose = ['page-cursor', list, user.id, user.sessionId ?? ''];
    return {
      seal: (cursor) =>
        this.sealer.seal(
          JSON.stringify({ c: cursor, exp: Date.now() + CURSOR_TTL_MS } satisfies Sealed),
          purpose,
        ),
      open: (raw) => {
        const sealed = JSON.parse(this.sealer.open(raw, purpose)) as unknown;
        if (!isSealed(sealed)) throw new Error('Not a cursor');
        if (sealed.exp <= Date.now()) throw new CursorExpired();
        return sealed.c;
      },
    };
  }
}

/**
 * A cursor read back; a 400 naming the list (`search`, `history`) it is not a cursor of, or a
 * 410 when it has expired (HAPI answers 410 Gone to a page of an expired search too).
 */
export function decodeCursor<T>(
  raw: unknown,
  isCursor: (value: unknown) => value is T,
  list: string,
  codec: CursorCodec,
): T {
  if (typeof raw === 'string') {
    try {
      const value = codec.open(raw);
      if (isCursor(value)) return value;
    } catch (error) {
      if (error instanceof CursorExpired) {
        throw AppError.of(
          410,
          'processing',
          `This ${list}'s page link has expired (a link pages for ${CURSOR_TTL_MS / 3_600_000} hours): start again from its first page`,
        );
      }
      // not a cursor: the error below
    }
  }
  throw notACursor(list);
}

export function notACursor(list: string): AppError {
  return AppError.invalid(`_cursor is not a cursor of this ${list}: follow the Bundle links`);
}
