// Requests on the wire: ids, the table of requests awaiting their answer, and routing of what a link receives.

import { WS_CLOSE_CODES, type WsAnswer, type WsPush, type WsRequest } from '../ws-protocol.js';
import { ConnectionLostError, invalidArgument, TooLargeError } from './errors.js';
import type { Link } from './link.js';
import { parseServerMessage } from './wire.js';

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** A request without its id (the id is chosen per attempt). */
export type RequestBody = WithoutId<WsRequest>;

/** Hooks of one call. */
export interface CallHooks {
  /** Runs synchronously as the answer is read, before the next message on the link is handled. */
  readonly onAnswer?: (answer: WsAnswer, link: Link) => void;
  /** Runs when the request was handed to the socket (it may reach the node even if the link then dies). */
  readonly onSent?: () => void;
}

interface Pending {
  readonly link: Link;
  /** Bytes of the request's message, to tell which one a node refused as too large. */
  readonly bytes: number;
  readonly resolve: (answer: WsAnswer) => void;
  readonly reject: (error: unknown) => void;
  readonly detach: () => void;
  readonly onAnswer: ((answer: WsAnswer, link: Link) => void) | undefined;
}

/** Matches answers to requests by id, in whatever order they come. */
export class Rpc {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Messages dropped: not protocol messages, or answers to nothing pending. */
  ignoredMessages = 0;

  constructor(
    private readonly onPush: (link: Link, push: WsPush) => void,
    /** The largest request message sent; a larger one is refused with TOO_LARGE before it is sent. */
    private readonly maxRequestBytes: number = Number.MAX_SAFE_INTEGER,
  ) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Sends `body` on `link` with a fresh id and resolves with its answer (an error answer
   * resolves too). Rejects ConnectionLostError if the link is closed, or closes, before the
   * answer; rejects with the signal's reason if it aborts first. Rejects ConclaveError
   * TOO_LARGE (not retryable, not indeterminate) for a message over maxRequestBytes, unsent,
   * and for the request the node refused by closing the link with 1009 (see lose()).
   */
  call(link: Link, body: RequestBody, signal: AbortSignal, hooks: CallHooks = {}): Promise<WsAnswer> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    let text: string;
    try {
      text = JSON.stringify({ id, ...body });
    } catch (error) {
      return Promise.reject(invalidArgument(`the request cannot be sent as JSON: ${String(error)}`));
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.maxRequestBytes) return Promise.reject(unsentTooLarge(bytes, this.maxRequestBytes));
    return new Promise<WsAnswer>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const detach = () => signal.removeEventListener('abort', onAbort);
      if (!link.send(text)) {
        detach();
        reject(new ConnectionLostError(link.url));
        return;
      }
      this.pending.set(id, { link, bytes, resolve, reject, detach, onAnswer: hooks.onAnswer });
      hooks.onSent?.();
    });
  }

  /**
   * Throws TooLargeError (unsent) if `body`, with an id and `session` if given, is over
   * maxRequestBytes: a call can fail at once, before it waits for a connection or a session.
   * call() checks the exact message again.
   */
  checkSize(body: RequestBody | object): void {
    let bytes: number;
    try {
      bytes = Buffer.byteLength(JSON.stringify({ id: 0, ...body }), 'utf8');
    } catch {
      return; // call() reports it.
    }
    if (bytes > this.maxRequestBytes) throw unsentTooLarge(bytes, this.maxRequestBytes);
  }

  /** Sends `body` and forgets it: its answer, if any, is ignored. False if the link is not open. */
  notify(link: Link, body: RequestBody): boolean {
    return link.send(JSON.stringify({ id: this.nextId++, ...body }));
  }

  /** Handles one text message from `link`: an answer settles its request, a push goes to onPush. */
  receive(link: Link, text: string): void {
    const message = parseServerMessage(text);
    if (message === undefined) {
      this.ignoredMessages += 1;
      return;
    }
    if (!('id' in message)) {
      this.onPush(link, message);
      return;
    }
    const pending = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (pending === undefined || pending.link !== link) {
      this.ignoredMessages += 1;
      return;
    }
    this.pending.delete(message.id as number);
    pending.detach();
    pending.onAnswer?.(message, link);
    pending.resolve(message);
  }

  /**
   * Every request awaiting an answer on `link` rejects ConnectionLostError — except, when the
   * node closed the link with 1009 (a message over its limit, which it neither read nor
   * answered), the largest request in flight on it: that one rejects TOO_LARGE, so that it is
   * not resent. A smaller one that was also too large meets another 1009 when resent, and is
   * then the largest.
   */
  lose(link: Link): void {
    let refusedId: number | undefined;
    if (link.closeCode === WS_CLOSE_CODES.TOO_LARGE) {
      let largest = -1;
      for (const [id, pending] of this.pending) {
        if (pending.link === link && pending.bytes > largest) {
          largest = pending.bytes;
          refusedId = id;
        }
      }
    }
    for (const [id, pending] of this.pending) {
      if (pending.link !== link) continue;
      this.pending.delete(id);
      pending.detach();
      pending.reject(
        id === refusedId
          ? new TooLargeError(
              `the request (${pending.bytes} bytes) is larger than ${link.url} accepts: it closed the ` +
                'connection with 1009 (TOO_LARGE) without reading it',
              true,
            )
          : new ConnectionLostError(link.url),
      );
    }
  }

  /** Every request awaiting an answer rejects with `error`. */
  rejectAll(error: unknown): void {
    for (const pending of this.pending.values()) {
      pending.detach();
      pending.reject(error);
    }
    this.pending.clear();
  }
}

function unsentTooLarge(bytes: number, max: number): TooLargeError {
  return new TooLargeError(
    `the request is ${bytes} bytes, more than maxRequestBytes (${max}, by default the node's ` +
      'WebSocket message limit); it was not sent',
    false,
  );
}
