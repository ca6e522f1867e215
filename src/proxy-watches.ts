// Watches on a stateless proxy: long polls to a member from the next undelivered revision, resumed at another member when one goes away.

import type { Logger } from '../net/index.js';
import type { ForwardOptions } from './forwarding.js';
import type { PeerRequest, WatchPoll } from './peer-protocol.js';
import type { WatchPage, WatchPollAnswer } from './proxy-serving.js';
import {
  type SubscribeResult,
  type Subscription,
  type Watches,
  type WatchSink,
  wsError,
} from './watch-hub.js';
import type { WsError } from './ws-protocol.js';

/**
 * Where the polls go: a proxy's members (ProxyMembers), or the members of a raft group a node
 * does not run (the node's GroupMembers). `pick` waits until `deadline` for a reachable one
 * (preferring one other than `avoid`) and throws UNAVAILABLE otherwise; `moveOff` says that
 * one failed.
 */
export interface WatchMembers {
  /** A member to poll for `realm`'s events (one of its raft group's, where that is known). */
  pick(deadline: number, avoid?: string, realm?: string): Promise<{ peer: string; name: string }>;
  send<T>(
    peer: string,
    name: string,
    request: PeerRequest,
    options: Omit<ForwardOptions, 'target'>,
  ): Promise<T>;
  moveOff(peer: string): void;
}

export interface ProxyWatchesLimits {
  /** Watches on this proxy; more are refused UNAVAILABLE. Each holds one request open at a member. */
  readonly maxSubscriptions: number;
  /** How long a member holds a poll that has no events. */
  readonly pollWaitMs: number;
  /** How long a watch keeps trying to reach some member before it ends UNAVAILABLE. */
  readonly resumeForMs: number;
  /** A watch pauses polling while its sink has more than this queued. */
  readonly maxBacklogBytes: number;
  /** Per request beyond the poll's wait. */
  readonly requestTimeoutMs: number;
}

export const PROXY_WATCH_DEFAULTS: ProxyWatchesLimits = Object.freeze({
  maxSubscriptions: 2048,
  pollWaitMs: 10_000,
  resumeForMs: 30_000,
  maxBacklogBytes: 1024 * 1024,
  requestTimeoutMs: 5_000,
});

/** Codes of a poll that failed at one member but may go on at another. */
const ELSEWHERE_CODES: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'REMOVED', 'OVERLOADED']);

/**
 * Watches carried from members. Each subscription polls one member at a time for the events
 * from its next undelivered revision; since every page says where the next one starts, moving
 * to another member after a failure neither misses nor repeats an event (events below the
 * next revision are dropped all the same).
 */
export class ProxyWatches implements Watches {
  private readonly limits: ProxyWatchesLimits;
  private readonly subs = new Set<ProxyWatch>();
  private starting = 0;
  private nextId = 1;
  private stopped = false;

  constructor(
    readonly members: WatchMembers,
    readonly logger: Logger,
    limits: Partial<ProxyWatchesLimits> = {},
  ) {
    this.limits = { ...PROXY_WATCH_DEFAULTS, ...limits };
  }

  get subscriptions(): number {
    return this.subs.size;
  }

  async subscribe(
    realm: string,
    prefix: string,
    fromRevision: number | undefined,
    sink: WatchSink,
  ): Promise<SubscribeResult> {
    if (this.stopped) return { ok: false, error: wsError('UNAVAILABLE', 'the proxy is stopping') };
    if (this.subs.size + this.starting >= this.limits.maxSubscriptions) {
      return {
        ok: false,
        error: wsError(
          'UNAVAILABLE',
          `this proxy holds ${this.subs.size} watches, its limit; retry elsewhere`,
        ),
      };
    }
    this.starting++;
    let first: WatchPollAnswer;
    try {
      // The first page answers at once: it checks the realm and the revision, and fixes where the watch starts.
      first = await this.poll(
        {
          type: 'watch',
          realm,
          prefix,
          waitMs: 0,
          ...(fromRevision === undefined ? {} : { from: fromRevision }),
        },
        Date.now() + this.limits.requestTimeoutMs,
      );
    } finally {
      this.starting--;
    }
    if (!first.ok) return first;
    if (this.stopped) return { ok: false, error: wsError('UNAVAILABLE', 'the proxy is stopping') };
    const from = fromRevision ?? first.value.revision + 1;
    const watch = new ProxyWatch(this.nextId++, realm, prefix, from, first.value, sink, this, this.limits);
    this.subs.add(watch);
    return { ok: true, subscription: watch };
  }

  /** Ends every watch with UNAVAILABLE (retryable: resume at another node). */
  stop(): void {
    this.stopped = true;
    for (const watch of this.subs) watch.end(wsError('UNAVAILABLE', 'the proxy is stopping'));
  }

  forget(watch: ProxyWatch): void {
    this.subs.delete(watch);
  }

  /**
   * One poll at some member, moving to the next member while the failure allows, until
   * `deadline`. Resolves with the page or a refusal that another member would repeat (a bad
   * realm, COMPACTED); with UNAVAILABLE once no member answered in time.
   */
  async poll(
    request: WatchPoll,
    deadline: number,
    signal?: { cancelled: boolean },
  ): Promise<WatchPollAnswer> {
    let avoid: string | undefined;
    let last = 'no member of the cluster is reachable from this proxy';
    for (;;) {
      if (this.stopped || signal?.cancelled) {
        return { ok: false, error: wsError('UNAVAILABLE', 'the proxy is stopping') };
      }
      let member: { peer: string; name: string };
      try {
        member = await this.members.pick(deadline, avoid, request.realm);
      } catch {
        return { ok: false, error: wsError('UNAVAILABLE', last) };
      }
      let failure: WsError;
      try {
        const answer = await this.members.send<WatchPollAnswer>(member.peer, member.name, request, {
          timeoutMs: request.waitMs + this.limits.requestTimeoutMs,
          mayApply: false,
        });
        if (answer.ok || !answer.error.retryable) return answer;
        failure = answer.error;
      } catch (error) {
        const { code, message } = error as { code?: string; message?: string };
        failure = wsError(code ?? 'UNAVAILABLE', message ?? String(error), true);
      }
      last = `${member.name}: ${failure.message}`;
      if (!ELSEWHERE_CODES.has(failure.code) && !failure.retryable) return { ok: false, error: failure };
      this.members.moveOff(member.peer);
      avoid = member.peer;
      if (Date.now() >= deadline) return { ok: false, error: wsError('UNAVAILABLE', last) };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** One watch through the proxy. */
class ProxyWatch implements Subscription {
  readonly revision: number;
  /** The lowest revision not yet delivered. */
  next: number;
  private readonly state = { cancelled: false };
  private started = false;
  private first: WatchPage | undefined;

  constructor(
    readonly id: number,
    private readonly realm: string,
    private readonly prefix: string,
    /** The first revision asked for: the first page's events are delivered from here. */
    from: number,
    first: WatchPage,
    private readonly sink: WatchSink,
    private readonly owner: ProxyWatches,
    private readonly limits: ProxyWatchesLimits,
  ) {
    this.revision = first.revision;
    this.next = from;
    this.first = first;
  }

  start(): void {
    if (this.started || this.state.cancelled) return;
    this.started = true;
    const first = this.first;
    this.first = undefined;
    if (first !== undefined && !this.deliver(first)) return;
    void this.run();
  }

  cancel(): void {
    if (this.state.cancelled) return;
    this.state.cancelled = true;
    this.owner.forget(this);
  }

  /** Ends the watch for a reason other than cancel: the sink is told. */
  end(error: WsError): void {
    if (this.state.cancelled) return;
    this.cancel();
    this.sink.end(error);
  }

  private async run(): Promise<void> {
    while (!this.state.cancelled) {
      if (this.sink.backlogBytes > this.limits.maxBacklogBytes) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      const answer = await this.owner.poll(
        {
          type: 'watch',
          realm: this.realm,
          prefix: this.prefix,
          from: this.next,
          waitMs: this.limits.pollWaitMs,
        },
        Date.now() + this.limits.resumeForMs,
        this.state,
      );
      if (this.state.cancelled) return;
      if (!answer.ok) {
        this.end(answer.error);
        return;
      }
      if (!this.deliver(answer.value)) return;
    }
  }

  /** Delivers a page's events not delivered yet; false if the subscriber went away. */
  private deliver(page: WatchPage): boolean {
    const events = page.events.filter((event) => event.modRevision >= this.next);
    this.next = Math.max(this.next, page.next);
    if (events.length > 0 && !this.sink.deliver(events)) {
      this.cancel();
      return false;
    }
    return true;
  }
}
