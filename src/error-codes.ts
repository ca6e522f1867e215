// The one table of the client API's error codes: HTTP status, retryable, whether the outcome may be unknown; and the WebSocket close codes.

/** What a client may conclude from an error code. */
export interface ErrorCodeInfo {
  /** The HTTP status it answers with; undefined for codes only the client library raises. */
  readonly status: number | undefined;
  /** True if retrying may succeed: at this node, or (REMOVED) only at another one. */
  readonly retryable: boolean;
  /**
   * True if a write answered with this code may still take effect (the answer then carries
   * `"indeterminate": true`); false if such an answer always means it did not.
   */
  readonly mayBeIndeterminate: boolean;
}

const code = (status: number | undefined, retryable: boolean, mayBeIndeterminate: boolean): ErrorCodeInfo =>
  Object.freeze({ status, retryable, mayBeIndeterminate });

/**
 * Every stable error code, never renamed or reused. The edge (net/edge.ts, through
 * ERROR_TABLE), the HTTP and WebSocket APIs, the watch hub and the client library all read
 * status and retryability here and nowhere else.
 */
export const ERROR_CODES = Object.freeze({
  INVALID_ARGUMENT: code(400, false, false),
  UNAUTHENTICATED: code(401, false, false),
  PERMISSION_DENIED: code(403, false, false),
  READ_ONLY: code(403, false, false),
  NOT_FOUND: code(404, false, false),
  CONFLICT: code(409, false, false),
  /** A watch or read below the retained history; the error carries the current `revision`. */
  COMPACTED: code(410, false, false),
  /** The session is gone; a retried write's fate is then unknown. */
  SESSION_EXPIRED: code(410, false, true),
  /** This node was removed from the cluster: retry at another node, never here. */
  REMOVED: code(410, true, false),
  TOO_LARGE: code(413, false, false),
  INTERNAL: code(500, false, true),
  NO_LEADER: code(503, true, true),
  NOT_LEADER: code(503, true, false),
  UNAVAILABLE: code(503, true, true),
  TIMEOUT: code(504, true, true),
  /** Client library only: the node closed the connection because the client read too slowly. */
  SLOW_CONSUMER: code(undefined, false, false),
  /** Client library only: a certificate could not be verified. */
  TLS_ERROR: code(undefined, false, false),
  /** Client library only: the client was closed. */
  CLOSED: code(undefined, false, true),
});

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `value` is one of the codes above. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

/** The HTTP status of `value`, or undefined if it is no code the API answers with. */
export function errorStatus(value: string): number | undefined {
  return isErrorCode(value) ? ERROR_CODES[value].status : undefined;
}

/** Whether `value` is a code that may be retried (unknown codes are not). */
export function isRetryable(value: string): boolean {
  return isErrorCode(value) && ERROR_CODES[value].retryable;
}

/** WebSocket close codes the node uses. */
export const CLOSE_CODES = Object.freeze({
  /** The node is stopping (drain, rolling upgrade): reconnect elsewhere. */
  GOING_AWAY: 1001,
  /**
   * A message over the node's limit, up to twice that. Beyond twice that uWS closes the TCP
   * connection as soon as it reads the frame header, with no close frame: 1006 at the client.
   * (So does a text frame that is not UTF-8, where RFC 6455 would close with 1007.)
   */
  TOO_LARGE: 1009,
  /** The client read too slowly: more than the node's backpressure limit waited to be sent. */
  SLOW_CONSUMER: 4008,
});

/** The table as the edge takes it (net/ owns no domain codes): see EdgeErrorTable in net/edge.ts. */
export const ERROR_TABLE = Object.freeze({
  status: errorStatus,
  retryable: isRetryable,
  closeCodes: CLOSE_CODES,
});
