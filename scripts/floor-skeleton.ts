// The floor of Conclave's stack for puts: the same messages, writes and edge as a put, with no Raft, no state machine and no mesh protocol of ours.

/*
 * bench:floor runs this beside Conclave and etcd. One process per member (this script with
 * --skeleton-node), each on the libraries a Conclave member runs on and configured as a member
 * configures them: libp2p (TCP, Noise with coalesced writes, yamux; but not the mesh's
 * half-window policy, which sends fewer yamux window updates), RocksDB through storage/engine.ts, and on
 * member 0 (the "leader") a uWebSockets.js WebSocket. One put is, as in Conclave:
 * 1. the client sends a JSON document over the WebSocket; the leader parses it and builds an
 *    entry (a 16-byte header and the document);
 * 2. the leader sends the entry to every other member on one long-lived libp2p stream each, then
 *    writes it to RocksDB, synced;
 * 3. a member writes it, synced, and answers with an acknowledgement;
 * 4. once its own write and, with three members, one acknowledgement are in, the leader sends a
 *    commit notice to every other member, writes the document and the applied index unsynced,
 *    and answers the client with a small JSON object;
 * 5. a member that gets the notice writes the same, unsynced.
 * Under many clients it batches as Conclave does: the puts that arrive in one turn of the event
 * loop go to each member in one frame, and each member's synced writes are group commits (one in
 * flight; whatever arrives meanwhile goes in the next), acknowledged by the last index written;
 * the leader sends one commit notice per advance of the commit index and applies each run of
 * committed entries in one write. Appends are pipelined: a batch goes out before the last one is
 * acknowledged.
 * What it leaves out is everything Conclave adds on top: the Raft core, terms and checks, the
 * command encoding, watches and events, sessions, metrics, the mesh's codec and flow control.
 * So its CPU per put and latency are what the stack costs before any of Conclave's own code.
 */

import '../net/polyfill.js';
import type { WebSocket as UwsSocket } from 'uWebSockets.js';
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { Uint8ArrayList } from 'uint8arraylist';
import { WebSocket } from 'ws';
import { coalescingEncrypter } from '../net/transport-tuning.js';
import { loadUws } from '../net/uws.js';
import { EntryType } from '../raft/types.js';
import { encodeCommand } from '../storage/commands.js';
import { createEngine, type WriteOp } from '../storage/engine.js';
import type { Json } from '../storage/json.js';
import { NodeStorage } from '../storage/storage.js';

const PROTOCOL = '/conclave-floor/1.0.0';
const APPEND = 1;
const ACK = 2;
const COMMIT = 3;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Between members: 'libp2p' as a Conclave mesh is configured, or 'tcp', plain loopback sockets
 * with the same frames (no encryption, no multiplexing): what libp2p costs, by difference.
 */
export type SkeletonTransport = 'libp2p' | 'tcp';

/**
 * A member's storage: 'raw', two engine writes per put (the floor), or 'conclave', Conclave's
 * own storage/ (log store, state machine, write queue): what it adds shows by difference.
 */
export type SkeletonStorage = 'raw' | 'conclave';

/** What the parent and a member process say to each other over the IPC channel. */
type ToMember = { kind: 'peers'; addresses: string[] } | { kind: 'stop' };
type ToParent = { kind: 'listening'; address: string } | { kind: 'ready'; port: number };

/** [type u8][index u32][payload] with a u32 length in front. */
function frame(type: number, index: number, payload?: Uint8Array): Uint8Array {
  const body = 5 + (payload?.length ?? 0);
  const out = new Uint8Array(4 + body);
  const view = new DataView(out.buffer);
  view.setUint32(0, body);
  out[4] = type;
  view.setUint32(5, index);
  if (payload !== undefined) out.set(payload, 9);
  return out;
}

/** One member-to-member connection: a libp2p stream, or a plain TCP socket (the `tcp` variant). */
interface Link {
  send(bytes: Uint8Array): void;
  onData(listener: (chunk: Uint8Array) => void): void;
}

function streamLink(stream: Stream): Link {
  return {
    send: (bytes) => stream.send(bytes),
    onData: (listener) =>
      stream.addEventListener('message', (event) => {
        const data = event.data as Uint8Array | Uint8ArrayList;
        listener(data instanceof Uint8Array ? data : data.subarray());
      }),
  };
}

function socketLink(socket: Socket): Link {
  socket.setNoDelay(true);
  return {
    send: (bytes) => socket.write(bytes),
    onData: (listener) => socket.on('data', listener),
  };
}

/** Calls `onFrame` for every whole frame arriving on `link`. */
function readFrames(link: Link, onFrame: (type: number, index: number, payload: Uint8Array) => void): void {
  let buffered: Uint8Array = new Uint8Array(0);
  link.onData((chunk) => {
    if (buffered.length === 0) buffered = chunk;
    else {
      const joined = new Uint8Array(buffered.length + chunk.length);
      joined.set(buffered);
      joined.set(chunk, buffered.length);
      buffered = joined;
    }
    while (buffered.length >= 4) {
      const view = new DataView(buffered.buffer, buffered.byteOffset, buffered.byteLength);
      const length = view.getUint32(0);
      if (buffered.length < 4 + length) break;
      onFrame(buffered[4]!, view.getUint32(5), buffered.subarray(9, 4 + length));
      buffered = buffered.subarray(4 + length);
    }
  });
}

function logKey(index: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = 0x01;
  new DataView(key.buffer).setBigUint64(1, BigInt(index));
  return key;
}

const APPLIED_KEY = encoder.encode('\u0002applied');

/** An entry: [index u64][key length u32][reserved u32][key][document]. */
function entryOf(index: number, key: string, document: Uint8Array): Uint8Array {
  const keyBytes = encoder.encode(key);
  const entry = new Uint8Array(16 + keyBytes.length + document.length);
  const view = new DataView(entry.buffer);
  view.setBigUint64(0, BigInt(index));
  view.setUint32(8, keyBytes.length);
  entry.set(keyBytes, 16);
  entry.set(document, 16 + keyBytes.length);
  return entry;
}

function parseEntry(entry: Uint8Array): { key: string; document: Uint8Array } {
  const length = new DataView(entry.buffer, entry.byteOffset, entry.byteLength).getUint32(8);
  return { key: decoder.decode(entry.subarray(16, 16 + length)), document: entry.subarray(16 + length) };
}

async function memberNode(listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [coalescingEncrypter(noise())],
    streamMuxers: [yamux({ maxInboundStreams: 64, maxOutboundStreams: 64 })],
    connectionMonitor: { enabled: false },
  });
}

/** One entry of the log: its index and bytes. */
interface Appended {
  readonly at: number;
  readonly entry: Uint8Array;
}

/** Where a member keeps entries and applies them. */
interface Store {
  /** The bytes entry `at` carries for a put of `value` under `key`. */
  entry(at: number, key: string, value: unknown): Uint8Array;
  /** Writes consecutive entries to the log in one synced write. */
  append(entries: readonly Appended[]): Promise<void>;
  /** Applies consecutive committed entries in one unsynced write. */
  apply(entries: readonly Appended[]): Promise<void>;
  close(): Promise<void>;
}

/** Raw engine writes: each entry to a log key, synced; the documents and the applied index, unsynced. */
async function rawStore(location: string): Promise<Store> {
  const engine = createEngine({ kind: 'rocksdb', location });
  await engine.open();
  return {
    entry: (at, key, value) => entryOf(at, key, encoder.encode(JSON.stringify(value))),
    append: (entries) =>
      engine.write(
        entries.map(({ at, entry }) => ({ type: 'put', key: logKey(at), value: entry })),
        true,
      ),
    apply: (entries) => {
      const applied = new Uint8Array(8);
      new DataView(applied.buffer).setBigUint64(0, BigInt(entries[entries.length - 1]!.at));
      const ops: WriteOp[] = entries.map(({ entry }) => {
        const { key, document } = parseEntry(entry);
        return { type: 'put', key: encoder.encode(`\u0003${key}`), value: document };
      });
      ops.push({ type: 'put', key: APPLIED_KEY, value: applied });
      return engine.write(ops, false);
    },
    close: () => engine.close(),
  };
}

/**
 * Conclave's own storage/: entries are encoded put commands, saved by its log store and applied
 * by its state machine (documents, events, revisions) through its write queue. The difference
 * from the raw store is what storage/ costs a put.
 */
async function conclaveStore(dataDir: string): Promise<Store> {
  const node = await NodeStorage.open({ dataDir, clusterId: 'floor', storageEngine: 'rocksdb' });
  const group = await node.bootstrapGroup(1, { voters: ['n1'], learners: [] });
  const entriesOf = (entries: readonly Appended[]) =>
    entries.map(({ at, entry }) => ({ index: at, term: 1, type: EntryType.Normal, data: entry }));
  return {
    entry: (at, key, value) =>
      encodeCommand({ v: 1, time: at, op: { type: 'put', realm: 'default', key, value: value as Json } }),
    append: (entries) => group.persist({ entries: entriesOf(entries) }),
    apply: async (entries) => {
      await group.apply(entriesOf(entries));
    },
    close: () => node.close(),
  };
}

/**
 * Group commit: at most one synced append in flight; entries handed over meanwhile go together
 * in the next. `onDurable` gets the last index of each write once it is durable.
 */
class AppendQueue {
  private waiting: Appended[] = [];
  private writing = false;

  constructor(
    private readonly store: Store,
    private readonly onDurable: (at: number) => void,
  ) {}

  push(entries: readonly Appended[]): void {
    this.waiting.push(...entries);
    if (!this.writing) this.next();
  }

  private next(): void {
    if (this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.writing = true;
    this.store.append(batch).then(
      () => {
        this.writing = false;
        this.onDurable(batch[batch.length - 1]!.at);
        this.next();
      },
      (error: unknown) => fail(error),
    );
  }
}

/** Applies committed entries in order, one unsynced write per run of them. */
class Applier {
  private applied: number;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    from: number,
  ) {
    this.applied = from;
  }

  /** Applies entries after the last applied up to `commit` (taken from `entries`), then calls `done` with them. */
  advance(
    commit: number,
    entries: Map<number, Uint8Array>,
    done?: (applied: readonly Appended[]) => void,
  ): void {
    if (commit <= this.applied) return;
    const batch: Appended[] = [];
    for (let at = this.applied + 1; at <= commit; at++) {
      const entry = entries.get(at);
      if (entry === undefined) break;
      entries.delete(at);
      batch.push({ at, entry });
    }
    if (batch.length === 0) return;
    this.applied = batch[batch.length - 1]!.at;
    this.chain = this.chain
      .then(() => this.store.apply(batch))
      .then(
        () => done?.(batch),
        (error: unknown) => fail(error),
      );
  }
}

function fail(error: unknown): never {
  console.error(`floor skeleton member: ${(error as Error).stack ?? error}`);
  process.exit(1);
}

/** An APPEND frame's payload: [count u32] then [length u32][entry] per entry. */
function appendPayload(entries: readonly Appended[]): Uint8Array {
  let bytes = 4;
  for (const { entry } of entries) bytes += 4 + entry.length;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, entries.length);
  let offset = 4;
  for (const { entry } of entries) {
    view.setUint32(offset, entry.length);
    out.set(entry, offset + 4);
    offset += 4 + entry.length;
  }
  return out;
}

function parseAppend(first: number, payload: Uint8Array): Appended[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const count = view.getUint32(0);
  const entries: Appended[] = [];
  let offset = 4;
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(offset);
    entries.push({ at: first + i, entry: payload.slice(offset + 4, offset + 4 + length) });
    offset += 4 + length;
  }
  return entries;
}

/** How members reach each other: listening (followers) and dialing (the leader). */
interface Transport {
  /** Listens; every inbound connection is handed to `accept`. Resolves with the address to dial. */
  listen(accept: (link: Link) => void): Promise<string>;
  dial(address: string): Promise<Link>;
  stop(): Promise<void>;
}

async function libp2pTransport(listening: boolean): Promise<Transport> {
  const node = await memberNode(listening);
  return {
    listen: async (accept) => {
      await node.handle(PROTOCOL, (stream) => accept(streamLink(stream)), { maxInboundStreams: 4 });
      return node.getMultiaddrs()[0]!.toString();
    },
    dial: async (address) => streamLink(await node.dialProtocol(multiaddr(address), PROTOCOL)),
    stop: async () => {
      await node.stop();
    },
  };
}

function tcpTransport(): Transport {
  const server = createServer();
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    return socket;
  };
  return {
    listen: (accept) =>
      new Promise((resolve) => {
        server.on('connection', (socket) => accept(socketLink(track(socket))));
        server.listen(0, '127.0.0.1', () => resolve(String((server.address() as { port: number }).port)));
      }),
    dial: (address) =>
      new Promise((resolve, reject) => {
        const socket = createConnection({ host: '127.0.0.1', port: Number(address) }, () =>
          resolve(socketLink(track(socket))),
        );
        socket.once('error', reject);
      }),
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A member process: member 0 leads and serves the WebSocket; the others follow. */
async function runMember(
  index: number,
  dir: string,
  kind: SkeletonTransport,
  storage: SkeletonStorage,
): Promise<void> {
  const location = join(dir, `m${index}`);
  const store = storage === 'raw' ? await rawStore(location) : await conclaveStore(location);
  const transport = kind === 'libp2p' ? await libp2pTransport(index !== 0) : tcpTransport();
  const send = (message: ToParent) => process.send!(message);
  // The group is bootstrapped at index 1 by Conclave's storage; the raw store starts there too.
  const entries = new Map<number, Uint8Array>();
  const applier = new Applier(store, 1);
  if (index !== 0) {
    // A follower: appends synced (group commit) and acknowledged, commits applied unsynced.
    let link: Link | undefined;
    const appends = new AppendQueue(store, (at) => link?.send(frame(ACK, at)));
    const address = await transport.listen((accepted) => {
      link = accepted;
      readFrames(accepted, (type, at, payload) => {
        if (type === APPEND) {
          const batch = parseAppend(at, payload);
          for (const { at, entry } of batch) entries.set(at, entry);
          appends.push(batch);
        } else if (type === COMMIT) applier.advance(at, entries);
      });
    });
    send({ kind: 'listening', address });
  } else {
    const peers = await new Promise<string[]>((resolve) =>
      process.once('message', (m: ToMember) => resolve(m.kind === 'peers' ? m.addresses : [])),
    );
    const links = await Promise.all(peers.map((address) => transport.dial(address)));
    const quorum = Math.floor((peers.length + 1) / 2) + 1;
    // Durable index per member: the leader's own first, then each follower's acknowledged one.
    const durable = [1, ...links.map(() => 1)];
    let committed = 1;
    const answers = new Map<number, () => void>();
    const commitTo = () => {
      const commit = [...durable].sort((x, y) => y - x)[quorum - 1]!;
      if (commit <= committed) return;
      committed = commit;
      for (const link of links) link.send(frame(COMMIT, commit));
      applier.advance(commit, entries, (applied) => {
        for (const { at } of applied) {
          answers.get(at)?.();
          answers.delete(at);
        }
      });
    };
    const appends = new AppendQueue(store, (at) => {
      durable[0] = at;
      commitTo();
    });
    for (const [i, link] of links.entries()) {
      readFrames(link, (type, at) => {
        if (type !== ACK) return;
        durable[i + 1] = Math.max(durable[i + 1]!, at);
        commitTo();
      });
    }
    // Proposals of one turn of the event loop go out as one batch: one frame per follower, one write.
    let nextIndex = 2;
    let batch: Appended[] = [];
    const flush = () => {
      const out = batch;
      batch = [];
      const payload = frame(APPEND, out[0]!.at, appendPayload(out));
      for (const link of links) link.send(payload);
      appends.push(out);
    };
    const { uws } = loadUws();
    const port = await new Promise<number>((resolve, reject) => {
      uws
        .App()
        .ws('/*', {
          maxPayloadLength: 1024 * 1024,
          message: (ws: UwsSocket<unknown>, data: ArrayBuffer) => {
            const request = JSON.parse(decoder.decode(new Uint8Array(data))) as {
              id: number;
              key: string;
              value: unknown;
            };
            const at = nextIndex++;
            const entry = store.entry(at, request.key, request.value);
            entries.set(at, entry);
            answers.set(at, () => ws.send(JSON.stringify({ id: request.id, revision: at })));
            if (batch.length === 0) setImmediate(flush);
            batch.push({ at, entry });
          },
        })
        .listen('127.0.0.1', 0, (socket) => {
          if (socket === false) return reject(new Error('the floor skeleton could not listen'));
          resolve(uws.us_socket_local_port(socket));
        });
    });
    send({ kind: 'ready', port });
  }
  await new Promise<void>((resolve) =>
    process.on('message', (m: ToMember) => m.kind === 'stop' && resolve()),
  );
  await transport.stop();
  await store.close();
  process.exit(0);
}

/** A running skeleton cluster and WebSocket clients of its leader. */
export interface Skeleton {
  readonly pids: readonly number[];
  /** One put, on the next of the connections in turn: resolves with the log index the leader answered. */
  put(key: string, value: unknown): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts `members` member processes (1 or 3) with their data in a new temporary directory and
 * opens `connections` WebSockets to the leader; `nodeFlags` are passed to node (--cpu-prof, for one).
 */
export async function startSkeleton(
  members: number,
  transport: SkeletonTransport = 'libp2p',
  nodeFlags: readonly string[] = [],
  storage: SkeletonStorage = 'raw',
  connections = 1,
): Promise<Skeleton> {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-floor-skeleton-'));
  const script = fileURLToPath(import.meta.url);
  const children = Array.from({ length: members }, (_, i) =>
    fork(script, ['--skeleton-node', String(i), dir, transport, storage], {
      execArgv: [...process.execArgv, ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const first = <T extends ToParent['kind']>(i: number, kind: T) =>
    new Promise<Extract<ToParent, { kind: T }>>((resolve, reject) => {
      children[i]!.on(
        'message',
        (m: ToParent) => m.kind === kind && resolve(m as Extract<ToParent, { kind: T }>),
      );
      children[i]!.once('exit', (code) => reject(new Error(`skeleton member ${i} exited (${code})`)));
    });
  const stop = async () => {
    for (const child of children) {
      if (child.exitCode === null && child.connected) child.send({ kind: 'stop' } satisfies ToMember);
    }
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const addresses = await Promise.all(children.slice(1).map((_, i) => first(i + 1, 'listening')));
    const ready = first(0, 'ready');
    children[0]!.send({ kind: 'peers', addresses: addresses.map((a) => a.address) } satisfies ToMember);
    const { port } = await ready;
    const waiting = new Map<number, (revision: number) => void>();
    const sockets = await Promise.all(
      Array.from({ length: connections }, async () => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
        await new Promise<void>((resolve, reject) => {
          socket.once('open', () => resolve());
          socket.once('error', reject);
        });
        socket.on('message', (data: Buffer) => {
          const { id, revision } = JSON.parse(data.toString('utf8')) as { id: number; revision: number };
          waiting.get(id)?.(revision);
          waiting.delete(id);
        });
        return socket;
      }),
    );
    let nextId = 1;
    return {
      pids: children.map((child) => child.pid!),
      put: (key, value) =>
        new Promise<number>((resolve) => {
          const id = nextId++;
          waiting.set(id, resolve);
          sockets[id % sockets.length]!.send(JSON.stringify({ id, key, value }));
        }),
      stop: async () => {
        for (const socket of sockets) socket.close();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

if (process.argv[2] === '--skeleton-node') {
  runMember(
    Number(process.argv[3]),
    process.argv[4]!,
    process.argv[5] === 'tcp' ? 'tcp' : 'libp2p',
    process.argv[6] === 'conclave' ? 'conclave' : 'raw',
  ).catch((error: unknown) => {
    console.error(`floor skeleton member ${process.argv[3]}: ${(error as Error).stack ?? error}`);
    process.exit(1);
  });
}
