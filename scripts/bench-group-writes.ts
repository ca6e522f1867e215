// Write throughput of N realms on N raft groups against the same N realms in one group, on 3 node processes (issue 20).
//
// usage: npm run bench:group-writes -- [--realms 1,2,4,8] [--clients 256] [--seconds S]
// Three node processes on 127.0.0.1, default timing, one cluster for the whole run. For each
// count N (default 1, 2, 4, 8): realms one-N-1 .. one-N-N all in group 1, and spread-N-1 ..
// spread-N-N placed each in its own group (groups created as needed, each on all three nodes;
// the nodes spread their leaders). Then, for each layout, C sequential loops (default 256)
// over up to 6 client objects put 256-byte JSON documents round-robin over the N realms for S
// seconds (default 8) after a second of warm-up. The client objects' endpoints start at
// different nodes and do not follow the leader (as behind a load balancer): a node passes a
// write to its group's leader. Then both layouts again with clients that route (preferLeader,
// the default: each realm's writes go to its group's leader, src/client/realm-router.ts).
// Prints puts/s, p50 and p99, and the CPU of the three processes per put (utime + stime over
// the window), layouts side by side.

import { Client } from '../src/client/index.js';
import { ascending, percentile, serverCpuMs } from './bench-stats.js';
import { nodeCall, waitForGroupLeaders } from './cluster-groups.js';
import { LocalCluster } from './local-cluster.js';

const USAGE = 'usage: npm run bench:group-writes -- [--realms 1,2,4,8] [--clients 256] [--seconds S]';
const DOC = { payload: 'x'.repeat(240) };

class UsageError extends Error {}

interface Options {
  counts: number[];
  clients: number;
  seconds: number;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { counts: [1, 2, 4, 8], clients: 256, seconds: 8 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1] ?? '';
    if (flag === '--realms') {
      const counts = value.split(',').map(Number);
      if (!counts.every((n) => Number.isInteger(n) && n >= 1 && n <= 64))
        throw new UsageError(`--realms needs counts from 1 to 64, comma-separated; ${USAGE}`);
      options.counts = [...new Set(counts)].sort((a, b) => a - b);
    } else if (flag === '--clients' || flag === '--seconds') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 4096)
        throw new UsageError(`${flag} needs 1 to 4096; ${USAGE}`);
      if (flag === '--clients') options.clients = n;
      else options.seconds = n;
    } else {
      throw new UsageError(`unknown flag ${flag}; ${USAGE}`);
    }
  }
  return options;
}

interface Measured {
  readonly putsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuUsPerPut: number;
}

async function measure(
  cluster: LocalCluster,
  realms: readonly string[],
  options: Options,
  routed = false,
): Promise<Measured> {
  const urls = cluster.nodes.map((n) => n.url);
  const clients = Array.from(
    { length: Math.min(options.clients, 6) },
    (_, i) =>
      new Client({
        endpoints: [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)],
        preferLeader: routed,
      }),
  );
  try {
    const run = async (seconds: number, latencies: number[] | undefined): Promise<void> => {
      const until = performance.now() + seconds * 1000;
      let next = 0;
      await Promise.all(
        Array.from({ length: options.clients }, async (_, loop) => {
          const client = clients[loop % clients.length]!;
          while (performance.now() < until) {
            const realm = realms[next++ % realms.length]!;
            const started = performance.now();
            await client.put(realm, `k/${loop}`, DOC);
            latencies?.push(performance.now() - started);
          }
        }),
      );
    };
    await run(1, undefined);
    const pids = cluster.nodes.map((n) => n.child?.pid ?? 0);
    const cpuBefore = serverCpuMs(pids);
    const latencies: number[] = [];
    const t0 = performance.now();
    await run(options.seconds, latencies);
    const wall = (performance.now() - t0) / 1000;
    const cpu = serverCpuMs(pids) - cpuBefore;
    const sorted = ascending(latencies);
    return {
      putsPerSecond: latencies.length / wall,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      cpuUsPerPut: (cpu * 1000) / latencies.length,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  try {
    await cluster.create(3);
    cluster.startAll();
    const first = await cluster.waitForLeader(30_000);
    let groups = 1;
    console.log(
      `bench:group-writes — 3 node processes, ${options.clients} loops, ${options.seconds} s per layout; puts/s, p50/p99 ms, server CPU µs per put`,
    );
    console.log('');
    console.log(
      '| realms | all in group 1 | one group each | throughput ratio | all in group 1, routing clients | one group each, routing clients | throughput ratio | leaders per node |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const n of options.counts) {
      while (groups < n + 1) {
        await nodeCall(first, 'POST', '/v1/groups', {});
        groups++;
      }
      // A new group takes writes once its members started it and it elected.
      await waitForGroupLeaders(first);
      const one = Array.from({ length: n }, (_, i) => `one-${n}-${i + 1}`);
      const spread = Array.from({ length: n }, (_, i) => `spread-${n}-${i + 1}`);
      for (const realm of one) await nodeCall(first, 'POST', '/v1/realms', { name: realm });
      for (const [i, realm] of spread.entries())
        await nodeCall(first, 'POST', '/v1/realms', { name: realm, group: i + 2 });
      // The balancer moves leaders one per interval: wait (up to 10 s) until no node leads more than its share + 1.
      const settleBy = Date.now() + 10_000;
      let leaders = await waitForGroupLeaders(first);
      while (Date.now() < settleBy && Math.max(...leaders.values()) > Math.ceil(groups / 3) + 1) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        leaders = await waitForGroupLeaders(first);
      }
      const a = await measure(cluster, one, options);
      const b = await measure(cluster, spread, options);
      const c = await measure(cluster, one, options, true);
      const d = await measure(cluster, spread, options, true);
      const cell = (m: Measured) =>
        `${m.putsPerSecond.toFixed(0)}/s, ${m.p50.toFixed(1)}/${m.p99.toFixed(1)} ms, ${m.cpuUsPerPut.toFixed(0)} µs`;
      console.log(
        `| ${n} | ${cell(a)} | ${cell(b)} | ${(b.putsPerSecond / a.putsPerSecond).toFixed(2)} | ${cell(c)} | ${cell(d)} | ${(d.putsPerSecond / c.putsPerSecond).toFixed(2)} | ${[
          ...leaders,
        ]
          .sort()
          .map(([name, count]) => `${name} ${count}`)
          .join(', ')} |`,
      );
    }
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench:group-writes: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
