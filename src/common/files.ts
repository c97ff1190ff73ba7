import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';

/** Whether anything exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The mode of `path` as chmod writes it (644) when its group or others have any permission on
 * it; undefined when only its owner has (or nothing is at `path`).
 */
export function openToOthers(path: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  return (mode & 0o077) === 0 ? undefined : mode.toString(8).padStart(3, '0');
}
