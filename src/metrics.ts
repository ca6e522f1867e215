// The node's Prometheus metrics (prom-client): what each part counts, read at scrape time where a running total exists, observed on the hot path only for latency histograms.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EdgeCounters, MeshCounters, PeerStatus } from '../net/index.js';
import type { WriteQueueStats } from '../storage/index.js';
import { type ActivityKind, ActivitySeries } from './activity-series.js';
import { errorStatus } from './error-codes.js';
import type { NodeStatus } from './kv-service.js';

/*
 * Names are conclave_<part>_<what>_<unit>; counters end in _total. Counts the parts keep anyway
 * (edge, mesh, write queue, raft driver) are read when Prometheus scrapes: a Counter's collect()
 * adds what its source counted since the last scrape, so nothing is counted twice and the hot
 * path pays nothing for them. Only latencies are observed as they happen (one histogram
 * observation: a few array increments). Process and Node.js runtime metrics come from
 * prom-client's default collectors (process_*, nodejs_*).
 */

/** What the raft side of a member tells the metrics (absent on a proxy). */
export interface RaftSource {
  status(): NodeStatus;
  /** Running totals of the raft driver. */
  counters(): { proposals: number; proposalsFailed: number; messagesRefused: number; leaderChanges: number };
  /** Per member: ms since the leader last heard from it (only on the leader). */
  lastContactMs(member: string): number | undefined;
  /** The commit index and each member's match index, on the leader. */
  progress(): ReadonlyMap<string, number> | undefined;
  readonly definitionVersion: () => number;
  readonly sessions: () => number;
  readonly watches: () => number;
  /** The raft groups this node runs (group 1 included), and how many of them are quiesced. */
  readonly groups?: () => { readonly running: number; readonly quiesced: number };
  /** ms since the epoch of the last successful scheduled backup, if any. */
  readonly lastBackupSuccess: () => number | undefined;
  readonly writeQueue: () => WriteQueueStats;
  /** The engine's directory: its files' bytes are the database size. */
  readonly databaseDir: string;
}

export interface MetricsSources {
  readonly edge?: () => EdgeCounters | undefined;
  /** HTTP requests taken and not yet answered. */
  readonly httpInFlight?: () => number | undefined;
  readonly mesh?: () => { counters: MeshCounters; peers: readonly PeerStatus[] } | undefined;
  readonly raft?: RaftSource;
}

/** Seconds buckets for request and write latencies: 0.1 ms to 10 s. */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
/**
 * How often the event-loop lag histogram samples (prom-client's default is every 10 ms). Each
 * sample is a timer that wakes the process: at 10 ms an idle follower made 318 epoll calls a
 * second, at 100 ms 164 (strace -c). The lag of each sample is still measured exactly; there are
 * only fewer of them.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** The mesh's running totals exported as counters: name, help, MeshCounters field. */
const MESH_TOTALS: readonly (readonly [name: string, help: string, field: keyof MeshCounters])[] = [
  ['conclave_mesh_raft_messages_sent_total', 'Raft messages sent to peers', 'raftMessagesSent'],
  ['conclave_mesh_raft_frames_sent_total', 'Raft frames (batches of messages) sent', 'raftFramesSent'],
  ['conclave_mesh_raft_messages_received_total', 'Raft messages received', 'raftMessagesReceived'],
  ['conclave_mesh_raft_frames_received_total', 'Raft frames received', 'raftFramesReceived'],
  [
    'conclave_mesh_raft_messages_dropped_total',
    'Raft messages refused by a full queue or lost with a closed stream',
    'raftMessagesDropped',
  ],
  [
    'conclave_mesh_rpc_requests_sent_total',
    'Requests sent to peers (forwarded writes, reads, admin)',
    'requestsSent',
  ],
  ['conclave_mesh_rpc_requests_received_total', 'Requests received from peers', 'requestsReceived'],
  ['conclave_mesh_rpc_timeouts_total', 'Requests to peers that got no answer in time', 'requestTimeouts'],
  ['conclave_mesh_snapshots_sent_total', 'Snapshots sent to followers', 'snapshotsSent'],
  ['conclave_mesh_snapshots_received_total', 'Snapshots received', 'snapshotsReceived'],
  ['conclave_mesh_snapshots_failed_total', 'Snapshot transfers that failed', 'snapshotsFailed'],
  ['conclave_mesh_snapshot_sent_bytes_total', 'Bytes of snapshots sent', 'snapshotBytesSent'],
  ['conclave_mesh_snapshot_received_bytes_total', 'Bytes of snapshots received', 'snapshotBytesReceived'],
  ['conclave_mesh_dials_total', 'Dials to peers', 'dials'],
  ['conclave_mesh_dial_failures_total', 'Dials that failed', 'dialFailures'],
  [
    'conclave_mesh_connections_authenticated_total',
    'Connections that proved the cluster secret',
    'connectionsAuthenticated',
  ],
  [
    'conclave_mesh_strangers_refused_total',
    'Connections closed for not proving the cluster secret',
    'strangersRejected',
  ],
  ['conclave_mesh_peers_denied_total', 'Connections refused for their peer id', 'peersDenied'],
];

/** A counter fed from a running total at scrape time. */
function totalCounter(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const total = read();
      if (total === undefined) return;
      if (total > last) this.inc(total - last);
      last = Math.max(last, total);
    },
  });
}

const KV_ROUTE = '/v1/realms/:realm/kv/*';

/** Whether an HTTP route and method read or write data (undefined: neither, not charted). */
function httpKind(route: string, method: string): ActivityKind | undefined {
  if (route === KV_ROUTE) return method === 'GET' ? 'read' : 'write';
  if (route === '/v1/realms/:realm/kv') return 'read';
  if (route === '/v1/realms/:realm/txn') return 'write';
  return undefined;
}

const WS_KINDS: ReadonlyMap<string, ActivityKind> = new Map([
  ['get', 'read'],
  ['list', 'read'],
  ['put', 'write'],
  ['patch', 'write'],
  ['delete', 'write'],
  ['txn', 'write'],
]);

/** A server-side failure (a 5xx code): what the dashboard counts as an error, not a NOT_FOUND. */
function isFailure(code: string): boolean {
  if (code === 'OK') return false;
  const status = errorStatus(code) ?? Number(code);
  return !(status < 500);
}

/** The metrics of one node, member or proxy. */
export class NodeMetrics {
  readonly registry = new Registry();
  /** The last ten minutes of data requests, per second, for the dashboard. */
  readonly activity = new ActivitySeries(600);
  private readonly httpRequests: Counter<'route' | 'method' | 'code'>;
  private readonly httpSeconds: Histogram<'route' | 'method'>;
  private readonly wsRequests: Counter<'op' | 'code'>;
  private readonly wsSeconds: Histogram<'op'>;
  private readonly writeSeconds: Histogram<'synced'>;
  private readonly batchOps: Histogram;

  constructor(
    readonly sources: MetricsSources,
    node: string,
  ) {
    const registry = this.registry;
    registry.setDefaultLabels({ node });
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

    this.httpRequests = new Counter({
      name: 'conclave_http_requests_total',
      help: 'HTTP requests answered by a route, by route pattern, method and code (OK or the error code)',
      labelNames: ['route', 'method', 'code'],
      registers: [registry],
    });
    this.httpSeconds = new Histogram({
      name: 'conclave_http_request_duration_seconds',
      help: 'Time from a request reaching its route to its answer',
      labelNames: ['route', 'method'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.wsRequests = new Counter({
      name: 'conclave_ws_requests_total',
      help: 'WebSocket requests answered, by op and code (OK or the error code)',
      labelNames: ['op', 'code'],
      registers: [registry],
    });
    this.wsSeconds = new Histogram({
      name: 'conclave_ws_request_duration_seconds',
      help: 'Time from a WebSocket request arriving to its answer',
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.writeSeconds = new Histogram({
      name: 'conclave_storage_write_duration_seconds',
      help: 'One engine write of the write queue; synced="true" includes its fsync',
      labelNames: ['synced'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.batchOps = new Histogram({
      name: 'conclave_storage_batch_ops',
      help: 'Operations in one engine write (group commit)',
      buckets: BATCH_BUCKETS,
      registers: [registry],
    });

    if (sources.edge) this.edgeMetrics(sources.edge);
    const inFlight = sources.httpInFlight;
    if (inFlight) {
      new Gauge({
        name: 'conclave_http_requests_in_flight',
        help: 'HTTP requests taken and not yet answered',
        registers: [registry],
        collect() {
          const value = inFlight();
          if (value !== undefined) this.set(value);
        },
      });
    }
    if (sources.mesh) this.meshMetrics(sources.mesh);
    if (sources.raft) this.raftMetrics(sources.raft);
  }

  /** One HTTP request answered by its route. */
  httpAnswered(route: string, method: string, code: string, seconds: number): void {
    this.httpRequests.inc({ route, method, code });
    this.httpSeconds.observe({ route, method }, seconds);
    const kind = httpKind(route, method);
    if (kind !== undefined) this.activity.record(kind, isFailure(code), seconds * 1000);
  }

  /** One WebSocket request answered. */
  wsAnswered(op: string, code: string, seconds: number): void {
    this.wsRequests.inc({ op, code });
    this.wsSeconds.observe({ op }, seconds);
    const kind = WS_KINDS.get(op);
    if (kind !== undefined) this.activity.record(kind, isFailure(code), seconds * 1000);
  }

  /** One engine write of the write queue. */
  engineWrite(synced: boolean, ops: number, seconds: number): void {
    this.writeSeconds.observe({ synced: synced ? 'true' : 'false' }, seconds);
    this.batchOps.observe(ops);
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  private edgeMetrics(read: () => EdgeCounters | undefined): void {
    const registry = this.registry;
    new Gauge({
      name: 'conclave_ws_connections',
      help: 'Open WebSocket connections',
      registers: [registry],
      collect() {
        const counters = read();
        if (counters) this.set(counters.wsOpened - counters.wsClosed);
      },
    });
    totalCounter(
      registry,
      'conclave_ws_connections_opened_total',
      'WebSocket connections opened',
      () => read()?.wsOpened,
    );
    totalCounter(
      registry,
      'conclave_ws_slow_consumer_closes_total',
      'WebSocket connections closed because the client read too slowly (4008)',
      () => read()?.wsSlowConsumersClosed,
    );
    totalCounter(
      registry,
      'conclave_ws_messages_received_total',
      'WebSocket messages received',
      () => read()?.wsMessagesIn,
    );
    totalCounter(
      registry,
      'conclave_ws_messages_sent_total',
      'WebSocket messages sent',
      () => read()?.wsMessagesOut,
    );
    const seen = new Map<string, number>();
    new Counter({
      name: 'conclave_edge_errors_total',
      help: 'Error answers of the client edge by code, also those it gives itself (oversized, too many in flight, timeouts, bad framing)',
      labelNames: ['code'],
      registers: [registry],
      collect() {
        for (const [code, total] of Object.entries(read()?.errors ?? {})) {
          const last = seen.get(code) ?? 0;
          if (total > last) this.inc({ code }, total - last);
          seen.set(code, Math.max(last, total));
        }
      },
    });
  }

  private meshMetrics(
    read: () => { counters: MeshCounters; peers: readonly PeerStatus[] } | undefined,
  ): void {
    const registry = this.registry;
    for (const [name, help, field] of MESH_TOTALS) {
      totalCounter(registry, name, help, () => read()?.counters[field]);
    }
    new Gauge({
      name: 'conclave_mesh_peers_connected',
      help: 'Peers with at least one authenticated connection',
      registers: [registry],
      collect() {
        const view = read();
        if (view) this.set(view.peers.filter((peer) => peer.connections > 0).length);
      },
    });
    new Gauge({
      name: 'conclave_mesh_raft_queued_bytes',
      help: 'Raft message bytes waiting to be sent, by peer',
      labelNames: ['peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const peer of read()?.peers ?? []) this.set({ peer: peer.peer }, peer.queuedRaftBytes);
      },
    });
  }

  private raftMetrics(raft: RaftSource): void {
    const registry = this.registry;
    const gauge = (name: string, help: string, value: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const v = value();
          if (v !== undefined) this.set(v);
        },
      });
    gauge('conclave_raft_term', 'The current raft term', () => raft.status().term);
    gauge(
      'conclave_raft_commit_index',
      'The highest log index known committed',
      () => raft.status().commitIndex,
    );
    gauge(
      'conclave_raft_applied_index',
      'The highest log index applied to the state machine',
      () => raft.status().appliedIndex,
    );
    gauge('conclave_kv_revision', 'The cluster revision as applied here', () => raft.status().revision);
    gauge('conclave_raft_is_leader', '1 on the leader, 0 elsewhere', () =>
      raft.status().state === 'leader' ? 1 : 0,
    );
    gauge('conclave_raft_has_leader', '1 while a leader is known', () =>
      raft.status().leader === '' ? 0 : 1,
    );
    gauge(
      'conclave_raft_voters',
      'Voters in the membership',
      () => raft.status().members.filter((m) => m.role === 'voter').length,
    );
    gauge(
      'conclave_raft_learners',
      'Learners (spares, satellites, DR replicas) in the membership',
      () => raft.status().members.filter((m) => m.role !== 'voter').length,
    );
    new Gauge({
      name: 'conclave_raft_state',
      help: "1 for this node's raft state (leader, follower, candidate, pre-candidate)",
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        this.set({ state: raft.status().state }, 1);
      },
    });
    totalCounter(
      registry,
      'conclave_raft_leader_changes_total',
      'Changes of the leader this node saw',
      () => raft.counters().leaderChanges,
    );
    totalCounter(
      registry,
      'conclave_raft_proposals_total',
      'Entries proposed on this node as leader',
      () => raft.counters().proposals,
    );
    totalCounter(
      registry,
      'conclave_raft_proposals_failed_total',
      'Proposals that did not apply (lost leadership, timeout, refused)',
      () => raft.counters().proposalsFailed,
    );
    totalCounter(
      registry,
      'conclave_raft_messages_refused_total',
      'Raft messages from peers dropped as malformed or from another term of membership',
      () => raft.counters().messagesRefused,
    );
    new Gauge({
      name: 'conclave_raft_member_lag_entries',
      help: "On the leader: entries each member's log is behind the commit index",
      labelNames: ['member'],
      registers: [registry],
      collect() {
        this.reset();
        const progress = raft.progress();
        if (progress === undefined) return;
        const commit = raft.status().commitIndex;
        for (const [member, match] of progress) this.set({ member }, Math.max(0, commit - match));
      },
    });
    new Gauge({
      name: 'conclave_raft_member_last_contact_seconds',
      help: 'On the leader: seconds since it last heard from each member',
      labelNames: ['member'],
      registers: [registry],
      collect() {
        this.reset();
        const progress = raft.progress();
        if (progress === undefined) return;
        for (const member of progress.keys()) {
          const ms = raft.lastContactMs(member);
          if (ms !== undefined) this.set({ member }, ms / 1000);
        }
      },
    });
    gauge('conclave_definition_version', 'The realm definition version applied here', raft.definitionVersion);
    gauge('conclave_sessions', 'Open client sessions', raft.sessions);
    gauge('conclave_watches', 'Watch subscriptions served by this node', raft.watches);
    if (raft.groups !== undefined) {
      const groups = raft.groups;
      gauge('conclave_raft_groups', 'Raft groups this node runs, group 1 included', () => groups().running);
      gauge(
        'conclave_raft_groups_quiesced',
        'Raft groups quiesced here: idle, neither ticking nor sending heartbeats',
        () => groups().quiesced,
      );
    }
    gauge(
      'conclave_backup_last_success_timestamp_seconds',
      'When the last scheduled backup succeeded (unix seconds)',
      () => {
        const at = raft.lastBackupSuccess();
        return at === undefined ? undefined : at / 1000;
      },
    );
    const queue = (field: keyof WriteQueueStats) => () => raft.writeQueue()[field];
    totalCounter(
      registry,
      'conclave_storage_synced_writes_total',
      'Engine writes with an fsync',
      queue('batches'),
    );
    totalCounter(
      registry,
      'conclave_storage_unsynced_writes_total',
      'Engine writes without an fsync',
      queue('unsyncedBatches'),
    );
    totalCounter(
      registry,
      'conclave_storage_write_requests_total',
      'Write requests (coalesced into engine writes)',
      queue('requests'),
    );
    totalCounter(
      registry,
      'conclave_storage_written_bytes_total',
      'Bytes written to the engine',
      queue('bytes'),
    );
    totalCounter(
      registry,
      'conclave_storage_range_deletes_total',
      'Range deletes (log compaction, history eviction, old state)',
      queue('clears'),
    );
    new Gauge({
      name: 'conclave_storage_database_bytes',
      help: "Bytes of the engine's files on disk",
      registers: [registry],
      async collect() {
        this.set(await directoryBytes(raft.databaseDir));
      },
    });
  }
}

/** The bytes of the files directly in `dir` (0 if it cannot be read). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      total += await stat(join(dir, entry.name)).then(
        (s) => s.size,
        () => 0,
      );
    }
  } catch {
    return 0;
  }
  return total;
}
