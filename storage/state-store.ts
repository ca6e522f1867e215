// The realm state machine of one group: applies committed commands atomically with the applied index.

/*
 * Applying: entries are applied in log order, one call per batch of committed entries. The
 * whole batch - documents, realms, change history, sessions and the applied index - becomes
 * one request to the WriteQueue, so after a crash the applied index and the data agree: both
 * include the batch or neither does. Every node computes the same result from the same
 * entries: nothing here reads a clock, a random source or the batch boundaries (session
 * expiry uses the leaders' timestamps inside the commands; history eviction counts revisions
 * and bytes, which are the same on every node).
 *
 * Concurrency: apply, snapshot import and the open-time load run one at a time (an internal
 * chain). Reads run beside them; a read reports the revision applied when it started, a lower
 * bound of what it saw (an apply may land during a list), and a list is one engine iterator,
 * so it is one consistent view.
 *
 * Memory: realms, sessions and the sizes of the retained history revisions are kept in memory
 * (each bounded by configuration); documents and history are read from the engine.
 */

import {
  applyMembershipChange,
  decodeMembershipChange,
  type MembershipChange,
  MembershipChangeType,
} from '../raft/membership-change.js';
import { type Entry, EntryType, type Membership } from '../raft/types.js';
import {
  type AccessRecord,
  applyDefinitionOp,
  type DefinitionDoc,
  type DefinitionOp,
  type DefinitionWork,
  definitionOf,
  EMPTY_ACCESS,
  type RealmRecord,
  type RealmSettings,
  type TokenRecord,
  withoutRealm,
} from './access.js';
import {
  decodeDoc,
  decodeJson,
  encodeDoc,
  encodeJson,
  encodeJsonText,
  isMembership,
  type StoredDoc,
} from './codec.js';
import {
  type Checked,
  type Command,
  type CommandError,
  type CommandResult,
  type Compare,
  checked,
  checkKey,
  checkRealm,
  commandError,
  DEFAULT_REALM,
  type DocOp,
  type DocResult,
  decodeCommand,
  GROUP_MEMBERS_MAX,
  invalidArgument,
  type Operation,
} from './commands.js';
import type { StorageConfig } from './config.js';
import { DocCache } from './doc-cache.js';
import type { KvEngine, WriteOp } from './engine.js';
import { invariant, SnapshotFileError, StorageError } from './errors.js';
import {
  changeGroupMember,
  checkCatalog,
  createGroupRecord,
  currentMembers,
  EMPTY_CATALOG,
  FIRST_GROUP,
  type GroupCatalog,
  groupOfRealm,
  placeRealm,
  unplaceRealm,
  withFounders,
  withGroup,
} from './group-catalog.js';
import { type Json, jsonEqual, mergePatch } from './json.js';
import {
  accessKey,
  docKey,
  docOfKey,
  docRange,
  generationRange,
  groupsKey,
  historyKey,
  historyKeyRevision,
  historyRange,
  LAST_STATE_KIND,
  MetaRecord,
  metaKey,
  otherGenerationRanges,
  pointerKey,
  prefixEnd,
  realmKey,
  realmOfKey,
  realmRange,
  STATE_PREFIX_BYTES,
  StateKind,
  sessionKey,
  sessionRange,
  stateKeyFromSuffix,
  tokenKey,
  tokenRange,
} from './keys.js';
import { decodeMemberContext, decodePromotionContext, type LearnerRole } from './member-context.js';
import type { SnapshotHeader } from './snapshot-file.js';
import type { PreparedWrite, WriteQueue } from './write-queue.js';

/** The state machine's own durable bookkeeping, written with every applied batch. */
export interface StateMeta {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  /** The cluster-wide revision: the number of changes applied. */
  readonly revision: number;
  /** The membership as of appliedIndex. */
  readonly membership: Membership;
  /** The largest command timestamp applied: the clock sessions expire by. */
  readonly logTime: number;
  /** Every change with a revision above this is retained for watchers. */
  readonly historyFloor: number;
  /**
   * Members' mesh addresses (multiaddrs) by name, replicated so every node can reach every
   * member: founders' from bootstrap, a joiner's from its add-learner entry's context.
   * Absent in data written before addresses were kept.
   */
  readonly addresses?: Readonly<Record<string, string>>;
  /**
   * The role of each learner other than a plain one (spare, satellite, dr), by name, from its
   * add-learner entry's context. A voter has none. Absent in data written before roles existed.
   */
  readonly roles?: Readonly<Record<string, LearnerRole>>;
  /**
   * A spare promoted to replace a dead voter whose removal has not applied yet (any leader
   * finishes it: raft/spare-policy.ts).
   */
  readonly replacing?: { readonly spare: string; readonly voter: string };
  /**
   * Nodes removed by a replacement, with the address they had, oldest first: one that comes back
   * is re-added as a spare, not told it was removed. At most MAX_REPLACED, the oldest dropped.
   */
  readonly replaced?: readonly { readonly name: string; readonly address: string }[];
  /** The scheduled backups' ledger (BackupClaim, BackupReport in commands.ts). */
  readonly backups?: BackupLedger;
}

/** Which backup interval was claimed last and by whom, and how the last ones ended. */
export interface BackupLedger {
  readonly slot: number;
  readonly claimedBy: string;
  /** Command time (ms since epoch) of the claim. */
  readonly claimedAt: number;
  readonly lastSuccess?: {
    readonly slot: number;
    readonly node: string;
    readonly at: number;
    readonly file: string;
    readonly revision: number;
    readonly bytes: number;
  };
  readonly lastFailure?: {
    readonly slot: number;
    readonly node: string;
    readonly at: number;
    readonly error: string;
  };
}

/** How many replaced nodes the state remembers. */
const MAX_REPLACED = 64;

/**
 * What a durable state change means to watchers, in apply order: a batch of applied entries
 * (`events`: its change events in revision order, as JSON text of ChangeEvent) or the whole
 * state replaced by a snapshot (watchers must re-read history from where they were).
 */
export type StateChange =
  | { readonly kind: 'applied'; readonly revision: number; readonly events: readonly string[] }
  | { readonly kind: 'replaced'; readonly revision: number; readonly historyFloor: number };

/** A document as reads return it. */
export interface Document {
  readonly key: string;
  readonly value: Json;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** One change in the retained history. A transaction's changes share a revision. */
export type ChangeEvent =
  | {
      readonly type: 'put';
      readonly revision: number;
      readonly realm: string;
      readonly key: string;
      readonly value: Json;
      readonly createRevision: number;
      readonly modRevision: number;
      readonly version: number;
    }
  | {
      readonly type: 'delete';
      readonly revision: number;
      readonly realm: string;
      readonly key: string;
      readonly prevModRevision: number;
    }
  | { readonly type: 'createRealm'; readonly revision: number; readonly realm: string; readonly key: '' };

/** What applying one entry did. */
export type ApplyOutcome =
  | { readonly kind: 'command'; readonly index: number; readonly result: CommandResult }
  | { readonly kind: 'noop'; readonly index: number }
  | { readonly kind: 'membership'; readonly index: number; readonly membership: Membership };

/** A read's answer: a value with the revision it was served at, or an error with the current revision. */
export type ReadResult<T> =
  | { readonly ok: true; readonly revision: number; readonly value: T }
  | { readonly ok: false; readonly revision: number; readonly error: CommandError };

export interface ListOptions {
  /** Only keys starting with this (default: every key). */
  readonly prefix?: string;
  /** Start after this key (pagination: pass the last key of the previous page). */
  readonly after?: string;
  /** Documents per page, 1..listMaxLimit (default 100, or listMaxLimit if smaller). */
  readonly limit?: number;
}

export interface HistoryOptions {
  readonly prefix?: string;
  /** The first revision wanted. At or below the history floor the answer is COMPACTED. */
  readonly fromRevision: number;
  /** Events per call, 1..listMaxLimit; a transaction's events are never split across calls. */
  readonly limit?: number;
}

interface Session {
  readonly id: number;
  lastActive: number;
  /** The log index of the last touch: orders sessions by recency, the same on every node. */
  lastActiveIndex: number;
  /** No response is kept for any seq at or below this (acknowledged or trimmed). */
  discardedThrough: number;
  /** Kept responses in ascending seq. */
  responses: [number, CommandResult][];
}

/** FIFO of (revision, bytes) of retained history revisions, oldest first. */
class RevisionQueue {
  private revisions: number[] = [];
  private sizes: number[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.revisions.length - this.head;
  }

  push(revision: number, bytes: number): void {
    const last = this.revisions[this.revisions.length - 1];
    if (this.length > 0 && last === revision) {
      this.sizes[this.sizes.length - 1]! += bytes;
    } else {
      this.revisions.push(revision);
      this.sizes.push(bytes);
    }
    this.bytes += bytes;
  }

  /** Removes the oldest revision and returns it. */
  shift(): number {
    const revision = this.revisions[this.head]!;
    this.bytes -= this.sizes[this.head]!;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.revisions.length) {
      this.revisions = this.revisions.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return revision;
  }
}

const EMPTY_MEMBERSHIP: Membership = { voters: [], learners: [] };
const DEFAULT_PAGE = 100;
const HISTORY_SCAN_FACTOR = 16;

type Limits = Pick<
  StorageConfig,
  | 'keyMaxBytes'
  | 'valueMaxBytes'
  | 'commandMaxBytes'
  | 'txnMaxOps'
  | 'jsonMaxDepth'
  | 'realmsMax'
  | 'listMaxLimit'
  | 'historyMaxRevisions'
  | 'historyMaxBytes'
  | 'sessionsMax'
  | 'sessionTtlMs'
  | 'sessionResponsesMax'
  | 'docCacheBytes'
>;

/** Everything loaded from one state generation. */
interface LoadedState {
  readonly generation: number;
  readonly meta: StateMeta;
  readonly realms: Map<string, RealmRecord>;
  readonly access: AccessRecord;
  readonly tokens: Map<string, TokenRecord>;
  readonly sessions: Map<number, Session>;
  readonly history: RevisionQueue;
  /** Group 1's catalog of the other groups (empty in every other group). */
  readonly groups: GroupCatalog;
}

/**
 * One group's realm state machine. apply() is the only writer of documents; it and
 * importSnapshot() are serialized internally. Operating errors of commands and reads are
 * values (CommandResult, ReadResult); thrown are StorageError (engine failure, corrupt data)
 * and StorageInvariantError (a caller broke the contract, e.g. a gap in applied entries).
 */
export class RealmStateStore {
  private state: LoadedState;
  private chain: Promise<unknown> = Promise.resolve();
  private listener: ((change: StateChange) => void) | undefined;
  /** Documents of generation `docCacheGeneration` as the last durable apply left them. */
  private readonly docCache: DocCache;
  private docCacheGeneration: number;

  private constructor(
    private readonly engine: KvEngine,
    private readonly queue: WriteQueue,
    readonly group: number,
    private readonly limits: Limits,
    state: LoadedState,
  ) {
    this.state = state;
    this.docCache = new DocCache(limits.docCacheBytes);
    this.docCacheGeneration = state.generation;
  }

  /** Loads the current generation; clears what an interrupted import or a lost clear left behind. */
  static async open(
    engine: KvEngine,
    queue: WriteQueue,
    group: number,
    limits: Limits,
  ): Promise<RealmStateStore> {
    const [pointer] = await engine.getMany([pointerKey(group)]);
    const generation = pointer === undefined ? 0 : decodeJson<number>(pointer, 'state pointer');
    if (!Number.isSafeInteger(generation) || generation < 0) {
      throw new StorageError('DATA_CORRUPT', `group ${group}: bad state pointer`);
    }
    for (const [gte, lt] of otherGenerationRanges(group, generation)) await engine.clear(gte, lt);
    const state = await loadState(engine, group, generation);
    // History below the floor is garbage a lost clear left: clear it again.
    await engine.clear(...historyRange(group, generation, 0, state.meta.historyFloor + 1));
    return new RealmStateStore(engine, queue, group, limits, state);
  }

  /**
   * Called after every durable change of the state, synchronously with the state becoming
   * visible to reads, in order. One listener; it must not throw.
   */
  onChange(listener: ((change: StateChange) => void) | undefined): void {
    this.listener = listener;
  }

  private emit(change: StateChange): void {
    try {
      this.listener?.(change);
    } catch {
      // A listener must not throw; the state is durable either way.
    }
  }

  /** A founding member's state at index 1, term 1: revision 1 created the `default` realm. */
  static bootstrapOps(
    group: number,
    membership: Membership,
    addresses?: Readonly<Record<string, string>>,
    options: { readonly defaultRealm?: boolean } = {},
  ): WriteOp[] {
    const meta: StateMeta = {
      appliedIndex: 1,
      appliedTerm: 1,
      revision: 1,
      membership,
      logTime: 0,
      historyFloor: 1,
      ...(addresses === undefined ? {} : { addresses }),
    };
    return [
      { type: 'put', key: pointerKey(group), value: encodeJson(1) },
      { type: 'put', key: metaKey(group, 1, MetaRecord.Applied), value: encodeJson(meta) },
      ...(options.defaultRealm === false
        ? []
        : [
            {
              type: 'put' as const,
              key: realmKey(group, 1, DEFAULT_REALM),
              value: encodeJson({ createRevision: 1, documents: 0 } satisfies RealmRecord),
            },
          ]),
    ];
  }

  get meta(): StateMeta {
    return this.state.meta;
  }

  /** Group 1's catalog of the other raft groups, as of the applied index (empty elsewhere). */
  get groups(): GroupCatalog {
    return this.state.groups;
  }

  get appliedIndex(): number {
    return this.state.meta.appliedIndex;
  }

  get revision(): number {
    return this.state.meta.revision;
  }

  /** The membership as of the applied index (what raft's initialState() reports). */
  get membership(): Membership {
    return this.state.meta.membership;
  }

  /** The realms, sorted. */
  realms(): string[] {
    return [...this.state.realms.keys()].sort();
  }

  /** A realm's record (settings, document count), or undefined if there is no such realm. */
  realm(name: string): RealmRecord | undefined {
    return this.state.realms.get(name);
  }

  /** Users, grants, the auth switch and the definition version, as applied. */
  get access(): AccessRecord {
    return this.state.access;
  }

  /** The token with `id`, or undefined. */
  token(id: string): TokenRecord | undefined {
    return this.state.tokens.get(id);
  }

  /** Every token, by id (hashes included: never send them to clients). */
  tokens(): readonly TokenRecord[] {
    return [...this.state.tokens.values()];
  }

  /** The definition as one document (realms with their settings, users, auth). */
  definition(): DefinitionDoc {
    return definitionOf(this.state.access, this.state.realms);
  }

  /** Open client sessions. */
  get sessionCount(): number {
    return this.state.sessions.size;
  }

  /**
   * Applies committed entries in order: entries at or below the applied index are skipped
   * (a snapshot covered them), the rest must follow it without a gap. Resolves, once the
   * batch and the new applied index are durable, with one outcome per applied entry.
   */
  apply(entries: readonly Entry[]): Promise<ApplyOutcome[]> {
    return this.exclusive(() => this.applyNow(entries));
  }

  private async applyNow(entries: readonly Entry[]): Promise<ApplyOutcome[]> {
    const fresh = entries.filter((entry) => entry.index > this.state.meta.appliedIndex);
    if (fresh.length === 0) return [];
    const applied = this.state.meta.appliedIndex;
    for (let i = 0; i < fresh.length; i++) {
      const index = fresh[i]!.index;
      invariant(
        index === applied + 1 + i,
        () => `apply gap: entry ${index} after applied index ${applied + i}`,
      );
    }
    const decoded = fresh.map((entry) =>
      entry.type === EntryType.Normal && entry.data.length > 0
        ? decodeCommand(entry.data, this.limits)
        : undefined,
    );
    const batch = new ApplyBatch(this.group, this.state, this.limits, this.prefetch(decoded));
    const outcomes = fresh.map((entry, i) => batch.applyEntry(entry, decoded[i]));
    const { ops, clears, meta, realms, access, tokens, groups, events, docs } = batch.finish();
    // Not synced: the committed entries are durable in the raft log, and log compaction
    // (a synced write, after this one) is what makes this batch's durability matter.
    await this.queue.submit(ops, {
      clears,
      sync: false,
      onDurable: () => {
        // Applies and imports are exclusive, so the generation is the one the batch wrote to.
        for (const [name, doc] of docs) this.docCache.set(name, doc);
        this.state = { ...this.state, meta, realms, access, tokens, groups };
        this.emit({ kind: 'applied', revision: meta.revision, events });
      },
    });
    return outcomes;
  }

  /**
   * Reads every document the batch's commands name, in one synchronous engine call (RocksDB:
   * one MultiGet). Synchronous on purpose: the keys were just written or are hot, so the read
   * costs tens of microseconds, less than a round trip through the thread pool, and the apply
   * (hence the client's answer) does not wait a turn of the event loop for it.
   */
  private prefetch(decoded: readonly (Checked<Command> | undefined)[]): Map<string, StoredDoc | null> {
    const names = new Map<string, [string, string]>();
    const add = (realm: string, key: string): void => {
      names.set(docName(realm, key), [realm, key]);
    };
    for (const item of decoded) {
      if (!item?.ok) continue;
      const op = item.value.op;
      if (op.type === 'put' || op.type === 'patch' || op.type === 'delete') add(op.realm, op.key);
      if (op.type === 'txn') {
        for (const c of op.compares) add(op.realm, c.key);
        for (const o of op.success) add(op.realm, o.key);
        for (const o of op.failure ?? []) add(op.realm, o.key);
      }
    }
    const generation = this.state.generation;
    if (this.docCacheGeneration !== generation) {
      this.docCache.clear();
      this.docCacheGeneration = generation;
    }
    const docs = new Map<string, StoredDoc | null>();
    const missing: [string, [string, string]][] = [];
    for (const entry of names) {
      const cached = this.docCache.get(entry[0]);
      if (cached === undefined) missing.push(entry);
      else docs.set(entry[0], cached);
    }
    const values = this.engine.getManySync(
      missing.map(([, [realm, key]]) => docKey(this.group, generation, realm, key)),
    );
    missing.forEach(([name], i) => {
      const value = values[i];
      const doc = value === undefined ? null : decodeDoc(value);
      docs.set(name, doc);
      this.docCache.set(name, doc);
    });
    return docs;
  }

  // ---- Reads ----

  /** The document at `key` in `realm`: NOT_FOUND if the realm or the key does not exist. */
  async get(realm: string, key: string): Promise<ReadResult<Document>> {
    const revision = this.state.meta.revision;
    const args = checked(() => [checkRealm(realm), checkKey(key, 'key', this.limits)] as const);
    if (!args.ok) return { ok: false, revision, error: args.error };
    if (!this.state.realms.has(realm)) return notFoundRealm(realm, revision);
    const [value] = await this.engine.getMany([docKey(this.group, this.state.generation, realm, key)]);
    if (value === undefined) {
      return {
        ok: false,
        revision,
        error: commandError('NOT_FOUND', `no key ${JSON.stringify(key)} in realm ${realm}`),
      };
    }
    return { ok: true, revision, value: toDocument(key, decodeDoc(value)) };
  }

  /** One page of the realm's documents in key order, from one consistent view. */
  async list(
    realm: string,
    options: ListOptions = {},
  ): Promise<ReadResult<{ documents: Document[]; more: boolean }>> {
    const revision = this.state.meta.revision;
    const args = checked(() => {
      checkRealm(realm);
      const prefix = options.prefix ?? '';
      if (prefix !== '') checkKey(prefix, 'prefix', this.limits);
      if (options.after !== undefined) checkKey(options.after, 'after', this.limits);
      return { prefix, limit: this.pageLimit(options.limit) };
    });
    if (!args.ok) return { ok: false, revision, error: args.error };
    if (!this.state.realms.has(realm)) return notFoundRealm(realm, revision);
    const { prefix, limit } = args.value;
    const generation = this.state.generation;
    let [start, end] = docRange(this.group, generation, realm, prefix);
    if (options.after !== undefined) {
      const after = docKey(this.group, generation, realm, options.after);
      const next = new Uint8Array(after.length + 1); // The smallest key after `after`.
      next.set(after);
      if (Buffer.compare(next, start) > 0) start = next;
    }
    const documents: Document[] = [];
    let more = false;
    if (Buffer.compare(start, end) < 0) {
      for await (const [rawKey, value] of this.engine.iterate(start, end, {
        limit: limit + 1,
        batchEntries: limit + 1,
      })) {
        if (documents.length === limit) {
          more = true;
          break;
        }
        documents.push(toDocument(docOfKey(rawKey).key, decodeDoc(value)));
      }
    }
    return { ok: true, revision, value: { documents, more } };
  }

  /**
   * Changes in `realm` (keys starting with `prefix`) from `fromRevision` on, for a watcher
   * resuming where it left off. `nextRevision` is where to continue. A revision at or below the
   * history floor answers COMPACTED with the current revision: the watcher must re-read.
   */
  async history(
    realm: string,
    options: HistoryOptions,
  ): Promise<ReadResult<{ events: ChangeEvent[]; nextRevision: number }>> {
    const meta = this.state.meta;
    const revision = meta.revision;
    const args = checked(() => {
      checkRealm(realm);
      const prefix = options.prefix ?? '';
      if (prefix !== '') checkKey(prefix, 'prefix', this.limits);
      if (!Number.isSafeInteger(options.fromRevision) || options.fromRevision < 1) {
        invalidArgument(`fromRevision must be an integer >= 1, got ${JSON.stringify(options.fromRevision)}`);
      }
      return { prefix, limit: this.pageLimit(options.limit) };
    });
    if (!args.ok) return { ok: false, revision, error: args.error };
    if (!this.state.realms.has(realm)) return notFoundRealm(realm, revision);
    // Revision 1 is the bootstrap (no key changed): while nothing was compacted (floor 1),
    // a watch from 1 misses nothing, as in etcd.
    if (options.fromRevision <= meta.historyFloor && meta.historyFloor > 1) {
      return {
        ok: false,
        revision,
        error: commandError(
          'COMPACTED',
          `revision ${options.fromRevision} is compacted (history kept after ${meta.historyFloor}); current revision ${revision}`,
        ),
      };
    }
    const { prefix, limit } = args.value;
    const generation = this.state.generation;
    const [start] = historyRange(this.group, generation, options.fromRevision, options.fromRevision);
    const [, end] = generationRangeOfHistory(this.group, generation);
    const events: ChangeEvent[] = [];
    let nextRevision = options.fromRevision;
    let scanned = 0;
    const scanMax = limit * HISTORY_SCAN_FACTOR;
    for await (const [rawKey, value] of this.engine.iterate(start, end, {
      batchEntries: Math.min(scanMax, 1024),
    })) {
      const eventRevision = historyKeyRevision(rawKey);
      // Stop only between revisions, so a transaction's events are never split.
      if (eventRevision >= nextRevision && (events.length >= limit || scanned >= scanMax)) break;
      scanned++;
      nextRevision = eventRevision + 1;
      const event = decodeJson<ChangeEvent>(value, 'history event');
      if (event.realm === realm && event.key.startsWith(prefix)) events.push(event);
    }
    return { ok: true, revision, value: { events, nextRevision } };
  }

  private pageLimit(limit: number | undefined): number {
    const max = this.limits.listMaxLimit;
    if (limit === undefined) return Math.min(DEFAULT_PAGE, max);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > max) {
      invalidArgument(`limit must be an integer in [1, ${max}], got ${JSON.stringify(limit)}`);
    }
    return limit;
  }

  // ---- Snapshots ----

  /**
   * A consistent view of the whole current state for a snapshot file, taken now: the engine
   * iterator is created before this returns, so writes that land later are not in it. The
   * records are keys with their group and generation stripped, META first.
   */
  async snapshotSource(): Promise<{
    meta: StateMeta;
    records: AsyncIterable<readonly [Uint8Array, Uint8Array]>;
  }> {
    const generation = this.state.generation;
    const [start, end] = generationRange(this.group, generation);
    const iterator = this.engine.iterate(start, end, { batchEntries: 1024 })[Symbol.asyncIterator]();
    const first = await iterator.next();
    const expectedMeta = metaKey(this.group, generation, MetaRecord.Applied);
    if (first.done || Buffer.compare(first.value[0], expectedMeta) !== 0) {
      await iterator.return?.();
      invariant(generation !== 0, `group ${this.group} has no state to snapshot yet (nothing applied)`);
      throw new StorageError(
        'DATA_CORRUPT',
        `group ${this.group}: state generation ${generation} has no meta record`,
      );
    }
    const meta = decodeMeta(first.value[1]);
    const firstRecord = first.value;
    const records = {
      async *[Symbol.asyncIterator]() {
        yield [firstRecord[0].subarray(STATE_PREFIX_BYTES), firstRecord[1]] as const;
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          yield [next.value[0].subarray(STATE_PREFIX_BYTES), next.value[1]] as const;
        }
      },
    };
    return { meta, records };
  }

  /**
   * Writes a snapshot's records aside (the next generation), verifies them against `header`,
   * and returns the write that switches to them, for GroupStorage to submit together with the
   * log's side. Nothing the node serves changes until that write is durable; on any error the
   * aside generation is cleared and the current state is untouched. Runs exclusively, so call
   * it from inside exclusive() (GroupStorage.installSnapshot does).
   */
  async prepareImport(
    chunks: AsyncIterable<[Uint8Array, Uint8Array][]>,
    header: SnapshotHeader,
    path: string,
    membership?: Membership,
    addresses?: Readonly<Record<string, string>>,
    founders?: { readonly groups: ReadonlySet<number>; readonly members: readonly string[] },
  ): Promise<PreparedWrite> {
    const generation = this.state.generation + 1;
    const [asideStart, asideEnd] = generationRange(this.group, generation);
    await this.engine.clear(asideStart, asideEnd);
    try {
      for await (const records of chunks) {
        const ops: WriteOp[] = records.map(([suffix, value]) => {
          if (suffix.length < 2 || suffix[0]! < StateKind.Meta || suffix[0]! > LAST_STATE_KIND) {
            throw new SnapshotFileError(
              'SNAPSHOT_CORRUPT',
              path,
              `a record has an unknown state key kind ${suffix[0]}`,
            );
          }
          return { type: 'put', key: stateKeyFromSuffix(this.group, generation, suffix), value };
        });
        // Synced: see write-queue.ts on why only a write made with sync is known durable.
        await this.engine.write(ops, true);
      }
      const loaded = await loadState(this.engine, this.group, generation).catch((error: unknown) => {
        throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, `the state does not decode: ${String(error)}`);
      });
      const meta = loaded.meta;
      if (
        meta.appliedIndex !== header.index ||
        meta.appliedTerm !== header.term ||
        meta.revision !== header.revision ||
        JSON.stringify(meta.membership) !== JSON.stringify(header.membership)
      ) {
        throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'the state inside does not match the header');
      }
      let switched = loaded;
      if (membership !== undefined) {
        // A restore into a cluster of other nodes: the state is as of the file, the members are new.
        const replaced = withMembership(meta, membership, addresses);
        await this.engine.write(
          [
            {
              type: 'put',
              key: metaKey(this.group, generation, MetaRecord.Applied),
              value: encodeJson(replaced),
            },
          ],
          true,
        );
        switched = { ...loaded, meta: replaced };
      }
      if (founders !== undefined && founders.groups.size > 0) {
        // Group 1 restored with the other groups: their founders are the restored nodes now.
        const groups = withFounders(switched.groups, founders.groups, founders.members);
        await this.engine.write(
          [{ type: 'put', key: groupsKey(this.group, generation), value: encodeJson(groups) }],
          true,
        );
        switched = { ...switched, groups };
      }
      const previous = this.state.generation;
      return {
        ops: [{ type: 'put', key: pointerKey(this.group), value: encodeJson(generation) }],
        options: {
          clears: [generationRange(this.group, previous)],
          onDurable: () => {
            this.state = switched;
            this.emit({
              kind: 'replaced',
              revision: switched.meta.revision,
              historyFloor: switched.meta.historyFloor,
            });
          },
        },
      };
    } catch (error) {
      await this.engine.clear(asideStart, asideEnd);
      throw error;
    }
  }

  /** Runs `task` after every earlier apply or import, and before any later one. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/**
 * `meta` with another membership: the member-keyed records (addresses, roles) keep only the new
 * members (`addresses`, when given, replace the address book), and the old cluster's replacement
 * bookkeeping and backup ledger are dropped.
 */
function withMembership(
  meta: StateMeta,
  membership: Membership,
  newAddresses?: Readonly<Record<string, string>>,
): StateMeta {
  const { addresses, roles, replacing: _replacing, replaced: _replaced, backups: _backups, ...rest } = meta;
  const members = new Set([...membership.voters, ...membership.learners]);
  const learners = new Set(membership.learners);
  const kept: { -readonly [K in keyof StateMeta]: StateMeta[K] } = { ...rest, membership };
  if (newAddresses !== undefined) {
    kept.addresses = { ...newAddresses };
  } else if (addresses !== undefined) {
    kept.addresses = Object.fromEntries(Object.entries(addresses).filter(([name]) => members.has(name)));
  }
  if (roles !== undefined) {
    kept.roles = Object.fromEntries(Object.entries(roles).filter(([name]) => learners.has(name)));
  }
  return kept;
}

/** The history range of a generation: from revision 0 to the end of the HISTORY kind. */
function generationRangeOfHistory(group: number, generation: number): [Uint8Array, Uint8Array] {
  const start = historyKey(group, generation, 0, 0).subarray(0, STATE_PREFIX_BYTES + 1);
  return [start, prefixEnd(start)];
}

function docName(realm: string, key: string): string {
  return `${realm}\u0000${key}`;
}

function notFoundRealm<T>(realm: string, revision: number): ReadResult<T> {
  return { ok: false, revision, error: commandError('NOT_FOUND', `no realm ${realm}`) };
}

function toDocument(key: string, doc: StoredDoc): Document {
  return {
    key,
    value: JSON.parse(doc.json) as Json,
    createRevision: doc.createRevision,
    modRevision: doc.modRevision,
    version: doc.version,
  };
}

function decodeMeta(bytes: Uint8Array): StateMeta {
  const meta = decodeJson<StateMeta>(bytes, 'state meta');
  const count = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
  if (
    !count(meta.appliedIndex) ||
    !count(meta.appliedTerm) ||
    !count(meta.revision) ||
    !count(meta.logTime) ||
    !count(meta.historyFloor) ||
    !isMembership(meta.membership)
  ) {
    throw new StorageError('DATA_CORRUPT', 'state meta: bad fields');
  }
  return meta;
}

async function loadState(engine: KvEngine, group: number, generation: number): Promise<LoadedState> {
  const empty: StateMeta = {
    appliedIndex: 0,
    appliedTerm: 0,
    revision: 0,
    membership: EMPTY_MEMBERSHIP,
    logTime: 0,
    historyFloor: 0,
  };
  if (generation === 0) {
    return {
      generation,
      meta: empty,
      realms: new Map(),
      access: EMPTY_ACCESS,
      tokens: new Map(),
      sessions: new Map(),
      history: new RevisionQueue(),
      groups: EMPTY_CATALOG,
    };
  }
  const [metaBytes] = await engine.getMany([metaKey(group, generation, MetaRecord.Applied)]);
  if (metaBytes === undefined) {
    throw new StorageError(
      'DATA_CORRUPT',
      `group ${group}: state generation ${generation} has no meta record`,
    );
  }
  const meta = decodeMeta(metaBytes);
  const realms = new Map<string, RealmRecord>();
  for await (const [key, value] of engine.iterate(...realmRange(group, generation))) {
    realms.set(realmOfKey(key), decodeJson<RealmRecord>(value, 'realm'));
  }
  // Data from before realms counted their documents: count them once.
  for (const [name, record] of realms) {
    if (record.documents !== undefined) continue;
    let documents = 0;
    for await (const _ of engine.iterate(...docRange(group, generation, name, ''), { batchEntries: 1024 })) {
      documents++;
    }
    realms.set(name, { ...record, documents });
  }
  const [accessBytes] = await engine.getMany([accessKey(group, generation)]);
  const access = accessBytes === undefined ? EMPTY_ACCESS : decodeJson<AccessRecord>(accessBytes, 'access');
  const tokens = new Map<string, TokenRecord>();
  for await (const [, value] of engine.iterate(...tokenRange(group, generation))) {
    const token = decodeJson<TokenRecord>(value, 'token');
    tokens.set(token.id, token);
  }
  const [groupsBytes] = await engine.getMany([groupsKey(group, generation)]);
  const groups =
    groupsBytes === undefined
      ? EMPTY_CATALOG
      : checkCatalog(decodeJson<unknown>(groupsBytes, 'group catalog'));
  const sessions: Session[] = [];
  for await (const [, value] of engine.iterate(...sessionRange(group, generation))) {
    sessions.push(decodeJson<Session>(value, 'session'));
  }
  sessions.sort((a, b) => a.lastActiveIndex - b.lastActiveIndex);
  const history = new RevisionQueue();
  const [historyStart, historyEnd] = generationRangeOfHistory(group, generation);
  const [floorStart] = historyRange(group, generation, meta.historyFloor + 1, meta.historyFloor + 1);
  for await (const [key, value] of engine.iterate(
    Buffer.compare(floorStart, historyStart) > 0 ? floorStart : historyStart,
    historyEnd,
    { batchEntries: 1024 },
  )) {
    history.push(historyKeyRevision(key), key.length + value.length);
  }
  return {
    generation,
    meta,
    realms,
    access,
    tokens,
    sessions: new Map(sessions.map((s) => [s.id, s])),
    history,
    groups,
  };
}

/** The changes one document operation makes, computed without touching anything. */
type DocChange = { readonly doc: StoredDoc | null; readonly result: DocResult };

/**
 * One apply() call's work: a view of documents (prefetched, then updated as commands apply),
 * the operations to write, and the meta and realms to swap in once durable. Sessions and the
 * history queue are updated in place: nothing reads them outside apply, and a failed write
 * stops the store (write-queue.ts), so they never need rolling back. So are the realms'
 * document counts (a count may show before its batch is durable: only `describe` reads it).
 * The definition (realms, access, tokens) is copied before its first change in the batch.
 */
class ApplyBatch {
  private meta: StateMeta;
  private realms: Map<string, RealmRecord>;
  private realmsCopied = false;
  private access: AccessRecord;
  private accessDirty = false;
  private tokens: Map<string, TokenRecord>;
  private tokensCopied = false;
  private groups: GroupCatalog;
  private groupsDirty = false;
  private readonly dirtyRealms = new Set<string>();
  private readonly dirtyTokens = new Set<string>();
  private readonly dirtyDocs = new Map<string, [string, string]>();
  private readonly dirtySessions = new Set<number>();
  private readonly ops: WriteOp[] = [];
  private readonly events: string[] = [];
  private readonly generation: number;
  private readonly sessions: Map<number, Session>;
  private readonly history: RevisionQueue;

  private readonly floorAtStart: number;

  constructor(
    private readonly group: number,
    state: LoadedState,
    private readonly limits: Limits,
    private readonly docs: Map<string, StoredDoc | null>,
  ) {
    this.meta = state.meta;
    this.floorAtStart = state.meta.historyFloor;
    this.realms = state.realms;
    this.access = state.access;
    this.tokens = state.tokens;
    this.groups = state.groups;
    this.generation = state.generation;
    this.sessions = state.sessions;
    this.history = state.history;
  }

  applyEntry(entry: Entry, decoded: Checked<Command> | undefined): ApplyOutcome {
    this.meta = { ...this.meta, appliedIndex: entry.index, appliedTerm: entry.term };
    if (entry.type === EntryType.MembershipChange) {
      const change: MembershipChange | undefined = decodeMembershipChange(entry.data);
      const membership = change ? applyMembershipChange(this.meta.membership, change) : this.meta.membership;
      const { addresses: _a, roles: _r, replacing: _p, replaced: _d, ...rest } = this.meta;
      this.meta = { ...rest, membership, ...membersAfter(this.meta, membership, change) };
      return { kind: 'membership', index: entry.index, membership };
    }
    if (decoded === undefined) return { kind: 'noop', index: entry.index };
    if (!decoded.ok) return { kind: 'command', index: entry.index, result: this.failed(decoded.error) };
    const result = this.applyCommand(entry.index, decoded.value);
    // After every command, not every batch: batch boundaries differ between nodes.
    this.evictHistory();
    return { kind: 'command', index: entry.index, result };
  }

  private applyCommand(index: number, command: Command): CommandResult {
    if (command.time > this.meta.logTime) this.meta = { ...this.meta, logTime: command.time };
    this.expireSessions();
    const op = command.op;
    if (op.type === 'openSession') return this.openSession(index);
    const ref = command.session;
    if (ref === undefined) return this.execute(command);
    const session = this.sessions.get(ref.id);
    if (session === undefined) {
      return this.failed(commandError('SESSION_EXPIRED', `session ${ref.id} does not exist or has expired`));
    }
    this.touch(session, index);
    if (ref.ack !== undefined) this.acknowledge(session, ref.ack);
    const cached = session.responses.find(([seq]) => seq === ref.seq);
    if (cached) return cached[1];
    if (ref.seq <= session.discardedThrough) {
      return this.failed(
        commandError(
          'SESSION_EXPIRED',
          `session ${ref.id}: the response to seq ${ref.seq} is no longer kept`,
        ),
      );
    }
    if (op.type === 'closeSession') {
      this.sessions.delete(session.id);
      this.dirtySessions.add(session.id);
      return { ok: true, revision: this.meta.revision, result: { type: 'closeSession' } };
    }
    const result = this.execute(command);
    session.responses.push([ref.seq, result]);
    session.responses.sort((a, b) => a[0] - b[0]);
    while (session.responses.length > this.limits.sessionResponsesMax) {
      session.discardedThrough = Math.max(session.discardedThrough, session.responses.shift()![0]);
    }
    return result;
  }

  private openSession(index: number): CommandResult {
    while (this.sessions.size >= this.limits.sessionsMax) {
      const [oldest] = this.sessions.keys();
      this.sessions.delete(oldest!);
      this.dirtySessions.add(oldest!);
    }
    const session: Session = {
      id: index,
      lastActive: this.meta.logTime,
      lastActiveIndex: index,
      discardedThrough: 0,
      responses: [],
    };
    this.sessions.set(index, session);
    this.dirtySessions.add(index);
    return { ok: true, revision: this.meta.revision, result: { type: 'openSession', session: index } };
  }

  /** Moves the session to the most recent end of the (insertion-ordered) map. */
  private touch(session: Session, index: number): void {
    session.lastActive = this.meta.logTime;
    session.lastActiveIndex = index;
    this.sessions.delete(session.id);
    this.sessions.set(session.id, session);
    this.dirtySessions.add(session.id);
  }

  private acknowledge(session: Session, ack: number): void {
    session.discardedThrough = Math.max(session.discardedThrough, ack);
    session.responses = session.responses.filter(([seq]) => seq > ack);
  }

  /** Sessions idle longer than the TTL in log time expire, least recently active first. */
  private expireSessions(): void {
    const cutoff = this.meta.logTime - this.limits.sessionTtlMs;
    for (const session of this.sessions.values()) {
      if (session.lastActive >= cutoff) break;
      this.sessions.delete(session.id);
      this.dirtySessions.add(session.id);
    }
  }

  private execute(command: Command): CommandResult {
    const op = command.op;
    switch (op.type) {
      case 'createRealm': {
        const result = this.createRealm(op.realm, op.settings);
        if (result.ok) {
          this.access = { ...this.access, version: this.access.version + 1 };
          this.accessDirty = true;
        }
        return result;
      }
      case 'deleteRealm':
      case 'realmSettings':
      case 'addUser':
      case 'removeUser':
      case 'grant':
      case 'clusterAdmin':
      case 'createToken':
      case 'revokeToken':
      case 'applyDefinition':
      case 'bootstrapAdmin':
        return this.definitionOp(op, command.time);
      case 'put':
      case 'patch':
      case 'delete': {
        if (!this.realms.has(op.realm)) return this.failed(commandError('NOT_FOUND', `no realm ${op.realm}`));
        const revision = this.meta.revision + 1;
        const change = this.docChange(op.realm, op, revision);
        if ('code' in change) return this.failed(change);
        this.commit(op.realm, [[op.key, change]], revision);
        return { ok: true, revision, result: change.result };
      }
      case 'txn': {
        if (!this.realms.has(op.realm)) return this.failed(commandError('NOT_FOUND', `no realm ${op.realm}`));
        const succeeded = op.compares.every((compare) =>
          compareHolds(compare, this.doc(op.realm, compare.key)),
        );
        const branch = succeeded ? op.success : (op.failure ?? []);
        if (branch.length === 0) {
          return { ok: true, revision: this.meta.revision, result: { type: 'txn', succeeded, results: [] } };
        }
        const revision = this.meta.revision + 1;
        const changes: [string, DocChange][] = [];
        for (const docOp of branch) {
          const change = this.docChange(op.realm, docOp, revision);
          if ('code' in change) return this.failed(change);
          changes.push([docOp.key, change]);
        }
        this.commit(op.realm, changes, revision);
        return {
          ok: true,
          revision,
          result: { type: 'txn', succeeded, results: changes.map(([, c]) => c.result) },
        };
      }
      case 'openSession':
      case 'closeSession':
        return this.failed(commandError('INVALID_ARGUMENT', `${op.type} outside its session handling`));
      case 'placeRealm':
      case 'createGroup':
      case 'groupMember':
      case 'unplaceRealm':
        return this.catalogOp(op);
      case 'backupClaim': {
        const ledger = this.meta.backups;
        if (ledger !== undefined && op.slot <= ledger.slot) {
          return this.failed(
            commandError(
              'CONFLICT',
              `backup slot ${op.slot} is not after slot ${ledger.slot}, claimed by ${ledger.claimedBy}`,
            ),
          );
        }
        this.meta = {
          ...this.meta,
          backups: { ...ledger, slot: op.slot, claimedBy: op.node, claimedAt: command.time },
        };
        return { ok: true, revision: this.meta.revision, result: { type: 'backupClaim', slot: op.slot } };
      }
      case 'backupReport': {
        const ledger = this.meta.backups;
        if (ledger === undefined) return this.failed(commandError('NOT_FOUND', 'no backup was claimed'));
        const at = command.time;
        this.meta = {
          ...this.meta,
          backups: op.ok
            ? {
                ...ledger,
                lastSuccess: {
                  slot: op.slot,
                  node: op.node,
                  at,
                  file: op.file,
                  revision: op.revision,
                  bytes: op.bytes,
                },
              }
            : { ...ledger, lastFailure: { slot: op.slot, node: op.node, at, error: op.error } },
        };
        return { ok: true, revision: this.meta.revision, result: { type: 'backupReport' } };
      }
    }
  }

  /** A change to group 1's catalog of groups (group-catalog.ts); refused in any other group. */
  private catalogOp(
    op: Extract<
      Operation,
      { type: 'placeRealm' } | { type: 'createGroup' } | { type: 'groupMember' } | { type: 'unplaceRealm' }
    >,
  ): CommandResult {
    if (this.group !== FIRST_GROUP) {
      return this.failed(
        commandError('INVALID_ARGUMENT', `${op.type} goes through group ${FIRST_GROUP}, not ${this.group}`),
      );
    }
    const revision = this.meta.revision;
    if (op.type === 'placeRealm') {
      const placed = placeRealm(this.groups, new Set(this.realms.keys()), op.realm, op.group);
      if ('code' in placed) return this.failed(placed);
      this.groupsDirty ||= placed !== this.groups;
      this.groups = placed;
      return { ok: true, revision, result: { type: 'placeRealm', realm: op.realm, group: op.group } };
    }
    if (op.type === 'unplaceRealm') {
      const unplaced = unplaceRealm(this.groups, op.realm);
      if ('code' in unplaced) return this.failed(unplaced);
      this.groups = unplaced;
      this.groupsDirty = true;
      // The grants on it go with it, as deleteRealm takes them in the realm's own group.
      const version = this.access.version + 1;
      this.access = { ...this.access, version, users: withoutRealm(this.access.users, op.realm) };
      this.accessDirty = true;
      return { ok: true, revision, result: { type: 'definition', version } };
    }
    if (op.type === 'groupMember') {
      const changed = changeGroupMember(this.groups, this.meta.membership.voters, op, GROUP_MEMBERS_MAX);
      if ('code' in changed) return this.failed(changed);
      this.groupsDirty ||= changed !== this.groups;
      this.groups = changed;
      const record = changed.groups.find((g) => g.id === op.group)!;
      return {
        ok: true,
        revision,
        result: { type: 'groupMember', group: op.group, members: currentMembers(record) },
      };
    }
    const record = createGroupRecord(this.groups, this.meta.membership.voters, op, revision);
    if ('code' in record) return this.failed(record);
    this.groups = withGroup(this.groups, record);
    this.groupsDirty = true;
    return { ok: true, revision, result: { type: 'createGroup', group: record.id, members: record.members } };
  }

  private createRealm(realm: string, settings: RealmSettings | undefined): CommandResult {
    if (this.realms.has(realm)) return this.failed(commandError('CONFLICT', `realm ${realm} exists`));
    const placed = groupOfRealm(this.groups, realm);
    if (placed !== this.group && this.group === FIRST_GROUP) {
      return this.failed(commandError('CONFLICT', `realm ${realm} is placed in group ${placed}`));
    }
    if (this.realms.size >= this.limits.realmsMax) {
      return this.failed(commandError('TOO_LARGE', `the group holds ${this.realms.size} realms, the limit`));
    }
    const revision = this.meta.revision + 1;
    const record: RealmRecord =
      settings === undefined || Object.keys(settings).length === 0
        ? { createRevision: revision, documents: 0 }
        : { createRevision: revision, documents: 0, settings };
    this.realmsForChange().set(realm, record);
    this.dirtyRealms.add(realm);
    this.addEvent(revision, 0, JSON.stringify({ type: 'createRealm', revision, realm, key: '' }));
    this.meta = { ...this.meta, revision };
    return { ok: true, revision, result: { type: 'createRealm', realm } };
  }

  private realmsForChange(): Map<string, RealmRecord> {
    if (!this.realmsCopied) {
      this.realms = new Map(this.realms);
      this.realmsCopied = true;
    }
    return this.realms;
  }

  /** A definition operation (storage/access.ts), all or nothing. */
  private definitionOp(op: DefinitionOp, time: number): CommandResult {
    if (op.type === 'applyDefinition') {
      const elsewhere = Object.keys(op.definition.realms).filter(
        (realm) => groupOfRealm(this.groups, realm) !== this.group,
      );
      if (elsewhere.length > 0) {
        return this.failed(
          commandError(
            'CONFLICT',
            `realms ${elsewhere.join(', ')} live in other raft groups; a definition covers group ${this.group}'s realms only`,
          ),
        );
      }
    }
    if (!this.tokensCopied) {
      this.tokens = new Map(this.tokens);
      this.tokensCopied = true;
    }
    const work: DefinitionWork = {
      access: this.access,
      tokens: this.tokens,
      realms: this.realmsForChange(),
      dirtyTokens: this.dirtyTokens,
      dirtyRealms: this.dirtyRealms,
      accessDirty: false,
      ...(this.group === FIRST_GROUP ? { placed: new Set(Object.keys(this.groups.placements ?? {})) } : {}),
    };
    const outcome = applyDefinitionOp(
      work,
      {
        realmsMax: this.limits.realmsMax,
        createRealm: (realm, settings) => {
          this.createRealm(realm, settings);
        },
      },
      op,
      time,
    );
    if (!outcome.ok) return this.failed(outcome.error);
    this.access = work.access;
    this.accessDirty ||= work.accessDirty;
    return {
      ok: true,
      revision: this.meta.revision,
      result: {
        type: 'definition',
        version: outcome.version,
        ...(outcome.created === undefined ? {} : { created: outcome.created }),
      },
    };
  }

  /** Keeps the realm's document count (in place: see the class comment). */
  private countDocuments(realm: string, delta: number): void {
    const record = this.realms.get(realm);
    if (record === undefined) return;
    this.realms.set(realm, { ...record, documents: Math.max(0, (record.documents ?? 0) + delta) });
    this.dirtyRealms.add(realm);
  }

  private doc(realm: string, key: string): StoredDoc | null {
    const doc = this.docs.get(docName(realm, key));
    invariant(doc !== undefined, () => `document ${realm}/${key} was not prefetched`);
    return doc;
  }

  /** What `op` would do to the document at `revision`, or why it cannot. */
  private docChange(realm: string, op: DocOp, revision: number): DocChange | CommandError {
    const current = this.doc(realm, op.key);
    const currentRevision = current?.modRevision ?? 0;
    if (op.ifRevision !== undefined && op.ifRevision !== currentRevision) {
      return commandError(
        'CONFLICT',
        `key ${JSON.stringify(op.key)} is at revision ${currentRevision}, not ${op.ifRevision}`,
      );
    }
    switch (op.type) {
      case 'put': {
        if (op.ifAbsent && current !== null) {
          return commandError(
            'CONFLICT',
            `key ${JSON.stringify(op.key)} exists (revision ${currentRevision})`,
          );
        }
        return this.written(realm, op.key, current, JSON.stringify(op.value), revision);
      }
      case 'patch': {
        if (current === null) return commandError('NOT_FOUND', `no key ${JSON.stringify(op.key)} to patch`);
        const merged = mergePatch(JSON.parse(current.json) as Json, op.patch);
        return this.written(realm, op.key, current, JSON.stringify(merged), revision);
      }
      case 'delete': {
        if (current === null) return commandError('NOT_FOUND', `no key ${JSON.stringify(op.key)} to delete`);
        return { doc: null, result: { type: 'delete', key: op.key, prevModRevision: current.modRevision } };
      }
    }
  }

  private written(
    realm: string,
    key: string,
    current: StoredDoc | null,
    json: string,
    revision: number,
  ): DocChange | CommandError {
    const bytes = Buffer.byteLength(json);
    const realmMax = this.realms.get(realm)?.settings?.maxValueBytes;
    const max =
      realmMax === undefined ? this.limits.valueMaxBytes : Math.min(realmMax, this.limits.valueMaxBytes);
    if (bytes > max) {
      return commandError(
        'TOO_LARGE',
        `document ${JSON.stringify(key)} would be ${bytes} bytes; the limit ${realmMax === undefined ? 'is' : `of realm ${realm} is`} ${max}`,
      );
    }
    const doc: StoredDoc = {
      createRevision: current?.createRevision ?? revision,
      modRevision: revision,
      version: (current?.version ?? 0) + 1,
      json,
    };
    return {
      doc,
      result: {
        type: 'put',
        key,
        createRevision: doc.createRevision,
        modRevision: revision,
        version: doc.version,
      },
    };
  }

  private commit(realm: string, changes: readonly [string, DocChange][], revision: number): void {
    let delta = 0;
    changes.forEach(([key, change], event) => {
      const name = docName(realm, key);
      const before = this.docs.get(name) ?? null;
      if (before === null && change.doc !== null) delta++;
      else if (before !== null && change.doc === null) delta--;
      this.docs.set(name, change.doc);
      this.dirtyDocs.set(name, [realm, key]);
      const doc = change.doc;
      const text =
        doc === null
          ? JSON.stringify({
              type: 'delete',
              revision,
              realm,
              key,
              prevModRevision: (change.result as { prevModRevision: number }).prevModRevision,
            })
          : `{"type":"put","revision":${revision},"realm":${JSON.stringify(realm)},"key":${JSON.stringify(key)},` +
            `"createRevision":${doc.createRevision},"modRevision":${doc.modRevision},"version":${doc.version},"value":${doc.json}}`;
      this.addEvent(revision, event, text);
    });
    if (delta !== 0) this.countDocuments(realm, delta);
    this.meta = { ...this.meta, revision };
  }

  private addEvent(revision: number, event: number, json: string): void {
    const key = historyKey(this.group, this.generation, revision, event);
    this.events.push(json);
    const bytes = encodeJsonText(json);
    this.ops.push({ type: 'put', key, value: bytes });
    this.history.push(revision, key.length + bytes.length);
  }

  private failed(error: CommandError): CommandResult {
    return { ok: false, revision: this.meta.revision, error };
  }

  /** The batch's writes, with history eviction; the meta and realms to swap in once durable. */
  finish(): {
    ops: WriteOp[];
    clears: [Uint8Array, Uint8Array][];
    meta: StateMeta;
    realms: Map<string, RealmRecord>;
    access: AccessRecord;
    tokens: Map<string, TokenRecord>;
    groups: GroupCatalog;
    events: string[];
    /** The documents written, as they are once the ops are durable (null: deleted). */
    docs: [string, StoredDoc | null][];
  } {
    const g = this.generation;
    const docs: [string, StoredDoc | null][] = [];
    for (const name of this.dirtyRealms) {
      const record = this.realms.get(name);
      const k = realmKey(this.group, g, name);
      this.ops.push(
        record === undefined ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeJson(record) },
      );
    }
    for (const id of this.dirtyTokens) {
      const token = this.tokens.get(id);
      const k = tokenKey(this.group, g, id);
      this.ops.push(
        token === undefined ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeJson(token) },
      );
    }
    if (this.accessDirty)
      this.ops.push({ type: 'put', key: accessKey(this.group, g), value: encodeJson(this.access) });
    if (this.groupsDirty)
      this.ops.push({ type: 'put', key: groupsKey(this.group, g), value: encodeJson(this.groups) });
    for (const [name, [realm, key]] of this.dirtyDocs) {
      const doc = this.docs.get(name)!;
      docs.push([name, doc]);
      const k = docKey(this.group, g, realm, key);
      this.ops.push(doc === null ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeDoc(doc) });
    }
    for (const id of this.dirtySessions) {
      const session = this.sessions.get(id);
      const k = sessionKey(this.group, g, id);
      this.ops.push(
        session === undefined ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeJson(session) },
      );
    }
    const clears: [Uint8Array, Uint8Array][] = [];
    if (this.meta.historyFloor > this.floorAtStart) {
      clears.push(historyRange(this.group, g, 0, this.meta.historyFloor + 1));
    }
    this.ops.push({
      type: 'put',
      key: metaKey(this.group, g, MetaRecord.Applied),
      value: encodeJson(this.meta),
    });
    return {
      ops: this.ops,
      clears,
      meta: this.meta,
      realms: this.realms,
      access: this.access,
      tokens: this.tokens,
      groups: this.groups,
      events: this.events,
      docs,
    };
  }

  /**
   * Drops the oldest revisions once history passes a limit, down to 15/16 of it, so the floor
   * moves (and range deletes happen) in steps rather than on every command.
   */
  private evictHistory(): void {
    const { historyMaxRevisions: maxRevisions, historyMaxBytes: maxBytes } = this.limits;
    if (this.history.length <= maxRevisions && this.history.bytes <= maxBytes) return;
    const targetRevisions = maxRevisions - Math.floor(maxRevisions / 16);
    const targetBytes = maxBytes - Math.floor(maxBytes / 16);
    let floor = this.meta.historyFloor;
    while (
      this.history.length > 0 &&
      (this.history.length > targetRevisions || this.history.bytes > targetBytes)
    ) {
      floor = this.history.shift();
    }
    this.meta = { ...this.meta, historyFloor: floor };
  }
}

/**
 * The address book and the learners' roles after a membership entry: an added learner's address
 * and role are its change's context (member-context.ts); a promoted member loses its learner
 * role; a removed member's address and role go.
 */
function membersAfter(
  meta: StateMeta,
  membership: Membership,
  change: MembershipChange | undefined,
): Pick<StateMeta, 'addresses' | 'roles' | 'replacing' | 'replaced'> {
  const kept = {
    addresses: meta.addresses,
    roles: meta.roles,
    replacing: meta.replacing,
    replaced: meta.replaced,
  };
  if (change === undefined) return withoutUndefined(kept);
  const before = meta.membership;
  const wasVoter = before.voters.includes(change.nodeId);
  const wasLearner = before.learners.includes(change.nodeId);
  const addresses: Record<string, string> = { ...(meta.addresses ?? {}) };
  const roles: Record<string, LearnerRole> = { ...(meta.roles ?? {}) };
  let replaced = [...(meta.replaced ?? [])];
  let replacing = meta.replacing;
  if (change.type === MembershipChangeType.AddLearner && !wasVoter && !wasLearner) {
    const context = decodeMemberContext(change.context);
    if (context.address !== '') addresses[change.nodeId] = context.address;
    if (context.role !== 'learner') roles[change.nodeId] = context.role;
    replaced = replaced.filter((r) => r.name !== change.nodeId);
  }
  if (change.type === MembershipChangeType.PromoteLearner && wasLearner) {
    const voter = decodePromotionContext(change.context);
    if (voter !== undefined && before.voters.includes(voter)) replacing = { spare: change.nodeId, voter };
  }
  if (change.type === MembershipChangeType.RemoveNode && (wasVoter || wasLearner)) {
    if (replacing?.voter === change.nodeId) {
      replaced = replaced.filter((r) => r.name !== change.nodeId);
      replaced.push({ name: change.nodeId, address: addresses[change.nodeId] ?? '' });
      replaced = replaced.slice(-MAX_REPLACED);
    }
  }
  const members = new Set([...membership.voters, ...membership.learners]);
  for (const name of Object.keys(addresses)) if (!members.has(name)) delete addresses[name];
  const learners = new Set(membership.learners);
  for (const name of Object.keys(roles)) if (!learners.has(name)) delete roles[name];
  // A replacement is over once its spare or its voter is no longer a voter.
  if (
    replacing &&
    !(membership.voters.includes(replacing.spare) && membership.voters.includes(replacing.voter))
  ) {
    replacing = undefined;
  }
  return withoutUndefined({
    addresses,
    roles: Object.keys(roles).length === 0 && meta.roles === undefined ? undefined : roles,
    replacing,
    replaced: replaced.length === 0 && meta.replaced === undefined ? undefined : replaced,
  });
}

/** The fields that are set: the meta is stored as JSON, and an explicit undefined is no field. */
function withoutUndefined<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as T;
}

function compareHolds(compare: Compare, doc: StoredDoc | null): boolean {
  let cmp: number;
  switch (compare.target) {
    case 'exists':
      cmp = (doc !== null) === compare.value ? 0 : 1;
      break;
    case 'value':
      cmp = jsonEqual(doc === null ? null : (JSON.parse(doc.json) as Json), compare.value) ? 0 : 1;
      break;
    default: {
      const actual = doc === null ? 0 : doc[compare.target];
      cmp = actual - compare.value;
    }
  }
  switch (compare.op) {
    case 'eq':
      return cmp === 0;
    case 'ne':
      return cmp !== 0;
    case 'lt':
      return cmp < 0;
    case 'gt':
      return cmp > 0;
  }
}
