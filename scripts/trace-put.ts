// Where one sequential put's time goes, step by step across the three members: npm run trace:put.
//
// usage: npm run trace:put -- [--puts N]
// Starts three members (LocalCluster's defaults) with scripts/trace-hooks loaded (node --import),
// which stamps each step of the write path into a file per member; one client of the library
// writes N 256-byte JSON documents (default 300) one at a time to the leader, stamping when each
// is sent. The files are merged on CLOCK_MONOTONIC and each put is cut into segments: to the
// leader, the appends out, the hop to a follower, the follower's synced write, the hop back, the
// commit, the apply and the answer. Prints p50 and p90 of each segment in ms. The hooks only
// wrap methods and record; tracing costs a little CPU of its own, so the total is slower than
// without it.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageType } from '../raft/index.js';
import { Client } from '../src/client/index.js';
import { ascending, percentile } from './bench-stats.js';
import { LocalCluster } from './local-cluster.js';

const USAGE = 'usage: npm run trace:put -- [--puts N]';
const HOOKS = join(dirname(fileURLToPath(import.meta.url)), 'trace-hooks.js');
const DOC = { payload: 'x'.repeat(240) };

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): { puts: number } {
  const options = { puts: 300 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--puts' && Number.isInteger(value) && value >= 10) options.puts = value;
    else throw new UsageError(`bad flag or value: ${argv[i]} ${argv[i + 1] ?? ''}; ${USAGE}`);
  }
  return options;
}

interface Stamp {
  readonly us: number;
  readonly pid: string;
  readonly label: string;
}

/** The stamps of every member's file and the client's, in time order. */
function readStamps(dir: string, client: readonly Stamp[]): Stamp[] {
  const stamps = [...client];
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const [us, pid, ...label] = line.split(' ');
      if (us !== undefined && pid !== undefined && label.length > 0) {
        stamps.push({ us: Number(us), pid, label: label.join(' ') });
      }
    }
  }
  return stamps.sort((a, b) => a.us - b.us);
}

/** Cuts each put (from one client stamp to the next) into segments, in ms. */
function segments(
  stamps: readonly Stamp[],
  leader: string,
  followers: readonly string[],
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const add = (name: string, fromUs: number | undefined, toUs: number | undefined) => {
    if (fromUs === undefined || toUs === undefined || toUs < fromUs) return;
    const values = out.get(name) ?? [];
    values.push((toUs - fromUs) / 1000);
    out.set(name, values);
  };
  const starts = stamps.filter((s) => s.pid === 'client');
  for (const start of starts) {
    const [, answeredMs] = start.label.split(' ');
    const end = start.us + Number(answeredMs) * 1000;
    const window = stamps.filter((s) => s.us >= start.us && s.us <= end);
    const find = (pid: string, test: (label: string) => boolean, afterUs = start.us) =>
      window.find((s) => s.pid === pid && s.us >= afterUs && test(s.label))?.us;
    const propose = find(leader, (l) => l === 'propose');
    if (propose === undefined) continue;
    add('1 client sends → leader proposes', start.us, propose);
    const appendsOut = window.filter((s) => s.pid === leader && s.us >= propose && s.label === 'frame out');
    add('2 leader proposes → last append out', propose, appendsOut[followers.length - 1]?.us);
    const firstAck = find(leader, (l) => l.startsWith(`recv ${MessageType.AppendResponse} `), propose);
    for (const follower of followers) {
      const frameIn = find(follower, (l) => l === 'frame in', propose);
      const writeStart = find(follower, (l) => l === 'write start', frameIn);
      const writeEnd = find(follower, (l) => l === 'write end', writeStart);
      const answerOut = find(follower, (l) => l === 'frame out', writeEnd);
      add('3 hop: leader → follower (frame out → frame in)', appendsOut[0]?.us, frameIn);
      add('4 follower: frame in → synced write starts', frameIn, writeStart);
      add('5 follower: synced write (the write queue flush)', writeStart, writeEnd);
      add('6 follower: write done → answer out', writeEnd, answerOut);
      const back = answerOut === undefined ? undefined : find(leader, (l) => l === 'frame in', answerOut);
      add('7 hop: follower → leader (frame out → frame in)', answerOut, back);
    }
    const leaderWrite = find(leader, (l) => l === 'write start', propose);
    add(
      'leader: its own synced write',
      leaderWrite,
      find(leader, (l) => l === 'write end', leaderWrite),
    );
    const commit = find(leader, (l) => /^ready out e\d+ c[1-9]/.test(l), firstAck);
    add('8 leader: first answer → commit', firstAck, commit);
    const apply = find(leader, (l) => l === 'write start', commit);
    add('9 leader: commit → apply write starts', commit, apply);
    const settled = find(leader, (l) => l === 'settle', apply);
    add('10 leader: apply → request settled', apply, settled);
    add('11 settled → client has the answer', settled, end);
    add('total', start.us, end);
  }
  return out;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  const { puts } = parseArgs(argv);
  const traceDir = mkdtempSync(join(tmpdir(), 'conclave-trace-'));
  const cluster = new LocalCluster();
  try {
    await cluster.create(3);
    for (const node of cluster.nodes) {
      cluster.start(node, { CONCLAVE_TRACE_DIR: traceDir }, [`--import=${HOOKS}`]);
    }
    const leader = await cluster.waitForLeader(30_000);
    const client = new Client({ endpoints: [leader.url] });
    const marks: Stamp[] = [];
    try {
      for (let i = 0; i < 100; i++) await client.put('default', `trace/warm/${i}`, DOC);
      for (let i = 0; i < puts; i++) {
        const us = Number(process.hrtime.bigint() / 1000n);
        const t0 = performance.now();
        await client.put('default', `trace/${i}`, DOC);
        marks.push({ us, pid: 'client', label: `put ${(performance.now() - t0).toFixed(3)}` });
      }
    } finally {
      await client.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 700)); // the hooks save every 500 ms
    const pidOf = (node: (typeof cluster.nodes)[number]) => String(node.child!.pid);
    const followers = cluster.nodes.filter((n) => n !== leader).map(pidOf);
    const table = segments(readStamps(traceDir, marks), pidOf(leader), followers);
    console.log(`trace:put — ${puts} sequential puts of 256 B JSON documents to the leader of 3 members; ms`);
    console.log('\n| segment | n | p50 | p90 |\n|---|---|---|---|');
    const order = (name: string) => (name === 'total' ? -1 : Number.parseInt(name, 10) || 2.5);
    for (const [name, values] of [...table].sort((a, b) => order(a[0]) - order(b[0]))) {
      const sorted = ascending(values);
      console.log(
        `| ${name} | ${sorted.length} | ${percentile(sorted, 50).toFixed(3)} | ${percentile(sorted, 90).toFixed(3)} |`,
      );
    }
  } finally {
    await cluster.stop();
    rmSync(traceDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(
      `trace:put: ${error instanceof UsageError ? error.message : ((error as Error).stack ?? error)}`,
    );
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
