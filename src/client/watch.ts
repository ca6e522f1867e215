// A watch: an async iterator of changes that resumes on another connection without a gap or a repeat.

/*
 * The watch remembers the revision of the last event it accepted (`lastAccepted`; it starts
 * at fromRevision - 1, or at the revision the first subscription answers). Whenever its
 * subscription is lost — the connection dropped, or the node ended it with a retryable
 * error — it subscribes again, on whatever connection is current, from lastAccepted + 1.
 * Events at or below lastAccepted are dropped, in case a node replays some. A transaction's
 * events share one revision and arrive in one message, so the floor is taken per message.
 *
 * Accepted events wait in a bounded buffer until the consumer asks for them; a message that
 * would overflow it ends the watch with SLOW_CONSUMER. A watch that ends with an error first
 * yields what it had accepted, then throws (so `lastRevision` is then where to resume).
 */

import type { WatchEvent, WsAnswer, WsError } from '../ws-protocol.js';
import type { CallContext } from './call.js';
import { ConclaveError, errorFromWire } from './errors.js';
import { Fifo } from './fifo.js';
import type { Link } from './link.js';
import { exchange, type Transport } from './retry.js';
import type { RequestBody } from './rpc.js';
import { MalformedAnswer, readWatchStart } from './wire.js';

/**
 * The changes to the keys of a realm under a prefix, in revision order, each once. Iterate
 * with `for await`; leaving the loop (break, return, throw) closes the watch. The iterator
 * throws ConclaveError when the watch ends for good: COMPACTED (fromRevision is no longer
 * retained; `revision` is the node's current one), SLOW_CONSUMER (more than
 * watchBufferEvents waited unread), TIMEOUT (no node could resume it within
 * requestTimeoutMs), or the node's non-retryable error.
 */
export interface Watch extends AsyncIterable<WatchEvent> {
  /** Stops the watch: tells the node (best effort) and ends iteration without error. Idempotent. */
  close(): void;
  /** The modRevision of the last event handed to the consumer (or the revision it started after); undefined until known. */
  readonly lastRevision: number | undefined;
}

/** What a watch needs from the client. */
export interface WatchHost extends Transport {
  /** A call context with the client's request deadline, aborted when the client closes. */
  beginCall(): CallContext;
  /** Routes the node's messages for `watchId` on `link` to `watch`. */
  attach(link: Link, watchId: number, watch: WatchStream): void;
  /** Stops routing `watchId` and asks the node to drop it (best effort, once per id). */
  unwatch(link: Link, watchId: number): void;
  /** The watch has ended; the client no longer needs to end it on close. */
  forget(watch: WatchStream): void;
}

export interface WatchSpec {
  readonly realm: string;
  readonly prefix: string;
  readonly fromRevision: number | undefined;
  readonly bufferEvents: number;
}

interface Reader {
  readonly resolve: (result: IteratorResult<WatchEvent, undefined>) => void;
  readonly reject: (error: unknown) => void;
}

/** The Watch the client hands out. */
export class WatchStream implements Watch, AsyncIterator<WatchEvent, undefined> {
  private lastAccepted: number | undefined;
  private lastDelivered: number | undefined;
  private readonly buffer = new Fifo<WatchEvent>();
  private readonly readers: Reader[] = [];
  /** Set once no more events will be accepted; `error` is thrown after the buffer drains. */
  private ending: { readonly error: ConclaveError | undefined } | undefined;
  private errorReported = false;
  private subscription: { readonly link: Link; readonly watch: number } | undefined;
  private subscribing: CallContext | undefined;
  /** Subscriptions lost or refused since events last flowed: paces resubscribing. */
  private failures = 0;

  constructor(
    private readonly host: WatchHost,
    private readonly spec: WatchSpec,
  ) {
    if (spec.fromRevision !== undefined) {
      this.lastAccepted = spec.fromRevision - 1;
      this.lastDelivered = this.lastAccepted;
    }
  }

  get lastRevision(): number | undefined {
    return this.lastDelivered;
  }

  /** Whether the watch has stopped accepting events. */
  get ended(): boolean {
    return this.ending !== undefined;
  }

  start(): void {
    this.subscribe();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent, undefined> {
    return this;
  }

  next(): Promise<IteratorResult<WatchEvent, undefined>> {
    return new Promise((resolve, reject) => {
      this.readers.push({ resolve, reject });
      this.flush();
    });
  }

  /** Called when a for-await loop is left early: closes the watch. */
  return(): Promise<IteratorResult<WatchEvent, undefined>> {
    this.close();
    return Promise.resolve({ done: true, value: undefined });
  }

  close(): void {
    this.buffer.clear();
    this.end(undefined);
  }

  // Called by the client as the node's messages for this watch arrive.

  onEvents(events: readonly WatchEvent[]): void {
    if (this.ending !== undefined || this.lastAccepted === undefined) return;
    let floor = this.lastAccepted;
    const fresh: WatchEvent[] = [];
    for (const event of events) {
      // Strictly above what was accepted before this message; never backwards within it.
      if (event.modRevision <= this.lastAccepted || event.modRevision < floor) continue;
      fresh.push(event);
      floor = event.modRevision;
    }
    if (fresh.length === 0) return;
    if (this.buffer.length + fresh.length > this.spec.bufferEvents) {
      this.end(
        new ConclaveError(
          'SLOW_CONSUMER',
          `more than ${this.spec.bufferEvents} events waited unread (watchBufferEvents); watch again from revision ${this.lastAccepted + 1}`,
          { revision: this.lastAccepted },
        ),
      );
      return;
    }
    for (const event of fresh) this.buffer.push(event);
    this.lastAccepted = floor;
    this.failures = 0;
    this.flush();
  }

  onEnded(error: WsError): void {
    this.subscription = undefined;
    const ended = errorFromWire(error);
    if (!ended.retryable) {
      this.end(ended);
      return;
    }
    this.failures += 1;
    this.subscribe();
  }

  onLinkLost(link: Link): void {
    if (this.subscription?.link !== link) return;
    this.subscription = undefined;
    this.subscribe();
  }

  /** The client is closing: end without telling the node. */
  shutdown(): void {
    this.subscription = undefined;
    this.close();
  }

  private subscribe(): void {
    if (this.ending !== undefined || this.subscribing !== undefined || this.subscription !== undefined)
      return;
    const ctx = this.host.beginCall();
    this.subscribing = ctx;
    void this.runSubscribe(ctx).finally(() => {
      ctx.finish();
      if (this.subscribing === ctx) this.subscribing = undefined;
    });
  }

  private async runSubscribe(ctx: CallContext): Promise<void> {
    try {
      if (this.failures > 0) await this.host.sleep(this.host.backoffMs(this.failures), ctx.signal);
      let readable = false;
      const answer = await exchange(this.host, ctx, () => this.request(), {
        onAnswer: (reply, link) => {
          readable = this.onSubscribed(reply, link, ctx);
        },
      });
      if (answer.ok) {
        if (!readable) {
          this.end(new ConclaveError('INTERNAL', 'the node answered watch with a malformed result'));
        }
        return;
      }
      this.end(errorFromWire(answer.error));
    } catch (error) {
      if (this.ending !== undefined) return;
      if (ctx.aborted) {
        const timeout = ctx.abortError(false);
        this.end(
          new ConclaveError('TIMEOUT', `watch: ${timeout.message}`, {
            ...(this.lastAccepted === undefined ? {} : { revision: this.lastAccepted }),
            ...(timeout.cause === undefined ? {} : { cause: timeout.cause }),
          }),
        );
        return;
      }
      this.end(
        error instanceof ConclaveError
          ? error
          : new ConclaveError('INTERNAL', `watch failed: ${String(error)}`, { cause: error }),
      );
    }
  }

  private request(): RequestBody {
    const fromRevision = this.lastAccepted === undefined ? undefined : this.lastAccepted + 1;
    return {
      op: 'watch',
      realm: this.spec.realm,
      prefix: this.spec.prefix,
      ...(fromRevision === undefined ? {} : { fromRevision }),
    };
  }

  /**
   * Runs as the answer is read, so that the events right behind it find the watch attached.
   * Returns false if an ok answer's result is unreadable.
   */
  private onSubscribed(answer: WsAnswer, link: Link, ctx: CallContext): boolean {
    if (!answer.ok) return true;
    let start: { watch: number; revision: number };
    try {
      start = readWatchStart(answer.result);
    } catch (error) {
      if (error instanceof MalformedAnswer) return false;
      throw error;
    }
    if (this.ending !== undefined) {
      this.host.unwatch(link, start.watch);
      return true;
    }
    if (this.lastAccepted === undefined) {
      this.lastAccepted = start.revision;
      this.lastDelivered = start.revision;
    }
    this.subscription = { link, watch: start.watch };
    // Subscribed: a loss from now on must start a new subscription, not wait for this one to finish.
    if (this.subscribing === ctx) this.subscribing = undefined;
    this.host.attach(link, start.watch, this);
    return true;
  }

  private end(error: ConclaveError | undefined): void {
    if (this.ending !== undefined) return;
    this.ending = { error };
    const subscription = this.subscription;
    this.subscription = undefined;
    if (subscription !== undefined) {
      this.host.unwatch(subscription.link, subscription.watch);
    }
    this.subscribing?.abort('closed');
    this.host.forget(this);
    this.flush();
  }

  /** Hands buffered events, then the end, to waiting readers. */
  private flush(): void {
    while (this.readers.length > 0) {
      const event = this.buffer.shift();
      if (event !== undefined) {
        this.lastDelivered = event.modRevision;
        this.readers.shift()!.resolve({ done: false, value: event });
        continue;
      }
      if (this.ending === undefined) return;
      const reader = this.readers.shift()!;
      if (this.ending.error !== undefined && !this.errorReported) {
        this.errorReported = true;
        reader.reject(this.ending.error);
      } else {
        reader.resolve({ done: true, value: undefined });
      }
    }
  }
}
