import { ConfigError } from '../config/env.schema.js';

/** The variables that say where a listener listens, for messages. */
export interface ListenVariables {
  host: { name: string; value: string };
  port: { name: string; value: number };
}

/**
 * What a failed listen means to an operator: Node's errors (getaddrinfo ENOTFOUND, EADDRINUSE)
 * are the same for the HTTP and the MLLP listener, so the message names the variable to fix.
 * An error of another kind is returned as it is.
 */
export function listenError(error: Error, { host, port }: ListenVariables): Error {
  const { code, syscall } = error as NodeJS.ErrnoException;
  const where = `${port.name} ${port.value} on ${host.name} ${host.value}`;
  if (syscall === 'getaddrinfo') {
    return new ConfigError(
      `Invalid configuration: ${host.name} ${host.value} cannot be resolved (${code})`,
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new ConfigError(
      `Invalid configuration: ${host.name} ${host.value} is not an address of this machine (${code})`,
    );
  }
  if (code === 'EADDRINUSE') {
    return new ConfigError(`Cannot listen: ${where} is already in use (${code})`);
  }
  if (code === 'EACCES') {
    return new ConfigError(`Cannot listen: ${where} needs privileges (${code})`);
  }
  return error;
}
