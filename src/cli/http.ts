// The CLI's HTTP calls: one request tried at each endpoint in turn until one answers, within a deadline.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { tlsFailureCode, tlsHint } from '../client/tls-trust.js';
import { isRetryable } from '../error-codes.js';

/** A failure the CLI reports as `conclave: CODE: message`; codes are the API's stable ones. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
    /** The rest of the error body: retryable, reason, leader, indeterminate, revision, … */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }

  /** As the answer says; for an error the CLI makes itself, as the one table says. */
  get retryable(): boolean {
    const said = this.details.retryable;
    return typeof said === 'boolean' ? said : isRetryable(this.code);
  }

  /** A write whose fate is unknown: it may still apply, so it is never sent again elsewhere. */
  get indeterminate(): boolean {
    return this.details.indeterminate === true;
  }

  get reason(): string | undefined {
    return typeof this.details.reason === 'string' ? this.details.reason : undefined;
  }
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type QueryValue = string | number | boolean | undefined;

export interface CallOptions {
  readonly query?: Readonly<Record<string, QueryValue>>;
  /** A JSON text sent as the body (already validated by the caller). */
  readonly body?: string;
  /**
   * Safe to send again to another endpoint after it may have reached one (reads). A call that
   * is not idempotent (every write: even a conditional one, sent twice, would answer CONFLICT
   * for its own success) moves on only when the request surely never arrived, or the answer
   * says it changed nothing.
   */
  readonly idempotent: boolean;
  /** A bound on this one request, below the client's deadline (e.g. for a poll). */
  readonly timeoutMs?: number;
  /**
   * Error codes that mean "not here" rather than "no": another endpoint may answer (e.g.
   * PERMISSION_DENIED from a node that does not run the admin service). When every endpoint
   * answers one of them, the first such answer is the call's error.
   */
  readonly elsewhereCodes?: readonly string[];
  /**
   * CONFLICT reasons that pass with time (raft refused before proposing, e.g. one membership
   * change at a time): the call is sent again, with backoff, until the deadline.
   */
  readonly retryReasons?: readonly string[];
}

/** Connection failures that mean the request was never delivered. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

/** How the CLI reaches its endpoints. */
export interface HttpSettings {
  /** PEM certificates trusted for https:// endpoints besides Node's bundled roots (--ca). */
  readonly ca?: readonly string[];
  /** Sent as `Authorization: Bearer TOKEN` with every request (--token, $CONCLAVE_TOKEN). */
  readonly token?: string;
}

/** The headers every request of `settings` carries. */
function authHeaders(settings: HttpSettings): Record<string, string> {
  return settings.token === undefined ? {} : { authorization: `Bearer ${settings.token}` };
}

const STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'TOO_LARGE',
  503: 'UNAVAILABLE',
  504: 'TIMEOUT',
};

const BACKOFF_MS_MIN = 100;
/**
 * How long a read waits for one endpoint before it tries the next: a hung node (stopped, or
 * cut off after accepting) must not hold a command for its whole --timeout. Writes wait the
 * whole time: a write that timed out may have applied, so it is not sent again elsewhere.
 */
const READ_ATTEMPT_MS = 5_000;
const BACKOFF_MS_MAX = 2000;
/** How much of a non-JSON answer goes into the error message. */
const BODY_EXCERPT_CHARS = 200;

/**
 * The endpoints of one command run. Each call tries the endpoints in order, starting with the
 * one that last answered. A connection failure or a retryable answer moves on to the next;
 * when every endpoint refused the connection the call fails at once, and when some answered
 * "retry" (no leader yet, an election) the round repeats with backoff until the deadline.
 */
export class ApiClient {
  private readonly order: string[];
  private readonly deadline: number;
  /** What the last failed attempt answered, for the message of a TIMEOUT. */
  private lastFailure: string | undefined;

  constructor(
    endpoints: readonly string[],
    readonly timeoutMs: number,
    private readonly settings: HttpSettings = {},
    private readonly now: () => number = Date.now,
  ) {
    if (endpoints.length === 0) throw new Error('ApiClient needs at least one endpoint');
    this.order = endpoints.map((e) => e.replace(/\/+$/, ''));
    this.deadline = now() + timeoutMs;
  }

  get endpoints(): readonly string[] {
    return this.order;
  }

  /** A client of the same endpoints (the one that last answered first) with a deadline of its own. */
  fork(timeoutMs: number): ApiClient {
    return new ApiClient(this.order, timeoutMs, this.settings, this.now);
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - this.now());
  }

  async call<T>(method: HttpMethod, path: string, options: CallOptions): Promise<T> {
    let backoffMs = BACKOFF_MS_MIN;
    for (;;) {
      const failures: string[] = [];
      let lastRetryable: ApiError | undefined;
      let notHere: ApiError | undefined;
      const tlsErrors: ApiError[] = [];
      for (const endpoint of [...this.order]) {
        const outcome = await this.attempt(endpoint, method, path, options);
        if (outcome.kind === 'answer') {
          this.prefer(endpoint);
          return outcome.body as T;
        }
        if (outcome.kind === 'final') {
          // Out of time before this attempt: say what the last one answered.
          if (outcome.error.code === 'TIMEOUT' && this.lastFailure !== undefined && failures.length === 0) {
            throw new ApiError('TIMEOUT', `${outcome.error.message}; the last answer: ${this.lastFailure}`);
          }
          throw outcome.error;
        }
        failures.push(`${endpoint}: ${outcome.error.message}`);
        this.lastFailure = `${endpoint}: ${outcome.error.code}: ${outcome.error.message}`;
        if (outcome.kind === 'retry') lastRetryable = outcome.error;
        if (outcome.kind === 'elsewhere') notHere ??= outcome.error;
        if (outcome.error.code === 'TLS_ERROR') tlsErrors.push(outcome.error);
      }
      if (lastRetryable === undefined) {
        if (notHere !== undefined) throw notHere;
        // No endpoint could be reached over TLS: waiting will not change that.
        if (tlsErrors.length === this.order.length) throw tlsErrors[0]!;
        throw new ApiError('UNAVAILABLE', `no endpoint answered (${failures.join('; ')})`);
      }
      if (this.remainingMs() === 0) {
        if (lastRetryable.code === 'TIMEOUT') throw lastRetryable;
        throw new ApiError('TIMEOUT', `gave up after ${this.timeoutMs} ms: ${failures.join('; ')}`);
      }
      await sleep(Math.min(backoffMs, this.remainingMs()));
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
    }
  }

  /**
   * `GET path` at every endpoint at once; each answer or failure in endpoint order. For views
   * that differ by node (one node's status), where the caller picks the best.
   */
  async each<T>(
    path: string,
  ): Promise<({ endpoint: string; body: T } | { endpoint: string; error: ApiError })[]> {
    return Promise.all(
      this.order.map(async (endpoint) => {
        const outcome = await this.attempt(endpoint, 'GET', path, { idempotent: true });
        return outcome.kind === 'answer'
          ? { endpoint, body: outcome.body as T }
          : { endpoint, error: outcome.error };
      }),
    );
  }

  private async attempt(
    endpoint: string,
    method: HttpMethod,
    path: string,
    options: CallOptions,
  ): Promise<
    | { kind: 'answer'; body: unknown }
    | { kind: 'next'; error: ApiError }
    | { kind: 'elsewhere'; error: ApiError }
    | { kind: 'retry'; error: ApiError }
    | { kind: 'final'; error: ApiError }
  > {
    const remainingMs = this.remainingMs();
    if (remainingMs === 0) {
      return { kind: 'final', error: new ApiError('TIMEOUT', `gave up after ${this.timeoutMs} ms`) };
    }
    const timeoutMs = Math.min(
      remainingMs,
      options.timeoutMs ?? (options.idempotent ? READ_ATTEMPT_MS : remainingMs),
    );
    const url = endpoint + path + queryString(options.query);
    let response: HttpAnswer;
    try {
      response = await send(url, method, options.body, timeoutMs, this.settings);
    } catch (error) {
      return transportFailure(error, endpoint, timeoutMs, options.idempotent);
    }
    const { text } = response;
    if (response.status >= 200 && response.status < 300) {
      try {
        return { kind: 'answer', body: text === '' ? null : JSON.parse(text) };
      } catch {
        return { kind: 'final', error: new ApiError('INTERNAL', `${endpoint} answered ${excerpt(text)}`) };
      }
    }
    const error = errorFromAnswer(response.status, text, endpoint);
    if (options.elsewhereCodes?.includes(error.code)) return { kind: 'elsewhere', error };
    if (
      error.code === 'CONFLICT' &&
      error.reason !== undefined &&
      options.retryReasons?.includes(error.reason)
    ) {
      return { kind: 'retry', error };
    }
    if (!error.retryable) return { kind: 'final', error };
    if (error.indeterminate && !options.idempotent) return { kind: 'final', error };
    return { kind: 'retry', error };
  }

  /**
   * `GET path` at `endpoint` for a body too large to hold: resolves with the response stream
   * once a 200 arrives, throws the API's error otherwise. The connection is given up after
   * `idleMs` without a byte (also while the node prepares the answer).
   */
  download(endpoint: string, path: string, idleMs: number): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const target = new URL(endpoint + path);
      const onResponse = (response: IncomingMessage) => {
        if (response.statusCode === 200) {
          resolve(response);
          return;
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () =>
          reject(errorFromAnswer(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), endpoint)),
        );
      };
      const request =
        target.protocol === 'https:'
          ? httpsRequest(
              target,
              {
                method: 'GET',
                headers: authHeaders(this.settings),
                ...(this.settings.ca === undefined ? {} : { ca: [...rootCertificates, ...this.settings.ca] }),
              },
              onResponse,
            )
          : httpRequest(target, { method: 'GET', headers: authHeaders(this.settings) }, onResponse);
      request.setTimeout(idleMs, () =>
        request.destroy(new ApiError('TIMEOUT', `${endpoint} sent nothing for ${idleMs} ms`)),
      );
      request.on('error', (error) => {
        if (error instanceof ApiError) reject(error);
        else reject(transportFailure(error, endpoint, idleMs, true).error);
      });
      request.end();
    });
  }

  private prefer(endpoint: string): void {
    const index = this.order.indexOf(endpoint);
    if (index > 0) {
      this.order.splice(index, 1);
      this.order.unshift(endpoint);
    }
  }
}

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

/**
 * One HTTP(S) exchange: resolves with the status and the whole body, rejects with the
 * transport's error (a TimeoutError once `timeoutMs` has passed). node:http rather than
 * fetch, since fetch cannot be told which CAs to trust.
 */
function send(
  url: string,
  method: HttpMethod,
  body: string | undefined,
  timeoutMs: number,
  settings: HttpSettings,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const fail = (error: unknown) => reject(signal.aborted ? signal.reason : error);
    const target = new URL(url);
    const headers: Record<string, string | number> =
      body === undefined
        ? authHeaders(settings)
        : {
            ...authHeaders(settings),
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body, 'utf8'),
          };
    const onResponse = (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', fail);
      response.on('aborted', () => fail(new Error('the connection closed mid-answer')));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    };
    const request =
      target.protocol === 'https:'
        ? httpsRequest(
            target,
            {
              method,
              headers,
              signal,
              ...(settings.ca === undefined ? {} : { ca: [...rootCertificates, ...settings.ca] }),
            },
            onResponse,
          )
        : httpRequest(target, { method, headers, signal }, onResponse);
    request.on('error', fail);
    request.end(body);
  });
}

function transportFailure(
  error: unknown,
  endpoint: string,
  timeoutMs: number,
  idempotent: boolean,
): { kind: 'next' | 'retry' | 'final'; error: ApiError } {
  const tlsCode = tlsFailureCode(error);
  if (tlsCode !== undefined) {
    // The handshake failed: the request was never sent, so any endpoint may be tried.
    const detail = (error as Error).message;
    return {
      kind: 'next',
      error: new ApiError(
        'TLS_ERROR',
        `TLS with ${endpoint} failed: ${tlsCode}: ${detail} (${tlsHint(tlsCode)})`,
      ),
    };
  }
  const name = (error as { name?: string }).name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    const timedOut = new ApiError(
      'TIMEOUT',
      `${endpoint} did not answer within ${timeoutMs} ms`,
      idempotent ? {} : { indeterminate: true },
    );
    return { kind: idempotent ? 'retry' : 'final', error: timedOut };
  }
  const code = (error as { code?: unknown }).code;
  const detail = (error as Error).message ?? String(error);
  if (idempotent || (typeof code === 'string' && NOT_SENT_CODES.has(code))) {
    return { kind: 'next', error: new ApiError('UNAVAILABLE', detail) };
  }
  return {
    kind: 'final',
    error: new ApiError(
      'UNAVAILABLE',
      `the connection to ${endpoint} failed mid-request (${detail}); the write may or may not have applied`,
      { indeterminate: true },
    ),
  };
}

/** The API's error body `{code, message, retryable, ...}`, or a stand-in for a foreign answer. */
function errorFromAnswer(status: number, text: string, endpoint: string): ApiError {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (typeof body === 'object' && body !== null && typeof body.code === 'string') {
      const { code, message, ...details } = body;
      return new ApiError(code, typeof message === 'string' ? message : code, details);
    }
  } catch {
    // Not the API's body: a proxy, or not a conclave node at all.
  }
  const code = STATUS_CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'INTERNAL');
  return new ApiError(code, `${endpoint} answered HTTP ${status}: ${excerpt(text)}`, {
    retryable: status === 502 || status === 503 || status === 504,
  });
}

function queryString(query: CallOptions['query']): string {
  if (query === undefined) return '';
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat === '') return '(empty body)';
  return flat.length > BODY_EXCERPT_CHARS ? `${flat.slice(0, BODY_EXCERPT_CHARS)}…` : flat;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `/v1/realms/{realm}/kv/{key}` with both parts encoded (see http-api.ts on keys with '/'). */
export function documentPath(realm: string, key: string): string {
  return `/v1/realms/${encodeURIComponent(realm)}/kv/${encodeURIComponent(key)}`;
}
