// Requests on the wire: ids, the table of requests awaiting their answer, and routing of what a link receives.

import type { WsAnswer, WsPush, WsRequest } from '../ws-protocol.js';
import { ConnectionLostError, invalidArgument } from './errors.js';
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

  constructor(private readonly onPush: (link: Link, push: WsPush) => void) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Sends `body` on `link` with a fresh id and resolves with its answer (an error answer
   * resolves too). Rejects ConnectionLostError if the link is closed, or closes, before the
   * answer; rejects with the signal's reason if it aborts first.
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
      this.pending.set(id, { link, resolve, reject, detach, onAnswer: hooks.onAnswer });
      hooks.onSent?.();
    });
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

  /** Every request awaiting an answer on `link` rejects ConnectionLostError. */
  lose(link: Link): void {
    for (const [id, pending] of this.pending) {
      if (pending.link !== link) continue;
      this.pending.delete(id);
      pending.detach();
      pending.reject(new ConnectionLostError(link.url));
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
