// A Conclave node: opens storage, runs raft through the driver, and serves the client API on the edge.

import {
  Edge,
  type IncomingSnapshot,
  type Logger,
  loadOrCreateNodeKey,
  Mesh,
  NetError,
  RemoteError,
  withFields,
} from '../net/index.js';
import { MembershipChangeType, type Message, MessageType, RaftError, Role } from '../raft/index.js';
import {
  COMMAND_VERSION,
  type CommandResult,
  type Document,
  encodeCommand,
  type GroupStorage,
  type ListOptions,
  NodeStorage,
  type Operation,
  type SessionRef,
} from '../storage/index.js';
import { type AdminService, adminRoutes, type MembersView } from './admin-api.js';
import { bootstrapIdentity } from './bootstrap.js';
import type { NodeConfig } from './config.js';
import { ERROR_TABLE } from './error-codes.js';
import { httpRoutes, newHttpApi } from './http-api.js';
import { identifyPeer } from './identify.js';
import type { Consistency, KvService, NodeStatus, ServedRead } from './kv-service.js';
import { PeerDirectory } from './peer-directory.js';
import { type AdminAction, decodePeerAnswer, decodePeerRequest, encodePeerMessage } from './peer-protocol.js';
import { DriverError, type RaftDriver } from './raft-driver.js';
import { RaftGroup } from './raft-group.js';
import {
  NodeRemovedError,
  provesRemoval,
  type RemovalNotice,
  type RemovedRecord,
  writeRemovedMarker,
} from './removal.js';
import type { SeenMembers } from './seen-members.js';
import { ServiceStack } from './service.js';
import type { WatchHub } from './watch-hub.js';
import { webSocketApi } from './ws-api.js';

/** The raft group every realm lives in today; frames and keys already carry it. */
const GROUP = 1;
/** Codes a leader answers a forwarded write with before proposing it: the write did not happen. */
const DEFINITE_REMOTE_CODES: ReadonlySet<string> = new Set([
  'NOT_LEADER',
  'NO_LEADER',
  'TOO_LARGE',
  'INVALID_ARGUMENT',
]);

/**
 * Fault injection for tests only: a node started with this variable set to a key is killed
 * (SIGKILL) after a client write of that key has applied and before the node answers it.
 */
const FAULT_KILL_BEFORE_ANSWER = process.env.CONCLAVE_FAULT_KILL_BEFORE_ANSWER;

/** An admin answer carried over the mesh as a value, so raft's refusal reason survives the hop. */
type AdminAnswer =
  | { ok: true; value: unknown }
  | { ok: false; error: { code: string; message: string; reason?: string } };

/**
 * One node. Lifecycle: ConclaveNode.start(config) opens everything and begins serving;
 * stop() hands leadership over (when it leads a multi-voter cluster), stops taking requests,
 * fails those in flight with a retryable code, and closes storage last.
 */
export class ConclaveNode implements KvService, AdminService {
  private stopping = false;
  /** When the leader last heard from each member (ms since epoch), by name. */
  private readonly lastContact = new Map<string, number>();
  /** Mesh addresses dialed because the replicated address book lists them. */
  private readonly dialedAddresses = new Set<string>();
  private readonly identifying = new Set<string>();
  /** Set once this node learns it was removed from the cluster; it then serves nothing. */
  private removedRecord: RemovedRecord | undefined;
  /** Whether this node has been in an applied membership (a joiner before its addition has not). */
  private wasMember: boolean;
  /** When each peer's membership was last checked on its raft traffic (ms), by name: once a second. */
  private readonly memberCheckedAt = new Map<string, number>();
  private readonly fatalListeners = new Set<(error: Error) => void>();

  private constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
    private readonly storage: NodeStorage,
    /** Its parts, started in order (mesh, raft groups, client edge) and stopped in reverse. */
    private readonly services: ServiceStack,
    /** The node's raft groups by id; today one, GROUP, which every realm lives in. */
    private readonly groups: ReadonlyMap<number, RaftGroup>,
    /** Undefined without the api service. */
    private readonly edge: Edge | undefined,
    private readonly mesh: Mesh | undefined,
    private readonly peers: PeerDirectory,
    private readonly clusterId: string,
    private readonly seen: SeenMembers,
  ) {
    const { voters, learners } = this.group.state.membership;
    this.wasMember = voters.includes(config.name) || learners.includes(config.name);
    this.driver.onFailure((error) => this.fatal(error));
  }

  /** The group every realm lives in. */
  private get main(): RaftGroup {
    return this.groups.get(GROUP)!;
  }

  private get group(): GroupStorage {
    return this.main.storage;
  }

  private get driver(): RaftDriver<CommandResult> {
    return this.main.driver;
  }

  private get hub(): WatchHub {
    return this.main.hub;
  }

  static async start(config: NodeConfig, logger: Logger): Promise<ConclaveNode> {
    const log = withFields(logger, { node: config.name });
    const { secret, clusterId, seen, joining } = await bootstrapIdentity(config, log);
    const storage = await NodeStorage.open({
      dataDir: config.dataDir,
      clusterId,
      storageEngine: config.storageEngine,
      commandMaxBytes: Math.max(config.maxRequestBytes * 2, 64 * 1024),
    });
    try {
      const groups = await storage.groupIds();
      const group = groups.includes(GROUP)
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
      const raftGroup = new RaftGroup({
        id: GROUP,
        name: config.name,
        storage: group,
        logger: log,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        electionTimeoutMs: config.electionTimeoutMs,
        snapshotEntries: config.snapshotEntries,
        logRetainEntries: config.logRetainEntries,
        onMembershipApplied: () => self.node?.onMembershipApplied(),
        onSnapshotApplied: () => self.node?.dialMembers(),
        transport: {
          sendRaft: (to, groupId, messages) => {
            const peer = peers.peerOf(to);
            return mesh !== undefined && peer !== undefined && mesh.sendRaft(peer, groupId, messages);
          },
          sendSnapshot: async (to, groupId, header, source) => {
            const peer = peers.peerOf(to);
            if (mesh === undefined || peer === undefined) throw new Error(`no connection to ${to}`);
            await mesh.sendSnapshot(peer, { groupId, header, source });
          },
        },
      });
      // A lone node with a cluster secret runs the mesh too, so that nodes can join it later.
      if (config.initialCluster.length > 1 || joining || secret !== undefined) {
        if (secret === undefined)
          throw new DriverError('UNAVAILABLE', 'a cluster needs --cluster-secret-file');
        const key = await loadOrCreateNodeKey(config.dataDir);
        mesh = new Mesh({
          privateKey: key.privateKey,
          listen: [config.peerListen],
          peers: [
            ...new Set([
              ...config.initialCluster.filter((m) => m.name !== config.name).map((m) => m.address),
              ...config.join,
            ]),
          ],
          secret,
          logger: log,
          handlers: {
            raft: (from, batch) => self.node?.receiveRaft(from, batch.groupId, batch.messages),
            request: (from, payload) => self.node!.servePeer(from, payload),
            peerUp: (peer) => void self.node?.identify(peer),
            snapshot: (incoming) => self.node!.receiveSnapshot(incoming),
          },
        });
      }
      const service: KvService = {
        write: (op, session) => self.node!.write(op, session),
        get: (realm, key, consistency) => self.node!.get(realm, key, consistency),
        list: (realm, options, consistency) => self.node!.list(realm, options, consistency),
        realms: (consistency) => self.node!.realms(consistency),
        status: () => self.node!.status(),
        ready: () => self.node!.ready(),
      };
      const admin: AdminService = {
        members: () => self.node!.members(),
        addLearner: (name, address) => self.node!.addLearner(name, address),
        promote: (name) => self.node!.promote(name),
        remove: (name) => self.node!.remove(name),
        transferLeadership: (to) => self.node!.transferLeadership(to),
      };
      const api = newHttpApi(service, { limits: storage.config, logger: log });
      // Without the api service the node serves no clients: no client port is opened.
      const edge = !config.services.includes('api')
        ? undefined
        : new Edge({
            errors: ERROR_TABLE,
            host: config.clientHost,
            port: config.clientPort,
            routes: [...httpRoutes(api), ...adminRoutes(api, admin, config.services.includes('admin'))],
            websocket: webSocketApi(api, service, raftGroup.hub, log),
            logger: log,
            limits: {
              maxBodyBytes: config.maxRequestBytes,
              maxWsPayloadBytes: config.maxRequestBytes,
              requestTimeoutMs: config.requestTimeoutMs * 2,
            },
            ...(config.tlsKeyFile && config.tlsCertFile
              ? { tls: { keyFile: config.tlsKeyFile, certFile: config.tlsCertFile } }
              : {}),
          });
      const services = new ServiceStack(
        [
          ...(mesh === undefined
            ? []
            : [
                {
                  name: 'mesh',
                  start: async () => {
                    await mesh.start();
                    self.node?.dialMembers();
                  },
                  stop: () => mesh.stop(),
                },
              ]),
          {
            name: raftGroup.name,
            start: async () => {
              await raftGroup.start();
              if (config.initialCluster.length === 1) raftGroup.driver.campaign();
            },
            stop: () => raftGroup.stop(),
          },
          ...(edge === undefined
            ? []
            : [{ name: 'client edge', start: () => edge.start(), stop: () => edge.stop() }]),
        ],
        (service, error) => log.warn('node.stop_failed', { service: service.name, error: String(error) }),
      );
      const instance = new ConclaveNode(
        config,
        log,
        storage,
        services,
        new Map([[GROUP, raftGroup]]),
        edge,
        mesh,
        peers,
        clusterId,
        seen,
      );
      self.node = instance;
      // A failed start stops what had started (in reverse); the storage is closed below.
      await services.start();
      return instance;
    } catch (error) {
      await storage.close().catch(() => undefined);
      throw error;
    }
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
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info('node.stopping', {});
    await this.handOverLeadership();
    // Watches end with UNAVAILABLE (resume elsewhere) before the edge closes their sockets.
    for (const group of this.groups.values()) group.hub.stop();
    try {
      await this.services.stop();
    } finally {
      await this.storage.close();
    }
    this.logger.info('node.stopped', {});
  }

  /** A leader of several voters hands leadership to a caught-up voter before it stops (bounded wait). */
  private async handOverLeadership(): Promise<void> {
    const status = this.driver.status();
    if (status.role !== 'leader' || status.membership.voters.length < 2 || !status.progress) return;
    let best: { name: string; match: number } | undefined;
    for (const name of status.membership.voters) {
      const progress = status.progress.get(name);
      if (name === this.config.name || !progress?.recentActive) continue;
      if (!best || progress.match > best.match) best = { name, match: progress.match };
    }
    if (!best) return;
    this.driver.transferLeadership(best.name);
    const deadline = Date.now() + this.config.electionTimeoutMs * 2;
    while (Date.now() < deadline && this.driver.status().role === 'leader') {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.logger.info('node.leadership_handed_over', {
      to: best.name,
      done: this.driver.status().role !== 'leader',
    });
  }

  // ---- Mesh ----------------------------------------------------------------------------------

  /** A snapshot from the leader, for the group it names. */
  async receiveSnapshot(incoming: IncomingSnapshot): Promise<void> {
    const name = this.peers.nameOf(incoming.from);
    const group = this.groups.get(incoming.groupId);
    if (name === undefined || group === undefined) {
      throw Object.assign(new Error('snapshot from an unidentified peer or for an unknown group'), {
        code: 'INVALID_ARGUMENT',
      });
    }
    await group.receiveSnapshot(name, incoming.header, incoming.chunks);
  }

  /** Raft messages from an authenticated peer; each must carry that peer's own name. */
  receiveRaft(from: string, groupId: number, messages: readonly Message[]): void {
    const name = this.peers.nameOf(from);
    if (name === undefined) {
      void this.identify(from);
      return;
    }
    const group = this.groups.get(groupId);
    if (group === undefined) return;
    const now = Date.now();
    this.lastContact.set(name, now);
    if (now - (this.memberCheckedAt.get(name) ?? 0) >= 1000) {
      if (this.memberCheckedAt.size > 10_000) this.memberCheckedAt.clear();
      this.memberCheckedAt.set(name, now);
      this.noticeIfNotMember(from, name);
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
    if (!this.mesh || this.peers.nameOf(peer) !== undefined || this.identifying.has(peer)) return;
    this.identifying.add(peer);
    try {
      const answer = await identifyPeer(this.mesh, peer, {
        attempts: 50,
        timeoutMs: 2000,
        backoffMs: (attempt) => 50 + attempt * 20,
        keepGoing: () => !this.stopping,
      });
      // A founder's temporary mesh (its founding check) is not a member yet: not recorded.
      if (answer === undefined || answer.founding === true) return;
      try {
        // On disk before the name is bound, so before anything from this peer is processed.
        await this.seen.record(answer.name, peer);
      } catch (error) {
        this.logger.error('peer.record_failed', { peer, name: answer.name, error: (error as Error).message });
        return;
      }
      if (this.peers.bind(peer, answer.name)) this.noticeIfNotMember(peer, answer.name);
    } finally {
      this.identifying.delete(peer);
    }
  }

  /** Serves a peer's request: who we are, or a write forwarded to us as the leader. */
  async servePeer(from: string, payload: Uint8Array): Promise<Uint8Array> {
    const request = decodePeerRequest(payload);
    if (request.type === 'identify') {
      return encodePeerMessage({
        name: this.config.name,
        commitIndex: this.driver.status().commitIndex,
        clusterId: this.clusterId,
        ...(request.founding === undefined ? {} : { seenPeer: this.seen.peerOf(request.founding) ?? null }),
      });
    }
    if (request.type === 'removed') {
      return encodePeerMessage({ accepted: this.considerRemoval(request, this.peers.nameOf(from) ?? from) });
    }
    if (this.peers.nameOf(from) === undefined) await this.identify(from);
    // One hop only: a forwarded request is carried out here or refused, never forwarded again.
    if (request.type === 'members')
      return encodePeerMessage(await adminAnswer(async () => this.membersHere()));
    if (request.type === 'admin') return encodePeerMessage(await adminAnswer(() => this.adminHere(request)));
    return encodePeerMessage(await this.proposeHere(request.op as Operation, request.session));
  }

  // ---- Membership and the address book --------------------------------------------------------

  /** Dials every member the replicated address book lists (idempotent). */
  dialMembers(): void {
    if (!this.mesh || this.stopping) return;
    const addresses = this.group.state.meta.addresses ?? {};
    for (const [name, address] of Object.entries(addresses)) {
      if (name === this.config.name || this.dialedAddresses.has(address)) continue;
      try {
        this.mesh.addPeer(address);
        this.dialedAddresses.add(address);
      } catch (error) {
        this.logger.warn('peer.bad_address', { name, address, error: (error as Error).message });
      }
    }
    for (const address of this.dialedAddresses) {
      if (!Object.values(addresses).includes(address)) {
        this.mesh.removePeer(address);
        this.dialedAddresses.delete(address);
      }
    }
  }

  /**
   * After a membership entry applied: dial new members, forget removed ones (the leader tells
   * each that it was removed), and notice if this node itself is no longer a member.
   */
  onMembershipApplied(): void {
    const { voters, learners } = this.group.state.membership;
    const members = new Set([...voters, ...learners]);
    const raft = this.driver.status();
    for (const name of this.lastContact.keys()) {
      if (!members.has(name)) {
        const peer = this.peers.peerOf(name);
        if (peer !== undefined && raft.role === 'leader') void this.tellRemoved(peer, name);
        this.lastContact.delete(name);
        this.peers.unbindName(name);
      }
    }
    this.dialMembers();
    this.logger.info('raft.membership_applied', { voters, learners });
    if (members.has(this.config.name)) this.wasMember = true;
    else if (this.wasMember) void this.becomeRemoved(this.group.state.appliedIndex, 'self');
  }

  // ---- Removal: a node that is no longer a member learns so and stops --------------------------

  /**
   * Tells `peer` (named `name`) that it is not a member, if this node's latest membership is
   * committed and leaves it out; the peer decides whether that proves its removal
   * (provesRemoval). Called on a peer's raft traffic (at most once a second) and when a peer is
   * identified, so that a removed node that restarts or campaigns hears of it.
   */
  private noticeIfNotMember(peer: string, name: string): void {
    if (!this.mesh || this.stopping || this.removedRecord !== undefined) return;
    const notice = this.noticeFor(name);
    if (notice !== undefined) void this.sendRemovalNotice(peer, name, notice);
  }

  /** The leader tells a member it just removed, a few times until it answers (it may not be connected). */
  private async tellRemoved(peer: string, name: string): Promise<void> {
    for (let attempt = 0; attempt < 5 && !this.stopping; attempt++) {
      const notice = this.noticeFor(name);
      if (notice === undefined || (await this.sendRemovalNotice(peer, name, notice))) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /**
   * The notice for `name`, if this node's latest membership leaves it out and is committed
   * (one still in flight may yet be undone); undefined otherwise.
   */
  private noticeFor(name: string): RemovalNotice | undefined {
    const raft = this.driver.status();
    const { voters, learners } = raft.membership;
    if (name === this.config.name || voters.includes(name) || learners.includes(name)) return undefined;
    if (raft.membershipIndex > raft.commitIndex) return undefined;
    return { type: 'removed', membershipIndex: raft.membershipIndex, voters, learners };
  }

  /** Sends one notice; true once the peer answered (whatever it concluded). */
  private async sendRemovalNotice(peer: string, name: string, notice: RemovalNotice): Promise<boolean> {
    if (!this.mesh) return false;
    try {
      const answer = decodePeerAnswer<{ accepted?: unknown }>(
        await this.mesh.request(peer, encodePeerMessage(notice), { timeoutMs: 2000 }),
      );
      if (answer.accepted === true) {
        this.logger.info('peer.removal_told', { name, membershipIndex: notice.membershipIndex });
      }
      return true;
    } catch (error) {
      this.logger.debug('peer.removal_notice_failed', { name, error: (error as Error).message });
      return false;
    }
  }

  /** A member says this node is not in its membership: stop if that proves a removal. */
  private considerRemoval(notice: RemovalNotice, by: string): boolean {
    if (this.removedRecord !== undefined) return true;
    if (this.stopping || !provesRemoval(notice, this.config.name, this.driver.status())) return false;
    void this.becomeRemoved(notice.membershipIndex, by);
    return true;
  }

  /**
   * This node is no longer a member: it says so in its log, refuses every request with
   * REMOVED, writes the marker that keeps it from starting again with this data directory, and
   * then reports a NodeRemovedError to onFatal listeners.
   */
  private async becomeRemoved(membershipIndex: number, by: string): Promise<void> {
    if (this.removedRecord !== undefined || this.stopping) return;
    const record: RemovedRecord = {
      name: this.config.name,
      clusterId: this.clusterId,
      membershipIndex,
      by,
      at: new Date().toISOString(),
    };
    this.removedRecord = record;
    this.logger.error('node.removed', {
      ...record,
      hint: 'this node is no longer a member of its cluster; it stops serving and will not start again with this data directory',
    });
    try {
      await writeRemovedMarker(this.config.dataDir, record);
    } catch (error) {
      this.logger.error('node.removed_marker_failed', { error: (error as Error).message });
    }
    this.fatal(new NodeRemovedError(record));
  }

  // ---- AdminService: carried out by the leader ------------------------------------------------

  async members(): Promise<MembersView> {
    return (await this.onLeader({ type: 'members' }, () => this.membersHere())) as MembersView;
  }

  async addLearner(name: string, address: string): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'addLearner', name, address });
  }

  async promote(name: string): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'promote', name });
  }

  async remove(name: string): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'remove', name });
  }

  async transferLeadership(to: string): Promise<{ leader: string; term: number }> {
    return (await this.onLeader({ type: 'admin', action: 'transfer', name: to })) as {
      leader: string;
      term: number;
    };
  }

  /** Runs `request` here if this node leads, otherwise on the leader over the mesh. */
  private async onLeader(
    request: { type: 'members' } | ({ type: 'admin' } & AdminAction),
    here?: () => Promise<unknown>,
  ): Promise<unknown> {
    this.refuseIfStopping();
    const leader = await this.driver.waitForLeader(this.config.requestTimeoutMs);
    if (leader === this.config.name || !this.mesh) {
      return here ? here() : this.adminHere(request as { type: 'admin' } & AdminAction);
    }
    const peer = this.peers.peerOf(leader);
    if (peer === undefined) {
      throw new DriverError('NOT_LEADER', `the leader ${leader} is not reachable from here yet`, leader);
    }
    let answer: AdminAnswer;
    try {
      answer = decodePeerAnswer<AdminAnswer>(
        await this.mesh.request(peer, encodePeerMessage(request), {
          timeoutMs: this.config.requestTimeoutMs * 2,
        }),
      );
    } catch (error) {
      if (error instanceof RemoteError) {
        throw Object.assign(new Error(error.remoteMessage), { code: error.remoteCode, leader });
      }
      throw new DriverError(
        'TIMEOUT',
        `asking the leader ${leader} failed: ${(error as Error).message}`,
        leader,
        true,
      );
    }
    if (!answer.ok) throw Object.assign(new Error(answer.error.message), answer.error);
    return answer.value;
  }

  private async membersHere(): Promise<MembersView> {
    const raft = this.driver.status();
    if (raft.role !== Role.Leader || raft.progress === undefined) {
      throw new DriverError('NOT_LEADER', 'this node no longer leads', raft.leader);
    }
    const addresses = this.group.state.meta.addresses ?? {};
    const now = Date.now();
    const view = (name: string, role: 'voter' | 'learner') => {
      const progress = raft.progress?.get(name);
      const self = name === this.config.name;
      const heard = this.lastContact.get(name);
      const matchIndex = self ? raft.lastIndex : (progress?.match ?? 0);
      return {
        name,
        id: self ? (this.mesh?.peerId ?? '') : (this.peers.peerOf(name) ?? ''),
        role,
        address: addresses[name] ?? this.config.initialCluster.find((m) => m.name === name)?.address ?? '',
        state: self ? 'leader' : (progress?.state ?? 'unknown'),
        matchIndex,
        lag: Math.max(0, raft.commitIndex - matchIndex),
        lastContactMs: self ? 0 : heard === undefined ? null : now - heard,
      };
    };
    return {
      leader: this.config.name,
      term: raft.term,
      commitIndex: raft.commitIndex,
      members: [
        ...raft.membership.voters.map((name) => view(name, 'voter')),
        ...raft.membership.learners.map((name) => view(name, 'learner')),
      ],
    };
  }

  /** Carries out an admin action on this node, which must lead. */
  private async adminHere(request: AdminAction): Promise<unknown> {
    const timeoutMs = this.config.requestTimeoutMs;
    try {
      switch (request.action) {
        case 'addLearner':
          if (!this.mesh) {
            throw Object.assign(
              new Error(
                'this cluster runs without a mesh (started without --cluster-secret-file), so no node can join it; ' +
                  'restart it with --cluster-secret-file FILE (conclave secret new > FILE) and try again',
              ),
              { code: 'CONFLICT', reason: 'NO_MESH' },
            );
          }
          await this.driver.proposeMembershipChange(
            {
              type: MembershipChangeType.AddLearner,
              nodeId: request.name,
              context: new TextEncoder().encode(request.address),
            },
            timeoutMs,
          );
          return {};
        case 'promote':
          await this.driver.proposeMembershipChange(
            { type: MembershipChangeType.PromoteLearner, nodeId: request.name },
            timeoutMs,
          );
          return {};
        case 'remove':
          await this.driver.proposeMembershipChange(
            { type: MembershipChangeType.RemoveNode, nodeId: request.name },
            timeoutMs,
          );
          return {};
        case 'transfer': {
          const { voters, learners } = this.driver.status().membership;
          if (!voters.includes(request.name) && !learners.includes(request.name)) {
            throw Object.assign(new Error(`no member is named ${request.name}`), { code: 'NOT_FOUND' });
          }
          const refused = this.driver.transferLeadership(request.name);
          if (refused) throw refused;
          const deadline = Date.now() + Math.max(timeoutMs, this.config.electionTimeoutMs * 4);
          for (;;) {
            const raft = this.driver.status();
            if (raft.leader === request.name) return { leader: raft.leader, term: raft.term };
            if (Date.now() > deadline) {
              throw new DriverError(
                'TIMEOUT',
                `${request.name} did not take over leadership in time`,
                raft.leader,
              );
            }
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      }
    } catch (error) {
      if (error instanceof RaftError) {
        if (error.code === 'NOT_LEADER' || error.code === 'NO_LEADER') {
          throw new DriverError(error.code, error.message, error.leader);
        }
        throw Object.assign(new Error(error.message), { code: 'CONFLICT', reason: error.code });
      }
      throw error;
    }
  }

  // ---- KvService ---------------------------------------------------------------------------

  /** Proposes on the leader: here if this node leads, otherwise forwarded over the mesh. */
  async write(op: Operation, session?: SessionRef): Promise<CommandResult> {
    const result = await this.writeOnLeader(op, session);
    if (FAULT_KILL_BEFORE_ANSWER !== undefined && 'key' in op && op.key === FAULT_KILL_BEFORE_ANSWER) {
      this.logger.warn('node.fault_injected', { fault: 'kill-before-answer', key: op.key });
      process.kill(process.pid, 'SIGKILL');
    }
    return result;
  }

  private async writeOnLeader(op: Operation, session: SessionRef | undefined): Promise<CommandResult> {
    this.refuseIfStopping();
    const leader = await this.driver.waitForLeader(this.config.requestTimeoutMs);
    if (leader === this.config.name || !this.mesh) return this.proposeHere(op, session);
    const peer = this.peers.peerOf(leader);
    if (peer === undefined)
      throw new DriverError('NOT_LEADER', `the leader ${leader} is not reachable from here yet`, leader);
    try {
      return decodePeerAnswer<CommandResult>(
        await this.mesh.request(
          peer,
          encodePeerMessage({ type: 'write', op, ...(session ? { session } : {}) }),
          {
            timeoutMs: this.config.requestTimeoutMs,
          },
        ),
      );
    } catch (error) {
      if (error instanceof RemoteError) {
        // The leader refused before proposing (definite) or lost track after (indeterminate).
        throw Object.assign(new Error(error.remoteMessage), {
          code: error.remoteCode,
          leader,
          indeterminate: !DEFINITE_REMOTE_CODES.has(error.remoteCode),
        });
      }
      if (error instanceof NetError && error.notSent) {
        // Never left this node: it certainly did not happen, so the answer is definite.
        throw new DriverError(
          'UNAVAILABLE',
          `the leader ${leader} is not reachable from here: ${error.message}`,
          leader,
        );
      }
      throw new DriverError(
        'TIMEOUT',
        `forwarding to ${leader} failed: ${(error as Error).message}`,
        leader,
        true,
      );
    }
  }

  private async proposeHere(op: Operation, session?: SessionRef): Promise<CommandResult> {
    this.refuseIfStopping();
    const command = encodeCommand({
      v: COMMAND_VERSION,
      time: Date.now(),
      ...(session ? { session } : {}),
      op,
    });
    const result = await this.driver.propose(command, this.config.requestTimeoutMs);
    if (result === undefined) throw new DriverError('UNAVAILABLE', 'the entry applied without a result');
    return result;
  }

  async get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>> {
    await this.readBarrier(consistency);
    return this.withStaleness(await this.group.state.get(realm, key), consistency);
  }

  async list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    await this.readBarrier(consistency);
    return this.withStaleness(await this.group.state.list(realm, options), consistency);
  }

  async realms(consistency: Consistency): Promise<ServedRead<string[]>> {
    await this.readBarrier(consistency);
    return this.withStaleness(
      { ok: true, revision: this.group.state.revision, value: this.group.state.realms() },
      consistency,
    );
  }

  status(): NodeStatus {
    const raft = this.driver.status();
    const { voters, learners } = raft.membership;
    return {
      name: this.config.name,
      id: this.config.name,
      role: voters.includes(this.config.name)
        ? 'voter'
        : learners.includes(this.config.name)
          ? 'learner'
          : 'none',
      state: raft.role,
      leader: raft.leader,
      term: raft.term,
      commitIndex: raft.commitIndex,
      appliedIndex: this.group.state.appliedIndex,
      revision: this.group.state.revision,
      members: [
        ...voters.map((name) => ({ name, role: 'voter' as const, ...progressOf(raft.progress?.get(name)) })),
        ...learners.map((name) => ({
          name,
          role: 'learner' as const,
          ...progressOf(raft.progress?.get(name)),
        })),
      ],
    };
  }

  ready(): { ready: boolean; reason?: string } {
    if (this.removedRecord !== undefined)
      return {
        ready: false,
        reason: `removed from the cluster (membership entry ${this.removedRecord.membershipIndex})`,
      };
    if (this.stopping) return { ready: false, reason: 'stopping' };
    const failure = this.driver.failure;
    if (failure !== undefined) return { ready: false, reason: `raft group failed: ${failure.message}` };
    const raft = this.driver.status();
    if (raft.leader === '') return { ready: false, reason: 'no known leader' };
    const lag = raft.commitIndex - this.group.state.appliedIndex;
    if (lag > 1000)
      return { ready: false, reason: `applied state is ${lag} entries behind the commit index` };
    return { ready: true };
  }

  private refuseIfStopping(): void {
    if (this.removedRecord !== undefined) throw new NodeRemovedError(this.removedRecord);
    if (this.stopping) throw new DriverError('UNAVAILABLE', 'the node is stopping', '', false);
  }

  /** Linearizable reads wait for a confirmed read index to be applied (dissertation §6.4). */
  private async readBarrier(consistency: Consistency): Promise<void> {
    this.refuseIfStopping();
    if (consistency !== 'linearizable') return;
    await this.driver.waitForLeader(this.config.requestTimeoutMs);
    await this.driver.readIndex(this.config.requestTimeoutMs);
  }

  private withStaleness<T extends object>(
    result: T,
    consistency: Consistency,
  ): T & { stale?: { appliedIndex: number; leaderCommitIndex: number } } {
    if (consistency !== 'stale') return result;
    const raft = this.driver.status();
    return {
      ...result,
      stale: { appliedIndex: this.group.state.appliedIndex, leaderCommitIndex: raft.commitIndex },
    };
  }
}

function progressOf(
  progress: { match: number; next: number; state: string; recentActive: boolean } | undefined,
) {
  return progress
    ? {
        match: progress.match,
        next: progress.next,
        state: progress.state,
        recentActive: progress.recentActive,
      }
    : {};
}

/**
 * The node's name and cluster id, fixed at first start. A later start with another name is
 * refused: the name is this node's identity in the membership.
 */
/** Runs an admin action for a peer, its failure as a value (code, message, reason). */
async function adminAnswer(run: () => Promise<unknown>): Promise<AdminAnswer> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    const fields = error as { code?: unknown; message?: unknown; reason?: unknown };
    const code = typeof fields.code === 'string' ? fields.code : 'INTERNAL';
    return {
      ok: false,
      error: {
        code: code === 'STOPPED' ? 'UNAVAILABLE' : code,
        message: typeof fields.message === 'string' ? fields.message : String(error),
        ...(typeof fields.reason === 'string' ? { reason: fields.reason } : {}),
      },
    };
  }
}
