// A Conclave node: opens storage, runs raft through the driver, and serves the client API on the edge.

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Edge, type Logger, withFields } from '../net/index.js';
import { RawNode, SeededPrng } from '../raft/index.js';
import {
  COMMAND_VERSION,
  type CommandResult,
  type Document,
  encodeCommand,
  type GroupStorage,
  type ListOptions,
  NodeStorage,
  type Operation,
} from '../storage/index.js';
import type { NodeConfig } from './config.js';
import { buildHttpRoutes } from './http-api.js';
import type { Consistency, KvService, NodeStatus, ServedRead } from './kv-service.js';
import { DriverError, RaftDriver } from './raft-driver.js';

/** The raft group every realm lives in today; frames and keys already carry it. */
const GROUP = 1;
const IDENTITY_FILE = 'node.json';

interface NodeIdentityRecord {
  readonly name: string;
  readonly clusterId: string;
}

/**
 * One node. Lifecycle: ConclaveNode.start(config) opens everything and begins serving;
 * stop() hands leadership over (when it leads a multi-voter cluster), stops taking requests,
 * fails those in flight with a retryable code, and closes storage last.
 */
export class ConclaveNode implements KvService {
  private stopping = false;

  private constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
    private readonly storage: NodeStorage,
    private readonly group: GroupStorage,
    private readonly driver: RaftDriver<CommandResult>,
    private readonly edge: Edge,
  ) {}

  static async start(config: NodeConfig, logger: Logger): Promise<ConclaveNode> {
    if (config.initialCluster.length > 1) {
      throw new DriverError(
        'UNAVAILABLE',
        'multi-node clusters are not wired into the node yet (issue 5 in progress): start with --single',
      );
    }
    const log = withFields(logger, { node: config.name });
    await mkdir(config.dataDir, { recursive: true });
    const identity = await loadOrCreateIdentity(config);
    const storage = await NodeStorage.open({
      dataDir: config.dataDir,
      clusterId: identity.clusterId,
      storageEngine: config.storageEngine,
      commandMaxBytes: Math.max(config.maxRequestBytes * 2, 64 * 1024),
    });
    try {
      const groups = await storage.groupIds();
      const group = groups.includes(GROUP)
        ? await storage.openGroup(GROUP)
        : await storage.bootstrapGroup(GROUP, {
            voters: config.initialCluster.map((m) => m.name),
            learners: [],
          });
      const tickMs = Math.max(1, Math.floor(config.heartbeatIntervalMs / 2));
      const node = new RawNode({
        id: config.name,
        storage: group.log,
        prng: new SeededPrng(randomBytes(4).readUInt32LE(0)),
        applied: group.state.appliedIndex,
        electionTicks: Math.max(3, Math.round(config.electionTimeoutMs / tickMs)),
        heartbeatTicks: 2,
      });
      const driver = new RaftDriver<CommandResult>({
        node,
        logger: log,
        tickMs,
        maxPendingRequests: 100_000,
        store: {
          persist: (ready) =>
            group.persist({
              entries: ready.entries,
              ...(ready.hardState ? { hardState: ready.hardState } : {}),
            }),
        },
        stateMachine: {
          applySnapshot: async () => {
            // Installed by persist() with the snapshot's file; nothing more to do here.
          },
          apply: async (entries) => {
            const results = new Map<number, CommandResult>();
            for (const outcome of await group.apply(entries)) {
              if (outcome.kind === 'command') results.set(outcome.index, outcome.result);
            }
            return entries.map((entry) => results.get(entry.index));
          },
        },
        sender: {
          send: (messages) => {
            if (messages.length > 0) log.debug('raft.unsent', { count: messages.length });
          },
        },
      });
      const self: { node?: ConclaveNode } = {};
      const service: KvService = {
        write: (op) => self.node!.write(op),
        get: (realm, key, consistency) => self.node!.get(realm, key, consistency),
        list: (realm, options, consistency) => self.node!.list(realm, options, consistency),
        realms: (consistency) => self.node!.realms(consistency),
        status: () => self.node!.status(),
        ready: () => self.node!.ready(),
      };
      const edge = new Edge({
        host: config.clientHost,
        port: config.clientPort,
        routes: buildHttpRoutes(service, { limits: storage.config, logger: log }),
        logger: log,
        limits: { maxBodyBytes: config.maxRequestBytes, requestTimeoutMs: config.requestTimeoutMs * 2 },
        ...(config.tlsKeyFile && config.tlsCertFile
          ? { tls: { keyFile: config.tlsKeyFile, certFile: config.tlsCertFile } }
          : {}),
      });
      const instance = new ConclaveNode(config, log, storage, group, driver, edge);
      self.node = instance;
      driver.start();
      if (config.initialCluster.length === 1) driver.campaign();
      await edge.start();
      return instance;
    } catch (error) {
      await storage.close().catch(() => undefined);
      throw error;
    }
  }

  /** The port the client edge listens on (useful with port 0). */
  get clientPort(): number {
    return this.edge.port;
  }

  get uwsNative(): boolean {
    return this.edge.runtime.native;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info('node.stopping', {});
    await this.edge.stop();
    await this.driver.stop();
    await this.storage.close();
    this.logger.info('node.stopped', {});
  }

  // ---- KvService ---------------------------------------------------------------------------

  async write(op: Operation): Promise<CommandResult> {
    this.refuseIfStopping();
    await this.driver.waitForLeader(this.config.requestTimeoutMs);
    const command = encodeCommand({ v: COMMAND_VERSION, time: Date.now(), op });
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
    if (this.stopping) return { ready: false, reason: 'stopping' };
    const raft = this.driver.status();
    if (raft.leader === '') return { ready: false, reason: 'no known leader' };
    const lag = raft.commitIndex - this.group.state.appliedIndex;
    if (lag > 1000)
      return { ready: false, reason: `applied state is ${lag} entries behind the commit index` };
    return { ready: true };
  }

  private refuseIfStopping(): void {
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
async function loadOrCreateIdentity(config: NodeConfig): Promise<NodeIdentityRecord> {
  const path = join(config.dataDir, IDENTITY_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    const record = JSON.parse(text) as NodeIdentityRecord;
    if (record.name !== config.name) {
      throw new DriverError(
        'UNAVAILABLE',
        `the data directory ${config.dataDir} belongs to node ${JSON.stringify(record.name)}, not ${JSON.stringify(config.name)}`,
      );
    }
    return record;
  }
  const record: NodeIdentityRecord = { name: config.name, clusterId: randomUUID() };
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(temporary, path);
  return record;
}
