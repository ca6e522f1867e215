// The client's defaults and hard limits, in one place so a reader can see every bound at once.

/** Defaults of ClientOptions. */
export const DEFAULTS = Object.freeze({
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 3_000,
  backoffBaseMs: 50,
  backoffMaxMs: 2_000,
  maxInflightWrites: 128,
  watchBufferEvents: 10_000,
  preferLeader: true,
  /**
   * The node's WebSocket message limit when nothing else is configured (net/edge.ts,
   * EDGE_DEFAULTS.maxWsPayloadBytes); the node closes a connection that sends more with 1009.
   */
  maxRequestBytes: 1024 * 1024,
});

/** The bounds ClientOptions are validated against. */
export const LIMITS = Object.freeze({
  endpointsMax: 256,
  /** setTimeout's largest delay. */
  timerMsMax: 2 ** 31 - 1,
  maxInflightWritesMax: 4096,
  watchBufferEventsMax: 10_000_000,
  /** The most a node can be configured to accept in one WebSocket message (net/edge.ts). */
  maxRequestBytesMax: 512 * 1024 * 1024,
});

/** A link that has not been heard from (message or pong) for this long is presumed dead. */
export const HEARTBEAT_INTERVAL_MS = 10_000;

/** close() waits this long for the node to acknowledge the close frame before dropping the socket. */
export const CLOSE_GRACE_MS = 1_000;

/** Largest message accepted from a node (a list page of large documents fits well below). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Retryable error answers from one connection in a row before the client moves to another node. */
export const ERRORS_BEFORE_ROTATE = 2;

/** A write may renew an expired session (never sent under it before) at most this many times. */
export const SESSION_RENEWALS_MAX = 1;

/** A writing client checks at most this often whether its node is the leader (leader-affinity.ts). */
export const LEADER_CHECK_INTERVAL_MS = 1_000;
