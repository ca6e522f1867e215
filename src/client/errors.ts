// ConclaveError, the one error type the client throws, and how wire errors become it.

import { ERROR_CODES, type ErrorCode } from '../error-codes.js';
import type { WsError } from '../ws-protocol.js';

/**
 * Codes the client throws: the one table of error-codes.ts, the node's codes and the client's
 * own (CLOSED, SLOW_CONSUMER, TLS_ERROR: no endpoint could be reached over TLS, the message
 * names Node's code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT). A node may add codes; `code` stays a
 * string.
 */
export type ConclaveErrorCode = ErrorCode;

/** Codes that mean "try again, here or at another node", whatever the answer's `retryable` says. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(
  (Object.keys(ERROR_CODES) as ErrorCode[]).filter((code) => ERROR_CODES[code].retryable),
);

export interface ConclaveErrorDetails {
  readonly retryable?: boolean;
  readonly indeterminate?: boolean;
  readonly leader?: string;
  readonly revision?: number;
  readonly cause?: unknown;
}

/**
 * Every failure of a Client call. `code` is stable (ConclaveErrorCode). `retryable`: the same
 * call may succeed if made again. `indeterminate`: a write whose fate is unknown (it may or may
 * not have applied); false means it definitely did not apply. `leader`: the leader's node name
 * when known (NOT_LEADER, NO_LEADER). `revision`: for COMPACTED the node's current revision;
 * for a watch that ended (SLOW_CONSUMER, TIMEOUT) the revision of the last event delivered.
 */
export class ConclaveError extends Error {
  override readonly name = 'ConclaveError';
  readonly code: ConclaveErrorCode | (string & {});
  readonly retryable: boolean;
  readonly indeterminate: boolean;
  readonly leader?: string;
  readonly revision?: number;

  constructor(code: ConclaveErrorCode | (string & {}), message: string, details: ConclaveErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.retryable = details.retryable ?? RETRYABLE_CODES.has(code);
    this.indeterminate = details.indeterminate ?? false;
    if (details.leader !== undefined) this.leader = details.leader;
    if (details.revision !== undefined) this.revision = details.revision;
  }
}

/** The connection a request was sent on went away before its answer came: resend elsewhere. */
export class ConnectionLostError extends ConclaveError {
  constructor(endpoint: string) {
    super('UNAVAILABLE', `the connection to ${endpoint} was lost`);
  }
}

/**
 * A request refused for its size without the cluster reading it: over maxRequestBytes and not
 * sent (`sent` false), or sent and refused by the node with a 1009 close (`sent` true).
 */
export class TooLargeError extends ConclaveError {
  constructor(
    message: string,
    readonly sent: boolean,
  ) {
    super('TOO_LARGE', message, { indeterminate: false });
  }
}

/** The error a node answered, as a ConclaveError. */
export function errorFromWire(error: WsError): ConclaveError {
  return new ConclaveError(error.code, error.message, {
    retryable: error.retryable || RETRYABLE_CODES.has(error.code),
    indeterminate: error.indeterminate === true,
    ...(error.leader === undefined ? {} : { leader: error.leader }),
    ...(error.revision === undefined ? {} : { revision: error.revision }),
  });
}

/** The same error with a different indeterminacy (a write's fate is judged by the client, not one answer). */
export function withIndeterminate(error: ConclaveError, indeterminate: boolean): ConclaveError {
  if (error.indeterminate === indeterminate) return error;
  return new ConclaveError(error.code, error.message, {
    retryable: error.retryable,
    indeterminate,
    ...(error.leader === undefined ? {} : { leader: error.leader }),
    ...(error.revision === undefined ? {} : { revision: error.revision }),
    ...(error.cause === undefined ? {} : { cause: error.cause }),
  });
}

export function invalidArgument(message: string): ConclaveError {
  return new ConclaveError('INVALID_ARGUMENT', message);
}

export function closedError(): ConclaveError {
  return new ConclaveError('CLOSED', 'the client is closed');
}
