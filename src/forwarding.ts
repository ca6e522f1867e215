// Sending a client's or an operator's request to another node over the mesh, and what its failures mean.

import { MESH_DEFAULTS, type Mesh, NetError, RemoteError } from '../net/index.js';
import { decodePeerAnswer, encodePeerMessage, type PeerRequest } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';

/** Codes a leader answers a forwarded write with before proposing it: the write did not happen. */
const DEFINITE_REMOTE_CODES: ReadonlySet<string> = new Set([
  'NOT_LEADER',
  'NO_LEADER',
  'TOO_LARGE',
  'INVALID_ARGUMENT',
  'REMOVED',
]);

/** A failure carried as a value, so that its code, reason, leader and fate survive the hop. */
export interface PeerFailure {
  readonly code: string;
  readonly message: string;
  readonly reason?: string;
  readonly leader?: string;
  /** The request may still take effect (a write whose fate is unknown). */
  readonly indeterminate?: boolean;
}

/** An answer carried as a value: what `answerOf` builds on the serving side. */
export type PeerAnswer<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: PeerFailure };

/** Runs `run` for a peer and answers its outcome as a value (never rejects). */
export async function answerOf<T>(run: () => Promise<T> | T): Promise<PeerAnswer<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error: failureOf(error) };
  }
}

/** The code, message and details of a thrown error, as a value. */
export function failureOf(error: unknown): PeerFailure {
  const fields = error as {
    code?: unknown;
    message?: unknown;
    reason?: unknown;
    leader?: unknown;
    indeterminate?: unknown;
  };
  const code = typeof fields.code === 'string' ? fields.code : 'INTERNAL';
  return {
    // A stopped driver means this node is going away: retry elsewhere.
    code: code === 'STOPPED' ? 'UNAVAILABLE' : code,
    message: typeof fields.message === 'string' ? fields.message : String(error),
    ...(typeof fields.reason === 'string' ? { reason: fields.reason } : {}),
    ...(typeof fields.leader === 'string' ? { leader: fields.leader } : {}),
    ...(fields.indeterminate === true ? { indeterminate: true } : {}),
  };
}

/** The error a caller throws for a failure that came back as a value. */
export function errorOf(failure: PeerFailure): Error {
  return Object.assign(new Error(failure.message), failure);
}

export interface ForwardOptions {
  readonly timeoutMs: number;
  /** The node's name, for messages and for the `leader` field of NOT_LEADER answers. */
  readonly target: string;
  /**
   * Whether a failure after the request left may have taken effect (a write): such failures
   * are indeterminate TIMEOUTs; a read's are retryable UNAVAILABLE.
   */
  readonly mayApply: boolean;
}

/**
 * Sends `request` to `peer` and resolves with its decoded answer. Throws an Error with a
 * string `code`:
 * - the remote's own code (RemoteError), with `leader` set to the target and `indeterminate`
 *   unless the code is one a node answers before acting;
 * - UNAVAILABLE (definite) if the request never left this node;
 * - TIMEOUT, indeterminate for a request that may apply, otherwise UNAVAILABLE, if the answer
 *   did not come (the connection closed, the deadline passed).
 */
export async function forward<T>(
  mesh: Mesh,
  peer: string,
  request: PeerRequest,
  options: ForwardOptions,
): Promise<T> {
  let payload: Uint8Array;
  try {
    payload = await mesh.request(peer, encodePeerMessage(request), { timeoutMs: options.timeoutMs });
  } catch (error) {
    if (error instanceof RemoteError) {
      throw Object.assign(new Error(error.remoteMessage), {
        code: error.remoteCode,
        leader: options.target,
        ...(options.mayApply && !DEFINITE_REMOTE_CODES.has(error.remoteCode) ? { indeterminate: true } : {}),
      });
    }
    if (error instanceof NetError && error.notSent) {
      throw new DriverError(
        'UNAVAILABLE',
        `${options.target} is not reachable from here: ${error.message}`,
        options.target,
      );
    }
    if (!options.mayApply) {
      throw new DriverError(
        'UNAVAILABLE',
        `asking ${options.target} failed: ${(error as Error).message}`,
        options.target,
      );
    }
    throw new DriverError(
      'TIMEOUT',
      `forwarding to ${options.target} failed: ${(error as Error).message}`,
      options.target,
      true,
    );
  }
  try {
    return decodePeerAnswer<T>(payload);
  } catch {
    throw new DriverError(
      'UNAVAILABLE',
      `${options.target} answered something that is not JSON`,
      options.target,
    );
  }
}

/** Like forward, for requests answered as values (answerOf): a failure value is thrown as its error. */
export async function forwardForValue<T>(
  mesh: Mesh,
  peer: string,
  request: PeerRequest,
  options: ForwardOptions,
): Promise<T> {
  const answer = await forward<PeerAnswer<T>>(mesh, peer, request, options);
  if (typeof answer !== 'object' || answer === null || typeof answer.ok !== 'boolean') {
    throw new DriverError('UNAVAILABLE', `${options.target} answered in an unknown shape`, options.target);
  }
  if (!answer.ok) throw errorOf(answer.error);
  return answer.value;
}

/** What LeaderForwarder needs from its node. */
export interface LeaderForwarderInit {
  /** This node's name. */
  readonly name: string;
  /** Resolves with the leader's name once one is known (rejects with NO_LEADER/TIMEOUT after `timeoutMs`). */
  readonly waitForLeader: (timeoutMs: number) => Promise<string>;
  readonly mesh: Mesh | undefined;
  /** The mesh peer id of a member, by name. */
  readonly peerOf: (name: string) => string | undefined;
  readonly requestTimeoutMs: number;
}

/**
 * Runs requests on the raft leader: here if this node leads (or runs without a mesh, alone),
 * otherwise sent to the leader, which carries it out or refuses (one hop: never forwarded again).
 */
export class LeaderForwarder {
  constructor(private readonly init: LeaderForwarderInit) {}

  /**
   * `here` runs on this node if it leads; otherwise `request` goes to the leader. With
   * `answeredAsValue`, the leader answers with answerOf's value (admin requests); otherwise with
   * the result itself, its failures as remote errors (writes). Throws as forward() does, and
   * NOT_LEADER (definite, with `leader`) when the leader is known but not connected.
   */
  async run<T>(
    request: PeerRequest,
    here: () => Promise<T>,
    options: { readonly timeoutMs?: number; readonly answeredAsValue?: boolean } = {},
  ): Promise<T> {
    const { name, mesh, requestTimeoutMs } = this.init;
    const leader = await this.init.waitForLeader(requestTimeoutMs);
    if (leader === name || mesh === undefined) return here();
    const peer = this.init.peerOf(leader);
    if (peer === undefined) {
      throw new DriverError('NOT_LEADER', `the leader ${leader} is not reachable from here yet`, leader);
    }
    const forwardOptions = {
      timeoutMs: options.timeoutMs ?? requestTimeoutMs,
      target: leader,
      mayApply: true,
    };
    return options.answeredAsValue
      ? forwardForValue<T>(mesh, peer, request, forwardOptions)
      : forward<T>(mesh, peer, request, forwardOptions);
  }
}

/** Mesh payloads carry a client request and its framing: room for the largest a client may send. */
export function meshRequestBytes(maxRequestBytes: number): number {
  return Math.min(
    MESH_DEFAULTS.maxFrameBytes - 64,
    Math.max(MESH_DEFAULTS.maxRequestBytes, maxRequestBytes * 2 + 64 * 1024),
  );
}
