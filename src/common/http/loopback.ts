const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Whether a host name (as configured, or a URL's, with IPv6 in brackets) is this machine. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.replace(/^\[(.*)\]$/, '$1'));
}

/** Whether a URL is https, or http to this machine: what may be trusted to say who is who. */
export function authenticatedUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname));
  } catch {
    return false;
  }
}
