// Request forwarding: request/response with deadlines, multiplexed on one long-lived stream per peer pair.
//
// Frames (after the kind byte):
//   RpcRequest   id, timeoutMs, payload (to the end of the frame)
//   RpcResponse  id, u8 status; status 0: payload (to the end); status 1: code, message
//   RpcCancel    id                      -- the caller gave up; the handler's signal fires
// Ids are chosen by the caller and name requests in that direction only: both ends may call.

import type { FramedChannel } from './channel.js';
import type { MeshLimits } from './config.js';
import { describeError, FrameTooLargeError, MalformedFrameError, NetError, RemoteError } from './errors.js';
import { FrameKind, LENGTH_PREFIX_BYTES } from './framing.js';
import type { Logger } from './log.js';
import { copyBytes, decodeStrictly, Reader, Writer } from './wire.js';

/** What a request handler is told besides the payload. */
export interface RequestContext {
  /** Fires when the caller cancels, its deadline passes, or the stream closes. */
  readonly signal: AbortSignal;
  /** The caller's remaining time when the request arrived. */
  readonly timeoutMs: number;
}

/**
 * Serves a forwarded request from peer `from`. The answer is opaque bytes (at most
 * maxRequestBytes). To fail with a stable code, throw an Error with a string `code` property
 * of capital letters and underscores (e.g. NOT_LEADER); the caller gets RemoteError carrying
 * it. Any other throw is answered with INTERNAL and logged.
 */
export type RequestHandler = (
  from: string,
  payload: Uint8Array,
  context: RequestContext,
) => Promise<Uint8Array>;

export interface RequestOptions {
  /** Milliseconds until the caller gives up; defaults to limits.defaultRequestTimeoutMs. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface RpcCounters {
  requestsSent: number;
  requestsReceived: number;
  requestTimeouts: number;
  /** Responses that came after their caller gave up. */
  lateResponses: number;
}

export interface RpcEndpointInit {
  readonly peer: string;
  readonly limits: MeshLimits;
  readonly logger: Logger;
  readonly counters: RpcCounters;
  readonly handler: RequestHandler | undefined;
}

interface Outgoing {
  readonly frame: Uint8Array;
  /** Set when the caller gave up before the frame left: it is dropped, not sent. */
  skip: boolean;
}

interface Outstanding {
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly cleanup: () => void;
}

const STATUS_OK = 0;
const STATUS_ERROR = 1;
const MAX_CODE_BYTES = 64;
const MAX_ERROR_MESSAGE_BYTES = 1024;
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * Both directions of request forwarding with one peer. Bounded: requests outstanding each
 * way (beyond, OVERLOADED), payload bytes, deadlines (the remaining time travels with the
 * request, so the server stops working on what the caller has given up on).
 */
export class RpcEndpoint {
  private readonly init: RpcEndpointInit;
  private channel: FramedChannel | undefined;
  private nextId = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly serving = new Map<number, { controller: AbortController; timer: NodeJS.Timeout }>();
  /** Callers waiting for a stream to be attached (a reopen in progress). */
  private readonly waiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();
  private shutDownReason: string | undefined;
  /** Frames waiting for room in the stream's write buffer. */
  private readonly outbox: Outgoing[] = [];
  private outboxBytes = 0;
  private pumping = false;

  constructor(init: RpcEndpointInit) {
    this.init = init;
  }

  get connected(): boolean {
    return this.channel?.open === true;
  }

  attach(channel: FramedChannel): void {
    this.channel = channel;
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }

  /** The peer is gone for good (its session ended): callers waiting for a stream fail now. */
  shutdown(reason: string): void {
    this.shutDownReason = reason;
    const err = new NetError('UNAVAILABLE', `connection to ${this.init.peer} closed (${reason})`);
    for (const waiter of this.waiters) waiter.reject(err);
    this.waiters.clear();
  }

  /** Forgets `channel` if attached: outstanding calls fail with UNAVAILABLE, handlers are signalled. */
  detach(channel: FramedChannel, reason: string): void {
    if (this.channel !== channel) return;
    this.channel = undefined;
    this.clearOutbox();
    const err = new NetError(
      'UNAVAILABLE',
      `request stream to ${this.init.peer} closed (${reason}); a request already sent may have been applied`,
    );
    for (const [id, call] of this.outstanding) {
      this.outstanding.delete(id);
      call.cleanup();
      call.reject(err);
    }
    for (const { controller, timer } of this.serving.values()) {
      clearTimeout(timer);
      controller.abort(err);
    }
    this.serving.clear();
  }

  /** Sends one request and waits for its answer; see Mesh.request for the contract. */
  async request(payload: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    const { limits } = this.init;
    const timeoutMs = options.timeoutMs ?? limits.defaultRequestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > limits.maxRequestTimeoutMs) {
      throw new RangeError(
        `timeoutMs must be an integer in [1, ${limits.maxRequestTimeoutMs}], got ${timeoutMs}`,
      );
    }
    if (payload.length > limits.maxRequestBytes) {
      throw new FrameTooLargeError('request', payload.length, limits.maxRequestBytes);
    }
    options.signal?.throwIfAborted();
    if (this.outstanding.size >= limits.maxOutboundRequestsPerPeer) {
      throw new NetError(
        'OVERLOADED',
        `${this.outstanding.size} requests already outstanding to ${this.init.peer}`,
        { notSent: true },
      );
    }
    const deadline = performance.now() + timeoutMs;
    const channel = this.channel;
    if (channel === undefined || !channel.open) {
      // The stream is being (re)opened: wait for it, within the caller's deadline.
      const signal =
        options.signal === undefined
          ? AbortSignal.timeout(timeoutMs)
          : AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)]);
      try {
        await this.waitAttached(signal);
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (err instanceof NetError && err.code === 'UNAVAILABLE') throw err;
        this.init.counters.requestTimeouts++;
        throw new NetError('TIMEOUT', `no request stream to ${this.init.peer} within ${timeoutMs} ms`, {
          notSent: true,
        });
      }
    }
    const remainingMs = Math.max(1, Math.round(deadline - performance.now()));
    const id = this.nextId++;
    const writer = new Writer(payload.length + 32)
      .uint32(0)
      .uint8(FrameKind.RpcRequest)
      .varint(id)
      .varint(remainingMs)
      .raw(payload);
    writer.patchUint32(0, writer.length - LENGTH_PREFIX_BYTES);
    const queued: Outgoing = { frame: writer.finish(), skip: false };
    return new Promise<Uint8Array>((resolve, reject) => {
      // A request still queued when its caller gives up is not sent at all, nor cancelled.
      const giveUp = () => {
        if (this.outbox.includes(queued)) queued.skip = true;
        else this.sendCancel(id);
      };
      const onAbort = () => {
        if (!this.outstanding.delete(id)) return;
        cleanup();
        giveUp();
        reject(options.signal?.reason ?? new NetError('ABORTED', 'request aborted'));
      };
      const timer = setTimeout(() => {
        if (!this.outstanding.delete(id)) return;
        cleanup();
        this.init.counters.requestTimeouts++;
        giveUp();
        reject(new NetError('TIMEOUT', `no answer from ${this.init.peer} within ${timeoutMs} ms`));
      }, remainingMs);
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      options.signal?.addEventListener('abort', onAbort);
      // Registered before the frame can leave, so a stream that fails on send fails this call.
      this.outstanding.set(id, { resolve, reject, timer, cleanup });
      if (!this.enqueue(queued)) {
        this.outstanding.delete(id);
        cleanup();
        reject(
          new NetError(
            'OVERLOADED',
            `more than ${this.init.limits.maxRpcQueueBytesPerPeer} bytes queued for ${this.init.peer}`,
          ),
        );
        return;
      }
      this.init.counters.requestsSent++;
    });
  }

  /** Handles one frame of the rpc stream; throws MalformedFrameError for a bad one. */
  onFrame(payload: Uint8Array): void {
    const kind = payload[0];
    if (kind === FrameKind.RpcRequest) this.onRequest(payload);
    else if (kind === FrameKind.RpcResponse) this.onResponse(payload);
    else if (kind === FrameKind.RpcCancel) this.onCancel(payload);
    else throw new MalformedFrameError(`frame kind ${kind} on the rpc stream`);
  }

  private onRequest(payload: Uint8Array): void {
    const { id, timeoutMs, body } = decodeStrictly('rpc request', () => {
      const reader = new Reader(payload, 1);
      const id = reader.varint('request id');
      const timeoutMs = reader.varintIn('timeout', 1, this.init.limits.maxRequestTimeoutMs);
      const body = copyBytes(payload, reader.position);
      return { id, timeoutMs, body };
    });
    if (body.length > this.init.limits.maxRequestBytes) {
      throw new FrameTooLargeError('request', body.length, this.init.limits.maxRequestBytes);
    }
    if (this.serving.has(id)) throw new MalformedFrameError(`request id ${id} reused while in flight`);
    this.init.counters.requestsReceived++;
    const handler = this.init.handler;
    if (handler === undefined) {
      this.respondError(id, 'UNAVAILABLE', 'this node serves no forwarded requests');
      return;
    }
    if (this.serving.size >= this.init.limits.maxInboundRequestsPerPeer) {
      this.respondError(id, 'OVERLOADED', `${this.serving.size} requests in flight from ${this.init.peer}`);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new NetError('TIMEOUT', `the caller's deadline of ${timeoutMs} ms passed`)),
      timeoutMs,
    );
    this.serving.set(id, { controller, timer });
    const finish = () => {
      clearTimeout(timer);
      if (this.serving.get(id)?.controller !== controller) return false;
      this.serving.delete(id);
      return !controller.signal.aborted;
    };
    let answer: Promise<Uint8Array>;
    try {
      answer = handler(this.init.peer, body, { signal: controller.signal, timeoutMs });
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (result) => {
        if (!finish()) return;
        if (!(result instanceof Uint8Array)) {
          this.init.logger.error('request_handler_failed', {
            peer: this.init.peer,
            error: 'answer is not bytes',
          });
          this.respondError(id, 'INTERNAL', 'the handler answered with something other than bytes');
        } else if (result.length > this.init.limits.maxRequestBytes) {
          this.respondError(
            id,
            'TOO_LARGE',
            `answer of ${result.length} bytes exceeds ${this.init.limits.maxRequestBytes}`,
          );
        } else {
          this.respond(id, result);
        }
      },
      (err: unknown) => {
        if (!finish()) return;
        const code = (err as { code?: unknown } | null)?.code;
        if (typeof code === 'string' && CODE_PATTERN.test(code)) {
          this.respondError(id, code, err instanceof Error ? err.message : String(err));
        } else {
          this.init.logger.error('request_handler_failed', {
            peer: this.init.peer,
            error: describeError(err),
          });
          this.respondError(id, 'INTERNAL', 'the request handler failed');
        }
      },
    );
  }

  private onResponse(payload: Uint8Array): void {
    const response = decodeStrictly('rpc response', () => {
      const reader = new Reader(payload, 1);
      const id = reader.varint('request id');
      const status = reader.uint8('status');
      if (status === STATUS_OK) return { id, ok: true as const, body: copyBytes(payload, reader.position) };
      if (status !== STATUS_ERROR) throw new MalformedFrameError(`unknown response status ${status}`);
      const code = reader.string('error code', MAX_CODE_BYTES);
      const message = reader.string('error message', MAX_ERROR_MESSAGE_BYTES);
      reader.expectEnd('rpc error');
      return { id, ok: false as const, code, message };
    });
    const call = this.outstanding.get(response.id);
    if (call === undefined) {
      this.init.counters.lateResponses++;
      return;
    }
    this.outstanding.delete(response.id);
    call.cleanup();
    if (response.ok) call.resolve(response.body);
    else call.reject(new RemoteError(response.code, response.message));
  }

  private onCancel(payload: Uint8Array): void {
    const id = decodeStrictly('rpc cancel', () => {
      const reader = new Reader(payload, 1);
      const id = reader.varint('request id');
      reader.expectEnd('rpc cancel');
      return id;
    });
    const serving = this.serving.get(id);
    if (serving === undefined) return;
    this.serving.delete(id);
    clearTimeout(serving.timer);
    serving.controller.abort(new NetError('ABORTED', 'the caller cancelled the request'));
  }

  private respond(id: number, body: Uint8Array): void {
    const writer = new Writer(body.length + 24)
      .uint32(0)
      .uint8(FrameKind.RpcResponse)
      .varint(id)
      .uint8(STATUS_OK);
    writer.raw(body);
    writer.patchUint32(0, writer.length - LENGTH_PREFIX_BYTES);
    this.sendQuietly(writer.finish());
  }

  private respondError(id: number, code: string, message: string): void {
    const writer = new Writer(128)
      .uint32(0)
      .uint8(FrameKind.RpcResponse)
      .varint(id)
      .uint8(STATUS_ERROR)
      .string(code.slice(0, MAX_CODE_BYTES))
      .string(truncateUtf8(message, MAX_ERROR_MESSAGE_BYTES));
    writer.patchUint32(0, writer.length - LENGTH_PREFIX_BYTES);
    this.sendQuietly(writer.finish());
  }

  private sendCancel(id: number): void {
    const writer = new Writer(16).uint32(0).uint8(FrameKind.RpcCancel).varint(id);
    writer.patchUint32(0, writer.length - LENGTH_PREFIX_BYTES);
    this.sendQuietly(writer.finish());
  }

  /** Answers and cancels are best effort: a closed stream already failed both ends' calls. */
  private sendQuietly(frame: Uint8Array): void {
    if (this.channel === undefined || !this.channel.open) return;
    if (!this.enqueue({ frame, skip: false })) {
      this.init.logger.warn('rpc_queue_full', { peer: this.init.peer, queuedBytes: this.outboxBytes });
    }
  }

  /**
   * Queues a frame for the stream, in order; false if the queue would pass
   * maxRpcQueueBytesPerPeer. The pump hands frames to libp2p only while the stream is below its
   * high-water mark, so many concurrent calls cannot pile megabytes into libp2p's buffer.
   */
  private enqueue(outgoing: Outgoing): boolean {
    if (this.outboxBytes + outgoing.frame.length > this.init.limits.maxRpcQueueBytesPerPeer) return false;
    this.outbox.push(outgoing);
    this.outboxBytes += outgoing.frame.length;
    this.pump();
    return true;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const run = async () => {
      try {
        while (this.outbox.length > 0) {
          const channel = this.channel;
          if (channel === undefined || !channel.open) {
            this.clearOutbox();
            return;
          }
          if (!channel.writable) {
            await channel.waitWritable().catch(() => {});
            continue;
          }
          const next = this.outbox.shift()!;
          this.outboxBytes -= next.frame.length;
          if (next.skip) continue;
          try {
            channel.send(next.frame);
          } catch {
            // Closed: detach() fails the outstanding calls.
          }
        }
      } finally {
        this.pumping = false;
      }
    };
    run().catch((err) =>
      this.init.logger.error('rpc_pump_failed', { peer: this.init.peer, error: describeError(err) }),
    );
  }

  private clearOutbox(): void {
    this.outbox.length = 0;
    this.outboxBytes = 0;
  }

  private waitAttached(signal: AbortSignal): Promise<void> {
    if (this.shutDownReason !== undefined) {
      return Promise.reject(
        new NetError('UNAVAILABLE', `connection to ${this.init.peer} closed (${this.shutDownReason})`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }
}

/** Cuts a string so that its UTF-8 encoding fits in maxBytes, never inside a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
