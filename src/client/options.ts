// ClientOptions: what a caller may set, and their validation into a complete, checked configuration.

import { X509Certificate } from 'node:crypto';
import { WS_PATH } from '../ws-protocol.js';
import { DEFAULTS, LIMITS } from './constants.js';
import { invalidArgument } from './errors.js';
import { pemCertificates } from './tls-trust.js';

export interface BackoffOptions {
  /** First delay between two full rounds over the endpoints; default 50. */
  readonly baseMs?: number;
  /** Largest such delay; default 2_000. Each delay is jittered. */
  readonly maxMs?: number;
}

export interface ClientOptions {
  /** Nodes as http(s)://host:port (ws(s):// is accepted too); the client speaks WebSocket at <endpoint>/v1/ws. */
  readonly endpoints: readonly string[];
  /** Deadline of one call, retries and failover included; default 30_000. */
  readonly requestTimeoutMs?: number;
  /** Deadline of one connection attempt; default 3_000. */
  readonly connectTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  /** Writes in flight per session; more wait their turn. Default 128. */
  readonly maxInflightWrites?: number;
  /** Events a watch keeps for a consumer that has not read them; beyond that it ends SLOW_CONSUMER. Default 10_000. */
  readonly watchBufferEvents?: number;
  /**
   * A client that writes moves its connection to the leader, among its endpoints, saving each
   * write the hop from a follower to the leader (see leader-affinity.ts), and sends the writes
   * of a realm whose raft group another endpoint leads over a connection to that endpoint
   * (realm-router.ts). Default true.
   */
  readonly preferLeader?: boolean;
  /**
   * The largest request, in bytes of its JSON message, the client sends. A larger one is
   * refused at once with TOO_LARGE (indeterminate: false), before it is sent. Default 1 MiB,
   * the node's WebSocket message limit. Set it higher only for nodes that accept more: a node
   * closes a connection that sends it a message over its limit (close code 1009), which the
   * client also reports as TOO_LARGE for that request, but a node drops the connection without
   * a word for a message over twice its limit, which the client cannot tell from a network fault.
   */
  readonly maxRequestBytes?: number;
  /**
   * PEM certificates of the authorities that sign the nodes' certificates (https:// endpoints),
   * trusted in addition to Node's bundled root certificates. A certificate the client cannot
   * verify fails a call at once with TLS_ERROR naming the problem.
   */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * The token sent to every node (`Authorization: Bearer` on the WebSocket upgrade), where the
   * cluster requires one: `conclave tokens create USER` makes one. Without a valid one each call
   * fails UNAUTHENTICATED; without the permission, PERMISSION_DENIED.
   */
  readonly token?: string;
}

/** ClientOptions with every default filled in and every value checked. */
export interface ResolvedOptions {
  /** The WebSocket URLs, in the order given. */
  readonly urls: readonly string[];
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly maxInflightWrites: number;
  readonly watchBufferEvents: number;
  readonly preferLeader: boolean;
  readonly maxRequestBytes: number;
  /** Extra trusted CA certificates, or undefined for Node's bundled roots only. */
  readonly ca: readonly (string | Buffer)[] | undefined;
  readonly token: string | undefined;
}

const OPTION_NAMES: ReadonlySet<string> = new Set([
  'endpoints',
  'requestTimeoutMs',
  'connectTimeoutMs',
  'backoff',
  'maxInflightWrites',
  'watchBufferEvents',
  'preferLeader',
  'maxRequestBytes',
  'ca',
  'token',
]);
const BACKOFF_NAMES: ReadonlySet<string> = new Set(['baseMs', 'maxMs']);

/** Checks `options` and fills in defaults; throws ConclaveError INVALID_ARGUMENT naming the bad option. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  checkKnown(options, OPTION_NAMES, 'options');
  const urls = resolveEndpoints(options.endpoints);
  const backoff = options.backoff ?? {};
  if (typeof backoff !== 'object' || backoff === null)
    throw invalidArgument('options.backoff must be an object');
  checkKnown(backoff, BACKOFF_NAMES, 'options.backoff');
  const backoffBaseMs = integerIn(
    backoff.baseMs,
    DEFAULTS.backoffBaseMs,
    'backoff.baseMs',
    1,
    LIMITS.timerMsMax,
  );
  const backoffMaxMs = integerIn(backoff.maxMs, DEFAULTS.backoffMaxMs, 'backoff.maxMs', 1, LIMITS.timerMsMax);
  if (backoffMaxMs < backoffBaseMs) {
    throw invalidArgument(
      `options.backoff.maxMs (${backoffMaxMs}) must be at least backoff.baseMs (${backoffBaseMs})`,
    );
  }
  return {
    urls,
    requestTimeoutMs: integerIn(
      options.requestTimeoutMs,
      DEFAULTS.requestTimeoutMs,
      'requestTimeoutMs',
      1,
      LIMITS.timerMsMax,
    ),
    connectTimeoutMs: integerIn(
      options.connectTimeoutMs,
      DEFAULTS.connectTimeoutMs,
      'connectTimeoutMs',
      1,
      LIMITS.timerMsMax,
    ),
    backoffBaseMs,
    backoffMaxMs,
    maxInflightWrites: integerIn(
      options.maxInflightWrites,
      DEFAULTS.maxInflightWrites,
      'maxInflightWrites',
      1,
      LIMITS.maxInflightWritesMax,
    ),
    watchBufferEvents: integerIn(
      options.watchBufferEvents,
      DEFAULTS.watchBufferEvents,
      'watchBufferEvents',
      1,
      LIMITS.watchBufferEventsMax,
    ),
    preferLeader: booleanOr(options.preferLeader, DEFAULTS.preferLeader, 'preferLeader'),
    maxRequestBytes: integerIn(
      options.maxRequestBytes,
      DEFAULTS.maxRequestBytes,
      'maxRequestBytes',
      64,
      LIMITS.maxRequestBytesMax,
    ),
    ca: resolveCa(options.ca),
    token: resolveToken(options.token),
  };
}

function resolveToken(token: unknown): string | undefined {
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || token.trim() === '' || /\s/.test(token.trim())) {
    throw invalidArgument(
      'options.token must be a non-empty string without spaces (conclave tokens create USER)',
    );
  }
  return token.trim();
}

function resolveCa(ca: unknown): (string | Buffer)[] | undefined {
  if (ca === undefined) return undefined;
  const list: unknown[] = Array.isArray(ca) ? ca : [ca];
  if (list.length === 0) throw invalidArgument('options.ca must name at least one certificate');
  for (const [i, entry] of list.entries()) {
    if ((typeof entry !== 'string' || entry === '') && !(Buffer.isBuffer(entry) && entry.length > 0)) {
      throw invalidArgument(`options.ca${Array.isArray(ca) ? `[${i}]` : ''} must be a PEM string or Buffer`);
    }
  }
  const certificates = list as (string | Buffer)[];
  for (const [i, entry] of certificates.entries()) {
    const where = `options.ca${Array.isArray(ca) ? `[${i}]` : ''}`;
    const blocks = pemCertificates(entry.toString('utf8'));
    if (blocks.length === 0)
      throw invalidArgument(`${where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    for (const block of blocks) {
      try {
        new X509Certificate(block);
      } catch (error) {
        throw invalidArgument(
          `${where} holds a certificate that cannot be read: ${(error as Error).message}`,
        );
      }
    }
  }
  return certificates;
}

function booleanOr(value: unknown, fallback: boolean, name: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgument(`options.${name} must be a boolean`);
  return value;
}

/** The WebSocket URL of an endpoint: http -> ws, https -> wss, WS_PATH appended to its path. */
export function webSocketUrl(endpoint: string, name: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw invalidArgument(`options.${name} is not a URL: ${JSON.stringify(endpoint)}`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (scheme === undefined) {
    throw invalidArgument(`options.${name} must be http(s)://host:port, not ${JSON.stringify(endpoint)}`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw invalidArgument(
      `options.${name} must not carry a query, fragment or credentials: ${JSON.stringify(endpoint)}`,
    );
  }
  url.protocol = scheme;
  url.pathname = url.pathname.replace(/\/+$/, '') + WS_PATH;
  return url.toString();
}

function resolveEndpoints(endpoints: unknown): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw invalidArgument('options.endpoints must be a non-empty array of http(s)://host:port');
  }
  if (endpoints.length > LIMITS.endpointsMax) {
    throw invalidArgument(
      `options.endpoints holds ${endpoints.length} entries, more than ${LIMITS.endpointsMax}`,
    );
  }
  const urls = endpoints.map((endpoint: unknown, i) => {
    if (typeof endpoint !== 'string') throw invalidArgument(`options.endpoints[${i}] must be a string`);
    return webSocketUrl(endpoint, `endpoints[${i}]`);
  });
  const duplicate = urls.find((url, i) => urls.indexOf(url) !== i);
  if (duplicate !== undefined) throw invalidArgument(`options.endpoints names ${duplicate} twice`);
  return urls;
}

function checkKnown(object: object, names: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!names.has(key)) throw invalidArgument(`${where}.${key} is not an option`);
  }
}

function integerIn(value: unknown, fallback: number, name: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`options.${name} must be an integer in ${min}..${max}, not ${String(value)}`);
  }
  return value;
}
