// One WebSocket to one node: dialing it under a deadline, sending text, a heartbeat that finds a dead peer.

import { rootCertificates } from 'node:tls';
import { WebSocket } from 'ws';
import { HEARTBEAT_INTERVAL_MS, MAX_MESSAGE_BYTES } from './constants.js';
import { tlsFailureCode } from './tls-trust.js';

export interface LinkEvents {
  /** A text message arrived (binary messages are not part of the protocol and are dropped). */
  onMessage(link: Link, text: string): void;
  /** The socket closed, for any reason; called once. */
  onClose(link: Link): void;
}

/**
 * The outcome of a dial: the open socket, or why there is none. `tlsCode`: set when TLS
 * failed (the node's certificate could not be verified, or the endpoint does not speak TLS as
 * expected) — Node's error code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED,
 * ERR_TLS_CERT_ALTNAME_INVALID. Trying again does not help with such a failure.
 */
export type DialResult =
  | { readonly socket: WebSocket }
  | { readonly socket: undefined; readonly reason: string; readonly tlsCode?: string };

/** How to dial: for wss:// URLs, the CA certificates trusted besides Node's bundled roots. */
export interface DialSettings {
  readonly ca?: readonly (string | Buffer)[] | undefined;
  /** Sent on the upgrade as `Authorization: Bearer TOKEN`: every request on the socket carries it. */
  readonly token?: string | undefined;
}

/**
 * Opens a WebSocket to `url`; `done` receives the open socket, or the reason it failed or
 * took longer than `timeoutMs`. Returns a cancel function (after which `done` is not called).
 * `done` is never called synchronously.
 */
export function dial(
  url: string,
  timeoutMs: number,
  done: (result: DialResult) => void,
  settings: DialSettings = {},
): () => void {
  let settled = false;
  let socket: WebSocket | undefined;
  let reason = 'the connection closed during the handshake';
  let tlsCode: string | undefined;
  const settle = (result: DialResult) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(result);
  };
  const timer = setTimeout(() => {
    socket?.terminate();
    settle({ socket: undefined, reason: `no connection within ${timeoutMs} ms` });
  }, timeoutMs);
  try {
    socket = new WebSocket(url, {
      handshakeTimeout: timeoutMs,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      followRedirects: false,
      ...(settings.token === undefined ? {} : { headers: { authorization: `Bearer ${settings.token}` } }),
      ...(settings.ca === undefined ? {} : { ca: [...rootCertificates, ...settings.ca] }),
    });
  } catch (error) {
    queueMicrotask(() => settle({ socket: undefined, reason: String(error) }));
    return () => {
      settled = true;
      clearTimeout(timer);
    };
  }
  const opened = socket;
  // ws emits 'error' before 'close'; an 'error' without a listener would crash the process.
  opened.on('error', (error) => {
    reason = error.message;
    tlsCode ??= tlsFailureCode(error);
  });
  opened.once('open', () => settle({ socket: opened }));
  opened.once('close', () =>
    settle(tlsCode === undefined ? { socket: undefined, reason } : { socket: undefined, reason, tlsCode }),
  );
  return () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    opened.terminate();
  };
}

/** An open connection to one node. Owned by Connection; everything else only sends on it. */
export class Link {
  /** True once the node sent a message: it speaks the protocol, not just TCP. */
  heardFrom = false;
  /**
   * Once closed: the close code the node sent (e.g. 1009, a message too large), or undefined
   * when the link was closed by this side, failed locally, or was dropped without a close frame.
   */
  closeCode: number | undefined;
  /** Set by close() and terminate() and by a local failure: the close is not the node's doing. */
  private closedHere = false;
  private alive = true;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(
    /** Distinguishes links in logs and maps; increases with every link the client opens. */
    readonly id: number,
    readonly url: string,
    private readonly socket: WebSocket,
    private readonly events: LinkEvents,
  ) {
    socket.on('message', (data, isBinary) => this.receive(data, isBinary));
    socket.on('pong', () => {
      this.alive = true;
    });
    // ws also reports its own failures (e.g. an oversized message from the node) here, then closes.
    socket.on('error', () => {
      this.closedHere = true;
    });
    socket.once('close', (code) => this.onSocketClose(code));
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_INTERVAL_MS);
    this.heartbeat.unref();
  }

  get isOpen(): boolean {
    return !this.closed && this.socket.readyState === WebSocket.OPEN;
  }

  /** Queues `text` for the node; false if the link is no longer open (the text is not sent). */
  send(text: string): boolean {
    if (!this.isOpen) return false;
    this.socket.send(text);
    return true;
  }

  /** Closes with a close frame, then drops the socket if the node has not answered within `graceMs`. */
  close(graceMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    const timer = setTimeout(() => this.socket.terminate(), graceMs);
    this.closeWaiters.push(() => clearTimeout(timer));
    this.closedHere = true;
    this.socket.close(1000);
    return closed;
  }

  /** Drops the socket at once. */
  terminate(): void {
    if (this.closed) return;
    this.closedHere = true;
    this.socket.terminate();
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.alive = true;
    if (isBinary || this.closed) return;
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    this.heardFrom = true;
    this.events.onMessage(this, text);
  }

  private beat(): void {
    if (!this.alive) {
      this.terminate();
      return;
    }
    this.alive = false;
    if (this.socket.readyState === WebSocket.OPEN) this.socket.ping();
  }

  private onSocketClose(code: number): void {
    this.closed = true;
    // 1005: a close frame without a code; 1006: no close frame at all (both set by ws itself).
    if (!this.closedHere && code !== 1005 && code !== 1006) this.closeCode = code;
    clearInterval(this.heartbeat);
    for (const waiter of this.closeWaiters.splice(0)) waiter();
    this.events.onClose(this);
  }
}
