// The mesh's limits and timings: defaults in one place, every value bounded and checked at start.

import { NetConfigError } from './errors.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Every bound the mesh enforces. Sizes in bytes, times in milliseconds. */
export interface MeshLimits {
  /** Largest frame on any Conclave stream (the 4-byte length prefix not counted). */
  readonly maxFrameBytes: number;
  /** The batcher closes a raft frame once it holds this many bytes (a lone larger message still goes, up to maxFrameBytes). */
  readonly raftFrameTargetBytes: number;
  /** Messages in one raft frame; 1 disables batching (used by the benchmark). */
  readonly maxMessagesPerFrame: number;
  /** Raft messages queued for one peer, in bytes; beyond it sendRaft() drops and returns false. */
  readonly maxRaftQueueBytesPerPeer: number;
  /** Bytes a stream may hold in libp2p's write buffer before writers wait (backpressure). */
  readonly streamHighWaterBytes: number;
  /** Bytes a paused inbound stream may buffer before libp2p resets it. */
  readonly maxStreamReadBufferBytes: number;
  /** Largest yamux receive window of one stream: what a sender may have in flight to a reader that stopped. */
  readonly maxStreamWindowBytes: number;
  /** Forwarded request and response payloads. */
  readonly maxRequestBytes: number;
  /** Request, response and cancel frames queued for one peer's request stream, in bytes; beyond, OVERLOADED. */
  readonly maxRpcQueueBytesPerPeer: number;
  /** Requests this node has outstanding to one peer. */
  readonly maxOutboundRequestsPerPeer: number;
  /** Requests one peer may have outstanding at this node. */
  readonly maxInboundRequestsPerPeer: number;
  /** Deadline of a forwarded request when the caller gives none, and the largest accepted. */
  readonly defaultRequestTimeoutMs: number;
  readonly maxRequestTimeoutMs: number;
  /** Snapshot chunk size on the wire. */
  readonly snapshotChunkBytes: number;
  /** Opaque header of a snapshot transfer. */
  readonly maxSnapshotHeaderBytes: number;
  /** Total bytes of one snapshot transfer. */
  readonly maxSnapshotBytes: number;
  /** Chunks the receiver buffers ahead of its consumer before pausing the stream, in bytes. */
  readonly snapshotReceiveBufferBytes: number;
  /** Snapshot transfers in progress, per direction, for the whole node. */
  readonly maxConcurrentSnapshots: number;
  /** A transfer with no progress for this long is aborted. */
  readonly snapshotIdleTimeoutMs: number;
  /** The hello (proof of the cluster secret) must finish within this time or the connection is closed. */
  readonly helloTimeoutMs: number;
  /** Connections that have not yet proved the secret; more inbound ones are refused. */
  readonly maxUnauthenticatedConnections: number;
  /** All connections of this node. */
  readonly maxConnections: number;
  /** Inbound connections per second from one host before more are refused. */
  readonly inboundConnectionsPerSecondPerHost: number;
  /** Redial backoff: first delay, cap, and the time one dial may take. */
  readonly redialBaseMs: number;
  readonly redialMaxMs: number;
  readonly dialTimeoutMs: number;
  /** libp2p pings every connection this often and drops one that does not answer. */
  readonly pingIntervalMs: number;
  /** Peer addresses configured. */
  readonly maxPeers: number;
  /** Group ids are in [0, maxGroupId]. */
  readonly maxGroupId: number;
  /** UTF-8 bytes of a raft node id. */
  readonly maxNodeIdBytes: number;
}

export const MESH_DEFAULTS: MeshLimits = Object.freeze({
  maxFrameBytes: 16 * MIB,
  raftFrameTargetBytes: 256 * KIB,
  maxMessagesPerFrame: 4096,
  maxRaftQueueBytesPerPeer: 64 * MIB,
  streamHighWaterBytes: 1 * MIB,
  maxStreamReadBufferBytes: 32 * MIB,
  maxStreamWindowBytes: 8 * MIB,
  maxRequestBytes: 4 * MIB,
  maxRpcQueueBytesPerPeer: 64 * MIB,
  maxOutboundRequestsPerPeer: 4096,
  maxInboundRequestsPerPeer: 4096,
  defaultRequestTimeoutMs: 5_000,
  maxRequestTimeoutMs: 120_000,
  snapshotChunkBytes: 256 * KIB,
  maxSnapshotHeaderBytes: 64 * KIB,
  maxSnapshotBytes: 256 * GIB,
  snapshotReceiveBufferBytes: 4 * MIB,
  maxConcurrentSnapshots: 4,
  snapshotIdleTimeoutMs: 30_000,
  helloTimeoutMs: 5_000,
  maxUnauthenticatedConnections: 64,
  maxConnections: 512,
  inboundConnectionsPerSecondPerHost: 20,
  redialBaseMs: 100,
  redialMaxMs: 10_000,
  dialTimeoutMs: 5_000,
  pingIntervalMs: 5_000,
  maxPeers: 256,
  maxGroupId: 0xffff_ffff,
  maxNodeIdBytes: 256,
});

type Limit = number | ((limits: MeshLimits) => number);
type Bound = readonly [min: Limit, max: Limit];

const BOUNDS: { readonly [K in keyof MeshLimits]: Bound } = {
  maxFrameBytes: [4 * KIB, 1 * GIB],
  raftFrameTargetBytes: [1 * KIB, (l) => l.maxFrameBytes],
  maxMessagesPerFrame: [1, 1_000_000],
  maxRaftQueueBytesPerPeer: [1 * KIB, 64 * GIB],
  streamHighWaterBytes: [16 * KIB, 1 * GIB],
  maxStreamReadBufferBytes: [(l) => Math.max(l.maxFrameBytes, l.maxStreamWindowBytes), 4 * GIB],
  maxStreamWindowBytes: [256 * KIB, 4 * GIB - 1],
  maxRequestBytes: [1 * KIB, (l) => l.maxFrameBytes - 64],
  maxRpcQueueBytesPerPeer: [(l) => l.maxRequestBytes + 64, 64 * GIB],
  maxOutboundRequestsPerPeer: [1, 1_000_000],
  maxInboundRequestsPerPeer: [1, 1_000_000],
  defaultRequestTimeoutMs: [1, (l) => l.maxRequestTimeoutMs],
  maxRequestTimeoutMs: [1, 24 * 3600 * 1000],
  snapshotChunkBytes: [1 * KIB, (l) => l.maxFrameBytes - 64],
  maxSnapshotHeaderBytes: [0, (l) => l.maxFrameBytes - 64],
  maxSnapshotBytes: [0, Number.MAX_SAFE_INTEGER],
  snapshotReceiveBufferBytes: [(l) => l.snapshotChunkBytes, 4 * GIB],
  maxConcurrentSnapshots: [1, 1024],
  snapshotIdleTimeoutMs: [10, 24 * 3600 * 1000],
  helloTimeoutMs: [10, 600_000],
  maxUnauthenticatedConnections: [1, 100_000],
  maxConnections: [1, 100_000],
  inboundConnectionsPerSecondPerHost: [1, 100_000],
  redialBaseMs: [1, 600_000],
  redialMaxMs: [(l) => l.redialBaseMs, 3_600_000],
  dialTimeoutMs: [10, 600_000],
  pingIntervalMs: [100, 3_600_000],
  maxPeers: [0, 100_000],
  maxGroupId: [0, 0xffff_ffff],
  maxNodeIdBytes: [1, 64 * KIB],
};

/**
 * Fills defaults and checks every bound, including the ones between settings (a frame
 * target no larger than a frame). Throws NetConfigError naming the first bad setting, its
 * bound and the value given.
 */
export function validateMeshLimits(input: Partial<MeshLimits> = {}): MeshLimits {
  for (const key of Object.keys(input)) {
    if (!(key in BOUNDS)) throw new NetConfigError(`limits.${key}`, 'is not a known setting');
  }
  const limits = { ...MESH_DEFAULTS } as Record<keyof MeshLimits, number>;
  for (const [key, value] of Object.entries(input) as [keyof MeshLimits, number | undefined][]) {
    if (value !== undefined) limits[key] = value;
  }
  for (const key of Object.keys(BOUNDS) as (keyof MeshLimits)[]) {
    const [minSpec, maxSpec] = BOUNDS[key];
    const min = typeof minSpec === 'function' ? minSpec(limits) : minSpec;
    const max = typeof maxSpec === 'function' ? maxSpec(limits) : maxSpec;
    const value = limits[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new NetConfigError(
        `limits.${key}`,
        `must be an integer in [${min}, ${max}], got ${String(value)}`,
      );
    }
  }
  return Object.freeze(limits);
}
