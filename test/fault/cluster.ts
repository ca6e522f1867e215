// Conclave node processes, one per network namespace: start, kill -9, pause, wipe, and what each says in /v1/status.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeStatus } from '../../src/kv-service.js';
import { type Cleanup, onCleanup } from './cleanup.js';
import type { FaultNetwork, NetNode } from './network.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
export const PEER_PORT = 7000;
export const CLIENT_PORT = 8080;

/** Node settings of the fault tier: small snapshots, so restarts and new members install them. */
const NODE_ARGS = [
  // The nodes listen on their namespace's address, beyond loopback: without this they would
  // require tokens (secure by default); these namespaces are the test's own private network.
  '--insecure-no-auth',
  '--election-timeout-ms',
  '300',
  '--heartbeat-interval-ms',
  '50',
  '--request-timeout-ms',
  '2000',
  '--snapshot-entries',
  '1000',
  '--log-retain-entries',
  '200',
  '--services',
  'raft,api,admin',
];

/** One node's place: its namespace and name stay; its data and process come and go. */
export interface Slot {
  readonly net: NetNode;
  readonly name: string;
  readonly url: string;
  readonly peer: string;
  /** The data directory of the current incarnation. */
  dataDir: string;
  incarnation: number;
  /** Whether the cluster's membership holds this name (as voter or learner), as far as we know. */
  member: boolean;
  /** Founders start with --initial-cluster; a wiped slot rejoins with --join. */
  founder: boolean;
  child: ChildProcess | undefined;
  paused: boolean;
}

/**
 * The first `voters` slots found the cluster; the rest are spares that membership churn brings
 * in. Every process is killed by pid at stop() or at exit.
 */
export class FaultCluster {
  readonly slots: Slot[];
  private readonly secretFile: string;
  private readonly initialCluster: string;
  private readonly cleanup: Cleanup;

  constructor(
    network: FaultNetwork,
    private readonly root: string,
    voters: number,
  ) {
    mkdirSync(root, { recursive: true });
    this.secretFile = join(root, 'secret');
    this.slots = network.nodes.map((net) => ({
      net,
      name: `n${net.index}`,
      url: `http://${net.ip}:${CLIENT_PORT}`,
      peer: `/ip4/${net.ip}/tcp/${PEER_PORT}`,
      dataDir: join(root, `n${net.index}.0`),
      incarnation: 0,
      member: net.index <= voters,
      founder: net.index <= voters,
      child: undefined,
      paused: false,
    }));
    this.initialCluster = this.members.map((s) => `${s.name}=${s.peer}`).join(',');
    this.cleanup = onCleanup(() => {
      for (const slot of this.slots) killNow(slot);
    });
  }

  get members(): Slot[] {
    return this.slots.filter((s) => s.member);
  }

  /** Writes the cluster secret and starts every founder. */
  startFounders(): void {
    const secret = spawnSync(process.execPath, [CLI, 'secret', 'new'], { encoding: 'utf8' });
    if (secret.status !== 0) throw new Error(`conclave secret new failed: ${secret.stderr}`);
    writeFileSync(this.secretFile, secret.stdout, { mode: 0o600 });
    chmodSync(this.secretFile, 0o600);
    for (const slot of this.members) this.start(slot);
  }

  /** Starts `slot`'s process in its namespace, output appended to its log file. */
  start(slot: Slot): void {
    if (this.running(slot)) return;
    const placement = slot.founder
      ? ['--initial-cluster', this.initialCluster]
      : [
          '--join',
          this.slots
            .filter((s) => s !== slot && s.member)
            .map((s) => s.peer)
            .join(','),
        ];
    const args = [
      'netns',
      'exec',
      slot.net.ns,
      process.execPath,
      CLI,
      'start',
      '--name',
      slot.name,
      '--data-dir',
      slot.dataDir,
      '--peer-listen',
      slot.peer,
      '--client-listen',
      `${slot.net.ip}:${CLIENT_PORT}`,
      ...placement,
      '--cluster-secret-file',
      this.secretFile,
      ...NODE_ARGS,
    ];
    const log = openSync(join(this.root, `${slot.name}.log`), 'a');
    try {
      // `ip netns exec` execs the command, so the child's pid is the node's.
      slot.child = spawn('ip', args, { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    slot.paused = false;
  }

  running(slot: Slot): boolean {
    const child = slot.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** kill -9; resolves once the process is gone. */
  kill(slot: Slot): Promise<void> {
    const child = slot.child;
    if (!child?.pid || !this.running(slot)) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGKILL');
    slot.paused = false;
    return exited;
  }

  pause(slot: Slot): void {
    const pid = slot.child?.pid;
    if (pid === undefined || !this.running(slot)) return;
    process.kill(pid, 'SIGSTOP');
    slot.paused = true;
  }

  resume(slot: Slot): void {
    const pid = slot.child?.pid;
    if (pid !== undefined && this.running(slot)) process.kill(pid, 'SIGCONT');
    slot.paused = false;
  }

  /** Kills `slot` and gives it a fresh, empty data directory: it can only come back by joining. */
  async wipe(slot: Slot): Promise<void> {
    await this.kill(slot);
    rmSync(slot.dataDir, { recursive: true, force: true });
    slot.incarnation++;
    slot.dataDir = join(this.root, `${slot.name}.${slot.incarnation}`);
    slot.founder = false;
  }

  async status(slot: Slot, timeoutMs = 1000): Promise<NodeStatus | undefined> {
    if (!this.running(slot) || slot.paused) return undefined;
    try {
      const response = await fetch(`${slot.url}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
      return response.ok ? ((await response.json()) as NodeStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The member that says it leads, in the highest term among those that answer; undefined if none. */
  async leader(): Promise<Slot | undefined> {
    const views = await Promise.all(
      this.members.map(async (slot) => ({ slot, status: await this.status(slot) })),
    );
    let best: { slot: Slot; term: number } | undefined;
    for (const { slot, status } of views) {
      if (status?.state === 'leader' && (best === undefined || status.term > best.term)) {
        best = { slot, term: status.term };
      }
    }
    return best?.slot;
  }

  /** Polls until a member leads (and a majority of members name it); undefined at the deadline. */
  async waitForLeader(timeoutMs: number): Promise<Slot | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leader = await this.leader();
      if (leader) {
        const views = await Promise.all(this.members.map((s) => this.status(s)));
        const agree = views.filter((v) => v?.leader === leader.name).length;
        if (agree * 2 > this.members.length) return leader;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return undefined;
  }

  /** Kills every process and forgets them; the data stays until the root is removed. */
  async stop(): Promise<void> {
    for (const slot of this.slots) this.resume(slot);
    await Promise.all(this.slots.map((slot) => this.kill(slot)));
    this.cleanup.run();
  }
}

function killNow(slot: Slot): void {
  const child = slot.child;
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
