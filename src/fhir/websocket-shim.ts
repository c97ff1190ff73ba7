/**
 * @medplum/core reads `WebSocket.CLOSING` and `WebSocket.CLOSED` when it loads (for its client,
 * which CareVault does not use); Node 20 has no global WebSocket, so the import would throw.
 * Give it the constants only: anything that tries to open a socket fails loudly.
 */
if (!('WebSocket' in globalThis)) {
  Object.defineProperty(globalThis, 'WebSocket', {
    configurable: true,
    writable: true,
    value: class UnavailableWebSocket {
      static readonly CONNECTING = 0;
      static readonly OPEN = 1;
      static readonly CLOSING = 2;
      static readonly CLOSED = 3;
      constructor() {
        throw new Error('WebSocket is not available in this Node.js version');
      }
    },
  });
}

export {};
