import { AppError } from '../common/errors/app-error.js';

/** A list route's `status` (one of `statuses`) and `_count` (1 to 1000, default 100), checked. */
export function listQuery<S extends string>(
  statuses: readonly S[],
  status: string,
  count: string | undefined,
): { status: S; limit: number } {
  if (!statuses.includes(status as S)) {
    throw AppError.invalid(`status must be one of ${statuses.join(', ')}`);
  }
  const limit = count === undefined ? 100 : Number(count);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw AppError.invalid('_count must be an integer from 1 to 1000');
  }
  return { status: status as S, limit };
}
