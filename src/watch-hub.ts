// Watches: change events from this node's own apply loop, fanned out to subscribers in revision order.

/*
 * A subscription is either catching up (reading the retained history from its next revision,
 * a page at a time, paced by its sink's backlog) or live (receiving each applied batch's events
 * as the state store reports them). It turns live once a history read reaches past the last
 * batch the hub has seen; batches that became durable during that read are not lost (the read
 * saw them or the next read will) and not repeated (events below the subscription's next
 * revision are dropped). A snapshot that replaces the state sends every live subscription back
 * to catching up; one whose next revision is no longer retained ends with COMPACTED.
 */

import type { ChangeEvent, CommandError, HistoryOptions, ReadResult, StateChange } from '../storage/index.js';
import { isRetryable } from './error-codes.js';
import type { JsonValue, WatchEvent, WsError } from './ws-protocol.js';

/** What the hub reads: the state store (or anything shaped like it). */
export interface WatchSource {
  /** The revision of the durable state now. */
  readonly revision: number;
  history(
    realm: string,
    options: HistoryOptions,
  ): Promise<ReadResult<{ events: ChangeEvent[]; nextRevision: number }>>;
}

/** Where one subscription's events go. Calls must not throw. */
export interface WatchSink {
  /** Delivers events in revision order; false means the subscriber is gone (the hub drops it). */
  deliver(events: readonly WatchEvent[]): boolean;
  /** The subscription ended for a reason other than cancel(). */
  end(error: WsError): void;
  /** Bytes queued toward the subscriber: catching up pauses while this is above the hub's limit. */
  readonly backlogBytes: number;
}

export interface WatchHubLimits {
  /** Subscriptions on this node; more are refused UNAVAILABLE. */
  readonly maxSubscriptions: number;
  /** Events per history read while catching up. */
  readonly pageEvents: number;
  /** A catching-up subscription waits while its sink has more than this queued. */
  readonly maxBacklogBytes: number;
}

export const WATCH_HUB_DEFAULTS: WatchHubLimits = Object.freeze({
  maxSubscriptions: 100_000,
  pageEvents: 512,
  maxBacklogBytes: 1024 * 1024,
});

/** A subscription: `revision` is the node's revision when it was made. */
export interface Subscription {
  readonly id: number;
  readonly revision: number;
  /** The lowest revision not yet delivered: where to resume this watch elsewhere. */
  readonly next: number;
  /** Starts delivery (call it once the subscriber has been told the watch id). */
  start(): void;
  /** Stops delivery; idempotent. Does not call the sink's end(). */
  cancel(): void;
}

export type SubscribeResult = { ok: true; subscription: Subscription } | { ok: false; error: WsError };

/**
 * Where watches come from: a member's own hub (WatchHub), or a stateless proxy's watches
 * carried from a member over the mesh. Refusals (a bad realm, COMPACTED, a full hub) are
 * answered as values, never thrown.
 */
export interface Watches {
  /** Starts a subscription from `fromRevision` (default: the next change); start() begins delivery. */
  subscribe(
    realm: string,
    prefix: string,
    fromRevision: number | undefined,
    sink: WatchSink,
  ): Promise<SubscribeResult>;
}

class Sub implements Subscription {
  mode: 'catching-up' | 'live' | 'ended' = 'catching-up';
  constructor(
    readonly id: number,
    readonly realm: string,
    readonly prefix: string,
    readonly revision: number,
    /** The lowest revision not yet delivered. */
    public next: number,
    readonly sink: WatchSink,
    private readonly hub: WatchHub,
    private readonly first: { events: ChangeEvent[]; nextRevision: number },
  ) {}

  start(): void {
    this.hub.begin(this, this.first);
  }

  cancel(): void {
    this.hub.remove(this);
  }
}

/**
 * Fans out the state store's changes to subscriptions. Wire `onChange` to the store's
 * listener before the first apply; subscribe() validates realm and prefix through the store's
 * history read and answers its error (NOT_FOUND, INVALID_ARGUMENT, COMPACTED with `revision`).
 */
export class WatchHub implements Watches {
  private readonly limits: WatchHubLimits;
  private readonly byRealm = new Map<string, Set<Sub>>();
  private count = 0;
  /** Subscriptions between their limit check and their registration. */
  private starting = 0;
  private nextId = 1;
  /** The revision of the last change the hub has seen. */
  private lastRevision: number;
  private stopped = false;

  constructor(
    private readonly source: WatchSource,
    limits: Partial<WatchHubLimits> = {},
  ) {
    this.limits = { ...WATCH_HUB_DEFAULTS, ...limits };
    this.lastRevision = source.revision;
  }

  get subscriptions(): number {
    return this.count;
  }

  /** Starts a subscription from `fromRevision` (default: the next change). */
  async subscribe(
    realm: string,
    prefix: string,
    fromRevision: number | undefined,
    sink: WatchSink,
  ): Promise<SubscribeResult> {
    if (this.stopped) return { ok: false, error: wsError('UNAVAILABLE', 'the node is stopping', true) };
    if (this.count + this.starting >= this.limits.maxSubscriptions) {
      return {
        ok: false,
        error: wsError(
          'UNAVAILABLE',
          `this node holds ${this.count} watches, its limit; retry elsewhere`,
          true,
        ),
      };
    }
    const revision = this.lastRevision;
    const next = fromRevision ?? revision + 1;
    // Validates realm, prefix and fromRevision, and serves the first page. The slot is held
    // meanwhile, so concurrent subscribes cannot all pass the limit.
    this.starting++;
    let first: Awaited<ReturnType<WatchSource['history']>>;
    try {
      first = await this.source.history(realm, { prefix, fromRevision: next, limit: this.limits.pageEvents });
    } finally {
      this.starting--;
    }
    if (!first.ok) return { ok: false, error: commandWsError(first.error, first.revision) };
    if (this.stopped) return { ok: false, error: wsError('UNAVAILABLE', 'the node is stopping', true) };
    const sub = new Sub(this.nextId++, realm, prefix, revision, next, sink, this, first.value);
    let set = this.byRealm.get(realm);
    if (set === undefined) {
      set = new Set();
      this.byRealm.set(realm, set);
    }
    set.add(sub);
    this.count++;
    return { ok: true, subscription: sub };
  }

  /** Delivers a subscription's first page, then takes it live or on to catching up. */
  begin(sub: Sub, first: { events: ChangeEvent[]; nextRevision: number }): void {
    if (sub.mode !== 'catching-up') return;
    if (!this.deliverPage(sub, first.events, first.nextRevision)) return;
    if (sub.next > this.lastRevision) sub.mode = 'live';
    else void this.catchUp(sub);
  }

  /** Feeds one durable change of the state store. */
  onChange(change: StateChange): void {
    this.lastRevision = change.revision;
    if (change.kind === 'replaced') {
      for (const set of this.byRealm.values()) {
        for (const sub of set) {
          if (sub.mode !== 'live') continue;
          sub.mode = 'catching-up';
          void this.catchUp(sub);
        }
      }
      return;
    }
    if (this.count === 0 || change.events.length === 0) return;
    let parsed: ChangeEvent[] | undefined;
    const mapped = new Map<ChangeEvent, WatchEvent>();
    for (const [realm, set] of this.byRealm) {
      for (const sub of set) {
        if (sub.mode !== 'live') continue;
        parsed ??= change.events.map((text) => JSON.parse(text) as ChangeEvent);
        const out: WatchEvent[] = [];
        for (const event of parsed) {
          if (event.realm !== realm || event.revision < sub.next || !event.key.startsWith(sub.prefix))
            continue;
          let wire = mapped.get(event);
          if (wire === undefined) {
            wire = toWatchEvent(event);
            if (wire === undefined) continue;
            mapped.set(event, wire);
          }
          out.push(wire);
        }
        sub.next = Math.max(sub.next, change.revision + 1);
        if (out.length > 0 && !sub.sink.deliver(out)) this.remove(sub);
      }
    }
  }

  /** Ends every subscription with UNAVAILABLE (retryable: resume at another node). */
  stop(): void {
    this.stopped = true;
    for (const set of this.byRealm.values()) {
      for (const sub of set) this.end(sub, wsError('UNAVAILABLE', 'the node is stopping', true));
    }
  }

  remove(sub: Sub): void {
    if (sub.mode === 'ended') return;
    sub.mode = 'ended';
    const set = this.byRealm.get(sub.realm);
    if (set?.delete(sub)) {
      this.count--;
      if (set.size === 0) this.byRealm.delete(sub.realm);
    }
  }

  private end(sub: Sub, error: WsError): void {
    if (sub.mode === 'ended') return;
    this.remove(sub);
    sub.sink.end(error);
  }

  /** Reads history pages until the subscription reaches the live stream. */
  private async catchUp(sub: Sub): Promise<void> {
    while (sub.mode === 'catching-up') {
      if (sub.sink.backlogBytes > this.limits.maxBacklogBytes) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      let page: Awaited<ReturnType<WatchSource['history']>>;
      try {
        page = await this.source.history(sub.realm, {
          prefix: sub.prefix,
          fromRevision: sub.next,
          limit: this.limits.pageEvents,
        });
      } catch (error) {
        this.end(sub, wsError('UNAVAILABLE', `reading history failed: ${(error as Error).message}`, true));
        return;
      }
      if (sub.mode !== 'catching-up') return;
      if (!page.ok) {
        this.end(sub, commandWsError(page.error, page.revision));
        return;
      }
      if (!this.deliverPage(sub, page.value.events, page.value.nextRevision)) return;
      if (sub.next > this.lastRevision) sub.mode = 'live';
    }
  }

  /** Delivers a history page; false if the subscriber went away. */
  private deliverPage(sub: Sub, events: readonly ChangeEvent[], nextRevision: number): boolean {
    const out: WatchEvent[] = [];
    for (const event of events) {
      if (event.revision < sub.next) continue;
      const wire = toWatchEvent(event);
      if (wire !== undefined) out.push(wire);
    }
    sub.next = Math.max(sub.next, nextRevision);
    if (out.length > 0 && !sub.sink.deliver(out)) {
      this.remove(sub);
      return false;
    }
    return true;
  }
}

/** A change as a watcher sees it; realm creations are not key events. */
export function toWatchEvent(event: ChangeEvent): WatchEvent | undefined {
  if (event.type === 'put') {
    return {
      type: 'put',
      key: event.key,
      value: event.value as JsonValue,
      modRevision: event.modRevision,
      createRevision: event.createRevision,
      version: event.version,
    };
  }
  if (event.type === 'delete')
    return { type: 'delete', key: event.key, value: null, modRevision: event.revision };
  return undefined;
}

export function wsError(code: string, message: string, retryable = isRetryable(code)): WsError {
  return { code, message, retryable };
}

function commandWsError(error: CommandError, revision: number): WsError {
  return {
    code: error.code,
    message: error.message,
    retryable: isRetryable(error.code),
    ...(error.code === 'COMPACTED' ? { revision } : {}),
  };
}
