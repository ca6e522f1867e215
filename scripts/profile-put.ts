// Where a put spends its time: CPU profiles of a 3-node cluster's leader and a follower under N writers.
//
// usage: npm run profile:put -- [--seconds S] [--clients N] [--via http|ws] [--to leader|follower]
//                               [--engine rocksdb|leveldb] [--profile on|off] [--top N] [--out DIR]
//                               [--node-flag --FLAG=VALUE]... (passed to node for each member)
// Starts three members (LocalCluster's defaults) with `node --cpu-prof`, finds the leader, and
// runs N loops (default 1) of puts of 256-byte JSON documents, each loop one put at a time, to
// the leader or to a follower for S seconds (default 10): over HTTP keep-alive (fetch, default)
// or over the client library's WebSocket (up to 6 client objects, shared round-robin). Then it
// stops the members with SIGTERM so that each writes its profile, and prints: puts/s and p50
// latency; each member's CPU per put (utime + stime from /proc over the load, divided by the
// puts), also split by thread (the JavaScript thread, RocksDB's background threads, the
// helpers: libuv's pool, V8's concurrent GC and compiler, the profiler's sampler); and for the leader and one follower the share of idle, garbage collection and the
// synced RocksDB write, the self time by area (raft/, storage/, net/, src/, the libp2p stack,
// other packages, Node core, native), and the functions with the most self time, as shares of
// the profile's wall time. The .cpuprofile files stay in DIR (default: a temporary directory)
// to open in Chrome's DevTools. --profile off runs the members without the profiler (whose
// sampling costs CPU of its own) and prints only the figures before the profiles.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import { serverCpuMs } from './bench-stats.js';
import { type ClusterNode, LocalCluster } from './local-cluster.js';

interface Options {
  seconds: number;
  clients: number;
  via: 'http' | 'ws';
  to: 'leader' | 'follower';
  top: number;
  out: string | undefined;
  engine: 'rocksdb' | 'leveldb';
  profile: boolean;
  nodeFlags: string[];
}

const USAGE =
  'usage: npm run profile:put -- [--seconds S] [--clients N] [--via http|ws] [--to leader|follower] [--engine rocksdb|leveldb] [--profile on|off] [--node-flag --FLAG=V]... [--top N] [--out DIR]';

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = {
    seconds: 10,
    clients: 1,
    via: 'http',
    to: 'leader',
    top: 15,
    out: undefined,
    engine: 'rocksdb',
    profile: true,
    nodeFlags: [],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new UsageError(`${flag} needs a value; ${USAGE}`);
    if (flag === '--seconds' && Number(value) > 0) options.seconds = Number(value);
    else if (flag === '--top' && Number.isInteger(Number(value)) && Number(value) > 0)
      options.top = Number(value);
    else if (flag === '--to' && (value === 'leader' || value === 'follower')) options.to = value;
    else if (flag === '--clients' && Number.isInteger(Number(value)) && Number(value) > 0)
      options.clients = Number(value);
    else if (flag === '--via' && (value === 'http' || value === 'ws')) options.via = value;
    else if (flag === '--out') options.out = value;
    else if (flag === '--profile' && (value === 'on' || value === 'off')) options.profile = value === 'on';
    else if (flag === '--node-flag' && value.startsWith('--')) options.nodeFlags.push(value);
    else if (flag === '--engine' && (value === 'rocksdb' || value === 'leveldb')) options.engine = value;
    else throw new UsageError(`bad flag or value: ${flag} ${value}; ${USAGE}`);
  }
  return options;
}

/**
 * utime and stime in ms of each kind of thread of a process, from /proc/PID/task/TID/stat: the
 * JavaScript thread, RocksDB's background flushes and compactions (rocksdb:*), and the helpers.
 */
function threadCpuMs(pid: number): Map<string, number> {
  const byKind = new Map<string, number>();
  const add = (kind: string, ms: number) => byKind.set(kind, (byKind.get(kind) ?? 0) + ms);
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');

    // Node 20 names its helper threads after the process: libuv's pool, V8's workers (concurrent
    // marking and sweeping, compilation) and, with --cpu-prof, the profiler's sampler.
    const kind = Number(tid) === pid ? 'js' : comm.startsWith('rocksdb:') ? 'rocksdb bg' : 'helpers';
    add(`${kind} user`, Number(fields[11]) * 10);
    add(`${kind} sys`, Number(fields[12]) * 10);
  }
  return byKind;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A span of CLOCK_MONOTONIC in µs: V8 stamps its samples with it, as process.hrtime does. */
interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Self time per function (µs) of the samples inside `window`, and the window's length (µs). */
function selfTimes(
  profile: CpuProfile,
  window: Window,
): { byFunction: Map<string, number>; byArea: Map<string, number>; wallUs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < window.fromUs || at > window.toUs) continue;
    const node = byId.get(profile.samples[i]!);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url === '' ? '' : url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist)\//, '$1/');
    const name = `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
    const area = areaOf(functionName, url);
    byArea.set(area, (byArea.get(area) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  return { byFunction, byArea, wallUs: window.toUs - window.fromUs };
}

/** Packages of the libp2p stack (the mesh's transport, encryption, multiplexing and their helpers). */
const LIBP2P_STACK =
  /^(@libp2p\/|libp2p$|@chainsafe\/|@multiformats\/|it-|uint8arraylist|uint8arrays|p-|race-|main-event|@noble\/|multiformats)/;

/**
 * Where a sampled function belongs: Conclave's own layers (raft, storage, net, src), a package
 * (the libp2p stack as one), Node's own JavaScript, or V8's pseudo-frames and native code.
 */
function areaOf(functionName: string, url: string): string {
  if (url === '') {
    if (/^\((idle|root|program|garbage collector)\)$/.test(functionName)) return functionName;
    return 'native (no script: socket writes, crypto, engine calls)';
  }
  const path = url.replace(/^file:\/\//, '');
  const pkg = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1];
  if (pkg !== undefined) return LIBP2P_STACK.test(pkg) ? 'libp2p stack' : pkg;
  const own = /\/dist\/(raft|storage|net|src|scripts)\//.exec(path)?.[1];
  if (own !== undefined) return `conclave ${own}/`;
  if (path.startsWith('node:')) return 'node core (streams, events, timers)';
  return 'other';
}

function report(label: string, profile: CpuProfile, window: Window, top: number): void {
  if (profile.startTime > window.fromUs || profile.endTime < window.toUs) {
    throw new Error(`${label}'s profile does not cover the load (its clock is not CLOCK_MONOTONIC?)`);
  }
  const { byFunction, byArea, wallUs } = selfTimes(profile, window);
  const share = (us: number) => `${((100 * us) / wallUs).toFixed(1).padStart(5)} %`;
  const of = (pattern: RegExp) =>
    [...byFunction].filter(([name]) => pattern.test(name)).reduce((sum, [, us]) => sum + us, 0);
  console.log(`\n${label}: the ${(wallUs / 1e6).toFixed(1)} s of load, as shares of wall time`);
  console.log(
    `  idle ${share(of(/^\(idle\)/))}, garbage collection ${share(of(/^\(garbage collector\)/))}, ` +
      `RocksDB writes (synced and not) ${share(of(/^(_writeSync |write \S*storage\/rocks-binding\.js)/))}, program (native, unattributed) ${share(of(/^\(program\)/))}`,
  );
  const areas = [...byArea]
    .filter(([area]) => area !== '(idle)' && area !== '(root)')
    .sort((a, b) => b[1] - a[1]);
  console.log(`  by area: ${areas.map(([area, us]) => `${area} ${share(us).trim()}`).join(', ')}`);
  const sorted = [...byFunction]
    .filter(([name]) => !/^\((idle|root)\)/.test(name))
    .sort((a, b) => b[1] - a[1]);
  for (const [name, us] of sorted.slice(0, top)) console.log(`  ${share(us)}  ${name}`);
}

/** One put of a 256-byte JSON document, over HTTP (fetch, keep-alive) or the client library's WebSocket. */
type Put = (key: string) => Promise<void>;

function httpPut(url: string): Put {
  const body = JSON.stringify({ payload: 'x'.repeat(240) });
  return async (key) => {
    const response = await fetch(`${url}/v1/realms/default/kv/${key}`, {
      method: 'PUT',
      body,
      headers: { 'content-type': 'application/json' },
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`put answered ${response.status}`);
  };
}

function wsPut(client: Client): Put {
  const value = { payload: 'x'.repeat(240) };
  return async (key) => {
    await client.put('default', key, value);
  };
}

/** `puts.length` loops, each sending one put at a time until `seconds` pass; every latency in ms. */
async function putLoops(puts: readonly Put[], seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  let next = 0;
  await Promise.all(
    puts.map(async (put) => {
      while (performance.now() < deadline) {
        const started = performance.now();
        await put(`k${next++ % 10_000}`);
        latencies.push(performance.now() - started);
      }
    }),
  );
  return latencies;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const options = parseArgs(argv);
  const out = options.out ?? mkdtempSync(join(tmpdir(), 'conclave-profile-'));
  const cluster = new LocalCluster(['--storage-engine', options.engine]);
  try {
    await cluster.create(3);
    for (const node of cluster.nodes) {
      cluster.start(node, {}, [
        ...options.nodeFlags,
        ...(options.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(out, node.name)}`] : []),
      ]);
    }
    const leader = await cluster.waitForLeader(30_000);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const target = options.to === 'leader' ? leader : follower;
    const clients =
      options.via === 'ws'
        ? Array.from({ length: Math.min(options.clients, 6) }, () => new Client({ endpoints: [target.url] }))
        : [];
    const puts = Array.from({ length: options.clients }, (_, i) =>
      options.via === 'ws' ? wsPut(clients[i % clients.length]!) : httpPut(target.url),
    );
    // A second of warm-up, not measured.
    await putLoops(puts, 1);
    const before = new Map(cluster.nodes.map((n) => [n.name, serverCpuMs([n.child!.pid!])]));
    const threadsBefore = new Map(cluster.nodes.map((n) => [n.name, threadCpuMs(n.child!.pid!)]));
    const fromUs = nowUs();
    const latencies = await putLoops(puts, options.seconds);
    const window = { fromUs, toUs: nowUs() };
    const cpu = cluster.nodes.map((n) => ({
      node: n,
      ms: serverCpuMs([n.child!.pid!]) - before.get(n.name)!,
    }));
    const threads = cluster.nodes.map((n) => {
      const was = threadsBefore.get(n.name)!;
      const now = threadCpuMs(n.child!.pid!);
      return { node: n, delta: [...now].map(([kind, ms]) => [kind, ms - (was.get(kind) ?? 0)] as const) };
    });
    latencies.sort((a, b) => a - b);
    await Promise.all(clients.map((client) => client.close()));
    const done = latencies.length;
    console.log(
      `${done} puts from ${options.clients} sequential loop(s) over ${options.via} to the ${options.to} ` +
        `(${target.name}, ${options.engine}) in ${options.seconds} s: ` +
        `${(done / options.seconds).toFixed(0)}/s, p50 ${latencies[Math.floor(done / 2)]!.toFixed(2)} ms, ` +
        `p99 ${latencies[Math.floor(done * 0.99)]!.toFixed(2)} ms`,
    );
    const total = cpu.reduce((sum, c) => sum + c.ms, 0);
    console.log(
      `CPU per put (utime+stime / puts): ${cpu
        .map((c) => `${c.node.name}${c.node === leader ? ' (leader)' : ''} ${(c.ms / done).toFixed(2)} ms`)
        .join(', ')}; the cluster ${(total / done).toFixed(2)} ms`,
    );
    for (const { node, delta } of threads) {
      console.log(
        `  ${node.name} by thread, ms per put: ${delta
          .filter(([, ms]) => ms > 0)
          .sort((a, b) => b[1] - a[1])
          .map(([kind, ms]) => `${kind} ${(ms / done).toFixed(3)}`)
          .join(', ')}`,
      );
    }
    await Promise.all(cluster.nodes.map((n) => cluster.kill(n, 'SIGTERM')));
    if (!options.profile) return;
    const profileOf = (node: ClusterNode): CpuProfile => {
      const dir = join(out, node.name);
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (file === undefined) throw new Error(`${node.name} wrote no profile in ${dir}`);
      return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    };
    report(`leader ${leader.name}`, profileOf(leader), window, options.top);
    report(`follower ${follower.name}`, profileOf(follower), window, options.top);
    console.log(
      `\nprofiles: ${out}/<node>/*.cpuprofile (whole process lifetime; the figures above are the load only)`,
    );
  } finally {
    await cluster.stop();
    // Without the profiler the directory holds nothing worth keeping: do not leave it behind.
    if (!options.profile && options.out === undefined) rmSync(out, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(
      `profile:put: ${error instanceof UsageError ? error.message : ((error as Error).stack ?? error)}`,
    );
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
