import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditTrail } from '../audit/audit-trail.js';
import { decodeMessage } from './message/hl7-header.js';
import { splitMessages } from './message/batch.js';
import { MllpSendError, MllpSender } from './mllp/mllp-sender.js';
import { integerOption } from '../cli/integer-option.js';
import { readCertificateAndKey, readCertificates } from '../common/files.js';

interface SendOptions {
  host: string;
  port: number;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  timeout: number;
}

@Command({
  name: 'hl7:send',
  arguments: '<file>',
  description:
    'Send every HL7 v2 message in a file over MLLP, one at a time, and print each ACK; exits 1 unless all are AA',
})
export class Hl7SendCommand extends CommandRunner {
  constructor(private readonly trail: AuditTrail) {
    super();
  }

  async run([file]: string[], options: SendOptions): Promise<void> {
    if (Boolean(options.cert) !== Boolean(options.key)) {
      throw new Error('--cert and --key go together');
    }
    const tls = options.tls || options.ca || options.cert ? tlsOptions(options) : undefined;
    const { messages } = splitMessages(await readFile(file!));
    const destination = `${options.host}:${options.port}`;
    const sender = new MllpSender({
      host: options.host,
      port: options.port,
      ackTimeoutMs: options.timeout * 1000,
      ...(tls ? { tls } : {}),
    });
    const result = await this.trail.command(
      'hl7:send',
      (done: { accepted: number; total: number }) => ({
        detail: `destination=${destination} messages=${done.total} accepted=${done.accepted}`,
      }),
      async () => {
        let accepted = 0;
        try {
          for (const [index, message] of messages.entries()) {
            const line = await this.sendOne(sender, message);
            if (line.startsWith('AA ')) accepted++;
            process.stdout.write(`${index + 1} ${line}\n`);
          }
        } finally {
          sender.close();
        }
        return { accepted, total: messages.length };
      },
    );
    process.stdout.write(
      `Sent ${result.total} message(s) to ${destination}: ${result.accepted} accepted (AA)\n`,
    );
    if (result.accepted < result.total) process.exitCode = 1;
  }

  /** One message's line: the ACK code, the control id and the ACK's error, or why none came. */
  private async sendOne(sender: MllpSender, message: Buffer): Promise<string> {
    let controlId: string;
    try {
      controlId = decodeMessage(message).header.controlId ?? '';
    } catch (error) {
      return `not sent: ${(error as Error).message}`;
    }
    try {
      const ack = await sender.send(message, controlId);
      return [ack.code, controlId, ack.errorCode, ack.detail].filter(Boolean).join(' ');
    } catch (error) {
      if (error instanceof MllpSendError) return `no ACK ${controlId}: ${error.code}`;
      throw error;
    }
  }

  @Option({ flags: '--host <host>', description: 'Destination host', defaultValue: '127.0.0.1' })
  parseHost(value: string): string {
    return value;
  }

  @Option({ flags: '--port <port>', description: 'Destination port', defaultValue: 2575 })
  parsePort(value: string): number {
    return integerOption('--port', value, 1, 65535);
  }

  @Option({
    flags: '--tls',
    description: 'Connect with TLS 1.2+ (server checked against system CAs, or --ca)',
  })
  parseTls(): boolean {
    return true;
  }

  @Option({
    flags: '--ca <file>',
    description: "PEM CA certificates to check the server's against (implies --tls)",
  })
  parseCa(value: string): string {
    return value;
  }

  @Option({
    flags: '--cert <file>',
    description: 'PEM client certificate, for a listener requiring one (with --key; implies --tls)',
  })
  parseCert(value: string): string {
    return value;
  }

  @Option({ flags: '--key <file>', description: 'PEM private key of --cert' })
  parseKey(value: string): string {
    return value;
  }

  @Option({
    flags: '--timeout <seconds>',
    description: 'How long to wait for each ACK',
    defaultValue: 30,
  })
  parseTimeout(value: string): number {
    const seconds = Number(value);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) {
      throw new Error('--timeout must be a number of seconds between 0 and 600');
    }
    return seconds;
  }
}

/** The CAs and client certificate of --ca, --cert and --key, their files read and checked. */
function tlsOptions(options: SendOptions): ConnectionOptions {
  return {
    ...(options.ca ? { ca: readCertificates('--ca', options.ca) } : {}),
    ...(options.cert && options.key
      ? readCertificateAndKey(
          { variable: '--cert', path: options.cert },
          { variable: '--key', path: options.key },
        )
      : {}),
  };
}
