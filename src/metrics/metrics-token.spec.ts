import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsToken } from './metrics-token.js';

describe('MetricsToken', () => {
  const dir = mkdtempSync(join(tmpdir(), 'carevault-metrics-token-'));
  const fileWith = (content: string): string => {
    const file = join(dir, `t${Math.random()}`);
    writeFileSync(file, content);
    return file;
  };
  const token = 'a'.repeat(31) + 'b';

  it('is off without a file, and then accepts nothing', () => {
    const off = new MetricsToken(undefined);
    expect(off.configured).toBe(false);
    expect(off.accepts(`Bearer ${token}`)).toBe(false);
  });

  it('accepts exactly the token in the file as a Bearer credential', () => {
    const on = new MetricsToken(fileWith(`${token}\n`));
    expect(on.configured).toBe(true);
    expect(on.accepts(`Bearer ${token}`)).toBe(true);
    expect(on.accepts(`bearer ${token}`)).toBe(true);
    expect(on.accepts(`Bearer ${token}c`)).toBe(false);
    expect(on.accepts(token)).toBe(false);
    expect(on.accepts(undefined)).toBe(false);
  });

  it('refuses a short token and an unreadable file at start', () => {
    expect(() => new MetricsToken(fileWith('short'))).toThrow('at least 32 characters');
    expect(() => new MetricsToken(join(dir, 'missing'))).toThrow('cannot be read');
  });
});
