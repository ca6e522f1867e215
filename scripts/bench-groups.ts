// What idle raft groups cost: CPU per node process of 3 members holding 1, 10, 100… groups with no writes (issue 20).
//
// usage: npm run bench:groups -- [--groups 1,10,100] [--seconds S]
// Three node processes on 127.0.0.1 with default timing. For each count N in --groups (ascending,
// default 1,10,100; at most 1000), groups are added through POST /v1/groups (three members
// each, so every node holds every group) until the cluster holds N in all, counting group 1;
// once each has a leader, the nodes sit idle for S seconds (default 10) and each process's
// utime + stime over that window is printed as a share of one core, with the heartbeats it
// implies. The cluster is built once and grown, so later counts include the earlier groups.

import { serverCpuMs } from './bench-stats.js';
import { nodeCall, waitForGroupLeaders } from './cluster-groups.js';
import { LocalCluster } from './local-cluster.js';

const USAGE = 'usage: npm run bench:groups -- [--groups 1,10,100] [--seconds S]';
const MAX_GROUPS = 1000;

class UsageError extends Error {}

interface Options {
  counts: number[];
  seconds: number;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { counts: [1, 10, 100], seconds: 10 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1] ?? '';
    if (flag === '--groups') {
      const counts = value.split(',').map(Number);
      if (counts.length === 0 || !counts.every((n) => Number.isInteger(n) && n >= 1 && n <= MAX_GROUPS)) {
        throw new UsageError(`--groups needs counts from 1 to ${MAX_GROUPS}, comma-separated; ${USAGE}`);
      }
      options.counts = [...new Set(counts)].sort((a, b) => a - b);
    } else if (flag === '--seconds') {
      const seconds = Number(value);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600)
        throw new UsageError(`--seconds needs 1 to 3600; ${USAGE}`);
      options.seconds = seconds;
    } else {
      throw new UsageError(`unknown flag ${flag}; ${USAGE}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  try {
    await cluster.create(3);
    cluster.startAll();
    const leader = await cluster.waitForLeader(30_000);
    let held = 1;
    console.log(
      `bench:groups — 3 node processes, idle for ${options.seconds} s at each count; CPU as % of one core`,
    );
    console.log('');
    console.log('| groups | n1 | n2 | n3 | per group, mean of the nodes |');
    console.log('|---|---|---|---|---|');
    for (const count of options.counts) {
      const started = Date.now();
      while (held < count) {
        await nodeCall(leader, 'POST', '/v1/groups', {});
        held++;
        if (held % 25 === 0) process.stderr.write(`  ${held} groups created\n`);
      }
      await waitForGroupLeaders(leader, count);
      if (count > 1) process.stderr.write(`  ${count} groups led after ${Date.now() - started} ms\n`);
      // Let elections and catch-up settle before the idle window.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const pids = cluster.nodes.map((n) => n.child?.pid ?? 0);
      const before = pids.map((pid) => serverCpuMs([pid]));
      const t0 = performance.now();
      await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
      const wall = performance.now() - t0;
      const shares = pids.map((pid, i) => ((serverCpuMs([pid]) - before[i]!) / wall) * 100);
      const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
      console.log(
        `| ${count} | ${shares.map((s) => `${s.toFixed(1)} %`).join(' | ')} | ${(mean / count).toFixed(2)} % |`,
      );
    }
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench:groups: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
