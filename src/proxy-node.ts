// A stateless proxy node: no raft, no storage; serves the whole client API by forwarding to members over the mesh.

import {
  type Edge,
  ephemeralNodeKey,
  type Logger,
  loadOrCreateNodeKey,
  Mesh,
  readClusterSecretFile,
  withFields,
} from '../net/index.js';
import { STORAGE_DEFAULTS } from '../storage/index.js';
import { clientEdge } from './client-edge.js';
import type { NodeConfig } from './config.js';
import { collectDashboard } from './dashboard.js';
import { nodePanel } from './dashboard-panel.js';
import { meshRequestBytes } from './forwarding.js';
import { NodeMetrics } from './metrics.js';
import { decodePeerRequest, encodePeerMessage } from './peer-protocol.js';
import { ProxyGate } from './proxy-gate.js';
import { ProxyKv } from './proxy-kv.js';
import { ProxyMembers } from './proxy-members.js';
import { ProxyWatches } from './proxy-watches.js';
import { DriverError } from './raft-driver.js';
import { ServiceStack } from './service.js';

/**
 * A node started with `api` and without `raft`. It proves the cluster secret on the mesh like
 * a member but is never one: members identify it as a proxy, record nothing of it and send it
 * no raft traffic. It writes nothing but its node key, and not even that without --data-dir.
 * Lifecycle as ConclaveNode: start(config) … stop().
 */
export class ProxyNode {
  private stopping = false;
  /** Between a stop's start and its refusals: /readyz says not ready, requests are still served. */
  private draining = false;
  private drainListener: (() => void) | undefined;

  private constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
    private readonly services: ServiceStack,
    private readonly edge: Edge,
    private readonly watches: ProxyWatches,
    /** The client API as this proxy serves it. */
    readonly kv: ProxyKv,
  ) {}

  static async start(config: NodeConfig, logger: Logger): Promise<ProxyNode> {
    const log = withFields(logger, { node: config.name, proxy: true });
    if (config.clusterSecretFile === undefined) {
      throw new DriverError('UNAVAILABLE', 'a proxy needs --cluster-secret-file to reach the members');
    }
    const secret = await readClusterSecretFile(config.clusterSecretFile);
    const key = config.ephemeralKey ? await ephemeralNodeKey() : await loadOrCreateNodeKey(config.dataDir);
    const self: { node?: ProxyNode } = {};
    const refuseIfStopping = () => {
      if (self.node?.stopping) throw new DriverError('UNAVAILABLE', 'the proxy is stopping', '', false);
    };
    let members: ProxyMembers | undefined;
    const mesh = new Mesh({
      privateKey: key.privateKey,
      listen: config.peerListen === '' ? [] : [config.peerListen],
      peers: [...new Set([...config.initialCluster.map((m) => m.address), ...config.join])],
      secret,
      logger: log,
      limits: { maxRequestBytes: meshRequestBytes(config.maxRequestBytes) },
      handlers: {
        // A proxy holds no replica: raft traffic to it is a mistake, and dropped.
        raft: () => undefined,
        request: async (_from, payload) => {
          const request = decodePeerRequest(payload);
          if (request.type === 'identify') {
            return encodePeerMessage({ name: config.name, commitIndex: 0, proxy: true });
          }
          // Not a member, so never removed: it answers that it does not take the notice.
          if (request.type === 'removed') return encodePeerMessage({ accepted: false });
          throw Object.assign(new Error('a proxy carries out no work for peers'), {
            code: 'INVALID_ARGUMENT',
          });
        },
        peerUp: (peer) => void members?.identify(peer),
      },
    });
    members = new ProxyMembers({ mesh, logger: log, refreshMs: 2000 });
    const kv = new ProxyKv({
      name: config.name,
      peerId: key.peerId,
      members,
      requestTimeoutMs: config.requestTimeoutMs,
      refuseIfStopping,
      notReadyReason: () => {
        if (self.node?.draining) return 'draining: this proxy is about to stop; send requests elsewhere';
        return self.node?.stopping ? 'stopping' : undefined;
      },
    });
    // A placed realm's polls go to a member of its group (the others refuse a proxy's call for it).
    const watches = new ProxyWatches(
      {
        pick: (deadline, avoid, realm) => members.pickFor(realm, false, deadline, avoid),
        send: (peer, name, request, options) => members.send(peer, name, request, options),
        moveOff: (peer) => members.moveOff(peer),
      },
      log,
      { requestTimeoutMs: config.requestTimeoutMs },
    );
    // The members check every write again; these refuse what they would refuse before it travels.
    const limits = { ...STORAGE_DEFAULTS, commandMaxBytes: Math.max(config.maxRequestBytes * 2, 64 * 1024) };
    const gate = new ProxyGate((token, require) => kv.principal(token, require));
    let edgeOf: (() => Edge) | undefined;
    const metrics = new NodeMetrics(
      {
        edge: () => edgeOf?.().counters(),
        httpInFlight: () => edgeOf?.().requestsInFlight,
        mesh: () => ({ counters: mesh.counters(), peers: mesh.peers() }),
      },
      config.name,
    );
    const cluster = members;
    // The proxy's own panel (its requests, its connections) first, then every member's.
    const dashboard = (since: number) =>
      collectDashboard(
        {
          self: (after) => nodePanel({ status: () => kv.status(), metrics }, after),
          others: () =>
            kv.status().members.map((member) => ({ name: member.name, peer: cluster.peerOf(member.name) })),
          ask: (peer, name, after, timeoutMs) =>
            cluster.send<unknown>(
              peer,
              name,
              { type: 'panel', since: after },
              { timeoutMs, mayApply: false },
            ),
          timeoutMs: Math.min(1000, config.requestTimeoutMs),
        },
        since,
      );
    const drain = () => {
      const listener = self.node?.drainListener;
      if (listener === undefined) return false;
      setImmediate(listener);
      return true;
    };
    const edge = clientEdge(config, {
      kv,
      gate,
      admin: kv,
      watches,
      limits,
      logger: log,
      metrics,
      dashboard,
      drain,
    });
    edgeOf = () => edge;
    const services = new ServiceStack(
      [
        { name: 'mesh', start: () => mesh.start(), stop: () => mesh.stop() },
        {
          name: 'members',
          start: async () => cluster.start(),
          stop: async () => cluster.stop(),
        },
        { name: 'client edge', start: () => edge.start(), stop: () => edge.stop() },
      ],
      (service, error) => log.warn('node.stop_failed', { service: service.name, error: String(error) }),
    );
    const node = new ProxyNode(config, log, services, edge, watches, kv);
    self.node = node;
    await services.start();
    return node;
  }

  get clientPort(): number | undefined {
    return this.edge.port;
  }

  get uwsNative(): boolean | undefined {
    return this.edge.runtime.native;
  }

  /** A proxy has no storage or raft group that could fail; listeners are never called. */
  onFatal(_listener: (error: Error) => void): void {}

  /** What runs when a client asks this proxy to drain (POST /v1/drain): the process's shutdown. */
  onDrainRequested(listener: () => void): void {
    this.drainListener = listener;
  }

  /**
   * With --drain-delay: not ready first while still serving (load balancers stop sending), then
   * new requests are refused, watches end (clients resume them elsewhere) and the edge closes.
   */
  async stop(): Promise<void> {
    if (this.stopping || this.draining) return;
    if (this.config.drainDelayMs > 0) {
      this.draining = true;
      this.logger.info('node.draining', { delayMs: this.config.drainDelayMs });
      await new Promise((resolve) => setTimeout(resolve, this.config.drainDelayMs));
    }
    this.stopping = true;
    this.logger.info('node.stopping', {});
    // Watches end with UNAVAILABLE (resume elsewhere) before the edge closes their sockets.
    this.watches.stop();
    await this.services.stop();
    this.logger.info('node.stopped', {});
  }
}
