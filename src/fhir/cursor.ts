import { Injectable } from '@nestjs/common';
import type { AuthenticatedUser } from '../auth/authenticated-user.js';
import { AppError } from '../common/errors/app-error.js';
import { ClientSealer } from '../crypto/client-sealer.js';

/** Seals a page's cursor for one user's links of one list, and opens it back. */
export interface CursorCodec {
  seal(cursor: unknown): string;
  /** The cursor's JSON value; throws when the text is not one sealed by `seal`. */
  open(raw: string): unknown;
}

/**
 * A page's cursor as its links carry it (`_cursor`): the sort keys of the page's edge, sealed
 * (ClientSealer, bound to the user and the list). The edge is the last row read, which the
 * caller may not be shown (a restricted record, another patient's): until 2026-12-07 a cursor
 * was JSON in base64url, and a patient's app paging `Observation/_history?_count=1` read the
 * id and write time of every patient's Observations from its next links. A cursor issued
 * before is refused as any other text is (400, follow the Bundle links).
 */
@Injectable()
export class PageCursors {
  constructor(private readonly sealer: ClientSealer) {}

  for(user: AuthenticatedUser, list: string): CursorCodec {
    const purpose = ['page-cursor', list, user.id];
    return {
      seal: (cursor) => this.sealer.seal(JSON.stringify(cursor), purpose),
      open: (raw) => JSON.parse(this.sealer.open(raw, purpose)) as unknown,
    };
  }
}

/** A cursor read back, or a 400 naming the list (`search`, `history`) it is not a cursor of. */
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
    } catch {
      // not a cursor: the error below
    }
  }
  throw notACursor(list);
}

export function notACursor(list: string): AppError {
  return AppError.invalid(`_cursor is not a cursor of this ${list}: follow the Bundle links`);
}
