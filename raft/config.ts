// The raft core's configuration: every limit bounded, a bad value refused with its name.

import { RaftConfigError } from './errors.js';
import type { LogStorage } from './log-storage.js';
import type { Prng } from './prng.js';
import type { NodeId } from './types.js';

/** What a raft node is told at construction. Times are in ticks; sizes in bytes of entry payload. */
export interface RaftConfigInput {
  /** This node's id; must be non-empty. */
  readonly id: NodeId;
  /** The durable log; raft reads it, the application writes it (see LogStorage). */
  readonly storage: LogStorage;
  /** Randomness for election timeouts; seed it per node for replayable runs. */
  readonly prng: Prng;
  /** Ticks without hearing from a leader before a follower campaigns (randomised in [n, 2n)). */
  readonly electionTicks?: number;
  /** Ticks between a leader's heartbeats; must be less than electionTicks. */
  readonly heartbeatTicks?: number;
  /** The last index the application has applied; raft hands out entries after it. */
  readonly applied?: number;
  /** Upper bound on the entry payload bytes of one Append message (at least one entry is always sent). */
  readonly maxMessageBytes?: number;
  /** Append messages in flight to one follower in the replicate state. */
  readonly maxInflightMessages?: number;
  /** Entry payload bytes in flight to one follower. */
  readonly maxInflightBytes?: number;
  /** Payload bytes of proposals appended by the leader but not yet committed; more are refused. */
  readonly maxUncommittedBytes?: number;
  /** Payload bytes of committed entries handed out in one Ready (at least one entry). */
  readonly maxCommittedBytesPerReady?: number;
  /** ReadIndex requests a leader holds waiting for a quorum round or its first commit. */
  readonly maxPendingReadIndex?: number;
  /** How far (entries) a learner's log may trail the commit index and still be promoted. */
  readonly learnerCatchUpMaxLagEntries?: number;
  /** Run a pre-election round before bumping the term (dissertation §9.6). */
  readonly preVote?: boolean;
  /** A leader steps down if it has not heard from a quorum within an election timeout (§6.2). */
  readonly checkQuorum?: boolean;
  /**
   * Heartbeat ticks a leader stays idle (nothing uncommitted, every follower holding its whole
   * log, no read, transfer or change pending) before it quiesces the group: it tells the
   * followers, and then neither side ticks until a message or the application wakes it. 0 never
   * quiesces. With it the application must wake a follower whose leader it believes gone (the
   * leader's process down or cut off), or the group would never elect again.
   */
  readonly quiesceAfterTicks?: number;
}

export type RaftConfig = Required<RaftConfigInput>;

export const RAFT_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  applied: 0,
  maxMessageBytes: 1024 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 32 * 1024 * 1024,
  maxUncommittedBytes: 64 * 1024 * 1024,
  maxCommittedBytesPerReady: 16 * 1024 * 1024,
  maxPendingReadIndex: 10_000,
  learnerCatchUpMaxLagEntries: 100,
  preVote: true,
  checkQuorum: true,
  quiesceAfterTicks: 0,
} as const;

const GIB = 1024 * 1024 * 1024;

/** Fills defaults and checks every bound; throws RaftConfigError naming the first bad setting. */
export function validateRaftConfig(input: RaftConfigInput): RaftConfig {
  if (typeof input.id !== 'string' || input.id.length === 0 || input.id.length > 256) {
    throw new RaftConfigError(
      'id',
      `must be a non-empty string of at most 256 characters, got ${JSON.stringify(input.id)}`,
    );
  }
  if (input.storage === undefined || input.storage === null)
    throw new RaftConfigError('storage', 'is required');
  if (input.prng === undefined || input.prng === null || typeof input.prng.nextInt !== 'function') {
    throw new RaftConfigError('prng', 'is required and must have nextInt(bound)');
  }
  const config: RaftConfig = { ...RAFT_DEFAULTS, ...stripUndefined(input) } as RaftConfig;
  integerIn(config, 'electionTicks', 2, 1_000_000);
  integerIn(config, 'heartbeatTicks', 1, config.electionTicks - 1);
  integerIn(config, 'applied', 0, Number.MAX_SAFE_INTEGER);
  integerIn(config, 'maxMessageBytes', 1, GIB);
  integerIn(config, 'maxInflightMessages', 1, 1_000_000);
  integerIn(config, 'maxInflightBytes', config.maxMessageBytes, 64 * GIB);
  integerIn(config, 'maxUncommittedBytes', 1, 64 * GIB);
  integerIn(config, 'maxCommittedBytesPerReady', 1, 64 * GIB);
  integerIn(config, 'maxPendingReadIndex', 1, 10_000_000);
  integerIn(config, 'learnerCatchUpMaxLagEntries', 0, Number.MAX_SAFE_INTEGER);
  integerIn(config, 'quiesceAfterTicks', 0, 1_000_000);
  for (const flag of ['preVote', 'checkQuorum'] as const) {
    if (typeof config[flag] !== 'boolean')
      throw new RaftConfigError(flag, `must be a boolean, got ${String(config[flag])}`);
  }
  return config;
}

function integerIn(config: RaftConfig, setting: keyof RaftConfig, min: number, max: number): void {
  const value = config[setting];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RaftConfigError(setting, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

function stripUndefined<T extends object>(input: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
