// Operating errors of net/: classes with stable codes that callers branch on and logs carry.

/**
 * Stable codes of the mesh and the edge. A code is never renamed or reused for another
 * meaning; callers (src/) branch on `code`, never on the message text.
 */
export type NetErrorCode =
  /** A configuration value is out of bounds; `setting` names it. */
  | 'INVALID_CONFIG'
  /** Bytes from a peer do not decode; the stream that carried them is closed. */
  | 'MALFORMED_FRAME'
  /** A frame (or a message, or a request) is larger than its limit. */
  | 'FRAME_TOO_LARGE'
  /** The cluster secret file is missing, unreadable, malformed or too open. */
  | 'INVALID_SECRET'
  /** The node key file is unreadable, malformed or too open. */
  | 'INVALID_NODE_KEY'
  /** The remote did not prove the cluster secret; its connection is closed. */
  | 'UNAUTHENTICATED'
  /** The peer is not connected (or not authenticated) right now; retry later or elsewhere. */
  | 'UNAVAILABLE'
  /** A deadline passed before the answer came; the operation's fate is unknown. */
  | 'TIMEOUT'
  /** Too many requests or transfers in flight; retry later. */
  | 'OVERLOADED'
  /** The remote handler failed; `remoteCode` carries its code. */
  | 'REMOTE_ERROR'
  /** The component is not started, or is stopping. */
  | 'STOPPED'
  /** The caller cancelled the operation. */
  | 'ABORTED';

/** Base class of net/'s operating errors. */
export class NetError extends Error {
  readonly code: NetErrorCode;
  /**
   * For a request: true when it was refused before any byte of it left this node (not
   * connected, no stream, too many outstanding), so it certainly did not take effect remotely.
   */
  readonly notSent: boolean;

  constructor(code: NetErrorCode, detail: string, options?: { cause?: unknown; notSent?: boolean }) {
    super(`${code}: ${detail}`, options);
    this.name = 'NetError';
    this.code = code;
    this.notSent = options?.notSent ?? false;
  }
}

/** A configuration value out of bounds; the message names the setting, the bound and the value. */
export class NetConfigError extends NetError {
  readonly setting: string;

  constructor(setting: string, detail: string) {
    super('INVALID_CONFIG', `${setting} ${detail}`);
    this.name = 'NetConfigError';
    this.setting = setting;
  }
}

/** Input from a peer that does not decode; `reason` is a short phrase fit for a log line. */
export class MalformedFrameError extends NetError {
  readonly reason: string;

  constructor(reason: string) {
    super('MALFORMED_FRAME', reason);
    this.name = 'MalformedFrameError';
    this.reason = reason;
  }
}

/** A frame, message or request larger than its limit. */
export class FrameTooLargeError extends NetError {
  readonly bytes: number;
  readonly limitBytes: number;

  constructor(what: string, bytes: number, limitBytes: number) {
    super('FRAME_TOO_LARGE', `${what} of ${bytes} bytes exceeds the limit of ${limitBytes} bytes`);
    this.name = 'FrameTooLargeError';
    this.bytes = bytes;
    this.limitBytes = limitBytes;
  }
}

/** The remote handler of a forwarded request failed with its own stable code. */
export class RemoteError extends NetError {
  readonly remoteCode: string;
  readonly remoteMessage: string;

  constructor(remoteCode: string, remoteMessage: string) {
    super('REMOTE_ERROR', `${remoteCode}: ${remoteMessage}`);
    this.name = 'RemoteError';
    this.remoteCode = remoteCode;
    this.remoteMessage = remoteMessage;
  }
}

/** Turns anything thrown into a short string for a log field. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.length > 0 ? `${err.name}: ${err.message}` : err.name;
  return String(err);
}
