// A member's side of stateless proxies: the proxies it knows, and how it serves their client calls, watch polls and directory requests.

import type { Logger } from '../net/index.js';
import type { RaftStatus } from '../raft/index.js';
import type { Gate } from './auth.js';
import { answerOf, type PeerAnswer } from './forwarding.js';
import type { KvService } from './kv-service.js';
import type { ClientCall, WatchPoll } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';
import type { Watches } from './watch-hub.js';
import type { WatchEvent, WsError } from './ws-protocol.js';

/** A member's view of the cluster, for a proxy to follow the membership and the leader. */
export interface DirectoryAnswer {
  /** The answering member. */
  readonly name: string;
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Mesh addresses of the members, by name (the replicated address book). */
  readonly addresses: Readonly<Record<string, string>>;
  /** Where realms live beyond group 1 (absent from older versions, and without groups). */
  readonly groups?: GroupRoutes;
}

/** The raft groups besides group 1 as a member knows them: for a proxy to send each call where it belongs. */
export interface GroupRoutes {
  /** Realm name -> its group, for realms placed outside group 1. */
  readonly placements: Readonly<Record<string, number>>;
  /** Group id -> its members (group 1's catalog). */
  readonly members: Readonly<Record<string, readonly string[]>>;
  /** Group id -> its leader, for the groups the answering member runs and knows a leader of. */
  readonly leaders: Readonly<Record<string, string>>;
}

/** A watch poll's page: the events, where the next poll starts, and the member's revision when it began. */
export interface WatchPage {
  readonly events: readonly WatchEvent[];
  readonly next: number;
  readonly revision: number;
}

export type WatchPollAnswer =
  | { readonly ok: true; readonly value: WatchPage }
  | { readonly ok: false; readonly error: WsError };

/** A page closes once it holds this many bytes of events (it must fit a mesh answer, 4 MiB). */
const WATCH_PAGE_BYTES = 1024 * 1024;
/** Proxies a member keeps track of; beyond, the oldest is forgotten (it is identified again). */
const MAX_PROXIES = 1024;

export interface ProxyPeersInit {
  readonly name: string;
  readonly kv: KvService;
  /** Who a proxy's caller is: the member's own gate. */
  readonly gate: Gate;
  readonly watches: Watches;
  readonly addresses: () => Readonly<Record<string, string>>;
  /** The groups besides group 1, if any (undefined: none). */
  readonly groupRoutes?: () => GroupRoutes | undefined;
  readonly raftStatus: () => RaftStatus;
  readonly logger: Logger;
}

/** The proxies connected to this member, and what it does for them. */
export class ProxyPeers {
  private readonly names = new Map<string, string>();

  constructor(private readonly init: ProxyPeersInit) {}

  has(peer: string): boolean {
    return this.names.has(peer);
  }

  add(peer: string, name: string): void {
    if (this.names.size >= MAX_PROXIES) {
      const oldest = this.names.keys().next().value;
      if (oldest !== undefined) this.names.delete(oldest);
    }
    this.names.set(peer, name);
    this.init.logger.info('peer.proxy_identified', { peer, name });
  }

  /** Serves one proxy request; failures come back as values (never rejects). */
  serve(
    request: ({ type: 'client' } & ClientCall) | WatchPoll | { type: 'directory' },
    signal: AbortSignal,
  ): Promise<PeerAnswer<unknown> | WatchPollAnswer | DirectoryAnswer> {
    switch (request.type) {
      case 'directory':
        return Promise.resolve(this.directory());
      case 'watch':
        return this.poll(request, signal);
      case 'client':
        return answerOf(() => this.call(request));
    }
  }

  private call(request: ClientCall): Promise<unknown> {
    const { kv } = this.init;
    switch (request.call) {
      case 'write':
        return kv.write(request.op as Parameters<KvService['write']>[0], request.session, request.route);
      case 'get':
        return kv.get(request.realm, request.key, request.consistency);
      case 'list':
        return kv.list(request.realm, request.options, request.consistency);
      case 'realms':
        return kv.realms(request.consistency);
      case 'definition':
        return kv.definition(request.consistency);
      case 'realmRecords':
        if (kv.realmRecords === undefined) {
          return Promise.reject(new DriverError('UNAVAILABLE', 'this node holds no realm records'));
        }
        return kv.realmRecords(request.realms, request.consistency);
      case 'principal':
        return Promise.resolve(this.init.gate.principal(request.token ?? undefined, request.require));
      case 'placeRealm':
        if (kv.placeRealm === undefined) {
          return Promise.reject(new DriverError('UNAVAILABLE', 'this node does not place realms'));
        }
        return kv.placeRealm(request.realm, request.group);
    }
  }

  private directory(): DirectoryAnswer {
    const raft = this.init.raftStatus();
    const groups = this.init.groupRoutes?.();
    return {
      ...(groups === undefined ? {} : { groups }),
      name: this.init.name,
      leader: raft.leader,
      term: raft.term,
      commitIndex: raft.commitIndex,
      voters: raft.membership.voters,
      learners: raft.membership.learners,
      addresses: this.init.addresses(),
    };
  }

  /**
   * One page of a proxy's watch: subscribes from `from`, answers once events came (batched for
   * one turn of the event loop) or `waitMs` passed, and cancels. `next` is the subscription's
   * next undelivered revision, so the following poll repeats and skips nothing.
   */
  private async poll(request: WatchPoll, signal: AbortSignal): Promise<WatchPollAnswer> {
    const events: WatchEvent[] = [];
    let bytes = 0;
    let ended: WsError | undefined;
    let settle: () => void = () => undefined;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    let closing = false;
    const closeSoon = () => {
      if (closing) return;
      closing = true;
      setImmediate(settle);
    };
    const result = await this.init.watches.subscribe(request.realm, request.prefix, request.from, {
      deliver: (delivered) => {
        events.push(...delivered);
        bytes += JSON.stringify(delivered).length;
        if (bytes >= WATCH_PAGE_BYTES) settle();
        else closeSoon();
        return true;
      },
      end: (error) => {
        ended = error;
        settle();
      },
      get backlogBytes() {
        return bytes;
      },
    });
    if (!result.ok) return { ok: false, error: result.error };
    const subscription = result.subscription;
    const timer = setTimeout(settle, request.waitMs);
    const onAbort = () => settle();
    signal.addEventListener('abort', onAbort);
    try {
      subscription.start();
      await settled;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      subscription.cancel();
    }
    if (ended !== undefined && events.length === 0) return { ok: false, error: ended };
    return { ok: true, value: { events, next: subscription.next, revision: subscription.revision } };
  }
}
