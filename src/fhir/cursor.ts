import { AppError } from '../common/errors/app-error.js';

/**
 * A page's cursor as its links carry it (`_cursor`): the sort keys of the page's edge, JSON in
 * base64url. Opaque to clients; read back only through `decodeCursor`, which checks its shape.
 */
export function encodeCursor(cursor: unknown): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

/** A cursor read back, or a 400 naming the list (`search`, `history`) it is not a cursor of. */
export function decodeCursor<T>(
  raw: unknown,
  isCursor: (value: unknown) => value is T,
  list: string,
): T {
  if (typeof raw === 'string') {
    try {
      const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
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
