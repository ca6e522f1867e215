// Shared helpers of the mesh and edge tests: free ports, bounded polling, recording logger, mesh clusters.

import '../../net/polyfill.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { MeshLimits } from '../../net/config.js';
import { freePorts } from '../../scripts/free-port.js';

export { freePorts };

import type { VersionRange } from '../../net/hello.js';
import type { Logger } from '../../net/log.js';
import { Mesh, type MeshHandlers } from '../../net/mesh.js';
import { type ClusterSecret, generateClusterSecret, parseClusterSecret } from '../../net/secret.js';
import type { Message } from '../../raft/types.js';

/** A small deterministic PRNG (mulberry32) returning [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Polls `condition` every `intervalMs` until it holds; throws naming `what` after `timeoutMs`.
 * Tests wait for states this way, never with fixed sleeps.
 */
export async function waitFor(
  what: string,
  condition: () => boolean,
  { timeoutMs = 15_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A logger that keeps every line in memory for assertions (and prints nothing). */
export interface RecordingLogger extends Logger {
  readonly lines: { level: string; event: string; fields: Record<string, unknown> }[];
  events(event: string): Record<string, unknown>[];
}

export function recordingLogger(): RecordingLogger {
  const lines: RecordingLogger['lines'] = [];
  const at =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) => {
      lines.push({ level, event, fields });
    };
  return {
    lines,
    events: (event) => lines.filter((line) => line.event === event).map((line) => line.fields),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

export function newSecret(): ClusterSecret {
  return parseClusterSecret(generateClusterSecret());
}

export function newKey(): Promise<PrivateKey> {
  return generateKeyPair('Ed25519');
}

export async function tempDir(t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-net-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Everything one test node received. */
export interface Received {
  readonly raft: { from: string; groupId: number; messages: Message[] }[];
  readonly ups: string[];
  readonly downs: string[];
}

export interface NodeSpec {
  readonly key: PrivateKey;
  readonly port: number;
  readonly secret: ClusterSecret;
  readonly peers: readonly string[];
  readonly limits?: Partial<MeshLimits>;
  readonly handlers?: Partial<MeshHandlers>;
  readonly logger?: Logger;
  readonly admit?: (peer: string) => boolean;
  /** The protocol versions the node speaks (this build's by default). */
  readonly versions?: VersionRange;
}

/** Fast timings for loopback tests: quick redials, short hello deadline. */
export const TEST_LIMITS: Partial<MeshLimits> = {
  redialBaseMs: 20,
  redialMaxMs: 500,
  helloTimeoutMs: 2_000,
  dialTimeoutMs: 2_000,
  pingIntervalMs: 1_000,
  inboundConnectionsPerSecondPerHost: 1_000,
};

/** A started mesh and what it received. */
export interface TestNode {
  readonly mesh: Mesh;
  readonly received: Received;
  readonly spec: NodeSpec;
  readonly logger: RecordingLogger;
}

export async function startNode(spec: NodeSpec): Promise<TestNode> {
  const received: Received = { raft: [], ups: [], downs: [] };
  const logger = recordingLogger();
  const mesh = new Mesh({
    privateKey: spec.key,
    listen: [`/ip4/127.0.0.1/tcp/${spec.port}`],
    peers: spec.peers,
    secret: spec.secret,
    limits: { ...TEST_LIMITS, ...spec.limits },
    logger: spec.logger ?? logger,
    ...(spec.admit === undefined ? {} : { admit: spec.admit }),
    ...(spec.versions === undefined ? {} : { versions: spec.versions }),
    handlers: {
      raft: (from, batch) => received.raft.push({ from, groupId: batch.groupId, messages: batch.messages }),
      peerUp: (peer) => received.ups.push(peer),
      peerDown: (peer) => received.downs.push(peer),
      ...spec.handlers,
    },
  });
  await mesh.start();
  return { mesh, received, spec, logger };
}

/** `count` nodes, each configured with the others' hardcoded addresses (unpinned unless `pin`). */
export async function startCluster(
  count: number,
  options: {
    secret?: ClusterSecret;
    pin?: boolean;
    limits?: Partial<MeshLimits>;
    handlers?: Partial<MeshHandlers>;
  } = {},
): Promise<TestNode[]> {
  const secret = options.secret ?? newSecret();
  const ports = await freePorts(count);
  const keys = await Promise.all(ports.map(() => newKey()));
  const ids = keys.map((key) => peerIdFromPrivateKey(key).toString());
  const address = (i: number) =>
    `/ip4/127.0.0.1/tcp/${ports[i]}${options.pin === true ? `/p2p/${ids[i]}` : ''}`;
  return Promise.all(
    ports.map((port, i) =>
      startNode({
        key: keys[i]!,
        port,
        secret,
        peers: ports.flatMap((_, j) => (j === i ? [] : [address(j)])),
        ...(options.limits === undefined ? {} : { limits: options.limits }),
        ...(options.handlers === undefined ? {} : { handlers: options.handlers }),
      }),
    ),
  );
}

/** Waits until every node has raft and rpc streams to every other. */
export async function waitFullyConnected(nodes: readonly TestNode[], timeoutMs = 15_000): Promise<void> {
  await waitFor(
    'every pair of nodes to have its raft and rpc streams',
    () =>
      nodes.every((a) =>
        nodes.every(
          (b) =>
            a === b ||
            a.mesh.peers().some((peer) => peer.peer === b.mesh.peerId && peer.raftStream && peer.rpcStream),
        ),
      ),
    { timeoutMs },
  );
}

export async function stopAll(nodes: readonly (TestNode | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((node) => node?.mesh.stop()));
}

/** All raft messages `node` received from `from` in group `groupId`, in arrival order. */
export function messagesFrom(node: TestNode, from: string, groupId?: number): Message[] {
  return node.received.raft
    .filter((batch) => batch.from === from && (groupId === undefined || batch.groupId === groupId))
    .flatMap((batch) => batch.messages);
}
