// Shared by the watch-hub and ws-api tests: storage on the memory engine, a KvService that applies commands for real (sessions included), a node edge with the WebSocket API, and a `ws` client.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Edge, type EdgeLimits } from '../../net/index.js';
import { EntryType } from '../../raft/types.js';
import { newClientApi } from '../../src/client-api.js';
import { ERROR_TABLE } from '../../src/error-codes.js';
import { httpRoutes } from '../../src/http-api.js';
import type { Consistency, KvService, NodeStatus, ServedRead } from '../../src/kv-service.js';
import { WatchHub, type WatchHubLimits, type WatchSource } from '../../src/watch-hub.js';
import { webSocketApi } from '../../src/ws-api.js';
import {
  COMMAND_VERSION,
  type CommandResult,
  type Document,
  encodeCommand,
  type GroupStorage,
  type HistoryOptions,
  type Json,
  type ListOptions,
  MemoryVolume,
  NodeStorage,
  type Operation,
  type RealmStateStore,
  type SessionRef,
  type StorageConfigInput,
} from '../../storage/index.js';
import { type RecordingLogger, recordingLogger } from '../net/helpers.js';
import { ONE } from '../storage/helpers.js';

/** The parts of a tap Test the harness uses. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** How long any wait for a condition may take before the test fails (generous: a loaded 2-core box). */
export const WAIT_MS = 30_000;

/** Resolves once `condition()` holds; polls, and fails naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export interface OpenedStorage {
  readonly storage: NodeStorage;
  readonly group: GroupStorage;
  readonly dir: string;
}

/**
 * Storage on the memory engine in a fresh directory, with a founder's group 1 (revision 1: the
 * `default` realm). Closed and removed at teardown.
 */
export async function openStorage(
  t: Teardown,
  extra: Partial<StorageConfigInput> = {},
  clusterId = 'ws-test',
): Promise<OpenedStorage> {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-ws-'));
  const storage = await NodeStorage.open({
    dataDir: dir,
    clusterId,
    storageEngine: 'memory',
    memoryVolume: new MemoryVolume(),
    ...extra,
  });
  t.teardown(async () => {
    await storage.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return { storage, group: await storage.bootstrapGroup(1, ONE), dir };
}

/**
 * Logs and applies commands to a group as consecutive entries, one at a time in call order (calls
 * may overlap: each waits for the one before), and remembers what each did.
 */
export class Writer {
  private tail: Promise<unknown> = Promise.resolve();
  /** Every write's operation and result, in apply order. */
  readonly done: { op: Operation; result: CommandResult }[] = [];

  constructor(readonly group: GroupStorage) {}

  write(op: Operation, session?: SessionRef): Promise<CommandResult> {
    const run = this.tail.then(async () => {
      const index = this.group.state.appliedIndex + 1;
      const data = encodeCommand({
        v: COMMAND_VERSION,
        time: 1_000 + index,
        ...(session === undefined ? {} : { session }),
        op,
      });
      const entry = { index, term: 1, type: EntryType.Normal, data };
      // Logged too, as raft would: a snapshot must lie inside the log.
      await this.group.persist({ entries: [entry] });
      const [outcome] = await this.group.apply([entry]);
      if (outcome?.kind !== 'command') throw new Error(`entry ${index} applied as ${outcome?.kind}`);
      this.done.push({ op, result: outcome.result });
      return outcome.result;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** A put in `realm`; resolves with the revision it made (fails the test otherwise). */
  async put(key: string, value: Json, realm = 'default'): Promise<number> {
    const result = await this.write({ type: 'put', realm, key, value });
    if (!result.ok) throw new Error(`put ${key} failed: ${result.error.code} ${result.error.message}`);
    return result.revision;
  }
}

/**
 * A KvService that runs every command for real through a Writer, passing the write's session
 * into the command (test/node/http-api.test.ts's StorageKvService drops it, so its sessions
 * would not be applied at most once). Reads go to the state store.
 */
export class SessionKvService implements KvService {
  readonly writer: Writer;
  /** What reached write(), with its session. */
  readonly writes: { op: Operation; session: SessionRef | undefined }[] = [];

  constructor(readonly group: GroupStorage) {
    this.writer = new Writer(group);
  }

  write(op: Operation, session?: SessionRef): Promise<CommandResult> {
    this.writes.push({ op, session });
    return this.writer.write(op, session);
  }

  async get(realm: string, key: string, _consistency: Consistency): Promise<ServedRead<Document>> {
    return this.group.state.get(realm, key);
  }

  async list(
    realm: string,
    options: ListOptions,
    _consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    return this.group.state.list(realm, options);
  }

  async definition(): Promise<never> {
    throw Object.assign(new Error('no definition in this fake'), { code: 'UNAVAILABLE' });
  }

  async realms(_consistency: Consistency): Promise<ServedRead<string[]>> {
    return { ok: true, revision: this.group.state.revision, value: this.group.state.realms() };
  }

  status(): NodeStatus {
    return singleNodeStatus(this.group);
  }

  ready(): { ready: boolean; reason?: string } {
    return { ready: true };
  }
}

export interface WsNode {
  readonly url: string;
  readonly edge: Edge;
  readonly hub: WatchHub;
  readonly service: SessionKvService;
  readonly group: GroupStorage;
  readonly logger: RecordingLogger;
  /** A client of this node's /v1/ws, closed at teardown. */
  connect(): Promise<WsClient>;
}

export interface WsNodeOptions {
  readonly storage?: Partial<StorageConfigInput>;
  readonly edge?: Partial<EdgeLimits>;
  readonly hub?: Partial<WatchHubLimits>;
  /** What the hub reads history from (default: the state store itself). */
  readonly source?: (store: RealmStateStore) => WatchSource;
}

/**
 * A node's client side in-process, wired as src/node.ts wires it: the HTTP routes and the
 * WebSocket API on an edge at 127.0.0.1:0, a WatchHub fed by the state store. Everything is
 * closed at teardown: clients, hub, edge, storage.
 */
export async function startWsNode(t: Teardown, options: WsNodeOptions = {}): Promise<WsNode> {
  const { storage, group } = await openStorage(t, options.storage);
  const service = new SessionKvService(group);
  const logger = recordingLogger();
  const hub = new WatchHub(options.source?.(group.state) ?? group.state, options.hub);
  group.state.onChange((change) => hub.onChange(change));
  const api = newClientApi(service, { limits: storage.config, logger });
  const edge = new Edge({
    errors: ERROR_TABLE,
    host: '127.0.0.1',
    port: 0,
    routes: httpRoutes(api),
    websocket: webSocketApi(api, hub, logger),
    ...(options.edge ? { limits: options.edge } : {}),
    logger,
  });
  await edge.start();
  const clients: WsClient[] = [];
  // Registered after the storage's teardown, so it runs before it (tap runs teardowns last
  // registered first): no client can reach a closed storage.
  t.teardown(async () => {
    for (const client of clients) client.terminate();
    hub.stop();
    group.state.onChange(undefined);
    await edge.stop();
  });
  const url = `ws://127.0.0.1:${edge.port}/v1/ws`;
  return {
    url,
    edge,
    hub,
    service,
    group,
    logger,
    async connect() {
      const client = await WsClient.connect(url);
      clients.push(client);
      return client;
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: messages are checked field by field
export type Message = any;

interface Waiter {
  readonly match: (message: Message) => boolean;
  readonly resolve: (message: Message) => void;
}

/**
 * A `ws` client that records every message the node sends. take() hands each message out at
 * most once, in arrival order; request() sends with a fresh id and waits for that id's answer.
 */
export class WsClient {
  /** Every message received, parsed, in arrival order. */
  readonly received: Message[] = [];
  private readonly taken = new Set<number>();
  private readonly waiters = new Set<Waiter>();
  private nextId = 1;
  /** Set when the connection closed. */
  closeInfo: { code: number; reason: string } | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString();
      let message: Message;
      try {
        message = JSON.parse(text);
      } catch {
        message = { unparsable: text, isBinary };
      }
      const position = this.received.length;
      this.received.push(message);
      for (const waiter of this.waiters) {
        if (!this.taken.has(position) && waiter.match(message)) {
          this.taken.add(position);
          this.waiters.delete(waiter);
          waiter.resolve(message);
        }
      }
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {
      // Surfaced through `closed`.
    });
  }

  static connect(url: string): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const client = new WsClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a JSON message as is. */
  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Sends raw text (or bytes, as a binary frame). */
  sendRaw(data: string | Buffer): void {
    this.ws.send(data, { binary: Buffer.isBuffer(data) });
  }

  /** Sends `fields` with a fresh id (unless it has one) and resolves with the answer to that id. */
  request(fields: Record<string, unknown>): Promise<Message> {
    const id = 'id' in fields ? (fields.id as string | number) : `q${this.nextId++}`;
    const answer = this.answerTo(id);
    this.send({ id, ...fields });
    return answer;
  }

  /** The answer to request `id` (a message with that id and `ok`). */
  answerTo(id: string | number): Promise<Message> {
    return this.take((m) => m !== null && typeof m === 'object' && m.id === id && 'ok' in m, `answer ${id}`);
  }

  /** The first message not yet taken that matches, now or when it arrives. */
  take(match: (message: Message) => boolean, what: string, timeoutMs = WAIT_MS): Promise<Message> {
    for (let i = 0; i < this.received.length; i++) {
      if (!this.taken.has(i) && match(this.received[i])) {
        this.taken.add(i);
        return Promise.resolve(this.received[i]);
      }
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Every event delivered so far to watch `watch`, in arrival order. */
  eventsOf(watch: number): Message[] {
    return this.received.filter((m) => m?.type === 'events' && m.watch === watch).flatMap((m) => m.events);
  }

  /** The events messages delivered so far to watch `watch`. */
  batchesOf(watch: number): Message[][] {
    return this.received.filter((m) => m?.type === 'events' && m.watch === watch).map((m) => m.events);
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.closeInfo === undefined) this.ws.close();
    return this.closed;
  }

  terminate(): void {
    if (this.closeInfo === undefined) this.ws.terminate();
  }

  /** Stops reading from the TCP socket (the node's sends back up). */
  pauseReading(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }
}

/**
 * The state store as a hub's source, with a gate: while closed, history reads wait (a slow
 * disk the test controls). `calls` counts reads begun.
 */
export class GatedSource implements WatchSource {
  calls = 0;
  private closed = false;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly store: RealmStateStore) {}

  get revision(): number {
    return this.store.revision;
  }

  close(): void {
    this.closed = true;
  }

  release(): void {
    this.closed = false;
    for (const resume of this.waiting.splice(0)) resume();
  }

  async history(realm: string, options: HistoryOptions) {
    this.calls++;
    if (this.closed) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.store.history(realm, options);
  }
}

/** The status of a single node n1 that leads the one-voter group `group` (for fake KvServices in tests). */
export function singleNodeStatus(group: GroupStorage): NodeStatus {
  const applied = group.state.appliedIndex;
  return {
    name: 'n1',
    id: '12D3KooWTestPeer',
    role: 'voter',
    state: 'leader',
    leader: 'n1',
    term: 1,
    commitIndex: applied,
    appliedIndex: applied,
    revision: group.state.revision,
    members: [{ name: 'n1', role: 'voter', match: applied, next: applied + 1 }],
  };
}
