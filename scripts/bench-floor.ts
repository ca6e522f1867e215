// Where the floor of one sequential write lies on this machine: round trips and fsync beside Conclave's and etcd's put latency with one member and with three.
//
// usage: npm run bench:floor -- [--rounds N] [--seconds S] [--warmup W] [--clients N]
// Measured in one run, the systems alternating within each of N rounds (default 5), medians
// over the rounds:
// - the operating system's round trip: two processes ping-pong 100 bytes over loopback TCP
//   (scripts/floor-rtt.c, built with cc into a temporary directory; skipped, with the reason,
//   when there is no cc), and the same between two Node.js processes over net sockets; p50 and
//   the CPU of both processes per round trip;
// - the same Node.js echo paced at 500 and at 50 messages a second, with the CPU of the echoing
//   process per message: a process that sleeps between messages pays more for each wake-up;
// - one fdatasync of a 100-byte append, in the directory the members' data lives in;
// - one client writing 256-byte JSON documents one at a time for S seconds (default 5), after W
//   seconds of the same writes unmeasured (default 5: Conclave's code is compiled by V8 as it
//   runs, and over its first 5 s after start a put costs it about 1.7 times the CPU it costs
//   later; etcd, compiled ahead of time, gets the same), to the
//   leader: Conclave (its client library over WebSocket) and etcd (etcd3 over gRPC, skipped when
//   etcd is not on PATH), each with one member and with three; p50, p99 and the server
//   processes' CPU per put (utime + stime from /proc).
// - the stack floor: the same puts through scripts/floor-skeleton.ts, member processes on the
//   libraries a member runs on (libp2p with Noise and yamux, RocksDB, uWebSockets.js) sending the
//   same messages and making the same writes as a Conclave put, with no Raft and no state machine:
//   what the stack costs before any of Conclave's own code; and with three members over plain
//   loopback sockets instead of libp2p (same frames, no encryption, no multiplexing), and with
//   Conclave's own storage/ (log store, state machine, write queue) in place of the two raw writes.
// Then the share of replication (three members' p50 less one member's) and of everything but
// round trips and fsync, per system.
// With --clients N (N > 1), the puts come from N loops at once, each one put at a time over up
// to 6 connections shared round-robin (as `npm run bench` drives its put cases), to keys
// floor/0..9999, and only the three-member systems run, reporting puts/s beside latency and CPU:
// where the stack's throughput ends under many writers. The skeleton batches as Conclave does
// (one frame and one group commit per turn of the event loop, pipelined). With no network between the processes, a round trip here
// is the price of waking a process: what the write path pays per hop.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { Client } from '../src/client/index.js';
import { ascending, loop, median, percentile, serverCpuMs } from './bench-stats.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { type SkeletonStorage, type SkeletonTransport, startSkeleton } from './floor-skeleton.js';
import { LocalCluster } from './local-cluster.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MESSAGE_BYTES = 100;
const ROUND_TRIPS = 20_000;
const FSYNCS = 500;
const PACED_SECONDS = 4;
const DOC = { payload: 'x'.repeat(240) };
/** Connections the load is spread over with --clients, as `npm run bench` does (CLIENT_OBJECTS_MAX). */
const CONNECTIONS_MAX = 6;
const KEYS = 10_000;

interface Options {
  rounds: number;
  seconds: number;
  /** Unmeasured seconds of the same puts before each measured run. */
  warmup: number;
  /** Loops putting at once; 1 is the sequential writer. */
  clients: number;
}

const USAGE = 'usage: npm run bench:floor -- [--rounds N] [--seconds S] [--warmup W] [--clients N]';

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { rounds: 5, seconds: 5, warmup: 5, clients: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = Number(argv[i + 1]);
    if (flag === '--rounds' && Number.isInteger(value) && value > 0) options.rounds = value;
    else if (flag === '--seconds' && value > 0) options.seconds = value;
    else if (flag === '--warmup' && value >= 0) options.warmup = value;
    else if (flag === '--clients' && Number.isInteger(value) && value > 0) options.clients = value;
    else throw new UsageError(`bad flag or value: ${flag} ${argv[i + 1] ?? ''}; ${USAGE}`);
  }
  return options;
}

class UsageError extends Error {}

/** One measurement: latency percentiles in ms, CPU per operation in µs, operations a second. */
interface Sample {
  readonly perSecond?: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuUs: number;
}

/** The C ping-pong, built once; undefined (and why) without a C compiler. */
function buildCRoundTrip(dir: string): { path: string } | { skipped: string } {
  const path = join(dir, 'floor-rtt');
  const built = spawnSync('cc', ['-O2', '-o', path, join(ROOT, 'scripts', 'floor-rtt.c')], {
    encoding: 'utf8',
  });
  if (built.error !== undefined) return { skipped: `no C compiler (cc: ${built.error.message})` };
  if (built.status !== 0) return { skipped: `cc failed: ${built.stderr.trim()}` };
  return { path };
}

function cRoundTrip(path: string): Sample {
  const run = spawnSync(path, [String(ROUND_TRIPS)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`floor-rtt failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Sample;
}

/** This script with --echo: echoes whatever arrives on one loopback connection, then exits. */
function echoServer(): void {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (data) => socket.write(data));
    socket.on('close', () => process.exit(0));
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    process.stdout.write(`${address.port}\n`);
  });
}

/**
 * Round trips to a Node.js echo process: back to back (`rate` undefined; CPU of both processes per
 * round trip) or paced at `rate` a second for PACED_SECONDS (CPU of the echoing process alone per
 * message: what one wake-up costs a process that sleeps between messages).
 */
async function nodeRoundTrip(rate?: number): Promise<Sample> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--echo'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (data: Buffer) => resolve(Number(data.toString().trim())));
      child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
    });
    const socket: Socket = await new Promise((resolve, reject) => {
      const s = createConnection({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
      s.once('error', reject);
    });
    const message = Buffer.alloc(MESSAGE_BYTES, 1);
    const times: number[] = [];
    const count = rate === undefined ? ROUND_TRIPS : Math.round(rate * PACED_SECONDS);
    const cpuBefore = process.cpuUsage();
    const childBefore = serverCpuMs([child.pid!]);
    const started = performance.now();
    await new Promise<void>((resolve) => {
      let received = 0;
      let sentAt = performance.now();
      const send = () => {
        sentAt = performance.now();
        socket.write(message);
      };
      socket.on('data', (data: Buffer) => {
        received += data.length;
        if (received < MESSAGE_BYTES) return;
        received -= MESSAGE_BYTES;
        times.push(performance.now() - sentAt);
        if (times.length === count) return resolve();
        if (rate === undefined) return send();
        setTimeout(send, Math.max(0, started + (times.length * 1000) / rate - performance.now()));
      });
      send();
    });
    const own = process.cpuUsage(cpuBefore);
    const childUs = (serverCpuMs([child.pid!]) - childBefore) * 1000;
    const cpuUs = rate === undefined ? own.user + own.system + childUs : childUs;
    socket.destroy();
    const sorted = ascending(times);
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), cpuUs: cpuUs / count };
  } finally {
    child.kill('SIGKILL');
  }
}

/** fdatasync after a 100-byte append, FSYNCS times, in `dir`. */
function fsyncSample(dir: string): Sample {
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(MESSAGE_BYTES, 2);
  const times: number[] = [];
  const before = process.cpuUsage();
  try {
    for (let i = 0; i < FSYNCS; i++) {
      const t0 = performance.now();
      writeSync(fd, block);
      fdatasyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const cpu = process.cpuUsage(before);
  const sorted = ascending(times);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuUs: (cpu.user + cpu.system) / FSYNCS,
  };
}

/** Timing of one measured run: `warmup` unmeasured seconds, then `seconds` measured. */
type Timing = Pick<Options, 'seconds' | 'warmup' | 'clients'>;

/**
 * `timing.clients` loops of puts (`put(i, c)`: the i-th put, on connection c) for `timing.seconds`
 * after `timing.warmup`: throughput, latency, and the servers' CPU per put.
 */
async function puts(
  put: (i: number, connection: number) => Promise<unknown>,
  pids: readonly number[],
  timing: Timing,
): Promise<Sample> {
  if (timing.clients === 1) return sequentialPuts((i) => put(i, 0), pids, timing);
  const connections = Math.min(timing.clients, CONNECTIONS_MAX);
  const one = async (i: number) => {
    await put(i % KEYS, i % connections);
  };
  await loop(timing.clients, timing.warmup, one);
  const cpuBefore = serverCpuMs(pids);
  const run = await loop(timing.clients, timing.seconds, one);
  const cpuMs = serverCpuMs(pids) - cpuBefore;
  if (run.errors > 0) throw new Error(`${run.errors} puts failed`);
  return {
    perSecond: run.perSecond,
    p50: run.p50,
    p99: run.p99,
    cpuUs: (cpuMs * 1000) / (run.perSecond * timing.seconds),
  };
}

/** Sequential puts for `timing.seconds` after `timing.warmup`: latency of each, and the servers' CPU per put. */
async function sequentialPuts(
  put: (i: number) => Promise<unknown>,
  pids: readonly number[],
  timing: Timing,
): Promise<Sample> {
  // Warm up: connections, and V8's compilation of the servers' code (and the client's).
  const warm = performance.now() + timing.warmup * 1000;
  for (let i = 0; i < 50 || performance.now() < warm; i++) await put(-1 - i);
  const times: number[] = [];
  const cpuBefore = serverCpuMs(pids);
  const deadline = performance.now() + timing.seconds * 1000;
  for (let i = 0; performance.now() < deadline; i++) {
    const t0 = performance.now();
    await put(i);
    times.push(performance.now() - t0);
  }
  const cpuMs = serverCpuMs(pids) - cpuBefore;
  const sorted = ascending(times);
  return {
    perSecond: times.length / timing.seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuUs: (cpuMs * 1000) / times.length,
  };
}

async function conclavePuts(members: number, timing: Timing): Promise<Sample> {
  const cluster = new LocalCluster();
  try {
    await cluster.create(members);
    cluster.startAll();
    const leader = await cluster.waitForLeader(30_000);
    const clients = Array.from(
      { length: Math.min(timing.clients, CONNECTIONS_MAX) },
      () => new Client({ endpoints: [leader.url] }),
    );
    try {
      return await puts(
        (i, c) => clients[c]!.put('default', `floor/${i}`, DOC),
        cluster.nodes.map((n) => n.child!.pid!),
        timing,
      );
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  } finally {
    await cluster.stop();
  }
}

/** The same sequential puts through the stack alone (scripts/floor-skeleton.ts): no Raft, no state machine. */
async function skeletonPuts(
  members: number,
  timing: Timing,
  transport: SkeletonTransport = 'libp2p',
  storage: SkeletonStorage = 'raw',
): Promise<Sample> {
  const connections = Math.min(timing.clients, CONNECTIONS_MAX);
  const skeleton = await startSkeleton(members, transport, [], storage, connections);
  try {
    // The skeleton spreads puts over its connections itself.
    return await puts((i) => skeleton.put(`floor/${i}`, DOC), skeleton.pids, timing);
  } finally {
    await skeleton.stop();
  }
}

async function etcdPuts(members: number, timing: Timing): Promise<Sample> {
  const cluster = new EtcdCluster();
  try {
    await cluster.create(members);
    cluster.startAll();
    const leader = await cluster.waitForLeader(30_000);
    const clients = Array.from(
      { length: Math.min(timing.clients, CONNECTIONS_MAX) },
      () => new Etcd3({ hosts: [leader.url] }),
    );
    const text = JSON.stringify(DOC);
    try {
      return await puts(
        (i, c) => clients[c]!.put(`floor/${i}`).value(text).exec(),
        cluster.nodes.map((n) => n.child!.pid!),
        timing,
      );
    } finally {
      for (const client of clients) client.close();
    }
  } finally {
    await cluster.stop();
  }
}

const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(3) : '–');
const fmtUs = (us: number) => (Number.isFinite(us) ? us.toFixed(0) : '–');

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--echo') return echoServer();
  if (argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const options = parseArgs(argv);
  const scratch = mkdtempSync(join(tmpdir(), 'conclave-floor-'));
  const withEtcd = etcdVersion() !== undefined;
  const c = buildCRoundTrip(scratch);
  const rows = new Map<string, Sample[]>();
  const add = (name: string, sample: Sample) => rows.set(name, [...(rows.get(name) ?? []), sample]);
  try {
    const sequential = options.clients === 1;
    for (let round = 1; round <= options.rounds; round++) {
      if (sequential) {
        if ('path' in c) add('round trip, C processes', cRoundTrip(c.path));
        add('round trip, Node.js processes (net)', await nodeRoundTrip());
        add('Node.js echo at 500 messages/s (CPU: the echoing process)', await nodeRoundTrip(500));
        add('Node.js echo at 50 messages/s (CPU: the echoing process)', await nodeRoundTrip(50));
        add('fdatasync of a 100 B append', fsyncSample(tmpdir()));
        add('Conclave, 1 member', await conclavePuts(1, options));
        add('Stack floor, 1 member', await skeletonPuts(1, options));
        if (withEtcd) add('etcd, 1 member', await etcdPuts(1, options));
      }
      add('Conclave, 3 members', await conclavePuts(3, options));
      add('Stack floor, 3 members', await skeletonPuts(3, options));
      add('Stack floor over plain TCP, 3 members', await skeletonPuts(3, options, 'tcp'));
      add(
        "Stack floor with Conclave's storage/, 3 members",
        await skeletonPuts(3, options, 'libp2p', 'conclave'),
      );
      if (withEtcd) add('etcd, 3 members', await etcdPuts(3, options));
      console.error(`round ${round}/${options.rounds} done`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const med = (name: string, field: keyof Sample) =>
    median((rows.get(name) ?? []).map((s) => s[field] ?? Number.NaN));
  const load =
    options.clients === 1
      ? 'sequential puts'
      : `puts from ${options.clients} loops at once (keys floor/0..${KEYS - 1})`;
  console.log(
    `\nbench:floor — ${options.rounds} rounds, medians; ${load} of 256 B JSON documents to the leader for ${options.seconds} s each after ${options.warmup} s unmeasured; ` +
      `CPU: user + system of both processes per round trip, of the servers per put`,
  );
  if ('skipped' in c) console.log(`(C round trip skipped: ${c.skipped})`);
  if (!withEtcd) console.log('(etcd skipped: not on PATH)');
  console.log('\n| measure | puts/s | p50 ms | p99 ms | CPU µs per op |\n|---|---|---|---|---|');
  for (const name of rows.keys()) {
    const perSecond = med(name, 'perSecond');
    console.log(
      `| ${name} | ${Number.isFinite(perSecond) ? perSecond.toFixed(0) : '–'} | ${fmt(med(name, 'p50'))} | ${fmt(med(name, 'p99'))} | ${fmtUs(med(name, 'cpuUs'))} |`,
    );
  }
  if (options.clients > 1) return;
  const systems = withEtcd ? ['Conclave', 'Stack floor', 'etcd'] : ['Conclave', 'Stack floor'];
  console.log(
    '\n| system | 1 member p50 | 3 members p50 | replication adds | 3 members: CPU µs per put |\n|---|---|---|---|---|',
  );
  for (const system of systems) {
    const one = med(`${system}, 1 member`, 'p50');
    const three = med(`${system}, 3 members`, 'p50');
    console.log(
      `| ${system} | ${fmt(one)} | ${fmt(three)} | ${fmt(three - one)} | ${fmtUs(med(`${system}, 3 members`, 'cpuUs'))} |`,
    );
  }
}

main().then(
  () => {
    if (process.argv[2] !== '--echo') process.exit(0);
  },
  (error: unknown) => {
    console.error(
      `bench:floor: ${error instanceof UsageError ? error.message : ((error as Error).stack ?? error)}`,
    );
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
