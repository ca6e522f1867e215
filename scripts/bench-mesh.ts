// Benchmark of the mesh between two processes on loopback, beside raw libp2p measured in the same run.
//
// The parent process sends; a child process (this script with --receiver) receives, each on
// its own core. Measured, alternating mesh and raw libp2p within each repetition so both
// share the machine's noise: raft messages of 100 bytes batched into frames, unbatched (one
// message per frame), and one per event-loop turn; raft messages carrying one 64 KiB entry;
// a snapshot in 64 KiB chunks; the request-forwarding round trip (p50/p99, one at a time) and
// forwarded requests per second with 64 in flight. Every run checks that the receiver got
// exactly what was sent. Prints medians over --runs repetitions and mesh/raw ratios.

import '../net/polyfill.js';
import { fork } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { Mesh } from '../net/mesh.js';
import { generateClusterSecret, parseClusterSecret } from '../net/secret.js';
import { EntryType, type Message, MessageType, message } from '../raft/types.js';

const SINK = '/bench/sink/1.0.0';
const ECHO = '/bench/echo/1.0.0';
const GROUP = 1;
const KIB = 1024;
const MIB = 1024 * KIB;
const HIGH_WATER = 1 * MIB;

interface Options {
  /** Only the measures whose names contain this text (all when empty). */
  only: string;
  runs: number;
  smallMessages: number;
  loneMessages: number;
  largeMessages: number;
  snapshotMiB: number;
  roundTrips: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    only: '',
    runs: 5,
    smallMessages: 200_000,
    loneMessages: 10_000,
    largeMessages: 2_000,
    snapshotMiB: 128,
    roundTrips: 3_000,
  };
  const flags: Record<string, Exclude<keyof Options, 'only'>> = {
    '--runs': 'runs',
    '--small': 'smallMessages',
    '--lone': 'loneMessages',
    '--large': 'largeMessages',
    '--snapshot-mib': 'snapshotMiB',
    '--round-trips': 'roundTrips',
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only') {
      options.only = argv[++i] ?? '';
      continue;
    }
    const key = flags[argv[i]!];
    const value = Number(argv[++i]);
    if (key === undefined)
      throw new Error(`unknown flag ${argv[i - 1]} (known: ${Object.keys(flags).join(' ')})`);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${argv[i - 1]} needs a positive integer`);
    options[key] = value;
  }
  return options;
}

// ---- the receiving process ----

type ToReceiver = { kind: 'secret'; text: string } | { kind: 'cpu' } | { kind: 'stop' };
type ToParent = { kind: 'ready'; mesh: string; raw: string } | { kind: 'cpu'; micros: number };

async function runReceiver(): Promise<void> {
  // The parent's end is the only reason to live: go when it goes.
  process.on('disconnect', () => process.exit(0));
  const inbox = await new Promise<ToReceiver>((resolve) =>
    process.once('message', (m) => resolve(m as ToReceiver)),
  );
  if (inbox.kind !== 'secret') throw new Error('expected the secret first');
  const counts = new Map<string, number>();
  let mesh!: Mesh;
  mesh = new Mesh({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    peers: [],
    secret: parseClusterSecret(inbox.text),
    limits: { maxConcurrentSnapshots: 2 },
    handlers: {
      raft: (from, batch) => {
        let count = counts.get(from) ?? 0;
        for (const m of batch.messages) {
          if (m.type !== MessageType.TimeoutNow) {
            count++;
            continue;
          }
          // The end-of-run marker: everything before it has arrived (one ordered stream). Answer with the count.
          mesh.sendRaft(from, GROUP, [
            message({ type: MessageType.TimeoutNow, from: 'b', to: 'a', index: m.index, commit: count }),
          ]);
          count = 0;
        }
        counts.set(from, count);
      },
      request: async (_from, payload) => payload,
      snapshot: async (incoming) => {
        let bytes = 0;
        for await (const chunk of incoming.chunks) bytes += chunk.length;
        if (bytes !== new DataView(incoming.header.buffer, incoming.header.byteOffset).getUint32(0) * MIB) {
          throw Object.assign(new Error(`snapshot of ${bytes} bytes`), { code: 'INVALID_ARGUMENT' });
        }
      },
    },
  });
  await mesh.start();
  const raw = await rawNode(true);
  await raw.handle(SINK, (stream) => sink(stream), { maxInboundStreams: 64 });
  await raw.handle(
    ECHO,
    (stream) => {
      stream.addEventListener('message', (event) => stream.send(event.data));
      stream.addEventListener('remoteCloseWrite', () => stream.close().catch(() => {}));
    },
    { maxInboundStreams: 64 },
  );
  process.send!({
    kind: 'ready',
    mesh: mesh.addresses()[0]!,
    raw: raw.getMultiaddrs()[0]!.toString(),
  } satisfies ToParent);
  await new Promise<void>((resolve) =>
    process.on('message', (m: ToReceiver) => {
      if (m.kind === 'stop') resolve();
      if (m.kind === 'cpu') process.send!({ kind: 'cpu', micros: cpuMicros() } satisfies ToParent);
    }),
  );
  await mesh.stop();
  await raw.stop();
  process.exit(0);
}

/** Counts bytes after an 8-byte header announcing the total; answers one byte at the total. */
function sink(stream: Stream): void {
  let expected = -1;
  let received = 0;
  let header = new Uint8Array(0);
  stream.addEventListener('message', (event) => {
    for (const chunk of event.data instanceof Uint8Array ? [event.data] : event.data) {
      let body = chunk;
      if (expected < 0) {
        const joined = new Uint8Array(header.length + chunk.length);
        joined.set(header);
        joined.set(chunk, header.length);
        if (joined.length < 8) {
          header = joined;
          continue;
        }
        expected =
          new DataView(joined.buffer).getUint32(0) * 2 ** 32 + new DataView(joined.buffer).getUint32(4);
        body = joined.subarray(8);
      }
      received += body.length;
      if (received === expected) {
        stream.send(new Uint8Array([1]));
        stream.close().catch(() => {});
      }
    }
  });
}

async function rawNode(listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
  });
}

// ---- the sending process ----

interface Sample {
  /** Messages, or requests, the run moved: CPU time is divided by it. */
  units: number;
  /** CPU microseconds per unit, sender and receiver processes together (filled by measure()). */
  cpuMicrosPerUnit?: number;
  value: number;
  /** A second figure of the same run (MB/s beside messages/s, p99 beside p50). */
  extra?: number;
  framesPerSecond?: number;
}

interface Sender {
  batched: Mesh;
  unbatched: Mesh;
  peer: string;
  raw: Libp2p;
  rawAddress: string;
  markers: Map<number, (count: number) => void>;
  nextMarker: number;
}

function append(seq: number, bytes: number): Message {
  return message({
    type: MessageType.Append,
    from: 'a',
    to: 'b',
    term: 1,
    logTerm: 1,
    index: seq,
    commit: seq,
    entries: [
      { term: 1, index: seq + 1, type: EntryType.Normal, data: new Uint8Array(bytes).fill(seq & 0xff) },
    ],
  });
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Sends the end-of-run marker and resolves with the count the receiver saw. */
function finishRun(sender: Sender, mesh: Mesh): Promise<number> {
  const id = sender.nextMarker++;
  const done = new Promise<number>((resolve) => sender.markers.set(id, resolve));
  const marker = message({ type: MessageType.TimeoutNow, from: 'a', to: 'b', index: id });
  const trySend = async () => {
    while (!mesh.sendRaft(sender.peer, GROUP, [marker])) await turn();
  };
  return trySend().then(() => done);
}

/** Sends `count` Append messages of `bytes` each; `perTurn` per event-loop turn (Infinity: as fast as queues allow). */
async function meshMessages(
  sender: Sender,
  mesh: Mesh,
  count: number,
  bytes: number,
  perTurn: number,
): Promise<Sample> {
  const framesBefore = mesh.counters().raftFramesSent;
  const messages = Array.from({ length: Math.min(count, 4096) }, (_, i) => append(i, bytes));
  const start = performance.now();
  let sent = 0;
  while (sent < count) {
    const m = messages[sent % messages.length]!;
    if (mesh.sendRaft(sender.peer, GROUP, [m])) {
      sent++;
      if (sent % perTurn === 0) await turn();
    } else {
      await turn();
    }
  }
  const received = await finishRun(sender, mesh);
  const seconds = (performance.now() - start) / 1000;
  if (received !== count) throw new Error(`the receiver counted ${received} of ${count} messages`);
  const frames = mesh.counters().raftFramesSent - framesBefore - 1;
  return {
    units: count,
    value: count / seconds,
    extra: (count * bytes) / seconds / 1e6,
    framesPerSecond: frames / seconds,
  };
}

/** Opens a sink stream, sends `count` raw messages of `bytes`, and waits for the receiver's ack. */
async function rawMessages(sender: Sender, count: number, bytes: number, perTurn: number): Promise<Sample> {
  const stream = await sender.raw.dialProtocol(multiaddr(sender.rawAddress), SINK);
  const acked = new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', () => resolve(), { once: true });
    stream.addEventListener('close', () => reject(new Error('the sink stream closed before its ack')), {
      once: true,
    });
  });
  acked.catch(() => {});
  const header = new Uint8Array(8);
  const total = count * bytes;
  new DataView(header.buffer).setUint32(0, Math.floor(total / 2 ** 32));
  new DataView(header.buffer).setUint32(4, total % 2 ** 32);
  stream.send(header);
  const payload = new Uint8Array(bytes).fill(7);
  const start = performance.now();
  for (let i = 1; i <= count; i++) {
    stream.send(payload);
    if (stream.writeBufferLength > HIGH_WATER) await lowWater(stream);
    if (i % perTurn === 0) await turn();
  }
  await acked;
  const seconds = (performance.now() - start) / 1000;
  await stream.close();
  return { units: count, value: count / seconds, extra: total / seconds / 1e6 };
}

/** Waits for libp2p's write buffer to drain below half the high-water mark (its onDrain() is not re-armed). */
function lowWater(stream: Stream): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (stream.writeBufferLength > HIGH_WATER / 2) return;
      cleanup();
      resolve();
    };
    const onDrain = () => queueMicrotask(check);
    const onClose = () => {
      cleanup();
      reject(new Error('stream closed'));
    };
    const cleanup = () => {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('idle', check);
      stream.removeEventListener('close', onClose);
    };
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('idle', check);
    stream.addEventListener('close', onClose);
  });
}

async function meshSnapshot(sender: Sender, mib: number): Promise<Sample> {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, mib);
  const chunk = new Uint8Array(64 * KIB).fill(3);
  const source = (function* () {
    for (let i = 0; i < mib * 16; i++) yield chunk;
  })();
  const start = performance.now();
  const bytes = await sender.batched.sendSnapshot(sender.peer, { groupId: GROUP, header, source });
  const seconds = (performance.now() - start) / 1000;
  return { units: mib * 16, value: bytes / seconds / 1e6 };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function meshRoundTrips(sender: Sender, count: number): Promise<Sample> {
  const payload = new Uint8Array(100).fill(1);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const answer = await sender.batched.request(sender.peer, payload);
    times.push(performance.now() - start);
    if (answer.length !== 100) throw new Error('bad echo');
  }
  times.sort((a, b) => a - b);
  return { units: count, value: percentile(times, 50), extra: percentile(times, 99) };
}

async function meshRequestsInFlight(sender: Sender, count: number, inFlight: number): Promise<Sample> {
  const payload = new Uint8Array(100).fill(1);
  let issued = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (issued < count) {
        issued++;
        await sender.batched.request(sender.peer, payload);
      }
    }),
  );
  return { units: count, value: count / ((performance.now() - start) / 1000) };
}

async function rawRoundTrips(sender: Sender, count: number): Promise<Sample> {
  const stream = await sender.raw.dialProtocol(multiaddr(sender.rawAddress), ECHO);
  let received = 0;
  let wake: (() => void) | undefined;
  stream.addEventListener('message', (event) => {
    received += event.data.byteLength;
    wake?.();
  });
  const payload = new Uint8Array(100).fill(1);
  const times: number[] = [];
  for (let i = 1; i <= count; i++) {
    const start = performance.now();
    stream.send(payload);
    await new Promise<void>((resolve) => {
      wake = () => {
        if (received >= i * 100) resolve();
      };
      wake();
    });
    times.push(performance.now() - start);
  }
  await stream.close();
  times.sort((a, b) => a - b);
  return { units: count, value: percentile(times, 50), extra: percentile(times, 99) };
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function runSender(options: Options): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], { stdio: 'inherit' });
  process.on('exit', () => child.kill());
  const ready = new Promise<ToParent>((resolve) => child.once('message', (m) => resolve(m as ToParent)));
  const secretText = generateClusterSecret();
  child.send({ kind: 'secret', text: secretText } satisfies ToReceiver);
  const { mesh: meshAddress, raw: rawAddress } = (await ready) as Extract<ToParent, { kind: 'ready' }>;
  const childCpu = () =>
    new Promise<number>((resolve) => {
      child.once('message', (m: ToParent) => resolve(m.kind === 'cpu' ? m.micros : Number.NaN));
      child.send({ kind: 'cpu' } satisfies ToReceiver);
    });
  /** Runs one measure and adds the CPU time both processes spent on it, per unit. */
  const measure = async (run: () => Promise<Sample>): Promise<Sample> => {
    const before = cpuMicros() + (await childCpu());
    const sample = await run();
    const spent = cpuMicros() + (await childCpu()) - before;
    return { ...sample, cpuMicrosPerUnit: spent / sample.units };
  };
  const secret = parseClusterSecret(secretText);
  const markers = new Map<number, (count: number) => void>();
  const raft = (_from: string, batch: { messages: Message[] }) => {
    for (const m of batch.messages) {
      if (m.type === MessageType.TimeoutNow) {
        markers.get(m.index)?.(m.commit);
        markers.delete(m.index);
      }
    }
  };
  const newMesh = async (extra: Record<string, number>) => {
    const mesh = new Mesh({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      peers: [meshAddress],
      secret,
      limits: { snapshotChunkBytes: 64 * KIB, ...extra },
      handlers: { raft },
    });
    await mesh.start();
    return mesh;
  };
  const batched = await newMesh({});
  const unbatched = await newMesh({ maxMessagesPerFrame: 1 });
  const peer = meshAddress.split('/p2p/')[1]!;
  const deadline = Date.now() + 10_000;
  while (!batched.isConnected(peer) || !unbatched.isConnected(peer)) {
    if (Date.now() > deadline) throw new Error('the meshes did not connect');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const raw = await rawNode(false);
  const sender: Sender = { batched, unbatched, peer, raw, rawAddress, markers, nextMarker: 1 };

  const o = options;
  const measures: [string, () => Promise<Sample>][] = [
    ['mesh 100 B batched', () => meshMessages(sender, batched, o.smallMessages, 100, 4096)],
    ['mesh 100 B unbatched', () => meshMessages(sender, unbatched, o.smallMessages / 4, 100, 4096)],
    ['raw 100 B tight loop', () => rawMessages(sender, o.smallMessages / 4, 100, 4096)],
    ['mesh 100 B lone', () => meshMessages(sender, batched, o.loneMessages, 100, 1)],
    ['raw 100 B lone', () => rawMessages(sender, o.loneMessages, 100, 1)],
    ['mesh 64 KiB entries', () => meshMessages(sender, batched, o.largeMessages, 64 * KIB, 16)],
    ['raw 64 KiB', () => rawMessages(sender, o.largeMessages, 64 * KIB, 16)],
    ['mesh snapshot 64 KiB chunks', () => meshSnapshot(sender, o.snapshotMiB)],
    ['mesh request RTT', () => meshRoundTrips(sender, o.roundTrips)],
    ['raw echo RTT', () => rawRoundTrips(sender, o.roundTrips)],
    ['mesh requests 64 in flight', () => meshRequestsInFlight(sender, o.roundTrips * 10, 64)],
  ];
  const selected = measures.filter(([name]) => name.includes(o.only));
  const verbose = process.env.BENCH_VERBOSE === '1';
  const samples = new Map<string, Sample[]>(measures.map(([name]) => [name, []]));
  // Warm-up: one short pass so JIT and connection windows settle before anything counts.
  await meshMessages(sender, batched, 20_000, 100, 4096);
  await rawMessages(sender, 5_000, 100, 4096);
  await meshRoundTrips(sender, 300);
  await rawRoundTrips(sender, 300);
  for (let run = 1; run <= o.runs; run++) {
    for (const [name, run] of selected) {
      if (verbose) process.stderr.write(`  ${name}…\n`);
      samples.get(name)!.push(await measure(run));
    }
    process.stderr.write(`run ${run}/${o.runs} done\n`);
  }
  child.send({ kind: 'stop' } satisfies ToReceiver);
  await Promise.all([batched.stop(), unbatched.stop(), raw.stop()]);
  printTable(samples, options);
}

function printTable(samples: Map<string, Sample[]>, options: Options): void {
  const med = (name: string, field: 'value' | 'extra' | 'framesPerSecond' | 'cpuMicrosPerUnit' = 'value') =>
    median(samples.get(name)!.map((s) => s[field] ?? Number.NaN));
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const mb = (n: number) => `${n.toFixed(1)} MB/s`;
  const ms = (n: number) => `${n.toFixed(3)} ms`;
  const cpu = (name: string) => `${med(name, 'cpuMicrosPerUnit').toFixed(1)} µs`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  const messages = (name: string) =>
    `${int(med(name))} msg/s, ${mb(med(name, 'extra'))}, ${int(med(name, 'framesPerSecond'))} frames/s`;
  const rows: string[][] = [
    [
      'measure (median of runs)',
      'conclave mesh',
      'mesh CPU/unit',
      'raw libp2p, same run',
      'raw CPU/unit',
      'mesh / raw',
      'reference (ARCHITECTURE.md)',
    ],
    [
      '100 B raft msgs, batched into frames',
      messages('mesh 100 B batched'),
      cpu('mesh 100 B batched'),
      `${int(med('raw 100 B tight loop'))} msg/s, one send each`,
      cpu('raw 100 B tight loop'),
      ratio(med('mesh 100 B batched'), med('raw 100 B tight loop')),
      '',
    ],
    [
      '100 B raft msgs, unbatched (1 msg/frame)',
      messages('mesh 100 B unbatched'),
      cpu('mesh 100 B unbatched'),
      `${int(med('raw 100 B tight loop'))} msg/s, one send each`,
      cpu('raw 100 B tight loop'),
      ratio(med('mesh 100 B unbatched'), med('raw 100 B tight loop')),
      '',
    ],
    [
      '100 B raft msg alone (1 per event-loop turn)',
      messages('mesh 100 B lone'),
      cpu('mesh 100 B lone'),
      `${int(med('raw 100 B lone'))} msg/s`,
      cpu('raw 100 B lone'),
      ratio(med('mesh 100 B lone'), med('raw 100 B lone')),
      '≈11,800 msg/s (≈85 µs each)',
    ],
    [
      '64 KiB raft entries (1 per message)',
      messages('mesh 64 KiB entries'),
      cpu('mesh 64 KiB entries'),
      mb(med('raw 64 KiB', 'extra')),
      cpu('raw 64 KiB'),
      ratio(med('mesh 64 KiB entries', 'extra'), med('raw 64 KiB', 'extra')),
      '≈270 MB/s',
    ],
    [
      `snapshot, ${options.snapshotMiB} MiB in 64 KiB chunks`,
      mb(med('mesh snapshot 64 KiB chunks')),
      cpu('mesh snapshot 64 KiB chunks'),
      mb(med('raw 64 KiB', 'extra')),
      cpu('raw 64 KiB'),
      ratio(med('mesh snapshot 64 KiB chunks'), med('raw 64 KiB', 'extra')),
      '≈270 MB/s',
    ],
    [
      'request forwarding round trip p50 / p99',
      `${ms(med('mesh request RTT'))} / ${ms(med('mesh request RTT', 'extra'))}`,
      cpu('mesh request RTT'),
      `${ms(med('raw echo RTT'))} / ${ms(med('raw echo RTT', 'extra'))} (100 B echo)`,
      cpu('raw echo RTT'),
      `${ratio(med('mesh request RTT'), med('raw echo RTT'))} / ${ratio(med('mesh request RTT', 'extra'), med('raw echo RTT', 'extra'))}`,
      '≈0.15 ms echo',
    ],
    [
      'forwarded requests, 64 in flight',
      `${int(med('mesh requests 64 in flight'))} req/s`,
      cpu('mesh requests 64 in flight'),
      '',
      '',
      '',
      '',
    ],
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, col) => cell.padEnd(widths[col]!)).join(' | ')} |`;
  console.log('');
  console.log(
    `bench:mesh — two processes on 127.0.0.1, TCP + Noise + yamux; node ${process.version}, ${cpus().length} cores, ` +
      `${options.runs} runs; load average at the end ${loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}`,
  );
  console.log(
    `per run: ${options.smallMessages} batched / ${options.smallMessages / 4} unbatched / ${options.loneMessages} lone 100 B msgs, ` +
      `${options.largeMessages} × 64 KiB, ${options.snapshotMiB} MiB snapshot, ${options.roundTrips} round trips; ` +
      'MB = 10^6 payload bytes; CPU/unit = user+system µs of both processes per message (per 64 KiB chunk, per request)',
  );
  console.log('');
  console.log(line(rows[0]!));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows.slice(1)) console.log(line(row));
}

if (process.argv.includes('--receiver')) {
  runReceiver().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  runSender(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
