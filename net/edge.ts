// The client edge: uWebSockets.js HTTP routes and one WebSocket endpoint, moving requests in and answers out.
//
// What a route does belongs to src/; the edge only parses, bounds and answers. Every error
// answer is the flat JSON `{"code":…,"message":…,"retryable":…, ...details}` with a stable
// code; its status and retryability come from the EdgeErrorTable the edge is given (the
// node's is src/error-codes.ts): net/ carries bytes and owns no domain codes.

import type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  us_listen_socket,
  us_socket,
  WebSocket,
} from 'uWebSockets.js';
import { existsSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { describeError, NetConfigError, NetError } from './errors.js';
import { nestsDeeperThan } from './json-depth.js';
import { type Logger, silentLogger, withFields } from './log.js';
import { loadUws, type UwsRuntime } from './uws.js';

/** uWS's listen(host, port, options, callback), which its typings leave out. */
interface ExclusiveListen {
  listen(host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void): void;
}

/** A body declared up to this many times the limit is read and dropped before its 413 (see above). */
const LINGER_MAX_FACTOR = 4;

/** How much of a streamed file is read and offered to the connection at a time. */
const STREAM_CHUNK_BYTES = 256 * 1024;

/** ListenOptions.LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

/** The codes the edge raises itself (the rest are its routes'). */
export type EdgeErrorCode =
  | 'INVALID_ARGUMENT'
  | 'TOO_LARGE'
  | 'NOT_FOUND'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'INTERNAL';

/**
 * How the edge answers error codes and which close codes it uses: given by its user. `status`
 * is undefined for a code the API does not answer with (a route that throws one answers
 * INTERNAL); it must know the EdgeErrorCode values.
 */
export interface EdgeErrorTable {
  status(code: string): number | undefined;
  retryable(code: string): boolean;
  readonly closeCodes: {
    /** The edge is stopping: reconnect elsewhere. */
    readonly GOING_AWAY: number;
    /** A message over maxWsPayloadBytes (up to twice that; beyond, uWS drops the connection). */
    readonly TOO_LARGE: number;
    /** The client read too slowly: more than maxWsBackpressureBytes waited to be sent. */
    readonly SLOW_CONSUMER: number;
  };
}

/** An answer with a stable code; throw it from a handler. */
export class EdgeError extends Error {
  /** A code of the edge's EdgeErrorTable (the edge's own, or one its routes answer with). */
  readonly code: string;
  /** Extra JSON fields for the error object (e.g. the leader to retry at, the current revision). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: EdgeErrorCode | (string & {}), message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'EdgeError';
    this.code = code;
    this.details = details;
  }
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request as the edge hands it to a route handler. */
export interface EdgeRequest {
  readonly method: HttpMethod;
  /** The path without the query string. */
  readonly path: string;
  /** The raw query string, without '?'. */
  readonly query: string;
  /** Values of the route pattern's :name parameters, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** Request headers, names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
  /** The parsed JSON body for routes with body 'json'; undefined otherwise. */
  readonly body: unknown;
  readonly remoteAddress: string;
  /** Fires when the client goes away or requestTimeoutMs passes; the answer is then dropped. */
  readonly signal: AbortSignal;
}

/** A route's answer: a status and a JSON body, a text body, or a file streamed as the body. */
export interface EdgeResponse {
  readonly status: number;
  readonly body?: unknown;
  /** Sent as it is instead of `body` (give its content-type in `headers`), e.g. Prometheus text. */
  readonly text?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Streams this file (`size` bytes, application/octet-stream) as the body instead, reading it
   * as the client takes it (backpressure). `done` is called once, with whether every byte was
   * handed to the connection; the file is the caller's to delete then.
   */
  readonly file?: { readonly path: string; readonly size: number; readonly done?: (sent: boolean) => void };
}

export interface EdgeRoute {
  readonly method: HttpMethod;
  /** A uWS pattern: literal segments, :name parameters, a trailing * wildcard. */
  readonly pattern: string;
  /** 'json' reads and parses a JSON body (required); 'none' reads none. */
  readonly body: 'json' | 'none';
  /**
   * Answers the request. Throwing EdgeError answers with its code; any other throw with a
   * string `code` that the error table knows answers with that code; anything else is INTERNAL
   * (logged).
   */
  readonly handler: (request: EdgeRequest) => EdgeResponse | Promise<EdgeResponse>;
  /** How long the handler may take to answer (the limits' requestTimeoutMs by default). */
  readonly timeoutMs?: number;
}

/** One open WebSocket, as the edge hands it to src/. */
export interface EdgeSocket {
  readonly id: number;
  readonly remoteAddress: string;
  /** The upgrade request's query string. */
  readonly query: string;
  /** The upgrade request's headers, names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
  /** False once closed, by either side or for being slow. */
  readonly open: boolean;
  /** Bytes waiting to be sent to the client. */
  readonly bufferedBytes: number;
  /** src/'s per-connection state. */
  state: unknown;
  /**
   * Sends one JSON message. Returns false if the socket is closed, or if sending would put more
   * than maxWsBackpressureBytes behind a client that is not reading: then the socket is closed
   * with SLOW_CONSUMER (4008) rather than buffering without bound.
   */
  send(message: unknown): boolean;
  close(code?: number, reason?: string): void;
}

/** The WebSocket endpoint's behaviour; src/ implements it. Callbacks must not throw. */
export interface EdgeWebSocketHandler {
  /** Path of the endpoint, e.g. /v1/ws. */
  readonly path: string;
  open?(socket: EdgeSocket): void;
  /** Consulted at each upgrade: an error refuses it with that error's status and body. */
  refuse?(): EdgeError | undefined;
  /**
   * One parsed JSON message. Messages that are binary or not JSON are answered by the edge
   * with {"type":"error","error":{"code":"INVALID_ARGUMENT",…}} and do not reach here.
   */
  message(socket: EdgeSocket, message: unknown): void;
  close?(socket: EdgeSocket, code: number, reason: string): void;
}

export interface EdgeLimits {
  /** Request body bytes; larger answers 413 TOO_LARGE and closes the connection. */
  readonly maxBodyBytes: number;
  /** Requests being handled at once; more answer 503 UNAVAILABLE. */
  readonly maxInflightRequests: number;
  /** A handler's answer after this many ms is dropped and 504 TIMEOUT sent instead. */
  readonly requestTimeoutMs: number;
  /**
   * WebSocket message bytes; larger closes with 1009, and more than twice this drops the
   * connection without a close frame (1006 at the client). One connection may make uWS buffer up
   * to twice this for one message.
   */
  readonly maxWsPayloadBytes: number;
  /** WebSocket idle seconds (uWS pings before); 0 disables, otherwise at least 8. */
  readonly wsIdleTimeoutSeconds: number;
  /** Bytes buffered for one slow WebSocket client before it is closed with 4008. */
  readonly maxWsBackpressureBytes: number;
  /** Open WebSockets; more upgrades answer 503 UNAVAILABLE. */
  readonly maxWsConnections: number;
  /**
   * Arrays and objects nested in one another in a JSON body or message; deeper answers 413
   * TOO_LARGE after a linear scan, before the text is parsed.
   */
  readonly maxJsonDepth: number;
}

export const EDGE_DEFAULTS: EdgeLimits = Object.freeze({
  maxBodyBytes: 1024 * 1024,
  maxInflightRequests: 4096,
  requestTimeoutMs: 30_000,
  maxWsPayloadBytes: 1024 * 1024,
  wsIdleTimeoutSeconds: 120,
  maxWsBackpressureBytes: 4 * 1024 * 1024,
  maxWsConnections: 10_000,
  maxJsonDepth: 100,
});

export interface EdgeInit {
  /** Interface to bind, e.g. 0.0.0.0 or 127.0.0.1. */
  readonly host: string;
  /** TCP port; 0 picks a free one (read it from port after start). */
  readonly port: number;
  /** Serve HTTPS/WSS with these PEM files (SSLApp); plain HTTP without. */
  readonly tls?: { readonly keyFile: string; readonly certFile: string; readonly passphrase?: string };
  readonly routes: readonly EdgeRoute[];
  readonly websocket?: EdgeWebSocketHandler;
  readonly limits?: Partial<EdgeLimits>;
  /** Statuses, retryability and close codes (the node's: ERROR_TABLE of src/error-codes.ts). */
  readonly errors: EdgeErrorTable;
  /** Quiet by default. */
  readonly logger?: Logger;
}

/** Running totals since start. */
export interface EdgeCounters {
  requests: number;
  /** Answers by error code. */
  errors: Record<string, number>;
  wsOpened: number;
  wsClosed: number;
  wsMessagesIn: number;
  wsMessagesOut: number;
  /** Corked writes of queued messages: one per socket per event-loop turn in which it was sent anything. */
  wsWrites: number;
  wsSlowConsumersClosed: number;
  wsTooLargeClosed: number;
  wsInvalidMessages: number;
}

const METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true });

/**
 * The HTTP + WebSocket edge on uWebSockets.js. Lifecycle: construct (validates; throws
 * NetConfigError naming the bad setting, before uWS can abort the process on a bad value),
 * start() (listens; logs whether uWS is native), stop() (closes the listener, closes every
 * WebSocket with 1001, then every connection). One instance per port.
 */
export class Edge {
  readonly runtime: UwsRuntime;
  private readonly init: EdgeInit;
  private readonly limits: EdgeLimits;
  private readonly logger: Logger;
  private app: TemplatedApp | undefined;
  private listenSocket: us_listen_socket | undefined;
  private boundPort = 0;
  private inflight = 0;
  private nextSocketId = 1;
  private readonly sendFlusher = new SendFlusher();
  private readonly sockets = new Map<number, SocketState>();
  private readonly counterValues: EdgeCounters = {
    requests: 0,
    errors: {},
    wsOpened: 0,
    wsClosed: 0,
    wsMessagesIn: 0,
    wsMessagesOut: 0,
    wsWrites: 0,
    wsSlowConsumersClosed: 0,
    wsTooLargeClosed: 0,
    wsInvalidMessages: 0,
  };
  private state: 'new' | 'started' | 'stopped' = 'new';

  constructor(init: EdgeInit) {
    this.init = init;
    this.limits = validateEdgeLimits(init.limits);
    validateEdgeInit(init);
    this.logger = withFields(init.logger ?? silentLogger, { component: 'edge' });
    this.runtime = loadUws();
  }

  /** The bound port (after start). */
  get port(): number {
    return this.boundPort;
  }

  /** Listens; resolves once bound, rejects with NetError UNAVAILABLE if the port cannot be bound. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new NetError('STOPPED', `edge cannot start from state ${this.state}`);
    const { uws, native, description } = this.runtime;
    if (this.init.tls !== undefined && !native) {
      throw new NetError('UNAVAILABLE', 'TLS needs the native uWebSockets.js binary, which did not load');
    }
    const app =
      this.init.tls === undefined
        ? uws.App()
        : uws.SSLApp({
            key_file_name: this.init.tls.keyFile,
            cert_file_name: this.init.tls.certFile,
            ...(this.init.tls.passphrase === undefined ? {} : { passphrase: this.init.tls.passphrase }),
          });
    this.app = app;
    if (this.init.websocket !== undefined) this.registerWebSocket(app, this.init.websocket);
    for (const route of this.init.routes) this.registerRoute(app, route);
    app.any('/*', (res, req) => {
      const method = req.getMethod();
      const url = req.getUrl();
      this.counterValues.requests++;
      const { framingError } = copyHeaders(req);
      if (framingError !== undefined) {
        this.refuseFraming(res, framingError);
        return;
      }
      this.answerError(res, new EdgeError('NOT_FOUND', `no route for ${method.toUpperCase()} ${url}`), true);
    });
    const socket = await new Promise<us_listen_socket | false>((resolve) => {
      // uWS listens with SO_REUSEPORT unless told otherwise: a second node on the same port
      // would then share it silently, each answering some requests with its own data.
      if (native) {
        (app as unknown as ExclusiveListen).listen(
          this.init.host,
          this.init.port,
          LIBUS_LISTEN_EXCLUSIVE_PORT,
          resolve,
        );
      } else {
        app.listen(this.init.host, this.init.port, (listenSocket) => resolve(listenSocket));
      }
    });
    if (socket === false) {
      this.state = 'stopped';
      throw new NetError(
        'UNAVAILABLE',
        `the client address ${this.init.host}:${this.init.port} is in use or cannot be bound (is another node or program listening there?)`,
      );
    }
    this.listenSocket = socket;
    // The listen socket is a socket to uSockets; the typings keep the two apart.
    this.boundPort = uws.us_socket_local_port(socket as unknown as us_socket);
    this.state = 'started';
    const fields = { host: this.init.host, port: this.boundPort, tls: this.init.tls !== undefined, native };
    if (native) this.logger.info('edge_started', { ...fields, uws: description });
    else this.logger.warn('edge_started', { ...fields, uws: description });
  }

  /** Stops listening, closes WebSockets with 1001 GOING_AWAY, then closes all connections. Idempotent. */
  async stop(): Promise<void> {
    if (this.state !== 'started') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopped';
    const { uws } = this.runtime;
    if (this.listenSocket !== undefined) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    for (const socket of [...this.sockets.values()])
      socket.close(this.init.errors.closeCodes.GOING_AWAY, 'GOING_AWAY');
    (this.app as unknown as { close?: () => void }).close?.();
    this.app = undefined;
    this.logger.info('edge_stopped');
  }

  /** A copy of the running counters. */
  counters(): EdgeCounters {
    return { ...this.counterValues, errors: { ...this.counterValues.errors } };
  }

  /** HTTP requests taken and not yet answered (bounded by maxInflightRequests). */
  get requestsInFlight(): number {
    return this.inflight;
  }

  // ---- HTTP ----

  private registerRoute(app: TemplatedApp, route: EdgeRoute): void {
    const names = parameterNames(route.pattern);
    const register = {
      GET: app.get,
      POST: app.post,
      PUT: app.put,
      PATCH: app.patch,
      DELETE: app.del,
    }[route.method].bind(app);
    register(route.pattern, (res, req) => this.onRequest(res, req, route, names));
  }

  private onRequest(res: HttpResponse, req: HttpRequest, route: EdgeRoute, names: readonly string[]): void {
    this.counterValues.requests++;
    // uWS's request object lives only during this call: copy what is needed now.
    const { headers, framingError } = copyHeaders(req);
    if (framingError !== undefined) {
      this.refuseFraming(res, framingError);
      return;
    }
    const params: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) {
      try {
        params[names[i]!] = decodeURIComponent(req.getParameter(i));
      } catch {
        this.answerError(
          res,
          new EdgeError('INVALID_ARGUMENT', `parameter ${names[i]} is not valid URL encoding`),
          true,
        );
        return;
      }
    }
    const path = req.getUrl();
    const query = req.getQuery() ?? '';
    const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
    const exchange = new Exchange(res);
    res.onAborted(() => exchange.abort());
    if (this.inflight >= this.limits.maxInflightRequests) {
      this.answerError(
        res,
        new EdgeError('UNAVAILABLE', 'too many requests in flight; retry'),
        route.body === 'json',
      );
      return;
    }
    const request = (body: unknown): EdgeRequest => ({
      method: route.method,
      path,
      query,
      params,
      headers,
      body,
      remoteAddress,
      signal: exchange.signal,
    });
    if (route.body === 'none') {
      this.dispatch(exchange, route, request(undefined));
      return;
    }
    // JSON bodies: application/json, any application/*+json (e.g. RFC 7386's merge-patch+json),
    // or no content-type at all; an explicit other type is refused.
    const contentType = headers['content-type'] ?? '';
    if (contentType !== '' && !/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType)) {
      this.answerError(
        res,
        new EdgeError(
          'INVALID_ARGUMENT',
          `content-type ${JSON.stringify(contentType)} is not JSON (send application/json)`,
        ),
        true,
      );
      return;
    }
    const declared = headers['content-length'];
    if (declared !== undefined && Number(declared) > this.limits.maxBodyBytes) {
      const tooLarge = new EdgeError(
        'TOO_LARGE',
        `body of ${declared} bytes exceeds ${this.limits.maxBodyBytes}`,
        { limitBytes: this.limits.maxBodyBytes },
      );
      if (Number(declared) > LINGER_MAX_FACTOR * this.limits.maxBodyBytes) {
        this.answerError(res, tooLarge, true);
        return;
      }
      // A client still sending its body when the connection closes gets a reset (EPIPE) instead
      // of the answer: for a body up to a few times the limit the 413 goes out now and the
      // connection stays open, so uWS reads the declared body to its end and drops it.
      this.answerError(res, tooLarge, false);
      return;
    }
    this.inflight++;
    exchange.onSettled(() => this.inflight--);
    readBody(res, exchange, this.limits.maxBodyBytes, (result) => {
      if (exchange.done) return;
      if (result.kind === 'too_large') {
        this.answerErrorOn(
          exchange,
          new EdgeError('TOO_LARGE', `body exceeds ${this.limits.maxBodyBytes} bytes`, {
            limitBytes: this.limits.maxBodyBytes,
          }),
          true,
        );
        return;
      }
      const parsed = parseJson(result.bytes, this.limits.maxJsonDepth);
      if (parsed.error !== undefined) {
        this.answerErrorOn(exchange, new EdgeError(parsed.code, parsed.error), false);
        return;
      }
      this.dispatch(exchange, route, request(parsed.value), true);
    });
  }

  private dispatch(exchange: Exchange, route: EdgeRoute, request: EdgeRequest, counted = false): void {
    if (!counted) {
      this.inflight++;
      exchange.onSettled(() => this.inflight--);
    }
    const timeoutMs = route.timeoutMs ?? this.limits.requestTimeoutMs;
    const timer = setTimeout(() => {
      this.answerErrorOn(exchange, new EdgeError('TIMEOUT', `no answer within ${timeoutMs} ms`), false);
      exchange.abort();
    }, timeoutMs);
    exchange.onSettled(() => clearTimeout(timer));
    let answer: Promise<EdgeResponse>;
    try {
      answer = Promise.resolve(route.handler(request));
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (response) => this.answer(exchange, response),
      (err: unknown) => this.answerErrorOn(exchange, this.toEdgeError(err, route), false),
    );
  }

  private toEdgeError(err: unknown, route: EdgeRoute): EdgeError {
    if (err instanceof EdgeError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code !== 'INTERNAL' && this.init.errors.status(code) !== undefined) {
      return new EdgeError(code, err instanceof Error ? err.message : String(err));
    }
    this.logger.error('route_failed', {
      method: route.method,
      pattern: route.pattern,
      error: describeError(err),
    });
    return new EdgeError('INTERNAL', 'internal error');
  }

  private answer(exchange: Exchange, response: EdgeResponse): void {
    const status = (response as EdgeResponse | undefined)?.status;
    if (!Number.isInteger(status) || status! < 200 || status! > 599) {
      this.logger.error('route_answer_invalid', { status: String(status) });
      response?.file?.done?.(false);
      this.answerErrorOn(exchange, new EdgeError('INTERNAL', 'internal error'), false);
      return;
    }
    if (response.file !== undefined) {
      void exchange.streamFile(
        statusLine(response.status),
        response.headers ?? {},
        response.file,
        this.logger,
      );
      return;
    }
    if (response.text !== undefined) {
      const text = response.text;
      exchange.finish((res) => {
        res.writeStatus(statusLine(response.status));
        for (const [name, value] of Object.entries(response.headers ?? {})) res.writeHeader(name, value);
        res.end(text);
      });
      return;
    }
    let body: string;
    try {
      body = response.body === undefined ? '' : JSON.stringify(response.body);
    } catch (err) {
      this.logger.error('response_not_json', { error: describeError(err) });
      this.answerErrorOn(exchange, new EdgeError('INTERNAL', 'internal error'), false);
      return;
    }
    exchange.finish((res) => {
      res.writeStatus(statusLine(response.status));
      if (body.length > 0) res.writeHeader('content-type', 'application/json');
      for (const [name, value] of Object.entries(response.headers ?? {})) res.writeHeader(name, value);
      res.end(body);
    });
  }

  private answerErrorOn(exchange: Exchange, err: EdgeError, closeConnection: boolean): void {
    this.countError(err.code);
    const { status, body } = this.errorAnswer(err);
    exchange.finish((res) => {
      res
        .writeStatus(statusLine(status))
        .writeHeader('content-type', 'application/json')
        .end(body, closeConnection);
    });
  }

  /**
   * Refuses a request whose body length is ambiguous (RFC 9112 §6.3): 400 INVALID_ARGUMENT, then
   * the connection is closed. The answer waits for the next event-loop turn on purpose. Inside
   * uWS's handler it would only be queued while uWS goes on parsing the rest of the same read,
   * framing it by the first Content-Length (or as chunked), and a request smuggled there would
   * reach its route: the pending close is forgotten when the next request starts. Left pending,
   * uWS instead closes the connection itself when a next request arrives (onAborted: no answer);
   * otherwise the 400 goes out next turn and the connection is closed after it.
   */
  private refuseFraming(res: HttpResponse, message: string): void {
    const exchange = new Exchange(res);
    res.onAborted(() => exchange.abort());
    setImmediate(() => {
      if (!exchange.done) this.answerErrorOn(exchange, new EdgeError('INVALID_ARGUMENT', message), true);
    });
  }

  /** Answers synchronously, inside uWS's handler (the response is corked already). */
  private answerError(res: HttpResponse, err: EdgeError, closeConnection: boolean): void {
    this.countError(err.code);
    const { status, body } = this.errorAnswer(err);
    res
      .writeStatus(statusLine(status))
      .writeHeader('content-type', 'application/json')
      .end(body, closeConnection);
  }

  /**
   * The one error body of the client API, `{"code","message","retryable",...details}` (flat, as
   * src/'s routes answer), and its status; a code the table does not know answers 500.
   */
  private errorAnswer(err: EdgeError): { status: number; body: string } {
    const { errors } = this.init;
    const body = JSON.stringify({
      ...err.details,
      code: err.code,
      message: err.message,
      retryable: errors.retryable(err.code),
    });
    return { status: errors.status(err.code) ?? 500, body };
  }

  private countError(code: string): void {
    this.counterValues.errors[code] = (this.counterValues.errors[code] ?? 0) + 1;
  }

  // ---- WebSocket ----

  private registerWebSocket(app: TemplatedApp, handler: EdgeWebSocketHandler): void {
    const { uws } = this.runtime;
    const limits = this.limits;
    // uWS refuses a frame, or a fragmented message, over its own payload limit by closing the TCP
    // connection as soon as it reads the frame header (no close frame: 1006 at the client, often
    // ECONNRESET as it is still sending). Below that limit it buffers the whole message before we
    // see it, reserving the frame's declared length up front: that limit is what one connection
    // can make the edge hold (times maxWsConnections at worst). At twice ours, messages up to twice
    // the limit get a proper 1009 from here; a higher hard limit would only buy 1009 for larger
    // messages with more memory per connection, so it stays at twice.
    const hardPayloadLimit = Math.min(limits.maxWsPayloadBytes * 2, 0x7fff_ffff);
    app.ws<{ edge: SocketState | undefined; upgrade: UpgradeInfo }>(handler.path, {
      maxPayloadLength: hardPayloadLimit,
      idleTimeout: limits.wsIdleTimeoutSeconds,
      sendPingsAutomatically: true,
      maxBackpressure: limits.maxWsBackpressureBytes * 2,
      closeOnBackpressureLimit: 0,
      compression: uws.DISABLED,
      upgrade: (res, req, context) => {
        const { headers, framingError } = copyHeaders(req);
        if (framingError !== undefined) {
          this.refuseFraming(res, framingError);
          return;
        }
        const info: UpgradeInfo = {
          query: req.getQuery() ?? '',
          headers,
          remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
        };
        if (this.sockets.size >= limits.maxWsConnections) {
          this.answerError(res, new EdgeError('UNAVAILABLE', 'too many WebSocket connections; retry'), true);
          return;
        }
        const refused = handler.refuse?.();
        if (refused !== undefined) {
          this.answerError(res, refused, true);
          return;
        }
        res.upgrade(
          { edge: undefined, upgrade: info },
          headers['sec-websocket-key'] ?? '',
          headers['sec-websocket-protocol'] ?? '',
          headers['sec-websocket-extensions'] ?? '',
          context,
        );
      },
      open: (ws) => {
        const data = ws.getUserData();
        const socket = new SocketState(
          this.nextSocketId++,
          this.sendFlusher,
          ws,
          data.upgrade,
          limits,
          this.init.errors.closeCodes,
          this.counterValues,
          this.logger,
        );
        data.edge = socket;
        this.sockets.set(socket.id, socket);
        this.counterValues.wsOpened++;
        this.callHandler('open', () => handler.open?.(socket));
      },
      message: (ws, message, isBinary) => {
        const socket = ws.getUserData().edge;
        if (socket === undefined || !socket.open) return;
        this.counterValues.wsMessagesIn++;
        if (message.byteLength > limits.maxWsPayloadBytes) {
          this.counterValues.wsTooLargeClosed++;
          socket.close(this.init.errors.closeCodes.TOO_LARGE, 'TOO_LARGE');
          return;
        }
        if (isBinary) {
          this.rejectMessage(socket, 'binary messages are not accepted; send JSON text');
          return;
        }
        const parsed = parseJson(new Uint8Array(message), limits.maxJsonDepth);
        if (parsed.error !== undefined) {
          this.rejectMessage(socket, parsed.error, parsed.code);
          return;
        }
        this.callHandler('message', () => handler.message(socket, parsed.value));
      },
      drain: () => {},
      close: (ws, code, message) => {
        const socket = ws.getUserData().edge;
        if (socket === undefined) return;
        socket.markClosed();
        this.sockets.delete(socket.id);
        this.counterValues.wsClosed++;
        const reason = Buffer.from(message).toString();
        if (reason === 'Received too big message') this.counterValues.wsTooLargeClosed++;
        this.callHandler('close', () => handler.close?.(socket, code, reason));
      },
    });
  }

  private rejectMessage(socket: SocketState, message: string, code = 'INVALID_ARGUMENT'): void {
    this.counterValues.wsInvalidMessages++;
    socket.send({ type: 'error', error: { code, message, retryable: this.init.errors.retryable(code) } });
  }

  private callHandler(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error('websocket_handler_failed', { handler: what, error: describeError(err) });
    }
  }
}

interface UpgradeInfo {
  readonly query: string;
  readonly headers: Record<string, string>;
  readonly remoteAddress: string;
}

/** The edge's side of one WebSocket. */
class SocketState implements EdgeSocket {
  state: unknown = undefined;
  private closed = false;
  private queue: string[] = [];
  private queuedBytes = 0;

  constructor(
    readonly id: number,
    private readonly flusher: SendFlusher,
    private readonly ws: WebSocket<unknown>,
    private readonly upgrade: UpgradeInfo,
    private readonly limits: EdgeLimits,
    private readonly closeCodes: EdgeErrorTable['closeCodes'],
    private readonly counters: EdgeCounters,
    private readonly logger: Logger,
  ) {}

  get remoteAddress(): string {
    return this.upgrade.remoteAddress;
  }

  get query(): string {
    return this.upgrade.query;
  }

  get headers(): Readonly<Record<string, string>> {
    return this.upgrade.headers;
  }

  get open(): boolean {
    return !this.closed;
  }

  get bufferedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.queuedBytes;
  }

  /**
   * Queues the message; every message a socket is sent in one event-loop turn goes out in one
   * corked write when the turn ends (the answers one apply settles, a transaction's watch
   * events): one syscall instead of one per message. The backpressure check counts what is
   * queued, so the refusal is as immediate as before.
   */
  send(message: unknown): boolean {
    if (this.closed) return false;
    const text = JSON.stringify(message);
    const buffered = this.ws.getBufferedAmount() + this.queuedBytes;
    const bytes = Buffer.byteLength(text);
    if (buffered > 0 && buffered + bytes > this.limits.maxWsBackpressureBytes) {
      this.counters.wsSlowConsumersClosed++;
      this.logger.info('websocket_slow_consumer', {
        id: this.id,
        bufferedBytes: buffered,
        remote: this.remoteAddress,
      });
      this.close(this.closeCodes.SLOW_CONSUMER, 'SLOW_CONSUMER');
      return false;
    }
    this.queue.push(text);
    this.queuedBytes += bytes;
    if (this.queue.length === 1) this.flusher.schedule(this);
    return true;
  }

  /** Writes what send() queued, corked. Called once per turn by the edge's SendFlusher. */
  flush(): void {
    const queue = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.closed || queue.length === 0) return;
    let dropped = false;
    this.counters.wsWrites++;
    this.ws.cork(() => {
      for (const text of queue) {
        // 2: dropped by uWS's own limit (set at twice ours).
        if (this.ws.send(text, false, false) === 2) {
          dropped = true;
          return;
        }
        this.counters.wsMessagesOut++;
      }
    });
    if (dropped) {
      this.counters.wsSlowConsumersClosed++;
      this.close(this.closeCodes.SLOW_CONSUMER, 'SLOW_CONSUMER');
    }
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    // What is queued goes before the close frame, as it would have without the batching.
    this.flush();
    this.closed = true;
    try {
      this.ws.end(code, reason);
    } catch {
      // Already closed by uWS.
    }
  }

  markClosed(): void {
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
  }
}

/** Flushes the sockets that queued messages in this task, once, when its microtasks are done. */
class SendFlusher {
  private readonly due = new Set<SocketState>();
  private scheduled = false;

  schedule(socket: SocketState): void {
    this.due.add(socket);
    if (this.scheduled) return;
    this.scheduled = true;
    // process.nextTick, not a microtask: a tick queued from a microtask runs once the microtask
    // queue is empty, so answers settled by different promise chains of the same turn (one
    // apply settles many proposals) all join the one write. Not setImmediate either: that waited
    // for the next turn of the event loop, behind whatever I/O its poll found (a follower's
    // late acknowledgement, say), on every sequential write's answer.
    process.nextTick(() => {
      this.scheduled = false;
      const sockets = [...this.due];
      this.due.clear();
      for (const socket of sockets) socket.flush();
    });
  }
}

/** One HTTP exchange: answered at most once, never after the client went away. */
class Exchange {
  private readonly controller = new AbortController();
  private settled = false;
  private readonly onSettledCallbacks: (() => void)[] = [];

  constructor(private readonly res: HttpResponse) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get done(): boolean {
    return this.settled;
  }

  onSettled(callback: () => void): void {
    if (this.settled) callback();
    else this.onSettledCallbacks.push(callback);
  }

  /**
   * Writes the answer (corked) unless already answered or aborted. Returns false if uWS refused
   * the write (the connection vanished under it, e.g. the edge stopped): never throws.
   */
  finish(write: (res: HttpResponse) => void): boolean {
    if (this.settled) return true;
    this.settle();
    try {
      this.res.cork(() => write(this.res));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Answers with a file as the body, chunk by chunk as the connection drains (uWS tryEnd and
   * onWritable). Stops reading when the client goes away; calls `file.done` once either way.
   */
  async streamFile(
    status: string,
    headers: Readonly<Record<string, string>>,
    file: NonNullable<EdgeResponse['file']>,
    logger: Logger,
  ): Promise<void> {
    let sent = false;
    let handle: FileHandle | undefined;
    try {
      if (this.settled) return;
      this.settle(); // No timeout or error answer may interleave with the stream.
      handle = await open(file.path, 'r');
      if (this.controller.signal.aborted) return;
      const res = this.res;
      const first = { done: false };
      res.cork(() => {
        res.writeStatus(status).writeHeader('content-type', 'application/octet-stream');
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        if (file.size === 0) {
          res.end();
          first.done = true;
        }
      });
      if (first.done) {
        sent = true;
        return;
      }
      const buffer = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
      let position = 0;
      while (position < file.size) {
        const { bytesRead } = await handle.read(
          buffer,
          0,
          Math.min(buffer.length, file.size - position),
          position,
        );
        if (bytesRead === 0) throw new Error(`${file.path} ended at byte ${position} of ${file.size}`);
        if (this.controller.signal.aborted) return;
        const chunk = buffer.subarray(0, bytesRead);
        position += bytesRead;
        const startOffset = res.getWriteOffset();
        let result: [boolean, boolean] = [false, false];
        res.cork(() => {
          result = res.tryEnd(chunk, file.size);
        });
        const [ok, done] = result;
        if (done) break;
        if (!ok) {
          // uWS kept what it could not send yet; wait for it to drain, then offer the rest.
          const drained = await new Promise<boolean>((resolve) => {
            const onAbort = () => resolve(false);
            this.controller.signal.addEventListener('abort', onAbort, { once: true });
            res.onWritable((offset) => {
              const [retryOk, retryDone] = res.tryEnd(chunk.subarray(offset - startOffset), file.size);
              if (retryOk || retryDone) {
                this.controller.signal.removeEventListener('abort', onAbort);
                resolve(true);
              }
              return retryOk;
            });
          });
          if (!drained) return;
        }
      }
      sent = position === file.size;
    } catch (error) {
      logger.error('stream_failed', { path: file.path, error: describeError(error) });
      if (!this.controller.signal.aborted) {
        try {
          this.res.close();
        } catch {
          // Already gone.
        }
      }
    } finally {
      await handle?.close().catch(() => undefined);
      file.done?.(sent);
    }
  }

  /** The client went away, or the edge gave up: no answer will be written. */
  abort(): void {
    if (!this.controller.signal.aborted) this.controller.abort(new NetError('ABORTED', 'request abandoned'));
    this.settle();
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    for (const callback of this.onSettledCallbacks.splice(0)) callback();
  }
}

type BodyResult = { kind: 'ok'; bytes: Uint8Array } | { kind: 'too_large' };

/** Collects the body chunk by chunk (uWS reuses its buffers: each chunk is copied), bounded. */
function readBody(
  res: HttpResponse,
  exchange: Exchange,
  maxBytes: number,
  done: (result: BodyResult) => void,
): void {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  res.onData((chunk, isLast) => {
    if (finished || exchange.done) return;
    total += chunk.byteLength;
    if (total > maxBytes) {
      finished = true;
      done({ kind: 'too_large' });
      return;
    }
    chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    finished = true;
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const part of chunks) {
      bytes.set(part, offset);
      offset += part.length;
    }
    done({ kind: 'ok', bytes });
  });
}

function parseJson(
  bytes: Uint8Array,
  maxDepth: number,
):
  | { value: unknown; error?: undefined }
  | { value?: undefined; error: string; code: 'INVALID_ARGUMENT' | 'TOO_LARGE' } {
  if (bytes.length === 0) return { error: 'a JSON body is required', code: 'INVALID_ARGUMENT' };
  // Parsing a megabyte of [[[[... blocks the event loop for a fifth of a second: refuse it first.
  if (nestsDeeperThan(bytes, maxDepth)) {
    return { error: `body nests arrays or objects deeper than ${maxDepth}`, code: 'TOO_LARGE' };
  }
  let text: string;
  try {
    text = TEXT_DECODER.decode(bytes);
  } catch {
    return { error: 'body is not valid UTF-8', code: 'INVALID_ARGUMENT' };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return {
      error: `body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
      code: 'INVALID_ARGUMENT',
    };
  }
}

/**
 * A request's headers (names lowercased; of a repeated name, the last value) and, if its body
 * length is ambiguous (RFC 9112 §6.1, §6.3), why. uWS frames a body by the first Content-Length
 * it finds, and by chunked decoding whenever any Transfer-Encoding is present, whatever its value,
 * so the edge refuses: Content-Length more than once (even with equal values), Transfer-Encoding
 * other than exactly one field `chunked` (`gzip, chunked`, `chunked, chunked`, `identity`, …), and
 * both together. (uWS itself closes, unanswered, a request with non-empty values of both, and one
 * whose Content-Length is not digits.)
 */
function copyHeaders(req: HttpRequest): {
  headers: Record<string, string>;
  framingError: string | undefined;
} {
  const headers: Record<string, string> = {};
  const contentLengths: string[] = [];
  const transferEncodings: string[] = [];
  req.forEach((name, value) => {
    headers[name] = value;
    if (name === 'content-length') contentLengths.push(value);
    else if (name === 'transfer-encoding') transferEncodings.push(value);
  });
  let framingError: string | undefined;
  if (contentLengths.length > 1) {
    framingError = `Content-Length is sent ${contentLengths.length} times (${contentLengths.join(', ')}); send it once`;
  } else if (transferEncodings.length > 0 && contentLengths.length > 0) {
    framingError = 'Content-Length and Transfer-Encoding are both sent; send one';
  } else if (
    transferEncodings.length > 1 ||
    (transferEncodings.length === 1 && transferEncodings[0]!.trim().toLowerCase() !== 'chunked')
  ) {
    framingError = `Transfer-Encoding ${JSON.stringify(transferEncodings.join(', '))} is not supported; only "chunked" is`;
  }
  return { headers, framingError };
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

function parameterNames(pattern: string): string[] {
  return pattern
    .split('/')
    .filter((segment) => segment.startsWith(':'))
    .map((segment) => segment.slice(1));
}

/** Fills defaults and checks every bound; throws NetConfigError naming the first bad one. */
export function validateEdgeLimits(input: Partial<EdgeLimits> = {}): EdgeLimits {
  for (const key of Object.keys(input)) {
    if (!(key in EDGE_DEFAULTS)) throw new NetConfigError(`limits.${key}`, 'is not a known setting');
  }
  const limits: Record<keyof EdgeLimits, number> = { ...EDGE_DEFAULTS };
  for (const [key, value] of Object.entries(input) as [keyof EdgeLimits, number | undefined][]) {
    if (value !== undefined) limits[key] = value;
  }
  const bounds: Record<keyof EdgeLimits, [number, number]> = {
    maxBodyBytes: [1, 1024 * 1024 * 1024],
    maxInflightRequests: [1, 1_000_000],
    requestTimeoutMs: [1, 3_600_000],
    maxWsPayloadBytes: [16, 512 * 1024 * 1024],
    wsIdleTimeoutSeconds: [0, 960],
    maxWsBackpressureBytes: [1024, 1024 * 1024 * 1024],
    maxWsConnections: [1, 10_000_000],
    maxJsonDepth: [1, 10_000],
  };
  for (const key of Object.keys(bounds) as (keyof EdgeLimits)[]) {
    const [min, max] = bounds[key];
    const value = limits[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new NetConfigError(
        `limits.${key}`,
        `must be an integer in [${min}, ${max}], got ${String(value)}`,
      );
    }
  }
  // uWS aborts the whole process (not an exception) on an idle timeout in 1..7.
  if (limits.wsIdleTimeoutSeconds !== 0 && limits.wsIdleTimeoutSeconds < 8) {
    throw new NetConfigError(
      'limits.wsIdleTimeoutSeconds',
      `must be 0 or at least 8, got ${limits.wsIdleTimeoutSeconds}`,
    );
  }
  return Object.freeze(limits);
}

function validateEdgeInit(init: EdgeInit): void {
  if (typeof init.host !== 'string' || init.host.length === 0)
    throw new NetConfigError('host', 'must be a non-empty string');
  if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65535) {
    throw new NetConfigError('port', `must be an integer in [0, 65535], got ${String(init.port)}`);
  }
  if (init.tls !== undefined) {
    for (const file of ['keyFile', 'certFile'] as const) {
      const path = init.tls[file];
      if (typeof path !== 'string' || !existsSync(path)) {
        throw new NetConfigError(`tls.${file}`, `must name a readable PEM file, got ${String(path)}`);
      }
    }
  }
  if (!Array.isArray(init.routes)) throw new NetConfigError('routes', 'must be an array');
  const seen = new Set<string>();
  for (const [i, route] of init.routes.entries()) {
    if (!METHODS.includes(route.method)) {
      throw new NetConfigError(
        `routes[${i}].method`,
        `must be one of ${METHODS.join(', ')}, got ${String(route.method)}`,
      );
    }
    if (typeof route.pattern !== 'string' || !route.pattern.startsWith('/')) {
      throw new NetConfigError(`routes[${i}].pattern`, `must start with /, got ${String(route.pattern)}`);
    }
    if (route.body !== 'json' && route.body !== 'none') {
      throw new NetConfigError(`routes[${i}].body`, `must be 'json' or 'none', got ${String(route.body)}`);
    }
    if (typeof route.handler !== 'function')
      throw new NetConfigError(`routes[${i}].handler`, 'must be a function');
    const key = `${route.method} ${route.pattern}`;
    if (seen.has(key)) throw new NetConfigError(`routes[${i}]`, `duplicates ${key}`);
    seen.add(key);
  }
  const ws = init.websocket;
  if (ws !== undefined) {
    if (typeof ws.path !== 'string' || !ws.path.startsWith('/')) {
      throw new NetConfigError('websocket.path', `must start with /, got ${String(ws.path)}`);
    }
    if (typeof ws.message !== 'function') throw new NetConfigError('websocket.message', 'must be a function');
  }
}
