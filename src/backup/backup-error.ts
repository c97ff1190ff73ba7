/** A backup or restore that cannot go on; its message says why, for the operator. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}
