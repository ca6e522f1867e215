// Launches a cluster of real conclave node processes on 127.0.0.1 with free ports; used by tests and benchmarks.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

export { freePort };

/** The last 4 KiB each node process wrote to stderr (start(): not inherited, not to a log file). */
const stderrTails = new WeakMap<ChildProcess, string>();

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'src', 'cli.js');

/** Every node and proxy process started here and not yet exited. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Tracks `child` until it exits. If this process exits first (a test runner's timeout ends it
 * before the test's teardown runs), its children are killed by pid, not left running.
 */
function track(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const live of liveChildren) {
        if (live.pid === undefined) continue;
        try {
          process.kill(live.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    });
  }
  return child;
}

export interface ClusterNode {
  readonly name: string;
  readonly peerPort: number;
  readonly clientPort: number;
  readonly dataDir: string;
  readonly url: string;
  /** Mesh addresses to join through, for a node added to the running cluster; undefined for founders. */
  join?: readonly string[];
  /** Its own --initial-cluster (a node made the only voter of a new cluster); the cluster's by default. */
  initialCluster?: string;
  /** More `start` flags for this node alone (e.g. --role spare). */
  extraArgs?: readonly string[];
  /** Its --services (raft,api,admin by default). */
  services?: string;
  /** Started without --peer-listen (a satellite that only dials). */
  readonly noPeerListen?: boolean;
  child: ChildProcess | undefined;
}

export interface NodeStatusView {
  readonly state: string;
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
}

/** A stateless proxy process (services without raft, no --data-dir), run in its own empty directory. */
export interface ProxyProcess {
  readonly name: string;
  readonly clientPort: number;
  readonly url: string;
  /** Its working directory, empty at start: a proxy writes nothing, so it stays empty. */
  readonly cwd: string;
  child: ChildProcess | undefined;
  /** Its standard output so far (the start line). */
  stdout: string;
}

/**
 * N voters bootstrapped from hardcoded addresses, each a child process with its own data
 * directory under one temporary root. stop() kills every process by pid and removes the root.
 */
export class LocalCluster {
  readonly nodes: ClusterNode[] = [];
  readonly proxies: ProxyProcess[] = [];
  private readonly root: string;
  private readonly secretFile: string;
  private initialCluster = '';

  constructor(private readonly extraArgs: readonly string[] = []) {
    this.root = mkdtempSync(join(tmpdir(), 'conclave-cluster-'));
    this.secretFile = join(this.root, 'secret');
  }

  async create(size: number): Promise<void> {
    const secret = spawnSync(process.execPath, [CLI, 'secret', 'new'], { encoding: 'utf8' });
    if (secret.status !== 0) throw new Error(`conclave secret new failed: ${secret.stderr}`);
    writeFileSync(this.secretFile, secret.stdout, { mode: 0o600 });
    chmodSync(this.secretFile, 0o600);
    for (let i = 1; i <= size; i++) {
      const clientPort = await freePort();
      this.nodes.push({
        name: `n${i}`,
        peerPort: await freePort(),
        clientPort,
        dataDir: join(this.root, `n${i}`),
        url: `http://127.0.0.1:${clientPort}`,
        child: undefined,
      });
    }
    this.initialCluster = this.nodes.map((n) => `${n.name}=/ip4/127.0.0.1/tcp/${n.peerPort}`).join(',');
  }

  /**
   * A new node (not started) that joins the running cluster through every existing node's mesh
   * address; add it with `conclave members add NAME --peer` + its peerAddress.
   */
  async addJoiner(
    extraArgs: readonly string[] = [],
    options: { peerListen?: boolean; join?: readonly ClusterNode[] } = {},
  ): Promise<ClusterNode> {
    const index = this.nodes.length + 1;
    const clientPort = await freePort();
    const node: ClusterNode = {
      name: `n${index}`,
      peerPort: await freePort(),
      clientPort,
      dataDir: join(this.root, `n${index}`),
      url: `http://127.0.0.1:${clientPort}`,
      join: (options.join ?? this.nodes).map((n) => peerAddress(n)),
      extraArgs,
      noPeerListen: options.peerListen === false,
      child: undefined,
    };
    this.nodes.push(node);
    return node;
  }

  /** The command line that starts `node` (CLI path first); `secretFile` overrides the cluster's. */
  args(node: ClusterNode, secretFile = this.secretFile): string[] {
    return [
      CLI,
      'start',
      '--name',
      node.name,
      '--data-dir',
      node.dataDir,
      ...(node.noPeerListen ? [] : ['--peer-listen', `/ip4/127.0.0.1/tcp/${node.peerPort}`]),
      '--client-listen',
      `127.0.0.1:${node.clientPort}`,
      ...(node.join
        ? ['--join', node.join.join(',')]
        : ['--initial-cluster', node.initialCluster ?? this.initialCluster]),
      '--cluster-secret-file',
      secretFile,
      '--services',
      node.services ?? 'raft,api,admin',
      ...this.extraArgs,
      ...(node.extraArgs ?? []),
    ];
  }

  /**
   * Starts `node`; `env` adds environment variables (e.g. a fault to inject), `nodeFlags` flags
   * for node itself (e.g. --cpu-prof, which NODE_OPTIONS may not carry); `logFile` gets its
   * stdout and stderr (appended).
   */
  start(
    node: ClusterNode,
    env: Readonly<Record<string, string>> = {},
    nodeFlags: readonly string[] = [],
    logFile?: string,
  ): void {
    const log = logFile === undefined ? undefined : openSync(logFile, 'a');
    const child = track(
      spawn(process.execPath, [...nodeFlags, ...this.args(node)], {
        stdio:
          log !== undefined
            ? ['ignore', log, log]
            : process.env.CONCLAVE_CLUSTER_LOGS
              ? ['ignore', 'inherit', 'inherit']
              : ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, ...env },
      }),
    );
    node.child = child;
    // The end of what it says on stderr (why it refused to start, a crash), for failed tests.
    let tail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      tail = (tail + text).slice(-4096);
      stderrTails.set(child, tail);
    });
    if (log !== undefined) closeSync(log);
  }

  /**
   * Throws, naming each and quoting the end of its stderr, if a node started by this cluster
   * exited without the test asking it to (e.g. its port was taken).
   */
  assertRunning(nodes: readonly ClusterNode[] = this.nodes): void {
    const dead = nodes.filter((node) => node.child !== undefined && !isRunning(node.child));
    if (dead.length === 0) return;
    throw new Error(
      dead
        .map(
          (node) =>
            `${node.name} exited (code ${node.child?.exitCode}, signal ${node.child?.signalCode}): ` +
            (stderrTails.get(node.child!) ?? '(nothing on stderr)'),
        )
        .join('\n'),
    );
  }

  /** A stateless proxy named p1, p2, … (not started) with a free client port and an empty working directory. */
  async addProxy(): Promise<ProxyProcess> {
    const name = `p${this.proxies.length + 1}`;
    const clientPort = await freePort();
    const cwd = join(this.root, `${name}-cwd`);
    mkdirSync(cwd);
    const proxy: ProxyProcess = {
      name,
      clientPort,
      url: `http://127.0.0.1:${clientPort}`,
      cwd,
      child: undefined,
      stdout: '',
    };
    this.proxies.push(proxy);
    return proxy;
  }

  /**
   * Starts `proxy` with `services` (api, or api,admin), finding members through `join` (every
   * member's mesh address by default), without --data-dir, in its own working directory.
   */
  startProxy(
    proxy: ProxyProcess,
    services = 'api',
    join: readonly ClusterNode[] = this.nodes,
    extra: readonly string[] = [],
  ): void {
    const args = [
      CLI,
      'start',
      '--name',
      proxy.name,
      '--client-listen',
      `127.0.0.1:${proxy.clientPort}`,
      '--join',
      join.map((n) => peerAddress(n)).join(','),
      '--cluster-secret-file',
      this.secretFile,
      '--services',
      services,
      ...extra,
    ];
    const child = track(
      spawn(process.execPath, args, {
        cwd: proxy.cwd,
        stdio: ['ignore', 'pipe', process.env.CONCLAVE_CLUSTER_LOGS ? 'inherit' : 'ignore'],
      }),
    );
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => {
      if (proxy.stdout.length < 64 * 1024) proxy.stdout += text;
    });
    proxy.child = child;
  }

  /** Whether `node`'s process runs. */
  running(node: ClusterNode): boolean {
    return node.child !== undefined && isRunning(node.child);
  }

  /** A fresh secret file in the cluster's root, for starting a node as if of another cluster. */
  otherSecretFile(): string {
    const path = join(this.root, 'other-secret');
    const secret = spawnSync(process.execPath, [CLI, 'secret', 'new'], { encoding: 'utf8' });
    writeFileSync(path, secret.stdout, { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  }

  startAll(order: readonly ClusterNode[] = this.nodes): void {
    for (const node of order) this.start(node);
  }

  kill(
    node: { readonly child: ChildProcess | undefined },
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<void> {
    const child = node.child;
    if (!child?.pid || !isRunning(child)) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, signal);
    return exited;
  }

  /**
   * The token status() sends: this, or else the node's own first admin token (DATA_DIR/admin.token,
   * a founder started with --auth) once written.
   */
  token: string | undefined;

  /** The Authorization header for `node`: the cluster's token, or its own admin token; none without either. */
  authHeaders(node: ClusterNode): Record<string, string> {
    let token = this.token;
    if (token === undefined) {
      try {
        token = readFileSync(join(node.dataDir, 'admin.token'), 'utf8').trim();
      } catch {
        return {};
      }
    }
    return { authorization: `Bearer ${token}` };
  }

  async status(node: ClusterNode): Promise<NodeStatusView | undefined> {
    try {
      const response = await fetch(`${node.url}/v1/status`, {
        signal: AbortSignal.timeout(1000),
        headers: this.authHeaders(node),
      });
      return response.ok ? ((await response.json()) as NodeStatusView) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Waits until every running node names the same leader; returns it. */
  async waitForLeader(timeoutMs = 15_000): Promise<ClusterNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.nodes.filter((n) => n.child !== undefined && isRunning(n.child));
      const views = await Promise.all(running.map((n) => this.status(n)));
      const leaders = new Set(views.map((v) => v?.leader));
      const name = views[0]?.leader;
      if (name && leaders.size === 1 && views.every((v) => v !== undefined)) {
        const leader = this.nodes.find((n) => n.name === name);
        if (leader) return leader;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes, ...this.proxies].map((n) => this.kill(n, 'SIGKILL')));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The mesh address of `node` on 127.0.0.1. */
export function peerAddress(node: ClusterNode): string {
  return `/ip4/127.0.0.1/tcp/${node.peerPort}`;
}

/** A child killed by a signal has a null exitCode but a signalCode: neither means it runs. */
function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}
