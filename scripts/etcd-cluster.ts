// Launches a cluster of real etcd processes on 127.0.0.1 with free ports; the etcd side of `npm run bench`.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './local-cluster.js';

export interface EtcdNode {
  readonly name: string;
  readonly peerPort: number;
  readonly clientPort: number;
  readonly dataDir: string;
  /** The client URL, http://127.0.0.1:clientPort. */
  readonly url: string;
  child: ChildProcess | undefined;
  /** The member id etcd gave this node (hex), learnt from its own status answer. */
  memberId: string | undefined;
}

export interface EtcdStatusView {
  /** The answering member's id. */
  readonly memberId: string;
  /** The member id it believes leads; '0' when it knows none. */
  readonly leader: string;
  readonly raftTerm: number;
}

/** The etcd binary looked up on PATH. */
export const ETCD_BINARY = 'etcd';

/**
 * N etcd members bootstrapped with a static --initial-cluster, each a child process with its own
 * data directory under one temporary root, run with etcd's default timing (election 1000 ms,
 * heartbeat 100 ms) and fsync on. stop() kills every process by pid and removes the root.
 */
export class EtcdCluster {
  readonly nodes: EtcdNode[] = [];
  readonly root: string;
  private initialCluster = '';

  constructor(private readonly extraArgs: readonly string[] = []) {
    this.root = mkdtempSync(join(tmpdir(), 'etcd-cluster-'));
  }

  async create(size: number): Promise<void> {
    for (let i = 1; i <= size; i++) {
      const clientPort = await freePort();
      this.nodes.push({
        name: `e${i}`,
        peerPort: await freePort(),
        clientPort,
        dataDir: join(this.root, `e${i}`),
        url: `http://127.0.0.1:${clientPort}`,
        child: undefined,
        memberId: undefined,
      });
    }
    this.initialCluster = this.nodes.map((n) => `${n.name}=http://127.0.0.1:${n.peerPort}`).join(',');
  }

  /**
   * The command line that starts `node`. A restarted member finds its data directory and ignores
   * the --initial-cluster* flags, so the same line serves the first start and every restart.
   */
  args(node: EtcdNode): string[] {
    return [
      '--name',
      node.name,
      '--data-dir',
      node.dataDir,
      '--listen-client-urls',
      node.url,
      '--advertise-client-urls',
      node.url,
      '--listen-peer-urls',
      `http://127.0.0.1:${node.peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${node.peerPort}`,
      '--initial-cluster',
      this.initialCluster,
      '--initial-cluster-token',
      `bench-${this.root}`,
      '--initial-cluster-state',
      'new',
      '--logger',
      'zap',
      '--log-level',
      'error',
      ...this.extraArgs,
    ];
  }

  start(node: EtcdNode): void {
    node.child = spawn(ETCD_BINARY, this.args(node), {
      stdio: process.env.ETCD_CLUSTER_LOGS ? ['ignore', 'inherit', 'inherit'] : 'ignore',
    });
  }

  startAll(): void {
    for (const node of this.nodes) this.start(node);
  }

  running(node: EtcdNode): boolean {
    return node.child !== undefined && isRunning(node.child);
  }

  kill(node: EtcdNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = node.child;
    if (!child?.pid || !isRunning(child)) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, signal);
    return exited;
  }

  /** The member's view through the maintenance Status API (the gRPC gateway's JSON form). */
  async status(node: EtcdNode): Promise<EtcdStatusView | undefined> {
    try {
      const response = await fetch(`${node.url}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(1000),
      });
      if (!response.ok) return undefined;
      const body = (await response.json()) as {
        header?: { member_id?: string };
        leader?: string;
        raftTerm?: string;
      };
      if (body.header?.member_id === undefined) return undefined;
      node.memberId = body.header.member_id;
      return { memberId: body.header.member_id, leader: body.leader ?? '0', raftTerm: Number(body.raftTerm) };
    } catch {
      return undefined;
    }
  }

  /** Waits until every running member names the same leader, and that leader answers; returns it. */
  async waitForLeader(timeoutMs = 30_000): Promise<EtcdNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.nodes.filter((n) => this.running(n));
      const views = await Promise.all(running.map((n) => this.status(n)));
      const leaders = new Set(views.map((v) => v?.leader));
      const id = views[0]?.leader;
      if (id && id !== '0' && leaders.size === 1 && views.every((v) => v !== undefined)) {
        const leader = running.find((n) => n.memberId === id);
        if (leader) return leader;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`etcd: no agreed leader within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n, 'SIGKILL')));
    rmSync(this.root, { recursive: true, force: true });
  }

  /** For signal and exit handlers: SIGKILL every member by pid and remove the root, synchronously. */
  stopSync(): void {
    for (const node of this.nodes) {
      if (node.child?.pid && isRunning(node.child)) {
        try {
          process.kill(node.child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The first line of `etcd --version` (e.g. "etcd Version: 3.4.23"), or undefined when etcd is not on PATH. */
export function etcdVersion(): string | undefined {
  const result = spawnSync(ETCD_BINARY, ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return undefined;
  const match = /etcd Version:\s*(\S+)/.exec(result.stdout);
  return match?.[1] ?? result.stdout.split('\n')[0]?.trim();
}

/** A child killed by a signal has a null exitCode but a signalCode: neither means it runs. */
function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}
