/** A whole-number command-line option within bounds; the error names the flag and the range. */
export function integerOption(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${flag} must be an integer between ${min} and ${max}`);
  }
  return n;
}
