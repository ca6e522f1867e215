// The node-to-node mesh: libp2p (TCP + Noise + yamux), the secret-proving hello, and Conclave's protocols.

import './polyfill.js';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { tcp } from '@libp2p/tcp';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { Message } from '../raft/types.js';
import { backoffDelayMs } from './backoff.js';
import { FramedChannel } from './channel.js';
import { decodeRaftBatch, type RaftBatch, type RaftCodecLimits } from './codec.js';
import { type MeshLimits, validateMeshLimits } from './config.js';
import { describeError, NetConfigError, NetError } from './errors.js';
import { HelloError, helloAsDialer, helloAsListener, type VersionRange } from './hello.js';
import { type Logger, silentLogger, withFields } from './log.js';
import { RaftLink, type RaftLinkCounters } from './raft-link.js';
import { RepeatGate } from './repeat-gate.js';
import { type RequestHandler, type RequestOptions, type RpcCounters, RpcEndpoint } from './rpc.js';
import type { ClusterSecret } from './secret.js';
import {
  receiveSnapshotOn,
  type SendSnapshotOptions,
  type SnapshotCounters,
  type SnapshotHandler,
  sendSnapshotOn,
} from './snapshot.js';
import { coalescingEncrypter, halfWindowUpdates } from './transport-tuning.js';

/** Conclave's libp2p protocol ids. The version changes when a wire format does. */
export const PROTOCOLS = Object.freeze({
  hello: '/conclave/hello/1.0.0',
  raft: '/conclave/raft/1.0.0',
  rpc: '/conclave/rpc/1.0.0',
  snapshot: '/conclave/snapshot/1.0.0',
});

/** What the mesh calls into; src/ provides it. Handlers must not throw (a throw closes the stream). */
export interface MeshHandlers {
  /**
   * Raft messages of one group from authenticated peer `from`, in the order they were sent.
   * Called synchronously as frames arrive: queue, do not block. The mesh vouches for `from`
   * (the Noise-authenticated peer id) but not for the messages' `from` fields: src/ checks
   * that they name that peer.
   */
  raft(from: string, batch: RaftBatch): void;
  /** Forwarded requests (client operations sent to the leader); without it, requests are refused. */
  readonly request?: RequestHandler;
  /** Incoming snapshot transfers; without it, they are refused. */
  readonly snapshot?: SnapshotHandler;
  /** The raft stream with `peer` is ready: sendRaft() to it can succeed. */
  peerUp?(peer: string): void;
  /** The raft stream with `peer` is gone (raft should treat the peer as unreachable). */
  peerDown?(peer: string, reason: string): void;
}

/** How a mesh is built; see Mesh. */
export interface MeshInit {
  /** The node's key (loadOrCreateNodeKey); its peer id names this node on the mesh. */
  readonly privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/7100. */
  readonly listen: readonly string[];
  /** Peers to keep connections to: /ip4/10.0.0.2/tcp/7100, optionally ending in /p2p/<peer id> to pin it. */
  readonly peers: readonly string[];
  /** Only peers that prove this secret may use the mesh. */
  readonly secret: ClusterSecret;
  readonly handlers: MeshHandlers;
  readonly limits?: Partial<MeshLimits>;
  /** Quiet by default (silentLogger). */
  readonly logger?: Logger;
  /** Randomness for backoff jitter, in [0, 1); injectable for tests. */
  readonly random?: () => number;
  /**
   * Called with a peer id right after Noise has proved it, before the hello; false refuses the
   * connection (counted in peersDenied). For src/ to shut out peers that still hold the secret
   * but must not return, such as a removed member. May be called often: keep it cheap.
   */
  readonly admit?: (peer: string) => boolean;
  /** The protocol versions this node speaks (hello.ts); this build's unless a test says otherwise. */
  readonly versions?: VersionRange;
}

/** Running totals since start; read with Mesh.counters(). */
export interface MeshCounters extends RaftLinkCounters, RpcCounters, SnapshotCounters {
  /** Connections closed because the peer did not prove the cluster secret (bad proof, timeout, garbage). */
  strangersRejected: number;
  /**
   * Hellos cut short by a close from a peer that is no stranger: one that proved the secret
   * before (a restart), or one with another live connection to us (two members dialing each
   * other at once, the loser closed by the tie-break). Not counted in strangersRejected.
   */
  hellosInterrupted: number;
  /** Protocol streams opened on a connection that had not proved the secret (the connection is closed too). */
  streamsRefused: number;
  /** Inbound connections refused before their handshake because too many were unauthenticated. */
  connectionsDenied: number;
  /** Connections refused because admit() said no to the peer id. */
  peersDenied: number;
  /** Connections that proved the secret. */
  connectionsAuthenticated: number;
  /** Duplicate connections to one peer closed by the tie-break. */
  duplicateConnectionsClosed: number;
  dials: number;
  dialFailures: number;
  raftMessagesReceived: number;
  raftFramesReceived: number;
}

/** One peer's state as reported by Mesh.peers(). */
export interface PeerStatus {
  readonly peer: string;
  /** Authenticated connections open right now. */
  readonly connections: number;
  readonly raftStream: boolean;
  readonly rpcStream: boolean;
  readonly queuedRaftBytes: number;
}

type ConnectionState = 'pending' | 'authenticated' | 'closed';

interface TrackedConnection {
  readonly connection: Connection;
  state: ConnectionState;
  readonly authenticated: Promise<void>;
  readonly settle: (err?: Error) => void;
  readonly openedAt: number;
  authenticatedAt: number;
}

/**
 * The mesh between Conclave nodes. Lifecycle: construct (validates everything, throws
 * NetConfigError naming the bad setting), start() (listens, then dials every configured peer
 * and keeps dialing with capped exponential backoff and jitter), stop() (closes everything;
 * idempotent).
 *
 * Access: every connection runs the hello (hello.ts) and must prove the cluster secret within
 * helloTimeoutMs; until then Conclave's protocols refuse its streams, and a connection that
 * fails or stalls is closed and counted in strangersRejected. Members and joiners alike prove
 * the secret; a member's address may also pin its peer id with /p2p/<id>.
 *
 * Streams per peer pair: one raft stream and one rpc stream, both opened by the peer with the
 * smaller peer id and used in both directions; one stream per snapshot transfer, opened by
 * its sender. When two connections join the same pair, the one dialed by the smaller peer id
 * wins (the newest if both were) and the other is closed.
 */
export class Mesh {
  readonly peerId: string;
  private readonly init: MeshInit;
  private readonly limits: MeshLimits;
  private readonly codecLimits: RaftCodecLimits;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly configuredPeers: ConfiguredPeer[];
  private readonly counterValues: MeshCounters = newCounters();
  private readonly connections = new Map<string, TrackedConnection>();
  /** Peers that completed a hello with us at least once (bounded: members, not strangers). */
  private readonly provenPeers = new Set<string>();
  /** Refusals of the same peer for the same reason: logged once a minute, with the count between. */
  private readonly refusalLog = new RepeatGate(60_000);
  private readonly sessions = new Map<string, PeerSession>();
  private node: Libp2p | undefined;
  private state: 'new' | 'starting' | 'started' | 'stopping' | 'stopped' = 'new';
  private outboundSnapshots = 0;
  private inboundSnapshots = 0;

  constructor(init: MeshInit) {
    this.init = init;
    this.limits = validateMeshLimits(init.limits);
    this.codecLimits = {
      maxMessagesPerFrame: 1_000_000,
      maxNodeIdsPerFrame: 1024,
      maxNodeIdBytes: this.limits.maxNodeIdBytes,
      maxEntriesPerMessage: 10_000_000,
      maxGroupId: this.limits.maxGroupId,
    };
    if (init.privateKey === undefined || init.privateKey === null)
      throw new NetConfigError('privateKey', 'is required');
    if (init.privateKey.type !== 'Ed25519') {
      throw new NetConfigError('privateKey', `must be an Ed25519 key, got ${init.privateKey.type}`);
    }
    if (
      init.secret === undefined ||
      !(init.secret.key instanceof Uint8Array) ||
      init.secret.key.length !== 32
    ) {
      throw new NetConfigError('secret', 'is required: a ClusterSecret from readClusterSecretFile()');
    }
    if (typeof init.handlers?.raft !== 'function')
      throw new NetConfigError('handlers.raft', 'must be a function');
    this.peerId = peerIdFromPrivateKey(init.privateKey).toString();
    if (!Array.isArray(init.listen)) throw new NetConfigError('listen', 'must be an array of multiaddrs');
    for (const address of init.listen) parseTcpAddress('listen', address);
    if (!Array.isArray(init.peers)) throw new NetConfigError('peers', 'must be an array of multiaddrs');
    if (init.peers.length > this.limits.maxPeers) {
      throw new NetConfigError(
        'peers',
        `lists ${init.peers.length} peers, more than limits.maxPeers = ${this.limits.maxPeers}`,
      );
    }
    this.configuredPeers = init.peers.map((address) => {
      const { addr, pinned } = parseTcpAddress('peers', address);
      if (pinned === this.peerId)
        throw new NetConfigError('peers', `${address} pins this node's own peer id`);
      return new ConfiguredPeer(addr, pinned);
    });
    this.logger = withFields(init.logger ?? silentLogger, { component: 'mesh', node: this.peerId });
    this.random = init.random ?? Math.random;
  }

  /** Creates the libp2p node, listens, and starts dialing. Throws if listening fails. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new NetError('STOPPED', `mesh cannot start from state ${this.state}`);
    this.state = 'starting';
    const limits = this.limits;
    halfWindowUpdates(this.logger);
    const node = await createLibp2p({
      privateKey: this.init.privateKey,
      start: false,
      addresses: { listen: [...this.init.listen] },
      transports: [tcp()],
      // One socket write per encrypted batch. With faster handshakes, two members dialing each
      // other at once often lose one connection mid-hello; rejectStranger tells that apart.
      connectionEncrypters: [coalescingEncrypter(noise())],
      streamMuxers: [
        yamux({
          maxInboundStreams: 64,
          maxOutboundStreams: 64,
          streamOptions: {
            maxReadBufferLength: limits.maxStreamReadBufferBytes,
            maxStreamWindowSize: limits.maxStreamWindowBytes,
          },
        }),
      ],
      connectionGater: {
        denyInboundConnection: () => this.denyInbound(),
        denyInboundEncryptedConnection: (peerId) => this.denyPeer(peerId.toString(), 'inbound'),
        denyOutboundEncryptedConnection: (peerId) => this.denyPeer(peerId.toString(), 'outbound'),
      },
      connectionManager: {
        maxConnections: limits.maxConnections,
        inboundConnectionThreshold: limits.inboundConnectionsPerSecondPerHost,
        maxIncomingPendingConnections: Math.min(limits.maxUnauthenticatedConnections, 256),
        dialTimeout: limits.dialTimeoutMs,
        inboundUpgradeTimeout: limits.helloTimeoutMs,
        reconnectRetries: 0,
      },
      connectionMonitor: { enabled: true, pingInterval: limits.pingIntervalMs },
    });
    this.node = node;
    node.addEventListener('connection:open', (event) => this.onConnectionOpen(event.detail));
    node.addEventListener('connection:close', (event) => this.onConnectionClose(event.detail));
    await node.handle(PROTOCOLS.hello, (stream, connection) => this.onHelloStream(stream, connection), {
      maxInboundStreams: 1,
      maxOutboundStreams: 1,
    });
    // The raft and rpc streams: one long-lived stream each per peer pair (two while a duplicate
    // connection is being resolved).
    for (const kind of ['raft', 'rpc'] as const) {
      await node.handle(
        PROTOCOLS[kind],
        this.guard(kind, (stream, session, connection) =>
          this.adoptStream(kind, stream, session, connection),
        ),
        { maxInboundStreams: 2, maxOutboundStreams: 2 },
      );
    }
    await node.handle(
      PROTOCOLS.snapshot,
      this.guard('snapshot', (stream, session) => this.onSnapshotStream(stream, session)),
      {
        maxInboundStreams: limits.maxConcurrentSnapshots + 1,
        maxOutboundStreams: limits.maxConcurrentSnapshots + 1,
      },
    );
    try {
      await node.start();
    } catch (err) {
      this.state = 'stopped';
      await Promise.resolve(node.stop()).catch(() => {});
      throw new NetError(
        'UNAVAILABLE',
        `mesh could not listen on ${this.init.listen.join(', ')}: ${describeError(err)}`,
        {
          cause: err,
        },
      );
    }
    this.state = 'started';
    this.logger.info('mesh_started', { addresses: this.addresses(), peers: this.init.peers.length });
    for (const peer of this.configuredPeers) this.dialSoon(peer, 0);
  }

  /** Stops dialing, closes every stream and connection, stops libp2p. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    for (const peer of this.configuredPeers) peer.cancel();
    for (const session of this.sessions.values()) session.shutdown('mesh stopping');
    for (const tracked of this.connections.values()) tracked.settle(new NetError('STOPPED', 'mesh stopping'));
    await this.node?.stop();
    this.sessions.clear();
    this.connections.clear();
    this.state = 'stopped';
    this.logger.info('mesh_stopped');
  }

  /**
   * Dials `address` and keeps a connection to it like a configured peer (a member learned at
   * runtime). Idempotent per address; an address of this node itself is ignored. Throws
   * NetConfigError for an address that is not a TCP multiaddr.
   */
  addPeer(address: string): void {
    const { addr, pinned } = parseTcpAddress('peers', address);
    if (pinned === this.peerId) return;
    if (this.configuredPeers.some((p) => p.addr.toString() === addr.toString())) return;
    if (this.init.listen.some((own) => own === address)) return;
    if (this.configuredPeers.length >= this.limits.maxPeers) {
      throw new NetConfigError('peers', `more than limits.maxPeers = ${this.limits.maxPeers} peers`);
    }
    const peer = new ConfiguredPeer(addr, pinned);
    this.configuredPeers.push(peer);
    this.logger.info('peer_added', { addr: addr.toString() });
    this.dialSoon(peer, 0);
  }

  /** Stops dialing `address` (a removed member); an open connection closes when the peer goes. */
  removePeer(address: string): void {
    const index = this.configuredPeers.findIndex((p) => p.addr.toString() === address);
    if (index === -1) return;
    this.configuredPeers[index]!.cancel();
    this.configuredPeers.splice(index, 1);
  }

  /** The multiaddrs this node listens on, each ending in /p2p/<peer id> (after start). */
  addresses(): string[] {
    return this.node?.getMultiaddrs().map((addr) => addr.toString()) ?? [];
  }

  /**
   * Queues raft messages of group `groupId` for `peer`. Never blocks; returns false if they
   * were dropped: no raft stream to that peer, a message too large for a frame, or the peer's
   * queue full. Messages queued during one task go out together when it ends, batched into
   * frames. Delivery is best effort, in order, at most once.
   */
  sendRaft(peer: string, groupId: number, messages: readonly Message[]): boolean {
    if (!Number.isInteger(groupId) || groupId < 0 || groupId > this.limits.maxGroupId) {
      throw new RangeError(`groupId must be an integer in [0, ${this.limits.maxGroupId}], got ${groupId}`);
    }
    const session = this.sessions.get(peer);
    if (session === undefined) {
      this.counterValues.raftMessagesDropped += messages.length;
      return false;
    }
    return session.raft.enqueue(groupId, messages);
  }

  /**
   * Sends a request to `peer` and waits for its answer (at most maxRequestBytes each way). If
   * the peer is connected but its request stream is being reopened, waits for it within the
   * deadline.
   * Rejects with NetError: UNAVAILABLE (not connected, or the stream broke: a request already
   * sent may have been applied), TIMEOUT (the deadline passed: the outcome is unknown),
   * OVERLOADED, FRAME_TOO_LARGE; RemoteError if the remote handler failed with a code.
   */
  request(peer: string, payload: Uint8Array, options?: RequestOptions): Promise<Uint8Array> {
    const session = this.sessions.get(peer);
    if (session === undefined) {
      return Promise.reject(new NetError('UNAVAILABLE', `not connected to ${peer}`, { notSent: true }));
    }
    return session.rpc.request(payload, options);
  }

  /**
   * Streams a snapshot to `peer` on a stream of its own. Resolves with the bytes sent once the
   * receiver's handler acknowledged; rejects with NetError (UNAVAILABLE, TIMEOUT on no
   * progress for snapshotIdleTimeoutMs, OVERLOADED past maxConcurrentSnapshots,
   * FRAME_TOO_LARGE past maxSnapshotBytes) or RemoteError if the receiver refused.
   */
  async sendSnapshot(peer: string, options: SendSnapshotOptions): Promise<number> {
    const connection = this.sessions.get(peer)?.bestConnection();
    if (connection === undefined) throw new NetError('UNAVAILABLE', `not connected to ${peer}`);
    if (this.outboundSnapshots >= this.limits.maxConcurrentSnapshots) {
      throw new NetError('OVERLOADED', `${this.outboundSnapshots} snapshot transfers already in progress`);
    }
    this.outboundSnapshots++;
    try {
      const signal =
        options.signal === undefined
          ? AbortSignal.timeout(this.limits.dialTimeoutMs)
          : AbortSignal.any([options.signal, AbortSignal.timeout(this.limits.dialTimeoutMs)]);
      const stream = await connection.newStream(PROTOCOLS.snapshot, { signal });
      return await sendSnapshotOn(stream, peer, options, this.shared());
    } finally {
      this.outboundSnapshots--;
    }
  }

  /**
   * Closes every connection to `peer` at once (its streams reset, queued messages dropped).
   * A configured peer is redialed with backoff; use it to reset a misbehaving link.
   */
  async disconnect(peer: string): Promise<void> {
    if (this.node === undefined || this.state !== 'started') return;
    const connections = this.node.getConnections(peerIdFromString(peer));
    for (const connection of connections)
      connection.abort(new NetError('UNAVAILABLE', 'disconnected locally'));
  }

  /** Peers with an authenticated connection or a raft stream right now. */
  peers(): PeerStatus[] {
    return [...this.sessions.values()].map((session) => session.status());
  }

  /** True if sendRaft() to `peer` can currently succeed. */
  isConnected(peer: string): boolean {
    return this.sessions.get(peer)?.raft.connected === true;
  }

  /** A copy of the running counters. */
  counters(): MeshCounters {
    return { ...this.counterValues };
  }

  // ---- connections and the hello ----

  private denyInbound(): boolean {
    let pending = 0;
    for (const tracked of this.connections.values()) if (tracked.state === 'pending') pending++;
    if (pending < this.limits.maxUnauthenticatedConnections) return false;
    this.counterValues.connectionsDenied++;
    const { log, suppressed } = this.refusalLog.check('connection_denied');
    if (log) {
      this.logger.warn('connection_denied', {
        reason: 'too many unauthenticated connections',
        pending,
        ...(suppressed > 0 ? { repeats: suppressed } : {}),
      });
    }
    return true;
  }

  private denyPeer(peer: string, direction: string): boolean {
    const admit = this.init.admit;
    if (admit === undefined) return false;
    let admitted: boolean;
    try {
      admitted = admit(peer) === true;
    } catch (err) {
      this.logger.error('admit_failed', { peer, error: describeError(err) });
      admitted = false;
    }
    if (admitted) return false;
    this.counterValues.peersDenied++;
    const { log, suppressed } = this.refusalLog.check(`peer_denied ${peer}`);
    if (log)
      this.logger.warn('peer_denied', {
        peer,
        direction,
        ...(suppressed > 0 ? { repeats: suppressed } : {}),
      });
    return true;
  }

  private onConnectionOpen(connection: Connection): void {
    if (this.state !== 'started' && this.state !== 'starting') {
      connection.abort(new NetError('STOPPED', 'mesh is not running'));
      return;
    }
    let settle!: (err?: Error) => void;
    const authenticated = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    authenticated.catch(() => {});
    const tracked: TrackedConnection = {
      connection,
      state: 'pending',
      authenticated,
      settle,
      openedAt: Date.now(),
      authenticatedAt: 0,
    };
    this.connections.set(connection.id, tracked);
    const timer = setTimeout(() => {
      if (tracked.state === 'pending')
        this.rejectStranger(tracked, 'timeout', 'no hello within the deadline');
    }, this.limits.helloTimeoutMs + 100);
    timer.unref();
    authenticated.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    if (connection.direction === 'outbound') this.runDialerHello(tracked);
  }

  private async runDialerHello(tracked: TrackedConnection): Promise<void> {
    const { connection } = tracked;
    const remotePeer = connection.remotePeer.toString();
    try {
      const stream = await connection.newStream(PROTOCOLS.hello, {
        signal: AbortSignal.timeout(this.limits.helloTimeoutMs),
      });
      await helloAsDialer({
        stream,
        secret: this.init.secret,
        localPeer: this.peerId,
        remotePeer,
        timeoutMs: this.limits.helloTimeoutMs,
        logger: this.logger,
        counters: this.counterValues,
        ...(this.init.versions === undefined ? {} : { versions: this.init.versions }),
      });
      this.markAuthenticated(tracked);
    } catch (err) {
      const reason = err instanceof HelloError ? err.reason : 'closed';
      this.rejectStranger(tracked, reason, describeError(err));
    }
  }

  private async onHelloStream(stream: Stream, connection: Connection): Promise<void> {
    const tracked = this.connections.get(connection.id);
    if (tracked === undefined || tracked.state !== 'pending' || connection.direction !== 'inbound') {
      stream.abort(new NetError('UNAUTHENTICATED', 'unexpected hello'));
      return;
    }
    try {
      await helloAsListener({
        stream,
        secret: this.init.secret,
        localPeer: this.peerId,
        remotePeer: connection.remotePeer.toString(),
        timeoutMs: this.limits.helloTimeoutMs,
        logger: this.logger,
        counters: this.counterValues,
        onVerified: () => this.markAuthenticated(tracked),
        ...(this.init.versions === undefined ? {} : { versions: this.init.versions }),
      });
    } catch (err) {
      const reason = err instanceof HelloError ? err.reason : 'closed';
      this.rejectStranger(tracked, reason, describeError(err));
    }
  }

  private rejectStranger(tracked: TrackedConnection, reason: string, detail: string): void {
    if (tracked.state !== 'pending') return;
    tracked.state = 'closed';
    const peer = tracked.connection.remotePeer.toString();
    const fields = {
      peer,
      remoteAddr: tracked.connection.remoteAddr.toString(),
      direction: tracked.connection.direction,
      reason,
      detail,
    };
    if (reason === 'closed' && (this.provenPeers.has(peer) || this.hasOtherLiveConnection(tracked, peer))) {
      // A member that proved the secret before hung up mid-hello (a restart), or the peer's
      // other connection won the tie-break while this one's hello was still running (both
      // dialed at once; the closing side had already verified it): not a stranger.
      this.counterValues.hellosInterrupted++;
      this.logger.info('hello_interrupted', fields);
      tracked.settle(new NetError('UNAVAILABLE', `${reason}: ${detail}`));
      tracked.connection.abort(new NetError('UNAVAILABLE', `hello interrupted`));
      return;
    }
    this.counterValues.strangersRejected++;
    tracked.settle(new NetError('UNAUTHENTICATED', `${reason}: ${detail}`));
    tracked.connection.abort(new NetError('UNAUTHENTICATED', `hello failed: ${reason}`));
    // Once per peer and reason a minute: a node that keeps redialing is one line, with the count.
    const { log, suppressed } = this.refusalLog.check(`stranger ${peer} ${reason}`);
    if (!log) return;
    if (suppressed > 0) Object.assign(fields, { repeats: suppressed });
    if (reason === 'version') {
      this.logger.error('peer_version_refused', {
        ...fields,
        hint: 'the two nodes share no protocol version: upgrade a cluster one release at a time',
      });
    } else if (reason === 'bad_proof') {
      this.logger.error('stranger_rejected', {
        ...fields,
        hint: 'the remote does not hold this cluster secret: is one of the two nodes started with another --cluster-secret-file?',
      });
    } else {
      this.logger.warn('stranger_rejected', fields);
    }
  }

  /** Whether another connection to the same peer id is still pending or authenticated. */
  private hasOtherLiveConnection(tracked: TrackedConnection, peer: string): boolean {
    for (const other of this.connections.values()) {
      if (other !== tracked && other.state !== 'closed' && other.connection.remotePeer.toString() === peer)
        return true;
    }
    return false;
  }

  private markAuthenticated(tracked: TrackedConnection): void {
    if (tracked.state !== 'pending') return;
    const { connection } = tracked;
    if (connection.status !== 'open' || this.state !== 'started') {
      tracked.state = 'closed';
      tracked.settle(new NetError('UNAVAILABLE', 'connection closed during the hello'));
      return;
    }
    tracked.state = 'authenticated';
    tracked.authenticatedAt = performance.now();
    this.counterValues.connectionsAuthenticated++;
    const peer = connection.remotePeer.toString();
    if (this.provenPeers.size < 10_000) this.provenPeers.add(peer);
    let session = this.sessions.get(peer);
    if (session === undefined) {
      session = new PeerSession(this, peer);
      this.sessions.set(peer, session);
    }
    session.connections.add(tracked);
    this.logger.info('peer_authenticated', {
      peer,
      direction: connection.direction,
      remoteAddr: connection.remoteAddr.toString(),
    });
    tracked.settle();
    this.closeDuplicates(session);
    if (this.opensStreamsTo(peer)) session.ensureStreams();
  }

  private onConnectionClose(connection: Connection): void {
    const tracked = this.connections.get(connection.id);
    if (tracked === undefined) return;
    this.connections.delete(connection.id);
    const wasAuthenticated = tracked.state === 'authenticated';
    if (tracked.state === 'pending')
      tracked.settle(new NetError('UNAVAILABLE', 'connection closed during the hello'));
    tracked.state = 'closed';
    if (!wasAuthenticated) return;
    const peer = connection.remotePeer.toString();
    const session = this.sessions.get(peer);
    if (session === undefined) return;
    session.connections.delete(tracked);
    if (session.connections.size > 0) {
      if (this.opensStreamsTo(peer)) session.ensureStreams();
      return;
    }
    session.shutdown('connection closed');
    this.sessions.delete(peer);
    this.logger.info('peer_disconnected', { peer });
    if (this.state !== 'started') return;
    for (const configured of this.configuredPeers) {
      if (configured.knownPeer === peer) this.dialSoon(configured, 1);
    }
  }

  /** Keeps one connection per peer: the one dialed by the smaller peer id, the newest if both were. */
  private closeDuplicates(session: PeerSession): void {
    if (session.connections.size < 2 || !this.opensStreamsTo(session.peer)) return;
    const winner = session.bestConnection();
    for (const tracked of [...session.connections]) {
      if (tracked.connection === winner) continue;
      session.connections.delete(tracked);
      this.counterValues.duplicateConnectionsClosed++;
      this.logger.debug('duplicate_connection_closed', {
        peer: session.peer,
        direction: tracked.connection.direction,
      });
      tracked.connection.close().catch((err) => tracked.connection.abort(err as Error));
    }
  }

  /** The peer with the smaller id opens the shared raft and rpc streams and decides duplicates. */
  opensStreamsTo(peer: string): boolean {
    return this.peerId < peer;
  }

  /** Wraps a protocol handler so that only authenticated connections reach it. */
  private guard(
    protocol: string,
    handler: (stream: Stream, session: PeerSession, connection: Connection) => void | Promise<void>,
  ): (stream: Stream, connection: Connection) => Promise<void> {
    return async (stream, connection) => {
      const tracked = this.connections.get(connection.id);
      const session = this.sessions.get(connection.remotePeer.toString());
      if (tracked?.state !== 'authenticated' || session === undefined || this.state !== 'started') {
        this.counterValues.streamsRefused++;
        this.logger.warn('stream_refused', {
          peer: connection.remotePeer.toString(),
          remoteAddr: connection.remoteAddr.toString(),
          protocol,
          reason: 'connection has not proved the cluster secret',
        });
        stream.abort(new NetError('UNAUTHENTICATED', 'prove the cluster secret first'));
        if (tracked !== undefined && tracked.state === 'pending') {
          this.rejectStranger(tracked, 'stream_before_hello', `opened ${protocol} before the hello`);
        } else {
          connection.abort(new NetError('UNAUTHENTICATED', 'stream before hello'));
        }
        return;
      }
      try {
        await handler(stream, session, connection);
      } catch (err) {
        this.logger.error('protocol_handler_failed', {
          peer: session.peer,
          protocol,
          error: describeError(err),
        });
        stream.abort(err as Error);
      }
    };
  }

  // ---- streams ----

  /** Wraps an inbound or outbound raft or rpc stream and makes it the session's current one. */
  adoptStream(kind: 'raft' | 'rpc', stream: Stream, session: PeerSession, connection: Connection): void {
    const limits = this.limits;
    const channel: FramedChannel = new FramedChannel({
      stream,
      peer: session.peer,
      protocol: kind,
      maxFrameBytes: limits.maxFrameBytes,
      highWaterBytes: limits.streamHighWaterBytes,
      maxReadBufferBytes: limits.maxStreamReadBufferBytes,
      logger: this.logger,
      counters: this.counterValues,
      onFrame:
        kind === 'raft'
          ? (payload) => this.onRaftFrame(session.peer, payload)
          : (payload) => session.rpc.onFrame(payload),
      onClose: (reason) => session.onChannelClosed(kind, channel, reason),
    });
    session.attach(kind, channel, connection);
  }

  private onRaftFrame(peer: string, payload: Uint8Array): void {
    const batch = decodeRaftBatch(payload, this.codecLimits);
    this.counterValues.raftFramesReceived++;
    this.counterValues.raftMessagesReceived += batch.messages.length;
    this.init.handlers.raft(peer, batch);
  }

  private async onSnapshotStream(stream: Stream, session: PeerSession): Promise<void> {
    if (this.inboundSnapshots >= this.limits.maxConcurrentSnapshots) {
      this.counterValues.snapshotsFailed++;
      stream.abort(new NetError('OVERLOADED', 'too many snapshot transfers'));
      return;
    }
    this.inboundSnapshots++;
    try {
      await receiveSnapshotOn(stream, session.peer, this.init.handlers.snapshot, this.shared());
    } finally {
      this.inboundSnapshots--;
    }
  }

  private shared() {
    return { limits: this.limits, logger: this.logger, counters: this.counterValues };
  }

  // ---- dialing ----

  private dialSoon(peer: ConfiguredPeer, failures: number): void {
    if (this.state !== 'started') return;
    const delayMs = failures === 0 ? 0 : backoffDelayMs(failures, this.backoffPolicy(), this.random);
    peer.schedule(delayMs, () => this.dial(peer));
  }

  private backoffPolicy() {
    return { baseMs: this.limits.redialBaseMs, maxMs: this.limits.redialMaxMs };
  }

  private async dial(peer: ConfiguredPeer): Promise<void> {
    if (this.state !== 'started') return;
    if (peer.knownPeer !== undefined && this.hasAuthenticatedConnection(peer.knownPeer)) {
      peer.failures = 0;
      return;
    }
    const node = this.node!;
    this.counterValues.dials++;
    try {
      const connection = await node.dial(peer.addr, {
        signal: AbortSignal.timeout(this.limits.dialTimeoutMs),
      });
      const tracked = this.connections.get(connection.id);
      if (tracked === undefined) throw new NetError('UNAVAILABLE', 'connection closed before it was tracked');
      await tracked.authenticated;
      const remote = connection.remotePeer.toString();
      if (peer.pinned !== undefined && remote !== peer.pinned) {
        connection.abort(new NetError('UNAUTHENTICATED', 'unexpected peer id'));
        throw new NetError('UNAUTHENTICATED', `${peer.addr} answered as ${remote}, pinned ${peer.pinned}`);
      }
      if (remote === this.peerId) {
        connection.abort(new NetError('UNAVAILABLE', 'dialed self'));
        throw new NetError('UNAVAILABLE', `${peer.addr} is this node`);
      }
      peer.knownPeer = remote;
      peer.failures = 0;
      // If the connection lost the tie-break or dropped meanwhile, the close handler redials.
      if (!this.hasAuthenticatedConnection(remote)) this.dialSoon(peer, 1);
    } catch (err) {
      if (this.state !== 'started') return;
      peer.failures++;
      this.counterValues.dialFailures++;
      const delayMs = backoffDelayMs(peer.failures, this.backoffPolicy(), this.random);
      this.logger.info('dial_failed', {
        addr: peer.addr.toString(),
        failures: peer.failures,
        retryInMs: delayMs,
        error: describeError(err),
      });
      peer.schedule(delayMs, () => this.dial(peer));
    }
  }

  private hasAuthenticatedConnection(peer: string): boolean {
    const session = this.sessions.get(peer);
    return session !== undefined && session.connections.size > 0;
  }

  /** Used by sessions: a new stream for `protocol` on the session's best connection. */
  async openStream(
    session: PeerSession,
    protocol: string,
  ): Promise<{ stream: Stream; connection: Connection }> {
    const connection = session.bestConnection();
    if (connection === undefined) throw new NetError('UNAVAILABLE', `no connection to ${session.peer}`);
    const stream = await connection.newStream(protocol, {
      signal: AbortSignal.timeout(this.limits.dialTimeoutMs),
    });
    return { stream, connection };
  }

  /** Used by sessions. */
  get running(): boolean {
    return this.state === 'started';
  }

  /** Used by sessions. */
  get meshLimits(): MeshLimits {
    return this.limits;
  }

  /** Used by sessions. */
  get meshLogger(): Logger {
    return this.logger;
  }

  /** Used by sessions. */
  get meshCounters(): MeshCounters {
    return this.counterValues;
  }

  /** Used by sessions. */
  get meshHandlers(): MeshHandlers {
    return this.init.handlers;
  }

  /** Used by sessions. */
  get meshRandom(): () => number {
    return this.random;
  }
}

/** One configured peer address and its dialing state. */
class ConfiguredPeer {
  knownPeer: string | undefined;
  failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly addr: Multiaddr,
    readonly pinned: string | undefined,
  ) {
    this.knownPeer = pinned;
  }

  /** Runs `attempt` after `delayMs`, replacing any attempt already scheduled. */
  schedule(delayMs: number, attempt: () => Promise<void>): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      attempt().catch(() => {});
    }, delayMs);
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Everything the mesh keeps for one authenticated peer. */
class PeerSession {
  readonly peer: string;
  readonly connections = new Set<TrackedConnection>();
  readonly raft: RaftLink;
  readonly rpc: RpcEndpoint;
  private raftChannel: FramedChannel | undefined;
  private raftConnection: Connection | undefined;
  private rpcChannel: FramedChannel | undefined;
  private readonly opening = new Set<'raft' | 'rpc'>();
  private readonly reopenTimers = new Map<'raft' | 'rpc', NodeJS.Timeout>();
  private readonly openFailures = new Map<'raft' | 'rpc', number>();
  private closed = false;
  private up = false;

  constructor(
    private readonly mesh: Mesh,
    peer: string,
  ) {
    this.peer = peer;
    this.raft = new RaftLink({
      peer,
      limits: mesh.meshLimits,
      logger: mesh.meshLogger,
      counters: mesh.meshCounters,
    });
    this.rpc = new RpcEndpoint({
      peer,
      limits: mesh.meshLimits,
      logger: mesh.meshLogger,
      counters: mesh.meshCounters,
      handler: mesh.meshHandlers.request,
    });
  }

  /**
   * The connection to use: the one carrying the current raft stream (so the tie-break never
   * closes a working link), else one dialed by the smaller peer id, the newest among equals.
   */
  bestConnection(): Connection | undefined {
    const carrier = this.raftConnection;
    if (carrier !== undefined && carrier.status === 'open') {
      for (const tracked of this.connections) if (tracked.connection === carrier) return carrier;
    }
    const smallerDialed = this.mesh.opensStreamsTo(this.peer) ? 'outbound' : 'inbound';
    let best: TrackedConnection | undefined;
    for (const tracked of this.connections) {
      if (tracked.connection.status !== 'open') continue;
      if (best === undefined) {
        best = tracked;
        continue;
      }
      const trackedPreferred = tracked.connection.direction === smallerDialed;
      const bestPreferred = best.connection.direction === smallerDialed;
      if (trackedPreferred !== bestPreferred) {
        if (trackedPreferred) best = tracked;
      } else if (tracked.authenticatedAt > best.authenticatedAt) {
        best = tracked;
      }
    }
    return best?.connection;
  }

  /** Opener side: opens whichever of the raft and rpc streams is missing. */
  ensureStreams(): void {
    for (const kind of ['raft', 'rpc'] as const) {
      const channel = kind === 'raft' ? this.raftChannel : this.rpcChannel;
      if (channel?.open === true || this.opening.has(kind) || this.reopenTimers.has(kind)) continue;
      this.open(kind);
    }
  }

  private open(kind: 'raft' | 'rpc'): void {
    if (this.closed || !this.mesh.running) return;
    this.opening.add(kind);
    const protocol = kind === 'raft' ? PROTOCOLS.raft : PROTOCOLS.rpc;
    this.mesh
      .openStream(this, protocol)
      .then(({ stream, connection }) => {
        this.opening.delete(kind);
        if (this.closed) {
          stream.abort(new NetError('STOPPED', 'session closed'));
          return;
        }
        this.openFailures.set(kind, 0);
        this.mesh.adoptStream(kind, stream, this, connection);
      })
      .catch((err: unknown) => {
        this.opening.delete(kind);
        this.mesh.meshLogger.info('stream_open_failed', {
          peer: this.peer,
          protocol: kind,
          error: describeError(err),
        });
        this.scheduleReopen(kind);
      });
  }

  private scheduleReopen(kind: 'raft' | 'rpc'): void {
    if (this.closed || !this.mesh.running || this.connections.size === 0) return;
    const failures = (this.openFailures.get(kind) ?? 0) + 1;
    this.openFailures.set(kind, failures);
    const limits = this.mesh.meshLimits;
    const delayMs = backoffDelayMs(
      failures,
      { baseMs: limits.redialBaseMs, maxMs: limits.redialMaxMs },
      this.mesh.meshRandom,
    );
    const timer = setTimeout(() => {
      this.reopenTimers.delete(kind);
      this.ensureStreams();
    }, delayMs);
    this.reopenTimers.set(kind, timer);
  }

  /** Makes `channel` the current stream of its kind; an older one is closed. */
  attach(kind: 'raft' | 'rpc', channel: FramedChannel, connection: Connection): void {
    if (this.closed) {
      channel.abort('session closed');
      return;
    }
    const previous = kind === 'raft' ? this.raftChannel : this.rpcChannel;
    if (kind === 'raft') {
      this.raftChannel = channel;
      this.raftConnection = connection;
      this.raft.attach(channel);
    } else {
      this.rpcChannel = channel;
      this.rpc.attach(channel);
    }
    if (previous !== undefined && previous !== channel) previous.abort(`replaced by a newer ${kind} stream`);
    if (kind === 'raft' && !this.up) {
      this.up = true;
      this.mesh.meshLogger.info('peer_up', { peer: this.peer });
      callSafely(this.mesh.meshLogger, 'peerUp', () => this.mesh.meshHandlers.peerUp?.(this.peer));
    }
  }

  onChannelClosed(kind: 'raft' | 'rpc', channel: FramedChannel, reason: string): void {
    if (kind === 'raft') {
      this.raft.detach(channel);
      if (this.raftChannel !== channel) return;
      this.raftChannel = undefined;
      this.raftConnection = undefined;
      if (this.up) {
        this.up = false;
        this.mesh.meshLogger.info('peer_down', { peer: this.peer, reason });
        callSafely(this.mesh.meshLogger, 'peerDown', () =>
          this.mesh.meshHandlers.peerDown?.(this.peer, reason),
        );
      }
    } else {
      this.rpc.detach(channel, reason);
      if (this.rpcChannel !== channel) return;
      this.rpcChannel = undefined;
    }
    if (!this.closed && this.mesh.opensStreamsTo(this.peer) && this.connections.size > 0)
      this.scheduleReopen(kind);
  }

  shutdown(reason: string): void {
    if (this.closed) return;
    for (const timer of this.reopenTimers.values()) clearTimeout(timer);
    this.reopenTimers.clear();
    this.closed = true;
    this.raftChannel?.abort(reason);
    this.rpcChannel?.abort(reason);
    this.rpc.shutdown(reason);
  }

  status(): PeerStatus {
    return {
      peer: this.peer,
      connections: this.connections.size,
      raftStream: this.raftChannel?.open === true,
      rpcStream: this.rpcChannel?.open === true,
      queuedRaftBytes: this.raft.queuedBytesMax,
    };
  }
}

function callSafely(logger: Logger, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error('handler_failed', { handler: what, error: describeError(err) });
  }
}

/** Parses a TCP multiaddr (ip4/ip6/dns + tcp, optionally /p2p/<id>); throws NetConfigError naming `setting`. */
function parseTcpAddress(setting: string, address: string): { addr: Multiaddr; pinned: string | undefined } {
  let addr: Multiaddr;
  try {
    addr = multiaddr(address);
  } catch (err) {
    throw new NetConfigError(
      setting,
      `has an invalid multiaddr ${JSON.stringify(address)}: ${describeError(err)}`,
    );
  }
  const components = addr.getComponents();
  const [host, port, p2p, ...rest] = components;
  const hostOk = host !== undefined && ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(host.name);
  if (!hostOk || port?.name !== 'tcp' || rest.length > 0 || (p2p !== undefined && p2p.name !== 'p2p')) {
    throw new NetConfigError(setting, `needs /ip4|ip6|dns/<host>/tcp/<port>[/p2p/<peer id>], got ${address}`);
  }
  let pinned: string | undefined;
  if (p2p !== undefined) {
    try {
      pinned = peerIdFromString(p2p.value ?? '').toString();
    } catch (err) {
      throw new NetConfigError(setting, `pins an invalid peer id in ${address}: ${describeError(err)}`);
    }
    if (setting === 'listen') throw new NetConfigError(setting, `must not pin a peer id: ${address}`);
  }
  return { addr, pinned };
}

function newCounters(): MeshCounters {
  return {
    framesReceived: 0,
    framesSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    framesRejected: 0,
    raftMessagesSent: 0,
    raftFramesSent: 0,
    raftMessagesDropped: 0,
    raftMessagesReceived: 0,
    raftFramesReceived: 0,
    requestsSent: 0,
    requestsReceived: 0,
    requestTimeouts: 0,
    lateResponses: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsFailed: 0,
    snapshotBytesSent: 0,
    snapshotBytesReceived: 0,
    strangersRejected: 0,
    hellosInterrupted: 0,
    streamsRefused: 0,
    connectionsDenied: 0,
    peersDenied: 0,
    connectionsAuthenticated: 0,
    duplicateConnectionsClosed: 0,
    dials: 0,
    dialFailures: 0,
  };
}
