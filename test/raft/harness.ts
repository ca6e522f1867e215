// A tiny deterministic in-process network of RawNodes for the raft paper tests: persist, deliver, partition, crash.

import type { RaftConfigInput } from '../../raft/config.js';
import type { Result } from '../../raft/errors.js';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { type RaftStatus, RawNode } from '../../raft/raw-node.js';
import {
  type Entry,
  EntryType,
  type Membership,
  type Message,
  MessageType,
  type NodeId,
  type Ready,
  Role,
} from '../../raft/types.js';

/** Raft settings a test may override (everything but id, storage and prng). */
export type NodeConfig = Partial<Omit<RaftConfigInput, 'id' | 'storage' | 'prng'>>;

export interface TestNode {
  readonly id: NodeId;
  raw: RawNode;
  readonly storage: MemoryStorage;
  readonly config: NodeConfig;
  /** The state machine: the payloads of applied non-empty Normal entries, in order. */
  values: string[];
  /** Index of the last entry (or snapshot) applied to `values`. */
  appliedIndex: number;
  /** Every Ready this node produced, oldest first (tests inspect them). */
  readonly readies: Ready[];
  crashed: boolean;
  restarts: number;
}

export type MessageFilter = (m: Message) => boolean;
const ALL: MessageFilter = () => true;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const enc = (s: string): Uint8Array => encoder.encode(s);
export const dec = (b: Uint8Array): string => decoder.decode(b);

/** Election traffic: (pre-)vote requests and responses. */
export const isElection: MessageFilter = (m) =>
  m.type === MessageType.Vote ||
  m.type === MessageType.VoteResponse ||
  m.type === MessageType.PreVote ||
  m.type === MessageType.PreVoteResponse;

export interface NetworkOptions {
  voters: NodeId[];
  learners?: NodeId[];
  /** Settings for every node; the defaults of raft/config.ts apply otherwise. */
  config?: NodeConfig;
  seed?: number;
  /** Runs on each fresh storage before its RawNode is built (to pre-fill logs). */
  prepare?: (id: NodeId, storage: MemoryStorage) => void;
}

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered or dropped, in send order. */
  mailbox: Message[] = [];
  /** Every message any node emitted, in order. */
  readonly sent: Message[] = [];
  /** Every message stepped into a node, in order. */
  readonly delivered: Message[] = [];
  /** Each time a node became leader: its id and term. */
  readonly leaders: { id: NodeId; term: number }[] = [];
  /** If set, every message passes through it on delivery (a test's man in the middle). */
  rewrite: ((m: Message) => Message) | undefined;
  private readonly cuts = new Set<string>();
  private readonly seed: number;

  constructor(options: NetworkOptions) {
    this.seed = options.seed ?? 1;
    const membership: Membership = { voters: options.voters, learners: options.learners ?? [] };
    for (const id of [...membership.voters, ...membership.learners]) {
      this.addNode(id, membership, options.config ?? {}, options.prepare);
    }
  }

  /** Starts a node with an empty log and the given membership (a server joining later passes the current one). */
  addNode(
    id: NodeId,
    membership: Membership,
    config: NodeConfig = {},
    prepare?: (id: NodeId, storage: MemoryStorage) => void,
  ): TestNode {
    const storage = new MemoryStorage(membership);
    prepare?.(id, storage);
    const node: TestNode = {
      id,
      raw: undefined as unknown as RawNode,
      storage,
      config,
      values: [],
      appliedIndex: storage.firstIndex() - 1,
      readies: [],
      crashed: false,
      restarts: 0,
    };
    node.raw = this.build(node);
    this.nodes.set(id, node);
    return node;
  }

  private build(node: TestNode): RawNode {
    const n = [...this.nodes.keys()].indexOf(node.id);
    const prng = new SeededPrng(this.seed * 7919 + (n < 0 ? this.nodes.size : n) * 101 + node.restarts);
    return new RawNode({
      ...node.config,
      id: node.id,
      storage: node.storage,
      prng,
      applied: node.appliedIndex,
    });
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  raw(id: NodeId): RawNode {
    return this.node(id).raw;
  }

  status(id: NodeId): RaftStatus {
    return this.raw(id).status();
  }

  /** Live nodes that currently believe they lead. */
  leaderIds(): NodeId[] {
    return this.live()
      .filter((n) => n.raw.status().role === Role.Leader)
      .map((n) => n.id);
  }

  private live(): TestNode[] {
    return [...this.nodes.values()].filter((n) => !n.crashed);
  }

  /** Handles every pending Ready of one node: persist, queue messages, apply, advance. */
  processNode(id: NodeId): void {
    const node = this.node(id);
    if (node.crashed) return;
    const raw = node.raw;
    while (raw.hasReady()) {
      const rd = raw.ready();
      node.readies.push(rd);
      if (rd.softState?.role === Role.Leader) this.leaders.push({ id, term: raw.status().term });
      if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
      node.storage.append(rd.entries);
      if (rd.hardState) node.storage.setHardState(rd.hardState);
      // Persisted: both kinds of messages may go now.
      for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
        this.sent.push(m);
        this.mailbox.push(m);
      }
      if (rd.snapshot) {
        const data = dec(rd.snapshot.data);
        node.values = data === '' ? [] : (JSON.parse(data) as string[]);
        node.appliedIndex = rd.snapshot.metadata.index;
      }
      let membershipChanged = false;
      for (const e of rd.committedEntries) {
        if (e.type === EntryType.Normal && e.data.length > 0) node.values.push(dec(e.data));
        if (e.type === EntryType.MembershipChange) membershipChanged = true;
        node.appliedIndex = e.index;
      }
      raw.advance(rd);
      if (membershipChanged) node.storage.setMembership(raw.membership());
    }
  }

  /** Processes every live node until none has a Ready. */
  process(): void {
    for (const node of this.live()) this.processNode(node.id);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.has(`${from}->${to}`);
  }

  /**
   * Delivers the queued messages matching `filter` (others stay queued), in order; each
   * receiver processes its Ready at once. Messages on a cut link or to a crashed node are lost.
   * Returns the messages actually stepped.
   */
  deliver(filter: MessageFilter = ALL): Message[] {
    const batch = this.mailbox.filter(filter);
    this.mailbox = this.mailbox.filter((m) => !filter(m));
    const stepped: Message[] = [];
    for (const original of batch) {
      const m = this.rewrite ? this.rewrite(original) : original;
      const to = this.nodes.get(m.to);
      if (to === undefined || to.crashed || this.isCut(m.from, m.to)) {
        // The transport tells the sender a snapshot could not be sent.
        const from = this.nodes.get(m.from);
        if (m.type === MessageType.Snapshot && from && !from.crashed) {
          from.raw.reportSnapshot(m.to, false);
          this.processNode(from.id);
        }
        continue;
      }
      const result = to.raw.step(m);
      if (!result.ok) throw new Error(`${m.to} refused ${describe(m)}: ${result.error.message}`);
      this.delivered.push(m);
      stepped.push(m);
      this.processNode(to.id);
    }
    return stepped;
  }

  /** Removes the queued messages matching `filter` without delivering them. */
  take(filter: MessageFilter = ALL): Message[] {
    const taken = this.mailbox.filter(filter);
    this.mailbox = this.mailbox.filter((m) => !filter(m));
    return taken;
  }

  /** Delivers matching messages, and the ones they cause, until none is queued. */
  stabilize(filter: MessageFilter = ALL): void {
    this.process();
    for (let round = 0; this.mailbox.some(filter); round++) {
      if (round > 10_000) throw new Error('stabilize: no quiescence after 10000 rounds');
      this.deliver(filter);
    }
  }

  /** Cuts the link from `from` to `to` (one direction). */
  cutOneWay(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}->${to}`);
  }

  /** Cuts both directions between `a` and `b`. */
  cut(a: NodeId, b: NodeId): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  /** Cuts `id` off from every other node. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  /** Restores every link. */
  heal(): void {
    this.cuts.clear();
  }

  /** Ticks one node `n` times, processing its Readies but delivering nothing. */
  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.raw(id).tick();
      this.processNode(id);
    }
  }

  /** `n` times: tick every live node, then stabilize (time passing on a working network). */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.live()) node.raw.tick();
      this.stabilize();
    }
  }

  /** Makes `id` start an election now; nothing is delivered. */
  campaign(id: NodeId): void {
    this.raw(id).campaign();
    this.processNode(id);
  }

  propose(id: NodeId, value: string): Result<{ index: number; term: number }> {
    const result = this.raw(id).propose(enc(value));
    this.processNode(id);
    return result;
  }

  /** Stops `id`; queued messages to or from it are lost. Its storage (and state machine) survive. */
  crash(id: NodeId): void {
    this.node(id).crashed = true;
    this.take((m) => m.to === id || m.from === id);
  }

  /** Rebuilds `id`'s RawNode from its persisted storage only (volatile raft state is lost). */
  restart(id: NodeId): void {
    const node = this.node(id);
    node.crashed = false;
    node.restarts++;
    node.raw = this.build(node);
    this.processNode(id);
  }

  /** Takes a snapshot of `id`'s state machine at its applied index and compacts its log up to there. */
  compact(id: NodeId): number {
    const node = this.node(id);
    const index = node.appliedIndex;
    node.storage.createSnapshot(index, node.raw.membership(), enc(JSON.stringify(node.values)));
    node.storage.compact(index);
    return index;
  }

  /** The persisted log of `id` after its snapshot point. */
  log(id: NodeId): Entry[] {
    const s = this.node(id).storage;
    if (s.lastIndex() < s.firstIndex()) return [];
    return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  }

  /** `id`'s persisted log as "index@term" strings (after its snapshot point). */
  logTerms(id: NodeId): string[] {
    return this.log(id).map((e) => `${e.index}@${e.term}`);
  }

  values(id: NodeId): string[] {
    return this.node(id).values;
  }

  /** Sets up a leader: `id` campaigns and everything is delivered. */
  elect(id: NodeId): void {
    this.campaign(id);
    this.stabilize();
    if (this.status(id).role !== Role.Leader) throw new Error(`${id} was not elected`);
  }
}

/** Fills a storage with entries of the given terms (indexes from 1) and a matching hard state. */
export function fillLog(
  storage: MemoryStorage,
  terms: number[],
  hardTerm = terms[terms.length - 1] ?? 0,
): void {
  storage.append(
    terms.map((term, i) => ({
      index: i + 1,
      term,
      type: EntryType.Normal,
      data: enc(`${i + 1}@${term}`),
    })),
  );
  storage.setHardState({ term: hardTerm, vote: '', commit: 0 });
}

/** A one-line description of a message, for failure output and scenario scripts. */
export function describe(m: Message): string {
  const parts = [`${m.from}->${m.to}`, MessageType[m.type], `term=${m.term}`];
  switch (m.type) {
    case MessageType.Append:
      parts.push(`index=${m.index}`, `logTerm=${m.logTerm}`);
      if (m.entries.length > 0)
        parts.push(`entries=[${m.entries.map((e) => `${e.index}@${e.term}`).join(' ')}]`);
      break;
    case MessageType.AppendResponse:
      parts.push(
        m.reject ? `rejected index=${m.index} hint=${m.rejectHint}@${m.logTerm}` : `index=${m.index}`,
      );
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      parts.push(`lastIndex=${m.index}`, `lastTerm=${m.logTerm}`);
      break;
    case MessageType.VoteResponse:
    case MessageType.PreVoteResponse:
      parts.push(m.reject ? 'rejected' : 'granted');
      break;
    case MessageType.ReadIndexResponse:
      parts.push(`index=${m.index}`);
      break;
    case MessageType.Snapshot:
      if (m.snapshot) parts.push(`snapshot=${m.snapshot.metadata.index}@${m.snapshot.metadata.term}`);
      break;
    default:
      break;
  }
  if (m.commit > 0) parts.push(`commit=${m.commit}`);
  if (m.context !== undefined && m.context.length > 0) parts.push(`context=${dec(m.context)}`);
  if (m.replyOnlyOnReject === true) parts.push('reply-only-on-reject');
  return parts.join(' ');
}

export const ofType =
  (type: MessageType, from?: NodeId, to?: NodeId): MessageFilter =>
  (m) =>
    m.type === type && (from === undefined || m.from === from) && (to === undefined || m.to === to);
