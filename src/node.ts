// A Conclave member node: wires its parts (mesh, raft groups, client edge) and routes what peers send it.

import { join } from 'node:path';
import {
  type Edge,
  type IncomingSnapshot,
  type Logger,
  loadOrCreateNodeKey,
  Mesh,
  withFields,
} from '../net/index.js';
import { type Message, MessageType, Role } from '../raft/index.js';

/** Raft messages only a leader sends: hearing one means a leader is in touch. */
const LEADER_TRAFFIC: ReadonlySet<MessageType> = new Set([
  MessageType.Append,
  MessageType.Heartbeat,
  MessageType.Snapshot,
]);

import {
  currentMembers,
  type GroupStorage,
  groupMembers,
  groupOfRealm,
  NodeStorage,
  type Operation,
} from '../storage/index.js';
import { MemberAdmin } from './admin.js';
import { accessViewOf, StateGate } from './auth.js';
import { BackupScheduler } from './backup-scheduler.js';
import { bootstrapIdentity } from './bootstrap.js';
import { makeAdminToken } from './bootstrap-admin.js';
import { clientEdge } from './client-edge.js';
import type { ClusterBackupSource } from './cluster-backup.js';
import { type NodeConfig, nodeRequiresAuth } from './config.js';
import { collectDashboard, type DashboardView } from './dashboard.js';
import { type NodePanel, nodePanel } from './dashboard-panel.js';
import {
  answerOf,
  errorOf,
  type ForwardOptions,
  forward,
  forwardForValue,
  LeaderForwarder,
  meshRequestBytes,
  type PeerAnswer,
} from './forwarding.js';
import { GroupBackupFetcher } from './group-backup-fetch.js';
import { GroupHost } from './group-host.js';
import { GroupMembershipKeeper } from './group-members.js';
import {
  type GroupsView,
  type LocalGroupStatus,
  localGroupStatuses,
  mergeGroupViews,
  type NodeReport,
} from './groups-view.js';
import { identifyPeer } from './identify.js';
import { JoinRequester } from './join-request.js';
import { LeaderBalancer } from './leader-balancer.js';
import { MemberKv } from './member-kv.js';
import { NodeMetrics } from './metrics.js';
import { PeerDirectory } from './peer-directory.js';
import {
  type ClientCall,
  decodePeerRequest,
  encodePeerMessage,
  type JoinAnswer,
  NODE_FEATURES,
  type PeerRequest,
} from './peer-protocol.js';
import { ProxyPeers } from './proxy-serving.js';
import { ProxyWatches, type WatchMembers } from './proxy-watches.js';
import { DriverError } from './raft-driver.js';
import { type GroupTransport, RaftGroup, type RaftGroupInit } from './raft-group.js';
import { RemovalTracker } from './removal-tracker.js';
import type { SeenMembers } from './seen-members.js';
import { type Service, ServiceStack } from './service.js';
import { SpareKeeper } from './spare-keeper.js';
import { TickClock } from './tick-clock.js';
import { type Watches, wsError } from './watch-hub.js';

/** How many peers of other clusters a node remembers refusing. */
const MAX_FOREIGN_PEERS = 256;

/** The hooks a node gives group 1 (membership, address book, the catalog of other groups). */
type GroupHooks = Pick<RaftGroupInit, 'onMembershipApplied' | 'onSnapshotApplied' | 'onApplied'>;

/** How long `groups list` waits for each member's report. */
const GROUPS_ASK_TIMEOUT_MS = 2000;

/** The features a peer's identify answer names (none from an older build, or a malformed list). */
function featuresOf(answer: { readonly features?: unknown }): string[] {
  return Array.isArray(answer.features)
    ? answer.features.filter((f): f is string => typeof f === 'string')
    : [];
}

/**
 * What this node says it can do. For tests of version skew, CONCLAVE_FAULT_FEATURES makes it
 * answer as an older build: `none`, or the comma-separated features that build had.
 */
const ADVERTISED_FEATURES: readonly string[] = ((fault) =>
  fault === undefined ? NODE_FEATURES : fault === 'none' ? [] : fault.split(','))(
  process.env.CONCLAVE_FAULT_FEATURES,
);

/** The election timeout in ticks of the heartbeat interval, as raft-group.ts rounds it. */
function electionTicksOf(config: NodeConfig): number {
  return Math.max(3, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs));
}

/** How often (in ticks) the node looks for quiesced groups whose leader is not connected. */
const ORPHAN_CHECK_TICKS = 5;

/** The raft group every realm lives in today; frames and keys already carry it. */
const GROUP = 1;

/** The parts a member is made of; built by ConclaveNode.start. */
interface MemberParts {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly storage: NodeStorage;
  /** The node's raft groups by id: GROUP, which every realm lives in today, and those the GroupHost runs. */
  readonly groups: Map<number, RaftGroup>;
  readonly mesh: Mesh | undefined;
  readonly peers: PeerDirectory;
  readonly clusterId: string;
  readonly seen: SeenMembers;
}

/**
 * One member. Lifecycle: ConclaveNode.start(config) opens everything and begins serving;
 * stop() hands leadership over (when it leads a multi-voter cluster), stops taking requests,
 * fails those in flight with a retryable code, and closes storage last.
 *
 * Parts: bootstrap (bootstrap.ts: key, cluster id, founding check, join), the raft group
 * (raft-group.ts), forwarding to the leader (forwarding.ts), the client API (member-kv.ts),
 * admin (admin.ts), removal (removal-tracker.ts), what proxies ask (proxy-serving.ts); the mesh,
 * the group and the client edge start in that order through a ServiceStack and stop in reverse.
 */
export class ConclaveNode {
  readonly config: NodeConfig;
  /** The client API and admin operations as this member serves them. */
  readonly kv: MemberKv;
  readonly admin: MemberAdmin;
  private readonly logger: Logger;
  private readonly parts: MemberParts;
  private readonly removal: RemovalTracker;
  private readonly proxies: ProxyPeers;
  /** Who a client's token belongs to, from this node's replica of the definition. */
  readonly gate: StateGate;
  private services = new ServiceStack([], () => undefined);
  private edge: Edge | undefined;
  private joinRequester: JoinRequester | undefined;
  /** Backups of groups this node does not run, from their members (undefined without a mesh). */
  private readonly backupFetcher: GroupBackupFetcher | undefined;
  /** Runs the raft groups besides group 1 (group 1's catalog names them). */
  private groupHost: GroupHost | undefined;
  /** Watches carried from the members of groups this node does not run, by group id. */
  private readonly groupWatches = new Map<number, ProxyWatches>();
  /** Watches from the hub of the group holding the realm (UNAVAILABLE for a group not run here). */
  private readonly realmWatches: Watches = {
    subscribe: (realm, prefix, fromRevision, sink) => {
      const id = groupOfRealm(this.main.storage.state.groups, realm);
      const group = this.parts.groups.get(id);
      if (group === undefined && this.parts.mesh !== undefined) {
        // Carried from a member that runs the group, as a proxy carries watches (long polls).
        return this.remoteWatches(id).subscribe(realm, prefix, fromRevision, sink);
      }
      if (group === undefined) {
        const members = groupMembers(this.main.storage.state.groups, id);
        return Promise.resolve({
          ok: false,
          error: wsError(
            'UNAVAILABLE',
            `realm ${realm} lives in raft group ${id}, which this node does not run; watch it on one of its members (${members.join(', ')})`,
            true,
          ),
        });
      }
      return group.hub.subscribe(realm, prefix, fromRevision, sink);
    },
  };
  private spareKeeper: SpareKeeper | undefined;
  /** Stops the periodic check for quiesced groups without a leader (wakeOrphanedGroups). */
  private stopOrphanCheck: (() => void) | undefined;
  /** Brings the raft membership of the groups this node leads to the catalog's (group-members.ts). */
  private groupMembership: GroupMembershipKeeper | undefined;
  private stopping = false;
  /** Between a stop's start and its refusals: /readyz says not ready, requests are still served. */
  private draining = false;
  private drainListener: (() => void) | undefined;

  /** What runs when a client asks this node to drain (POST /v1/drain): the process's shutdown. */
  onDrainRequested(listener: () => void): void {
    this.drainListener = listener;
  }
  /** When the leader last heard from each member (ms since epoch), by name. */
  private readonly lastContact = new Map<string, number>();
  /** When a leader last sent this node an Append, heartbeat or snapshot (ms since epoch). */
  private leaderHeardAt: number | undefined;
  /** Mesh addresses dialed because the replicated address book lists them. */
  private readonly dialedAddresses = new Set<string>();
  private readonly identifying = new Set<string>();
  /**
   * Peers that hold the secret but said they belong to another cluster (an old member of the
   * cluster a DR replica or a forced recovery left behind, or a new one it started): never
   * bound to a name, so nothing they send is processed. Bounded; the oldest is forgotten first.
   */
  private readonly foreignPeers = new Map<string, { name: string; clusterId: string }>();
  private readonly fatalListeners = new Set<(error: Error) => void>();

  private constructor(parts: MemberParts) {
    this.parts = parts;
    this.config = parts.config;
    this.logger = parts.logger;
    const { config, mesh, peers } = parts;
    const main = this.main;
    const refuseIfStopping = () => this.refuseIfStopping();
    this.backupFetcher =
      mesh === undefined
        ? undefined
        : new GroupBackupFetcher({
            name: config.name,
            mesh,
            peers,
            groups: parts.groups,
            membersOf: (id) => groupMembers(main.storage.state.groups, id),
            logger: this.logger,
          });
    const forwarder = new LeaderForwarder({
      name: config.name,
      waitForLeader: (timeoutMs) => main.driver.waitForLeader(timeoutMs),
      mesh,
      peerOf: (name) => peers.peerOf(name),
      requestTimeoutMs: config.requestTimeoutMs,
    });
    this.removal = new RemovalTracker({
      name: config.name,
      clusterId: parts.clusterId,
      dataDir: config.dataDir,
      mesh,
      logger: this.logger,
      raftStatus: () => main.driver.status(),
      stopping: () => this.stopping,
      replaced: (name) => (main.storage.state.meta.replaced ?? []).some((r) => r.name === name),
      onRemoved: (error) => this.fatal(error),
    });
    const forwarders = new Map<number, LeaderForwarder>([[GROUP, forwarder]]);
    this.kv = new MemberKv({
      name: config.name,
      group: main,
      forwarder,
      groupOfRealm: (realm) => groupOfRealm(main.storage.state.groups, realm),
      groupById: (id) => parts.groups.get(id),
      forwarderFor: (id) => {
        let known = forwarders.get(id);
        if (known === undefined) {
          known = new LeaderForwarder({
            name: config.name,
            waitForLeader: (timeoutMs) => {
              const group = parts.groups.get(id);
              if (group === undefined)
                return Promise.reject(new DriverError('UNAVAILABLE', `raft group ${id} does not run here`));
              return group.driver.waitForLeader(timeoutMs);
            },
            mesh,
            peerOf: (name) => peers.peerOf(name),
            requestTimeoutMs: config.requestTimeoutMs,
          });
          forwarders.set(id, known);
        }
        return known;
      },
      placedRealms: () => Object.keys(main.storage.state.groups.placements ?? {}),
      membersOf: (id) => groupMembers(main.storage.state.groups, id),
      carryRead: (id, call) => this.carryToGroup(id, call, false),
      remoteLeader: async (id) => (await this.groupLeaderReport(id))?.leader ?? '',
      remote: (id, call, mayApply) => this.carryToGroup(id, call, mayApply),
      requireFeature: (feature) => this.requireFeature(feature),
      requestTimeoutMs: config.requestTimeoutMs,
      refuseIfStopping,
      notReadyReason: () => {
        const removed = this.removal.removed;
        if (removed !== undefined)
          return `removed from the cluster (membership entry ${removed.membershipIndex})`;
        if (this.draining) return 'draining: this node is about to stop; send requests elsewhere';
        return this.stopping ? 'stopping' : undefined;
      },
      leaderSilenceMs: () => {
        if (main.driver.status().role === Role.Leader) return 0;
        return this.leaderHeardAt === undefined ? undefined : Date.now() - this.leaderHeardAt;
      },
      cutOffAfterMs: config.electionTimeoutMs,
      onFaultInjected: (key) => {
        this.logger.warn('node.fault_injected', { fault: 'kill-before-answer', key });
        process.kill(process.pid, 'SIGKILL');
      },
    });
    this.admin = new MemberAdmin({
      name: config.name,
      group: main,
      backupSource: this.backupSource(),
      forwarder,
      hasMesh: mesh !== undefined,
      selfPeerId: mesh?.peerId ?? '',
      peerOf: (name) => peers.peerOf(name),
      lastContact: this.lastContact,
      initialCluster: config.initialCluster,
      requestTimeoutMs: config.requestTimeoutMs,
      electionTimeoutMs: config.electionTimeoutMs,
      refuseIfStopping,
      logger: this.logger,
    });
    this.gate = new StateGate(() => accessViewOf(main.storage.state), nodeRequiresAuth(config));
    this.proxies = new ProxyPeers({
      name: config.name,
      // Calls other nodes carry here are run here or refused, never carried on (one hop).
      kv: this.kv.withoutRemote(),
      gate: this.gate,
      watches: this.realmWatches,
      addresses: () => main.storage.state.meta.addresses ?? {},
      groupRoutes: () => {
        const catalog = main.storage.state.groups;
        if (catalog.groups.length === 0) return undefined;
        const leaders: Record<string, string> = {};
        for (const [id, group] of parts.groups) {
          const leader = group.driver.status().leader;
          if (id !== GROUP && leader !== '') leaders[String(id)] = leader;
        }
        return {
          placements: catalog.placements ?? {},
          members: Object.fromEntries(catalog.groups.map((g) => [String(g.id), currentMembers(g)])),
          leaders,
        };
      },
      raftStatus: () => main.driver.status(),
      logger: this.logger,
    });
    main.driver.onFailure((error) => this.fatal(error));
  }

  /** The group every realm lives in. */
  private get main(): RaftGroup {
    return this.parts.groups.get(GROUP)!;
  }

  static async start(config: NodeConfig, logger: Logger): Promise<ConclaveNode> {
    const log = withFields(logger, { node: config.name });
    const { secret, clusterId, seen, joining } = await bootstrapIdentity(config, log);
    const storage = await NodeStorage.open({
      dataDir: config.dataDir,
      clusterId,
      storageEngine: config.storageEngine,
      rocksdbSyncedWrites: config.rocksdbSyncedWrites,
      commandMaxBytes: Math.max(config.maxRequestBytes * 2, 64 * 1024),
    });
    try {
      const groupIds = await storage.groupIds();
      const groupStorage = groupIds.includes(GROUP)
        ? await storage.openGroup(GROUP)
        : joining
          ? await storage.createGroup(GROUP)
          : await storage.bootstrapGroup(
              GROUP,
              { voters: config.initialCluster.map((m) => m.name), learners: [] },
              Object.fromEntries(config.initialCluster.map((m) => [m.name, m.address])),
            );
      const self: { node?: ConclaveNode } = {};
      const peers = new PeerDirectory(log);
      let mesh: Mesh | undefined;
      const transport: GroupTransport = {
        sendRaft: (to, groupId, messages) => {
          const peer = peers.peerOf(to);
          return mesh !== undefined && peer !== undefined && mesh.sendRaft(peer, groupId, messages);
        },
        sendSnapshot: async (to, groupId, header, source) => {
          const peer = peers.peerOf(to);
          if (mesh === undefined || peer === undefined) throw new Error(`no connection to ${to}`);
          await mesh.sendSnapshot(peer, { groupId, header, source });
        },
      };
      // One timer for every group of this node: they tick, and flush to each peer, together.
      const clock = new TickClock(config.heartbeatIntervalMs, (error) =>
        log.error('raft.tick_failed', { error: String(error) }),
      );
      const makeGroup = (id: number, storage: GroupStorage, hooks: GroupHooks = {}): RaftGroup =>
        new RaftGroup({
          id,
          name: config.name,
          storage,
          logger: id === GROUP ? log : withFields(log, { group: id }),
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          clock,
          electionTimeoutMs: config.electionTimeoutMs,
          snapshotEntries: config.snapshotEntries,
          logRetainEntries: config.logRetainEntries,
          // Groups besides group 1 quiesce after an election timeout of idleness; group 1 never
          // does: its heartbeats keep the members' view of each other (removal, spares) alive.
          ...(id === GROUP ? {} : { quiesceAfterTicks: electionTicksOf(config) }),
          ...hooks,
          transport,
        });
      const raftGroup = makeGroup(GROUP, groupStorage, {
        onMembershipApplied: () => self.node?.onMembershipApplied(),
        onSnapshotApplied: () => self.node?.dialMembers(),
        onApplied: () => self.node?.groupHost?.reconcile(),
      });
      // A lone node with a cluster secret runs the mesh too, so that nodes can join it later.
      if (config.initialCluster.length > 1 || joining || secret !== undefined) {
        if (secret === undefined)
          throw new DriverError('UNAVAILABLE', 'a cluster needs --cluster-secret-file');
        const key = await loadOrCreateNodeKey(config.dataDir);
        mesh = new Mesh({
          privateKey: key.privateKey,
          listen: config.peerListen === '' ? [] : [config.peerListen],
          peers: [
            ...new Set([
              ...config.initialCluster.filter((m) => m.name !== config.name).map((m) => m.address),
              ...config.join,
            ]),
          ],
          secret,
          logger: log,
          limits: { maxRequestBytes: meshRequestBytes(config.maxRequestBytes) },
          handlers: {
            raft: (from, batch) => self.node?.receiveRaft(from, batch.groupId, batch.messages),
            request: (from, payload, context) => self.node!.servePeer(from, payload, context.signal),
            peerUp: (peer) => void self.node?.identify(peer),
            peerDown: (peer) => self.node?.wakeOrphanedGroups(peer),
            snapshot: (incoming) => self.node!.receiveSnapshot(incoming),
          },
        });
      }
      const node = new ConclaveNode({
        config,
        logger: log,
        storage,
        groups: new Map([[GROUP, raftGroup]]),
        mesh,
        peers,
        clusterId,
        seen,
      });
      self.node = node;
      node.groupHost = new GroupHost({
        name: config.name,
        storage,
        catalog: () => raftGroup.storage.state.groups,
        addresses: () => raftGroup.storage.state.meta.addresses ?? {},
        makeGroup: (id, groupStorage) => {
          const group = makeGroup(id, groupStorage);
          // As for group 1: a group whose storage refused a write is in an unknown state; the
          // process exits (75) for its supervisor, rather than keep a group that never applies.
          group.driver.onFailure((error) => self.node?.fatal(error));
          return group;
        },
        groups: node.parts.groups,
        observer: () => {
          const role = raftGroup.storage.state.meta.roles?.[config.name];
          return role === 'satellite' || role === 'dr';
        },
        leaderReport: (id) => node.groupLeaderReport(id),
        logger: log,
      });
      node.groupMembership = new GroupMembershipKeeper({
        name: config.name,
        groups: node.parts.groups,
        main: () => raftGroup,
        proposeInFirstGroup: (op) => node.kv.proposeHere(op),
        requestTimeoutMs: config.requestTimeoutMs,
        logger: log,
      });
      node.joinRequester = node.buildJoinRequester();
      if (mesh !== undefined) {
        node.spareKeeper = new SpareKeeper({
          name: config.name,
          group: raftGroup,
          logger: log,
          lastContact: node.lastContact,
          promoteAfterMs: config.sparePromoteAfterMs,
          liveWithinMs: config.electionTimeoutMs,
          requestTimeoutMs: config.requestTimeoutMs,
          intervalMs: Math.min(1000, Math.floor(config.sparePromoteAfterMs / 10)),
        });
      }
      node.metrics = node.buildMetrics();
      node.edge = node.buildEdge();
      node.services = node.buildServices();
      // A failed start stops what had started (in reverse); the storage is closed below.
      await node.services.start();
      let orphanTicks = 0;
      node.stopOrphanCheck = clock.add(() => {
        if (++orphanTicks % ORPHAN_CHECK_TICKS !== 0) return;
        node.wakeOrphanedGroups();
        node.groupMembership?.round();
        void node.groupHost?.checkLeaving();
      });
      node.adminToken = node.startAdminToken();
      return node;
    } catch (error) {
      await storage.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * A founder that requires tokens makes its first cluster-admin token (bootstrap-admin.ts).
   * Resolves with the file's path once written; undefined when there is none to make.
   */
  adminToken: Promise<string | undefined> = Promise.resolve(undefined);

  /** Whether this node requires a token of its clients now (its flags, or the cluster's definition). */
  get authRequired(): boolean {
    return nodeRequiresAuth(this.parts.config) || this.main.storage.state.access.auth;
  }

  private startAdminToken(): Promise<string | undefined> {
    const { config } = this.parts;
    const founder = config.single || config.initialCluster.some((member) => member.name === config.name);
    if (!founder || !nodeRequiresAuth(config)) return Promise.resolve(undefined);
    const state = this.main.storage.state;
    return makeAdminToken(
      {
        name: config.name,
        dataDir: config.dataDir,
        kv: this.kv,
        done: () => state.access.bootstrapped.includes(config.name),
        logger: this.logger,
        retryMs: 200,
      },
      () => this.stopping,
    ).catch((error: unknown) => {
      this.logger.error('auth.admin_token_failed', { error: (error as Error).message });
      return undefined;
    });
  }

  /** With --join and --role: what asks the cluster to take this node in that role. */
  private buildJoinRequester(): JoinRequester | undefined {
    const { config, mesh, peers } = this.parts;
    if (config.role === undefined || config.join.length === 0 || mesh === undefined) return undefined;
    const state = this.main.storage.state;
    return new JoinRequester({
      name: config.name,
      role: config.role,
      address: config.peerListen,
      logger: this.logger,
      intervalMs: 1000,
      membership: () => ({ ...state.membership, roles: state.meta.roles ?? {} }),
      ask: async (request) => {
        let lastError: unknown = new DriverError('UNAVAILABLE', 'no member is connected yet');
        for (const [name, peer] of peers.bound()) {
          if (name === config.name) continue;
          try {
            return await forwardForValue<JoinAnswer>(mesh, peer, request, {
              timeoutMs: config.requestTimeoutMs * 2,
              target: name,
              mayApply: true,
            });
          } catch (error) {
            // The leader's own refusal is the answer; a member that could not help is not.
            if ((error as { code?: unknown }).code === 'CONFLICT') throw error;
            lastError = error;
          }
        }
        throw lastError;
      },
    });
  }

  /** The node's Prometheus metrics (metrics.ts), read from its parts at scrape time. */
  metrics: NodeMetrics | undefined;

  private buildMetrics(): NodeMetrics {
    const { config, storage, mesh } = this.parts;
    const group = this.main;
    const state = group.storage.state;
    const metrics = new NodeMetrics(
      {
        edge: () => this.edge?.counters(),
        httpInFlight: () => this.edge?.requestsInFlight,
        ...(mesh === undefined ? {} : { mesh: () => ({ counters: mesh.counters(), peers: mesh.peers() }) }),
        raft: {
          status: () => this.kv.status(),
          counters: () => group.driver.counters(),
          lastContactMs: (member) => {
            if (member === config.name) return 0;
            const at = this.lastContact.get(member);
            return at === undefined ? undefined : Date.now() - at;
          },
          progress: () => {
            const progress = group.driver.status().progress;
            return progress === undefined
              ? undefined
              : new Map([...progress].map(([name, p]) => [name, p.match]));
          },
          definitionVersion: () => state.access.version,
          sessions: () => state.sessionCount,
          watches: () => group.hub.subscriptions,
          groups: () => {
            let quiesced = 0;
            for (const g of this.parts.groups.values()) if (g.driver.status().quiesced) quiesced++;
            return { running: this.parts.groups.size, quiesced };
          },
          lastBackupSuccess: () => state.meta.backups?.lastSuccess?.at,
          writeQueue: () => storage.queue.stats,
          databaseDir: join(config.dataDir, 'db'),
        },
      },
      config.name,
    );
    storage.queue.observe((synced, ops, seconds) => metrics.engineWrite(synced, ops, seconds));
    return metrics;
  }

  /** This node's dashboard panel (dashboard-panel.ts), with its activity after `since` (ms). */
  panel(since: number): NodePanel {
    const metrics = this.metrics;
    if (metrics === undefined) throw new DriverError('UNAVAILABLE', 'the node is still starting');
    return nodePanel(
      {
        status: () => this.kv.status(),
        metrics,
        raft: {
          lastContactMs: (member) => metrics.sources.raft?.lastContactMs(member),
          recentLeaders: () => this.main.driver.recentLeaders(),
        },
      },
      since,
    );
  }

  /** GET /v1/dashboard: this node's panel and every other member's, asked over the mesh at once. */
  private dashboard(since: number): Promise<DashboardView> {
    const { mesh, peers, config } = this.parts;
    return collectDashboard(
      {
        self: (after) => this.panel(after),
        others: () =>
          this.kv
            .status()
            .members.filter((member) => member.name !== config.name)
            .map((member) => ({
              name: member.name,
              peer: mesh === undefined ? undefined : peers.peerOf(member.name),
            })),
        ask: (peer, name, after, timeoutMs) =>
          mesh === undefined
            ? Promise.reject(new Error('no mesh'))
            : forward<unknown>(
                mesh,
                peer,
                { type: 'panel', since: after },
                { timeoutMs, target: name, mayApply: false },
              ),
        timeoutMs: Math.min(1000, config.requestTimeoutMs),
      },
      since,
    );
  }

  /** The client edge, or undefined without the api service (no client port is opened). */
  private buildEdge(): Edge | undefined {
    const { config, storage } = this.parts;
    if (!config.services.includes('api')) return undefined;
    return clientEdge(config, {
      kv: this.kv,
      drain: () => {
        if (this.drainListener === undefined) return false;
        setImmediate(this.drainListener);
        return true;
      },
      ...(this.metrics === undefined ? {} : { metrics: this.metrics }),
      dashboard: (since) => this.dashboard(since),
      gate: this.gate,
      admin: this.admin,
      groups: { list: (detail) => this.groupsView(detail) },
      watches: this.realmWatches,
      limits: storage.config,
      logger: this.logger,
      refusal: () => {
        const { membership, meta } = this.main.storage.state;
        if (membership.voters.includes(config.name) || meta.roles?.[config.name] !== 'dr') return undefined;
        return 'this node is a disaster-recovery replica: it serves no clients (ask another node)';
      },
    });
  }

  /** Mesh, raft groups, client edge: started in this order, stopped in reverse. */
  private buildServices(): ServiceStack {
    const { mesh, config } = this.parts;
    const { edge } = this;
    const group = this.main;
    return new ServiceStack(
      [
        ...(mesh === undefined
          ? []
          : [
              {
                name: 'mesh',
                start: async () => {
                  await mesh.start();
                  this.dialMembers();
                },
                stop: () => mesh.stop(),
              },
            ]),
        {
          name: group.name,
          start: async () => {
            await group.start();
            if (config.initialCluster.length === 1) group.driver.campaign();
          },
          stop: () => group.stop(),
        },
        ...(this.groupHost === undefined ? [] : [this.groupHost]),
        ...(mesh === undefined
          ? []
          : [
              new LeaderBalancer({
                name: config.name,
                groups: this.parts.groups,
                // A few election timeouts: a transfer and its election settle before the next.
                intervalMs: Math.max(1000, 3 * config.electionTimeoutMs),
                active: () => !this.stopping && !this.draining,
                logger: this.logger,
              }),
            ]),
        ...(edge === undefined
          ? []
          : [{ name: 'client edge', start: () => edge.start(), stop: () => edge.stop() }]),
        ...(this.spareKeeper === undefined
          ? []
          : [
              {
                name: 'spare keeper',
                start: async () => this.spareKeeper?.start(),
                stop: async () => this.spareKeeper?.stop(),
              },
            ]),
        ...(config.services.includes('backup') && config.backupDir !== undefined
          ? [this.backupService(config.backupDir)]
          : []),
        ...(this.joinRequester === undefined
          ? []
          : [
              {
                name: 'join request',
                start: async () => this.joinRequester?.start(),
                stop: async () => this.joinRequester?.stop(),
              },
            ]),
      ],
      (service, error) =>
        this.logger.warn('node.stop_failed', { service: service.name, error: String(error) }),
    );
  }

  /**
   * Throws CONFLICT (reason VERSION_SKEW) unless every other member of group 1 said it has
   * `feature` since this process started: an older node would refuse the entry as an unknown
   * command, and its copy of the state would then differ from the others'.
   */
  private requireFeature(feature: string): void {
    const { membership } = this.main.storage.state;
    const lacking: string[] = [];
    for (const name of [...membership.voters, ...membership.learners]) {
      if (name === this.config.name) continue;
      const features = this.parts.peers.featuresOf(name);
      if (features === undefined) lacking.push(`${name} (not heard from since this node started)`);
      else if (!features.has(feature)) lacking.push(`${name} (an older version)`);
    }
    if (lacking.length === 0) return;
    throw Object.assign(
      new Error(
        `every member must run a version with ${feature} first; not known to: ${lacking.join(', ')}. ` +
          'Upgrade (or start) those nodes, then retry',
      ),
      { code: 'CONFLICT', reason: 'VERSION_SKEW' },
    );
  }

  /**
   * Wakes every quiesced group this node follows whose leader looks gone: its process is not
   * connected (the mesh's connection closed: a crash closes it at once, a cut link within the
   * mesh's ping interval), or no leader is known. With `peer`, only the groups led by that
   * peer's node (its connection just went down). Quiesced groups send no heartbeats, so this is
   * what lets them elect a new leader.
   */
  wakeOrphanedGroups(peer?: string): void {
    const { mesh, peers, groups } = this.parts;
    const downName = peer === undefined ? undefined : peers.nameOf(peer);
    if (peer !== undefined && downName === undefined) return;
    for (const [id, group] of groups) {
      if (id === GROUP) continue;
      const status = group.driver.status();
      if (!status.quiesced || status.role === Role.Leader) continue;
      if (downName !== undefined) {
        if (status.leader === downName) group.driver.wake();
        continue;
      }
      const leaderPeer = status.leader === '' ? undefined : peers.peerOf(status.leader);
      if (leaderPeer === undefined || mesh === undefined || !mesh.isConnected(leaderPeer))
        group.driver.wake();
    }
  }

  /** What a backup from this node covers: every raft group (cluster-backup.ts). */
  private backupSource(): ClusterBackupSource {
    const fetcher = this.backupFetcher;
    return {
      clusterId: this.parts.clusterId,
      main: this.main,
      groups: this.parts.groups,
      ...(fetcher === undefined ? {} : { fetchGroup: (id: number, dest: string) => fetcher.fetch(id, dest) }),
    };
  }

  /** The backup service (backup-scheduler.ts) on `dir`. */
  private backupService(dir: string): Service {
    const { config } = this.parts;
    const stall = Number(process.env.CONCLAVE_FAULT_BACKUP_STALL_MS ?? 0);
    if (stall > 0) this.logger.warn('node.fault_injected', { fault: 'backup-stall', ms: stall });
    const scheduler = new BackupScheduler({
      name: config.name,
      clusterId: this.parts.clusterId,
      group: this.main,
      source: this.backupSource(),
      write: (op) => this.kv.write(op),
      logger: this.logger,
      dir,
      intervalMs: config.backupIntervalMs,
      keep: config.backupKeep,
      ...(stall > 0 ? { stallMs: stall } : {}),
    });
    return { name: 'backup', start: () => scheduler.start(), stop: () => scheduler.stop() };
  }

  /** The port the client edge listens on (useful with port 0); undefined without the api service. */
  get clientPort(): number | undefined {
    return this.edge?.port;
  }

  /** Whether uWS runs natively; undefined without the api service. */
  get uwsNative(): boolean | undefined {
    return this.edge?.runtime.native;
  }

  /**
   * Called once if the node cannot go on: its raft group failed (a storage write refused: a
   * full disk, an I/O error; the caller should exit so that a supervisor restarts it from what
   * is durable once the cause is fixed), or it was removed from the cluster (a NodeRemovedError,
   * code REMOVED, after the marker that keeps it from starting again was written; the caller
   * should exit and not be restarted). Either way the node serves nothing more.
   */
  onFatal(listener: (error: Error) => void): void {
    this.fatalListeners.add(listener);
  }

  private fatal(error: Error): void {
    for (const listener of this.fatalListeners) listener(error);
    this.fatalListeners.clear();
  }

  async stop(): Promise<void> {
    if (this.stopping || this.draining) return;
    if (this.config.drainDelayMs > 0) {
      // Not ready first, still serving: load balancers stop sending before requests are refused.
      this.draining = true;
      this.logger.info('node.draining', { delayMs: this.config.drainDelayMs });
      await new Promise((resolve) => setTimeout(resolve, this.config.drainDelayMs));
    }
    this.stopping = true;
    this.stopOrphanCheck?.();
    this.logger.info('node.stopping', {});
    await this.handOverLeadership();
    // Watches end with UNAVAILABLE (resume elsewhere) before the edge closes their sockets.
    for (const group of this.parts.groups.values()) group.hub.stop();
    for (const watches of this.groupWatches.values()) watches.stop();
    try {
      await this.services.stop();
    } finally {
      await this.parts.storage.close();
    }
    this.logger.info('node.stopped', {});
  }

  private refuseIfStopping(): void {
    this.removal.refuseIfRemoved();
    if (this.stopping) throw new DriverError('UNAVAILABLE', 'the node is stopping', '', false);
  }

  /** A leader of several voters hands leadership to a caught-up voter before it stops (bounded wait). */
  private async handOverLeadership(): Promise<void> {
    await Promise.all([...this.parts.groups.values()].map((group) => this.handOver(group)));
  }

  /** Transfers `group`'s leadership, if this node holds it, to its most up-to-date live voter; waits up to two election timeouts. */
  private async handOver(group: RaftGroup): Promise<void> {
    const driver = group.driver;
    const status = driver.status();
    if (status.role !== 'leader' || status.membership.voters.length < 2 || !status.progress) return;
    let best: { name: string; match: number } | undefined;
    for (const name of status.membership.voters) {
      const progress = status.progress.get(name);
      if (name === this.config.name || !progress?.recentActive) continue;
      if (!best || progress.match > best.match) best = { name, match: progress.match };
    }
    if (!best) return;
    driver.transferLeadership(best.name);
    const deadline = Date.now() + this.config.electionTimeoutMs * 2;
    while (Date.now() < deadline && driver.status().role === 'leader') {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.logger.info('node.leadership_handed_over', {
      ...(group.id === GROUP ? {} : { group: group.id }),
      to: best.name,
      done: driver.status().role !== 'leader',
    });
  }

  // ---- What peers send ------------------------------------------------------------------------

  /** A snapshot from the leader, for the group it names. */
  async receiveSnapshot(incoming: IncomingSnapshot): Promise<void> {
    const name = this.parts.peers.nameOf(incoming.from);
    if (name !== undefined && (await this.backupFetcher?.receive(name, incoming))) return;
    const group = this.parts.groups.get(incoming.groupId);
    if (name === undefined || group === undefined) {
      throw Object.assign(new Error('snapshot from an unidentified peer or for an unknown group'), {
        code: 'INVALID_ARGUMENT',
      });
    }
    await group.receiveSnapshot(name, incoming.header, incoming.chunks);
  }

  /** Raft messages from an authenticated peer; each must carry that peer's own name. */
  receiveRaft(from: string, groupId: number, messages: readonly Message[]): void {
    const name = this.parts.peers.nameOf(from);
    if (name === undefined) {
      void this.identify(from);
      return;
    }
    const group = this.parts.groups.get(groupId);
    if (group === undefined) return;
    const now = Date.now();
    this.lastContact.set(name, now);
    // Group 1's leader and membership: what reads' cut-off and removal detection are about.
    if (groupId === GROUP) {
      if (messages.some((m) => LEADER_TRAFFIC.has(m.type))) this.leaderHeardAt = now;
      this.removal.onRaftTraffic(from, name, now);
    }
    for (const message of messages) {
      if (message.from !== name) {
        this.logger.warn('raft.spoofed_sender', {
          peer: from,
          name,
          claimed: message.from,
          type: MessageType[message.type],
        });
        continue;
      }
      group.receive(message);
    }
  }

  /**
   * Asks a newly connected peer for its name, retrying briefly: the mesh reports a peer up when
   * its raft stream is ready, and its request stream may follow a moment later.
   */
  async identify(peer: string): Promise<void> {
    const { mesh, peers, seen } = this.parts;
    const bound = peers.nameOf(peer);
    if (mesh !== undefined && bound !== undefined && !this.identifying.has(peer)) {
      // Known already: a new connection may be a restarted process of another version, so what
      // it said before no longer counts (requireFeature refuses) until it answers again.
      peers.forgetFeatures(bound);
      this.identifying.add(peer);
      try {
        const answer = await identifyPeer(mesh, peer, {
          attempts: 3,
          timeoutMs: 2000,
          backoffMs: () => 100,
          keepGoing: () => !this.stopping,
        });
        if (answer?.name === bound) peers.setFeatures(bound, featuresOf(answer));
      } finally {
        this.identifying.delete(peer);
      }
      return;
    }
    if (!mesh || bound !== undefined || this.proxies.has(peer) || this.identifying.has(peer)) return;
    this.identifying.add(peer);
    try {
      const answer = await identifyPeer(mesh, peer, {
        attempts: 50,
        timeoutMs: 2000,
        backoffMs: (attempt) => 50 + attempt * 20,
        keepGoing: () => !this.stopping,
      });
      // A founder's temporary mesh (its founding check) is not a member yet: not recorded.
      if (answer === undefined || answer.founding === true) return;
      if (typeof answer.clusterId === 'string' && answer.clusterId !== this.parts.clusterId) {
        this.refuseForeignPeer(peer, answer.name, answer.clusterId);
        return;
      }
      // A proxy is never a member: kept apart, not recorded, never told it was removed.
      if (answer.proxy === true) {
        this.proxies.add(peer, answer.name);
        return;
      }
      try {
        // On disk before the name is bound, so before anything from this peer is processed.
        await seen.record(answer.name, peer);
      } catch (error) {
        this.logger.error('peer.record_failed', { peer, name: answer.name, error: (error as Error).message });
        return;
      }
      peers.setFeatures(answer.name, featuresOf(answer));
      if (peers.bind(peer, answer.name)) this.removal.noticeIfNotMember(peer, answer.name);
    } finally {
      this.identifying.delete(peer);
    }
  }

  /** Refuses a peer of another cluster: logged once, remembered, and its connection closed. */
  private refuseForeignPeer(peer: string, name: string, clusterId: string): void {
    if (!this.foreignPeers.has(peer)) {
      this.logger.warn('peer.foreign_cluster', {
        peer,
        name,
        clusterId,
        ours: this.parts.clusterId,
        detail: 'it holds the cluster secret but belongs to another cluster: refused',
      });
      if (this.foreignPeers.size >= MAX_FOREIGN_PEERS) {
        this.foreignPeers.delete(this.foreignPeers.keys().next().value as string);
      }
    }
    this.foreignPeers.set(peer, { name, clusterId });
    void this.parts.mesh?.disconnect(peer);
  }

  /** Serves a peer's request: who we are, a removal notice, a proxy's call, or work for the leader. */
  async servePeer(from: string, payload: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const request = decodePeerRequest(payload);
    const { peers, seen, clusterId } = this.parts;
    switch (request.type) {
      case 'panel':
        return encodePeerMessage(this.panel(request.since));
      case 'identify':
        return encodePeerMessage({
          name: this.config.name,
          commitIndex: this.main.driver.status().commitIndex,
          clusterId,
          features: ADVERTISED_FEATURES,
          ...(request.founding === undefined ? {} : { seenPeer: seen.peerOf(request.founding) ?? null }),
        });
    }
    // A stateless proxy's calls: it holds the secret and is no member (see proxy-serving.ts).
    if (request.type === 'client' || request.type === 'watch' || request.type === 'directory') {
      this.refuseIfStopping();
      return encodePeerMessage(await this.proxies.serve(request, signal));
    }
    // The rest only a member of this cluster may ask: identified first, refused if foreign.
    if (peers.nameOf(from) === undefined) await this.identify(from);
    const foreign = this.foreignPeers.get(from);
    if (foreign !== undefined) {
      throw Object.assign(
        new Error(
          `${foreign.name} (${from}) belongs to cluster ${foreign.clusterId}; this node to ${clusterId}`,
        ),
        { code: 'PERMISSION_DENIED' },
      );
    }
    if (request.type === 'removed') {
      return encodePeerMessage({ accepted: this.removal.consider(request, peers.nameOf(from) ?? from) });
    }
    if (request.type === 'join') {
      this.refuseIfStopping();
      const name = peers.nameOf(from);
      return encodePeerMessage(
        await answerOf(() => {
          if (name === undefined) {
            throw new DriverError('UNAVAILABLE', 'the joining node did not say who it is (identify failed)');
          }
          return this.admin.join(name, request.role, request.address);
        }),
      );
    }
    if (request.type === 'groups') return encodePeerMessage(localGroupStatuses(this.parts.groups));
    if (request.type === 'groupBackup') {
      this.refuseIfStopping();
      if (this.backupFetcher === undefined || peers.nameOf(from) === undefined) {
        throw Object.assign(new Error('only a member may ask for a group backup'), {
          code: 'PERMISSION_DENIED',
        });
      }
      return encodePeerMessage(await this.backupFetcher.serve(from, request.group, request.id));
    }
    // One hop only: a forwarded request is carried out here or refused, never forwarded again.
    if (request.type === 'write') {
      return encodePeerMessage(
        await this.kv.proposeHere(request.op as Operation, request.session, request.group ?? GROUP),
      );
    }
    return encodePeerMessage(await this.admin.serve(request));
  }

  /** Watches of group `id`'s realms, carried from its members (created on first use, one per group). */
  private remoteWatches(id: number): ProxyWatches {
    let watches = this.groupWatches.get(id);
    if (watches === undefined) {
      watches = new ProxyWatches(this.groupMembers(id), withFields(this.logger, { group: id }), {
        requestTimeoutMs: this.config.requestTimeoutMs,
      });
      this.groupWatches.set(id, watches);
    }
    return watches;
  }

  /** The members of group `id` this node can reach over the mesh, for polls (WatchMembers). */
  private groupMembers(id: number): WatchMembers {
    const reachable = (): { peer: string; name: string }[] => {
      const founders = groupMembers(this.main.storage.state.groups, id);
      return founders
        .filter((name) => name !== this.config.name)
        .map((name) => ({ name, peer: this.parts.peers.peerOf(name) }))
        .filter((m): m is { name: string; peer: string } => m.peer !== undefined);
    };
    return {
      pick: async (deadline, avoid) => {
        for (;;) {
          const members = reachable();
          const chosen = members.find((m) => m.peer !== avoid) ?? members[0];
          if (chosen !== undefined) return chosen;
          if (Date.now() >= deadline || this.stopping) {
            throw new DriverError('UNAVAILABLE', `no member of raft group ${id} is reachable from here`);
          }
          await new Promise((resolve) =>
            setTimeout(resolve, Math.min(100, Math.max(1, deadline - Date.now()))),
          );
        }
      },
      send: <T>(peer: string, name: string, request: PeerRequest, options: Omit<ForwardOptions, 'target'>) =>
        forward<T>(this.parts.mesh!, peer, request, { ...options, target: name }),
      moveOff: () => undefined,
    };
  }

  /**
   * Carries a client call for group `id`, which this node does not run, to a founding member
   * that runs it (starting at a random one): the first answer wins; a member that answers
   * UNAVAILABLE or REMOVED (it does not run the group, or is going away) is skipped. Throws
   * UNAVAILABLE naming the members when none can be asked, and what the last one answered.
   */
  private async carryToGroup(id: number, call: ClientCall, mayApply: boolean): Promise<unknown> {
    const { mesh, peers } = this.parts;
    const founders = groupMembers(this.main.storage.state.groups, id);
    const reachable = founders.filter(
      (name) => name !== this.config.name && peers.peerOf(name) !== undefined,
    );
    if (mesh === undefined || reachable.length === 0) {
      throw new DriverError(
        'UNAVAILABLE',
        `raft group ${id} runs on ${founders.join(', ') || 'no known node'}, none reachable from here`,
      );
    }
    const start = Math.floor(Math.random() * reachable.length);
    let last: unknown;
    for (let i = 0; i < reachable.length; i++) {
      const name = reachable[(start + i) % reachable.length]!;
      const peer = peers.peerOf(name);
      if (peer === undefined) continue;
      try {
        const answer = await forward<PeerAnswer<unknown>>(
          mesh,
          peer,
          { type: 'client', ...call },
          { timeoutMs: this.config.requestTimeoutMs, target: name, mayApply },
        );
        if (answer.ok) return answer.value;
        throw errorOf(answer.error);
      } catch (error) {
        const { code, indeterminate } = error as { code?: string; indeterminate?: boolean };
        if (indeterminate === true || (code !== 'UNAVAILABLE' && code !== 'REMOVED')) throw error;
        last = error;
      }
    }
    throw last;
  }

  /**
   * Every raft group as its members report it: this node's own groups, and each other member's
   * of group 1 asked over the mesh (in parallel, each within GROUPS_ASK_TIMEOUT_MS; one that
   * does not answer is listed as unreachable, never waited for longer).
   */
  async groupsView(detail = false): Promise<GroupsView> {
    const state = this.main.storage.state;
    const others = [...state.membership.voters, ...state.membership.learners].filter(
      (name) => name !== this.config.name,
    );
    const reports = [
      { node: this.config.name, groups: localGroupStatuses(this.parts.groups) },
      ...(await Promise.all(others.map((name) => this.askGroups(name)))),
    ];
    const view = mergeGroupViews(state.groups, state.membership.voters, reports);
    return detail ? { ...view, reports } : view;
  }

  /** What member `name` reports of the groups it runs (its `groups` answer), within GROUPS_ASK_TIMEOUT_MS. */
  private async askGroups(name: string): Promise<NodeReport> {
    const { mesh, peers } = this.parts;
    const peer = peers.peerOf(name);
    if (mesh === undefined || peer === undefined) return { node: name, error: 'not connected' };
    try {
      const groups = await forward<LocalGroupStatus[]>(
        mesh,
        peer,
        { type: 'groups' },
        { timeoutMs: GROUPS_ASK_TIMEOUT_MS, target: name, mayApply: false },
      );
      if (!Array.isArray(groups)) return { node: name, error: 'answered in an unknown shape' };
      return { node: name, groups };
    } catch (error) {
      return { node: name, error: (error as Error).message };
    }
  }

  /**
   * Group `id` as the member that leads it reports it: the catalog's other members are asked
   * (in parallel, each within GROUPS_ASK_TIMEOUT_MS); undefined when none says it leads.
   */
  async groupLeaderReport(id: number): Promise<LocalGroupStatus | undefined> {
    const record = this.main.storage.state.groups.groups.find((g) => g.id === id);
    if (this.parts.mesh === undefined || record === undefined) return undefined;
    const names = [...new Set([...record.members, ...(record.joined ?? [])])].filter(
      (name) => name !== this.config.name,
    );
    const answers = (await Promise.all(names.map((name) => this.askGroups(name)))).map((report) =>
      report.groups?.find((g) => g.id === id && g.role === 'leader'),
    );
    return answers.filter((a): a is LocalGroupStatus => a !== undefined).sort((a, b) => b.term - a.term)[0];
  }

  // ---- Membership and the address book --------------------------------------------------------

  /** Dials every member the replicated address book lists (idempotent). */
  dialMembers(): void {
    const { mesh } = this.parts;
    if (!mesh || this.stopping) return;
    const { addresses: book = {}, roles = {} } = this.main.storage.state.meta;
    // Nobody dials a satellite: it dials the members (it may sit behind a firewall).
    const addresses = Object.fromEntries(
      Object.entries(book).filter(([name]) => roles[name] !== 'satellite'),
    );
    for (const [name, address] of Object.entries(addresses)) {
      if (name === this.config.name || this.dialedAddresses.has(address)) continue;
      try {
        mesh.addPeer(address);
        this.dialedAddresses.add(address);
      } catch (error) {
        this.logger.warn('peer.bad_address', { name, address, error: (error as Error).message });
      }
    }
    for (const address of this.dialedAddresses) {
      if (!Object.values(addresses).includes(address)) {
        mesh.removePeer(address);
        this.dialedAddresses.delete(address);
      }
    }
  }

  /**
   * After a membership entry applied: dial new members, forget removed ones (the leader tells
   * each that it was removed), and notice if this node itself is no longer a member.
   */
  onMembershipApplied(): void {
    const { state } = this.main.storage;
    const { voters, learners } = state.membership;
    const members = new Set([...voters, ...learners]);
    const leads = this.main.driver.status().role === 'leader';
    for (const name of this.lastContact.keys()) {
      if (!members.has(name)) {
        const peer = this.parts.peers.peerOf(name);
        if (peer !== undefined && leads) void this.removal.tellRemoved(peer, name);
        this.lastContact.delete(name);
        this.parts.peers.unbindName(name);
      }
    }
    this.dialMembers();
    this.logger.info('raft.membership_applied', { voters, learners });
    this.removal.onMembershipApplied(members, state.appliedIndex);
  }
}
