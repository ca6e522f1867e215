// A stateless proxy's view of the cluster: the members it can reach, the one it uses, and how it follows membership changes.

import type { Logger, Mesh } from '../net/index.js';
import { type ForwardOptions, forward } from './forwarding.js';
import { identifyPeer } from './identify.js';
import type { PeerRequest } from './peer-protocol.js';
import type { DirectoryAnswer, GroupRoutes } from './proxy-serving.js';
import { DriverError } from './raft-driver.js';

export interface ProxyMembersInit {
  readonly mesh: Mesh;
  readonly logger: Logger;
  /** How often the proxy asks its member for the membership and the leader. */
  readonly refreshMs: number;
}

/** What the proxy last heard of the cluster. */
export interface ClusterView {
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** When it was heard (ms since epoch); 0 never. */
  readonly at: number;
}

/**
 * Which member a proxy forwards to. Members are found by identifying the peers the mesh
 * connects to (the --join addresses at first, then the replicated address book the directory
 * answers); the proxy keeps using one member while it answers and moves to the next one it can
 * reach when it does not.
 */
export class ProxyMembers {
  /** Identified members: peer id → name. */
  private readonly byPeer = new Map<string, string>();
  private readonly identifying = new Set<string>();
  /** Mesh addresses dialed because a member's address book lists them. */
  private readonly dialed = new Set<string>();
  private currentPeer: string | undefined;
  private viewNow: ClusterView = { leader: '', term: 0, commitIndex: 0, voters: [], learners: [], at: 0 };
  /** Where realms beyond group 1 live, as the member last said (empty without groups). */
  private routes: GroupRoutes = { placements: {}, members: {}, leaders: {} };
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly init: ProxyMembersInit) {}

  /** The member in use ('' when none is reachable). */
  get current(): string {
    const peer = this.currentPeer;
    return peer !== undefined && this.usable(peer) ? (this.byPeer.get(peer) ?? '') : '';
  }

  get view(): ClusterView {
    return this.viewNow;
  }

  /** Whether any identified member is connected. */
  get reachable(): boolean {
    for (const peer of this.byPeer.keys()) if (this.usable(peer)) return true;
    return false;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      void this.refresh().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.init.refreshMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** The mesh connected to `peer`: find out whether it is a member. */
  async identify(peer: string): Promise<void> {
    if (this.byPeer.has(peer) || this.identifying.has(peer) || this.stopped) return;
    this.identifying.add(peer);
    try {
      const answer = await identifyPeer(this.init.mesh, peer, {
        attempts: 50,
        timeoutMs: 2000,
        backoffMs: (attempt) => 50 + attempt * 20,
        keepGoing: () => !this.stopped,
      });
      // Founders still checking, and other proxies, are not members to forward to.
      if (answer === undefined || answer.founding === true || answer.proxy === true) return;
      this.byPeer.set(peer, answer.name);
      this.init.logger.info('proxy.member_found', { peer, name: answer.name });
      for (const wake of this.waiters) wake();
      this.waiters.clear();
    } finally {
      this.identifying.delete(peer);
    }
  }

  /**
   * The member to use now (its peer id and name), waiting until `deadline` (ms since epoch)
   * for one to become reachable. `avoid` is a peer that just failed: another is preferred.
   * Throws UNAVAILABLE (retryable, definite) when none is reachable in time.
   */
  async pick(deadline: number, avoid?: string): Promise<{ peer: string; name: string }> {
    for (;;) {
      const chosen = this.choose(avoid);
      if (chosen !== undefined) return chosen;
      const wait = deadline - Date.now();
      if (wait <= 0 || this.stopped) {
        throw new DriverError(
          'UNAVAILABLE',
          this.stopped ? 'the proxy is stopping' : 'no member of the cluster is reachable from this proxy',
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(wait, 100));
        this.waiters.add(wake);
      });
    }
  }

  /**
   * The member to send a call of `realm` to. For a realm outside group 1: for a write, the
   * group's leader when known (from the member that runs it) and reachable; otherwise a
   * reachable member of its group (the one in use if it is one), since others refuse such calls
   * from a proxy. Everything else goes to the member in use, as pick() chooses (it forwards
   * group 1's writes to their leader).
   */
  async pickFor(
    realm: string | undefined,
    write: boolean,
    deadline: number,
    avoid?: string,
  ): Promise<{ peer: string; name: string }> {
    const placed = realm === undefined ? undefined : this.routes.placements[realm];
    if (typeof placed === 'number' && placed > 1) {
      const group = String(placed);
      const leader = this.routes.leaders[group] ?? '';
      const members = [...(this.routes.members[group] ?? [])];
      const current = this.current;
      if (members.includes(current)) members.unshift(current);
      for (const name of [...(write && leader !== '' ? [leader] : []), ...members]) {
        const peer = this.peerOf(name);
        if (peer !== undefined && peer !== avoid) return { peer, name };
      }
    }
    return this.pick(deadline, avoid);
  }

  /** The peer id of the member named `name`, if identified and connected. */
  peerOf(name: string): string | undefined {
    for (const [peer, member] of this.byPeer) if (member === name && this.usable(peer)) return peer;
    return undefined;
  }

  /** Sends `request` to a member (see forward); the caller decides what a failure means. */
  send<T>(
    peer: string,
    name: string,
    request: PeerRequest,
    options: Omit<ForwardOptions, 'target'>,
  ): Promise<T> {
    return forward<T>(this.init.mesh, peer, request, { ...options, target: name });
  }

  /** Asks the member in use for the membership and the leader, and dials the members listed. */
  async refresh(): Promise<void> {
    let chosen: { peer: string; name: string };
    try {
      chosen = await this.pick(Date.now());
    } catch {
      return;
    }
    let answer: DirectoryAnswer;
    try {
      answer = await this.send<DirectoryAnswer>(
        chosen.peer,
        chosen.name,
        { type: 'directory' },
        {
          timeoutMs: 2000,
          mayApply: false,
        },
      );
    } catch (error) {
      this.init.logger.debug('proxy.directory_failed', {
        member: chosen.name,
        error: (error as Error).message,
      });
      this.moveOff(chosen.peer);
      return;
    }
    if (typeof answer !== 'object' || answer === null || !Array.isArray(answer.voters)) return;
    this.viewNow = {
      leader: typeof answer.leader === 'string' ? answer.leader : '',
      term: Number(answer.term) || 0,
      commitIndex: Number(answer.commitIndex) || 0,
      voters: answer.voters.filter((v): v is string => typeof v === 'string'),
      learners: Array.isArray(answer.learners)
        ? answer.learners.filter((v): v is string => typeof v === 'string')
        : [],
      at: Date.now(),
    };
    this.routes = routesOf(answer.groups);
    this.follow(answer.addresses ?? {});
  }

  /** `peer` failed a request: use another member from now on, if one is reachable. */
  moveOff(peer: string): void {
    if (this.currentPeer !== peer) return;
    const next = this.choose(peer);
    if (next !== undefined && next.peer !== peer) {
      this.init.logger.info('proxy.member_changed', { from: this.byPeer.get(peer), to: next.name });
    }
  }

  /** Dials members the address book lists, and stops dialing those it no longer lists. */
  private follow(addresses: Readonly<Record<string, string>>): void {
    const { mesh, logger } = this.init;
    const listed = new Set(Object.values(addresses).filter((a): a is string => typeof a === 'string'));
    for (const address of listed) {
      if (this.dialed.has(address)) continue;
      try {
        mesh.addPeer(address);
        this.dialed.add(address);
      } catch (error) {
        logger.warn('peer.bad_address', { address, error: (error as Error).message });
      }
    }
    for (const address of this.dialed) {
      if (!listed.has(address)) {
        mesh.removePeer(address);
        this.dialed.delete(address);
      }
    }
    // A member that left the membership is no longer forwarded to.
    const members = new Set([...this.viewNow.voters, ...this.viewNow.learners]);
    for (const [peer, name] of this.byPeer) {
      if (!members.has(name)) {
        this.byPeer.delete(peer);
        if (this.currentPeer === peer) this.currentPeer = undefined;
      }
    }
  }

  private usable(peer: string): boolean {
    return this.byPeer.has(peer) && this.init.mesh.isConnected(peer);
  }

  /** Keeps the current member while usable; otherwise the next usable one after it (round robin). */
  private choose(avoid?: string): { peer: string; name: string } | undefined {
    const current = this.currentPeer;
    if (current !== undefined && current !== avoid && this.usable(current)) {
      return { peer: current, name: this.byPeer.get(current)! };
    }
    const peers = [...this.byPeer.keys()].filter((p) => this.usable(p));
    if (peers.length === 0) return undefined;
    const others = peers.filter((p) => p !== avoid);
    const pool = others.length > 0 ? others : peers;
    const after = current === undefined ? -1 : pool.indexOf(current);
    const next = pool[(after + 1) % pool.length]!;
    this.currentPeer = next;
    return { peer: next, name: this.byPeer.get(next)! };
  }
}

/** The group routes of a directory answer, checked field by field (an older member sends none). */
function routesOf(value: unknown): GroupRoutes {
  const empty: GroupRoutes = { placements: {}, members: {}, leaders: {} };
  if (typeof value !== 'object' || value === null) return empty;
  const { placements, members, leaders } = value as Record<string, unknown>;
  const record = (x: unknown): Record<string, unknown> =>
    typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
  return {
    placements: Object.fromEntries(
      Object.entries(record(placements)).filter((e): e is [string, number] => Number.isSafeInteger(e[1])),
    ),
    members: Object.fromEntries(
      Object.entries(record(members))
        .filter((e): e is [string, unknown[]] => Array.isArray(e[1]))
        .map(([id, names]) => [id, names.filter((n): n is string => typeof n === 'string')]),
    ),
    leaders: Object.fromEntries(
      Object.entries(record(leaders)).filter((e): e is [string, string] => typeof e[1] === 'string'),
    ),
  };
}
