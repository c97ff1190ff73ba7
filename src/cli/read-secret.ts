import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

/**
 * Reads a secret without it ever being an argument (argv is visible to every user of the host
 * and lands in shell history): prompted with echo off on a terminal, else the first line of stdin.
 */
export async function readSecret(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    let input = '';
    for await (const chunk of process.stdin) {
      input += String(chunk);
    }
    return input.split(/\r?\n/, 1)[0] ?? '';
  }
  let muted = false;
  const output = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      if (!muted) {
        process.stderr.write(chunk);
      }
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  process.stderr.write(prompt);
  muted = true;
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}
