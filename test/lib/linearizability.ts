// Linearizability checker (Wing–Gong search as in Porcupine) plus a history recorder and KV/register models.

/**
 * One operation of a concurrent history.
 *
 * - `call` / `return` are times on any common clock (only their order matters). `return` may be
 *   `Infinity` for an operation that never completed.
 * - `output === undefined` means the outcome is unknown: the operation may have taken effect at
 *   one instant between `call` and `return`, or not at all. With `return === Infinity` that instant
 *   may be anywhere after `call` (a timed-out request that a server may still apply later).
 *
 * An operation is *required* (it must appear in the linearization) iff its output is known and its
 * return is finite; every other operation is optional.
 */
export interface Operation<Input, Output> {
  clientId: number;
  input: Input;
  output: Output | undefined;
  call: number;
  return: number;
}

/** Result of applying one operation to a model state. */
export interface StepResult<State> {
  /** Whether the operation, with the given output, is legal in the given state. */
  ok: boolean;
  /** The state after the operation (ignored when `ok` is false). */
  state: State;
}

/**
 * A sequential specification. States must be treated as immutable values.
 */
export interface Model<State, Input, Output> {
  /** The initial state. */
  init(): State;
  /**
   * Applies `input` to `state` and says whether `output` is what it would return. With
   * `output === undefined` (result unknown) it should be ok whenever the operation could run in
   * `state` at all. Operations with unknown outcome never have to be linearized, so the checker does
   * not rely on that for soundness.
   */
  step(state: State, input: Input, output: Output | undefined): StepResult<State>;
  /** A string that is equal for two states iff they are equivalent (used for memoisation). */
  key(state: State): string;
  /**
   * Splits a history into independent sub-histories (P-compositionality), e.g. by key. The history
   * is linearizable iff every part is. Defaults to a single partition.
   */
  partition?(ops: readonly Operation<Input, Output>[]): Operation<Input, Output>[][];
  /**
   * True when the operation never changes the state. A read-only operation with an unknown output
   * constrains nothing, so the checker drops it before searching.
   */
  readOnly?(input: Input): boolean;
  /** Human-readable rendering of an operation, for failure reports. */
  describeOperation?(input: Input, output: Output | undefined): string;
  /** Human-readable rendering of a state, for failure reports. */
  describeState?(state: State): string;
}

/** Options for {@link checkOperations}. */
export interface CheckOptions {
  /** Give up (verdict 'unknown') once this much wall-clock time has been spent. Default: no limit. */
  timeoutMs?: number;
}

/** Debugging information for a non-linearizable partition. */
export interface IllegalPartition<State, Input, Output> {
  /** Index of the offending partition in the order the model's `partition` returned them. */
  partition: number;
  /** The operations of that partition that were searched (unknown-output reads are dropped). */
  operations: Operation<Input, Output>[];
  /** The longest sequence of operations that could be linearized, in linearization order. */
  longestPrefix: Operation<Input, Output>[];
  /** The model state after `longestPrefix`. */
  stateAfterPrefix: State;
  /** The operation whose return was reached, unlinearized, right after `longestPrefix`. */
  stuckAt: Operation<Input, Output> | undefined;
}

/** The verdict of {@link checkOperations}. */
export interface CheckResult<State, Input, Output> {
  /**
   * 'ok': proven linearizable. 'illegal': proven not linearizable. 'unknown': the timeout was hit
   * before a verdict was reached.
   */
  result: 'ok' | 'illegal' | 'unknown';
  /** Number of partitions the history was split into. */
  partitions: number;
  /** Number of partitions fully searched. */
  checkedPartitions: number;
  /** Wall-clock time spent, in milliseconds. */
  elapsedMs: number;
  /** Present iff `result === 'illegal'`. */
  illegal?: IllegalPartition<State, Input, Output>;
}

/** A node of the doubly linked list of call/return entries (the "entries" list of Porcupine). */
interface Entry {
  /** Index of the operation in the partition; -1 for the list head. */
  readonly op: number;
  readonly isCall: boolean;
  /** For a call entry: its return entry (null if the op has no return entry). For a return: its call. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** One decision on the search stack: `call`'s operation was linearized (or skipped) in `state`. */
interface Frame<State> {
  readonly call: Entry;
  readonly state: State;
  readonly skipped: boolean;
}

type SingleOutcome<State> =
  | { kind: 'ok' }
  | { kind: 'illegal'; prefix: number[]; state: State; stuckAt: number };

/** Builds the entries list for a partition; returns the head sentinel. */
function buildEntries<Input, Output>(ops: readonly Operation<Input, Output>[], required: boolean[]): Entry {
  interface Raw {
    time: number;
    isCall: boolean;
    op: number;
  }
  const raw: Raw[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (!Number.isFinite(op.call)) throw new Error(`operation ${i}: call time must be finite`);
    if (!(op.return >= op.call)) throw new Error(`operation ${i}: return time precedes call time`);
    raw.push({ time: op.call, isCall: true, op: i });
    // Only ops with a finite return get a return entry; the others may be linearized at any later
    // point, or never.
    if (Number.isFinite(op.return)) raw.push({ time: op.return, isCall: false, op: i });
    required[i] = op.output !== undefined && Number.isFinite(op.return);
  }
  // Equal times: calls before returns, so touching operations count as concurrent (permissive).
  raw.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, match: null, prev: null, next: null };
  const calls: (Entry | undefined)[] = new Array(ops.length);
  let tail = head;
  for (const r of raw) {
    const e: Entry = { op: r.op, isCall: r.isCall, match: null, prev: tail, next: null };
    if (r.isCall) {
      calls[r.op] = e;
    } else {
      const c = calls[r.op]!;
      c.match = e;
      e.match = c;
    }
    tail.next = e;
    tail = e;
  }
  return head;
}

/** Removes a call entry and its return entry from the list (dancing links). */
function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match;
  if (ret) {
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  }
}

/** Undoes {@link lift}; lifts must be undone in LIFO order. */
function unlift(call: Entry): void {
  const ret = call.match;
  if (ret) {
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
  }
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

/** MurmurHash3's 32-bit finaliser: spreads the bits of a 32-bit value. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The memo of visited (decided set, state id) pairs: an exact hash set (open addressing, linear
 * probing) whose entries keep a copy of their bitset. The caller supplies the bitset's hash, which
 * it maintains incrementally (XOR of per-operation random values, as in Zobrist hashing).
 */
class VisitedSet {
  private readonly words: number;
  private pool: Uint32Array;
  private ids: Int32Array;
  private hashes: Uint32Array;
  private count = 0;
  /** Entry index + 1 per slot; 0 marks an empty slot. */
  private table: Int32Array;
  private mask: number;

  constructor(words: number) {
    this.words = words;
    const capacity = 1024;
    this.pool = new Uint32Array(capacity * words);
    this.ids = new Int32Array(capacity);
    this.hashes = new Uint32Array(capacity);
    this.table = new Int32Array(capacity * 2);
    this.mask = capacity * 2 - 1;
  }

  /** Adds (bits, stateId); returns false if the pair was already present. */
  add(bits: Uint32Array, bitsHash: number, stateId: number): boolean {
    const words = this.words;
    const h = fmix32(bitsHash ^ Math.imul(stateId + 1, 0x9e3779b1));
    const { table, pool, ids, hashes, mask } = this;
    let slot = h & mask;
    for (let e = table[slot]!; e !== 0; slot = (slot + 1) & mask, e = table[slot]!) {
      const i = e - 1;
      if (hashes[i] !== h || ids[i] !== stateId) continue;
      const base = i * words;
      let same = true;
      for (let w = 0; w < words; w++) {
        if (pool[base + w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return false;
    }
    const i = this.count++;
    if (i === ids.length) {
      this.grow();
      return this.insertNew(bits, h, stateId, i);
    }
    table[slot] = i + 1;
    pool.set(bits, i * words);
    ids[i] = stateId;
    hashes[i] = h;
    return true;
  }

  private insertNew(bits: Uint32Array, h: number, stateId: number, i: number): boolean {
    let slot = h & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = i + 1;
    this.pool.set(bits, i * this.words);
    this.ids[i] = stateId;
    this.hashes[i] = h;
    return true;
  }

  private grow(): void {
    const capacity = this.ids.length * 2;
    const pool = new Uint32Array(capacity * this.words);
    pool.set(this.pool);
    this.pool = pool;
    const ids = new Int32Array(capacity);
    ids.set(this.ids);
    this.ids = ids;
    const hashes = new Uint32Array(capacity);
    hashes.set(this.hashes);
    this.hashes = hashes;
    this.table = new Int32Array(capacity * 2);
    this.mask = capacity * 2 - 1;
    for (let i = 0; i < this.count - 1; i++) {
      let slot = hashes[i]! & this.mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
      this.table[slot] = i + 1;
    }
  }
}

/**
 * Depth-first search for a linearization of one partition, resumable so that partitions can be
 * interleaved. Memoises visited (decided set, state) pairs, where the decided set holds the
 * operations linearized or skipped so far: such a pair fully determines the remaining subproblem.
 */
class PartitionSearch<State, Input, Output> {
  private readonly required: boolean[];
  private readonly head: Entry;
  /** The decided set, one bit per operation, and its incremental hash. */
  private readonly bits: Uint32Array;
  private bitsHash = 0;
  /** Random value per operation, XORed into `bitsHash` while the operation is decided. */
  private readonly zobrist: Uint32Array;
  private readonly visited: VisitedSet;
  /** Interned model states: state key → small id. */
  private readonly stateIds = new Map<string, number>();
  private readonly stack: Frame<State>[] = [];
  private remaining = 0;
  private linearizedCount = 0;
  private state: State;
  private entry: Entry | null;
  private bestPrefix: number[] = [];
  private bestState: State;
  private bestStuck = -1;

  constructor(
    private readonly model: Model<State, Input, Output>,
    private readonly ops: readonly Operation<Input, Output>[],
  ) {
    this.required = new Array(ops.length);
    this.head = buildEntries(ops, this.required);
    for (const r of this.required) if (r) this.remaining++;
    const words = Math.max(1, Math.ceil(ops.length / 32));
    this.bits = new Uint32Array(words);
    this.visited = new VisitedSet(words);
    this.zobrist = new Uint32Array(ops.length);
    for (let i = 0; i < ops.length; i++) this.zobrist[i] = fmix32(Math.imul(i + 1, 0x9e3779b9) ^ 0x5bd1e995);
    this.state = model.init();
    this.bestState = this.state;
    this.entry = this.head.next;
  }

  /** Runs at most `budget` search steps; returns the outcome once known, else undefined. */
  run(budget: number): SingleOutcome<State> | undefined {
    const { model, ops, required, head, stack } = this;
    for (let i = 0; i < budget; i++) {
      if (this.remaining === 0) return { kind: 'ok' };
      const entry = this.entry;
      if (entry?.isCall) {
        const op = ops[entry.op]!;
        const r = model.step(this.state, op.input, op.output);
        this.entry = r.ok && this.decide(entry, r.state, false) ? head.next : entry.next;
        continue;
      }
      // A return entry (or, defensively, the end of the list): its operation must be decided before
      // anything that follows. An optional one may be decided by dropping it.
      if (entry && !required[entry.op] && this.decide(entry.match!, this.state, true)) {
        this.entry = head.next;
        continue;
      }
      if (this.linearizedCount > this.bestPrefix.length || this.bestStuck < 0) {
        this.bestPrefix = [];
        for (const f of stack) if (!f.skipped) this.bestPrefix.push(f.call.op);
        this.bestState = this.state;
        this.bestStuck = entry ? entry.op : -1;
      }
      // Backtrack: undo decisions up to and including the latest linearization, then try the
      // candidates after it.
      for (;;) {
        const frame = stack.pop();
        if (!frame) {
          return { kind: 'illegal', prefix: this.bestPrefix, state: this.bestState, stuckAt: this.bestStuck };
        }
        const op = frame.call.op;
        this.state = frame.state;
        this.bits[op >>> 5]! &= ~(1 << (op & 31));
        this.bitsHash ^= this.zobrist[op]!;
        unlift(frame.call);
        if (required[op]) this.remaining++;
        if (!frame.skipped) {
          this.linearizedCount--;
          this.entry = frame.call.next;
          break;
        }
      }
    }
    return this.remaining === 0 ? { kind: 'ok' } : undefined;
  }

  /**
   * Tries to decide `call`'s operation (linearize it, or skip it if `skipped`), moving to state
   * `next`. If the resulting (decided set, state) pair is new, applies the decision and returns true.
   */
  private decide(call: Entry, next: State, skipped: boolean): boolean {
    const op = call.op;
    const stateKey = this.model.key(next);
    let id = this.stateIds.get(stateKey);
    if (id === undefined) {
      id = this.stateIds.size;
      this.stateIds.set(stateKey, id);
    }
    const bits = this.bits;
    const hash = this.bitsHash ^ this.zobrist[op]!;
    bits[op >>> 5]! |= 1 << (op & 31);
    if (!this.visited.add(bits, hash, id)) {
      bits[op >>> 5]! &= ~(1 << (op & 31));
      return false;
    }
    this.bitsHash = hash;
    this.stack.push({ call, state: this.state, skipped });
    this.state = next;
    lift(call);
    if (this.required[op]) this.remaining--;
    if (!skipped) this.linearizedCount++;
    return true;
  }
}

/** Search steps a partition runs before the next partition gets its turn. */
const SLICE = 2048;

/**
 * Checks whether `ops` is linearizable with respect to `model`. The history is split with
 * `model.partition` and the parts are searched independently, interleaved round-robin (so an easy
 * violation in one part is found even if another part is hard); the first illegal part ends the
 * check. Never answers 'ok' without having found a linearization of every part; answers
 * 'unknown' only when `options.timeoutMs` ran out first (checked between rounds, so tiny histories
 * always get a verdict).
 */
export function checkOperations<State, Input, Output>(
  model: Model<State, Input, Output>,
  ops: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<State, Input, Output> {
  const start = Date.now();
  const deadline = options.timeoutMs === undefined ? Infinity : start + options.timeoutMs;
  const relevant = ops.filter((op) => !(op.output === undefined && model.readOnly?.(op.input)));
  const parts = model.partition ? model.partition(relevant) : [relevant.slice()];
  const searches = parts.map((part) => new PartitionSearch(model, part));
  let active = searches.map((_, i) => i);
  let checked = 0;
  const done = (
    result: CheckResult<State, Input, Output>['result'],
    illegal?: IllegalPartition<State, Input, Output>,
  ): CheckResult<State, Input, Output> => ({
    result,
    partitions: parts.length,
    checkedPartitions: checked,
    elapsedMs: Date.now() - start,
    ...(illegal ? { illegal } : {}),
  });
  for (;;) {
    const stillActive: number[] = [];
    for (const p of active) {
      const outcome = searches[p]!.run(SLICE);
      if (outcome === undefined) {
        stillActive.push(p);
        continue;
      }
      checked++;
      if (outcome.kind === 'illegal') {
        const part = parts[p]!;
        return done('illegal', {
          partition: p,
          operations: part,
          longestPrefix: outcome.prefix.map((i) => part[i]!),
          stateAfterPrefix: outcome.state,
          stuckAt: outcome.stuckAt >= 0 ? part[outcome.stuckAt] : undefined,
        });
      }
    }
    active = stillActive;
    if (active.length === 0) return done('ok');
    if (Date.now() >= deadline) return done('unknown');
  }
}

function describeOp<State, Input, Output>(
  model: Model<State, Input, Output>,
  op: Operation<Input, Output>,
): string {
  const body = model.describeOperation
    ? model.describeOperation(op.input, op.output)
    : `${JSON.stringify(op.input)} -> ${op.output === undefined ? '?' : JSON.stringify(op.output)}`;
  const ret = Number.isFinite(op.return) ? String(op.return) : 'never';
  return `client ${op.clientId} [${op.call}, ${ret}] ${body}`;
}

/** Renders a check result as a multi-line human-readable report (for test failure messages). */
export function formatCheckResult<State, Input, Output>(
  model: Model<State, Input, Output>,
  result: CheckResult<State, Input, Output>,
): string {
  const lines = [
    `linearizability: ${result.result} (${result.checkedPartitions}/${result.partitions} partitions, ${result.elapsedMs} ms)`,
  ];
  const info = result.illegal;
  if (info) {
    const describeState = model.describeState ?? ((s: State) => JSON.stringify(s));
    lines.push(`partition ${info.partition} (${info.operations.length} operations) is not linearizable`);
    lines.push(`longest linearizable prefix (${info.longestPrefix.length} operations):`);
    for (const op of info.longestPrefix) lines.push(`  ${describeOp(model, op)}`);
    lines.push(`state after prefix: ${describeState(info.stateAfterPrefix)}`);
    if (info.stuckAt) lines.push(`could not linearize: ${describeOp(model, info.stuckAt)}`);
  }
  return lines.join('\n');
}

interface RecordedOperation<Input, Output> {
  clientId: number;
  input: Input;
  output: Output | undefined;
  call: number;
  return: number | undefined;
  discarded: boolean;
}

/**
 * Records a history as invoke/complete events stamped with an internal logical clock (each event
 * gets the next tick), for use by simulations and harnesses.
 *
 * - {@link complete}: the operation returned `output`.
 * - {@link completeUnknown}: the client gave up (timeout, lost connection); the operation may take
 *   effect at any point after its invocation, even later, or never.
 * - {@link discard}: the operation definitely did not take effect (e.g. rejected before being
 *   proposed); it is left out of the history.
 * - Operations still outstanding when {@link operations} is called are treated like
 *   `completeUnknown`.
 */
export class HistoryRecorder<Input, Output> {
  private clock = 0;
  private readonly ops: RecordedOperation<Input, Output>[] = [];

  /** Records an invocation; returns the id to complete it with. */
  invoke(clientId: number, input: Input): number {
    this.ops.push({
      clientId,
      input,
      output: undefined,
      call: ++this.clock,
      return: undefined,
      discarded: false,
    });
    return this.ops.length - 1;
  }

  /** Records that operation `opId` returned `output`. */
  complete(opId: number, output: Output): void {
    const op = this.open(opId);
    op.output = output;
    op.return = ++this.clock;
  }

  /** Records that the outcome of `opId` is unknown; it may take effect at any time or never. */
  completeUnknown(opId: number): void {
    const op = this.open(opId);
    op.return = Infinity;
  }

  /** Records that `opId` definitely had no effect; it is dropped from the history. */
  discard(opId: number): void {
    const op = this.open(opId);
    op.discarded = true;
    op.return = ++this.clock;
  }

  /** Number of operations invoked and not yet ended by complete, completeUnknown or discard. */
  get pending(): number {
    return this.ops.filter((op) => op.return === undefined).length;
  }

  /** The history so far; outstanding operations get an unknown output and return at Infinity. */
  operations(): Operation<Input, Output>[] {
    const out: Operation<Input, Output>[] = [];
    for (const op of this.ops) {
      if (op.discarded) continue;
      out.push({
        clientId: op.clientId,
        input: op.input,
        output: op.output,
        call: op.call,
        return: op.return ?? Infinity,
      });
    }
    return out;
  }

  private open(opId: number): RecordedOperation<Input, Output> {
    const op = this.ops[opId];
    if (!op) throw new Error(`HistoryRecorder: unknown operation id ${opId}`);
    if (op.return !== undefined) throw new Error(`HistoryRecorder: operation ${opId} already completed`);
    return op;
  }
}

// ---------------------------------------------------------------------------------------------
// Key-value model

/** Input of a {@link createKvModel} operation. */
export type KvInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: string | null }
  | { op: 'cas'; key: string; expected: string | null; value: string | null }
  | { op: 'append'; key: string; value: string };

/**
 * Output of a KV operation: `get` → the value (`null` if absent); `put` / `append` → `true` (any
 * known output is accepted: it carries no information); `cas` → whether it swapped.
 */
export type KvOutput = string | null | boolean;

/** State of the KV model: values of keys that differ from the initial value. */
export type KvState = Readonly<Record<string, string | null>>;

/** Options of {@link createKvModel}. */
export interface KvModelOptions {
  /** Value every key starts with: `null` (absent, the default) or e.g. `''`. */
  initial?: string | null;
}

/**
 * A map from string keys to string-or-null values, partitioned by key. `put` with `null` deletes;
 * `cas` swaps iff the current value equals `expected` (`null` meaning absent); `append`
 * concatenates, treating an absent value as ''.
 */
export function createKvModel(options: KvModelOptions = {}): Model<KvState, KvInput, KvOutput> {
  const initial = options.initial ?? null;
  const read = (s: KvState, key: string): string | null => (Object.hasOwn(s, key) ? s[key]! : initial);
  const write = (s: KvState, key: string, value: string | null): KvState => {
    if (read(s, key) === value) return s;
    const next: Record<string, string | null> = { ...s };
    if (value === initial) delete next[key];
    else next[key] = value;
    return next;
  };
  const fmt = (v: string | null | boolean | undefined): string => (v === undefined ? '?' : JSON.stringify(v));
  return {
    init: () => ({}),
    step(state, input, output) {
      switch (input.op) {
        case 'get':
          return { ok: output === undefined || output === read(state, input.key), state };
        case 'put':
          return { ok: true, state: write(state, input.key, input.value) };
        case 'append':
          return { ok: true, state: write(state, input.key, (read(state, input.key) ?? '') + input.value) };
        case 'cas': {
          const swaps = read(state, input.key) === input.expected;
          const ok = output === undefined || output === swaps;
          return { ok, state: swaps ? write(state, input.key, input.value) : state };
        }
      }
    },
    key(state) {
      // Length-prefixed (key, value) pairs in key order: unambiguous without escaping.
      let out = '';
      for (const k of Object.keys(state).sort()) {
        const v = state[k]!;
        out += `${k.length}:${k}${v === null ? '!' : `=${v.length}:${v}`}`;
      }
      return out;
    },
    partition(ops) {
      const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
      for (const op of ops) {
        const list = byKey.get(op.input.key);
        if (list) list.push(op);
        else byKey.set(op.input.key, [op]);
      }
      return [...byKey.values()];
    },
    readOnly: (input) => input.op === 'get',
    describeOperation(input, output) {
      switch (input.op) {
        case 'get':
          return `get(${JSON.stringify(input.key)}) -> ${fmt(output)}`;
        case 'put':
          return `put(${JSON.stringify(input.key)}, ${fmt(input.value)}) -> ${fmt(output)}`;
        case 'append':
          return `append(${JSON.stringify(input.key)}, ${fmt(input.value)}) -> ${fmt(output)}`;
        case 'cas':
          return `cas(${JSON.stringify(input.key)}, ${fmt(input.expected)} -> ${fmt(input.value)}) -> ${fmt(output)}`;
      }
    },
    describeState: (state) => JSON.stringify(state),
  };
}

/** The KV model with absent (`null`) initial values. */
export const kvModel: Model<KvState, KvInput, KvOutput> = createKvModel();

// ---------------------------------------------------------------------------------------------
// Single register model (the Jepsen etcd histories)

/** Input of a {@link registerModel} operation. */
export type RegisterInput =
  | { op: 'read' }
  | { op: 'write'; value: number }
  | { op: 'cas'; from: number; to: number };

/** Output: `read` → the value (`null` if absent); `write` → `true`; `cas` → whether it swapped. */
export type RegisterOutput = number | null | boolean;

/** A single register, initially absent, with read, write and compare-and-set. */
export const registerModel: Model<number | null, RegisterInput, RegisterOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'read':
        return { ok: output === undefined || output === state, state };
      case 'write':
        return { ok: true, state: input.value };
      case 'cas': {
        const swaps = state === input.from;
        return { ok: output === undefined || output === swaps, state: swaps ? input.to : state };
      }
    }
  },
  key: (state) => (state === null ? 'nil' : String(state)),
  readOnly: (input) => input.op === 'read',
  describeOperation(input, output) {
    const out = output === undefined ? '?' : String(output);
    switch (input.op) {
      case 'read':
        return `read() -> ${out}`;
      case 'write':
        return `write(${input.value}) -> ${out}`;
      case 'cas':
        return `cas(${input.from} -> ${input.to}) -> ${out}`;
    }
  },
  describeState: (state) => (state === null ? 'absent' : String(state)),
};
