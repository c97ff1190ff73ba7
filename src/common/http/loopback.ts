const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Whether a host name (as configured, or a URL's, with IPv6 in brackets) is this machine. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.replace(/^\[(.*)\]$/, '$1'));
}
