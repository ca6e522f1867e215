// The member roles measured: a dead voter to its spare's promotion, stale against linearizable reads on a satellite, a DR replica's lag under load.
//
// usage: npm run bench:roles -- [--quick] [--rounds N] [--promote-after MS] [--reads N] [--seconds S] [--rate PUTS_PER_S]
// Nodes are separate processes on 127.0.0.1 (3 voters and the member measured), default timing.

import { Client } from '../src/client/index.js';
import { ascending, median, percentile } from './bench-stats.js';
import { type ClusterNode, LocalCluster } from './local-cluster.js';

interface Options {
  rounds: number;
  promoteAfterMs: number;
  reads: number;
  seconds: number;
  rate: number;
}

const USAGE =
  'usage: npm run bench:roles -- [--quick] [--rounds N] [--promote-after MS] [--reads N] [--seconds S] [--rate PUTS_PER_S]';

function parseArgs(argv: string[]): Options {
  const options: Options = { rounds: 3, promoteAfterMs: 5000, reads: 2000, seconds: 10, rate: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    if (flag === '--quick') {
      Object.assign(options, { rounds: 1, reads: 300, seconds: 3 });
      continue;
    }
    const value = Number(argv[++i]);
    const key = (
      {
        '--rounds': 'rounds',
        '--promote-after': 'promoteAfterMs',
        '--reads': 'reads',
        '--seconds': 'seconds',
        '--rate': 'rate',
      } as const
    )[flag ?? ''];
    if (key === undefined) throw new UsageError(`unknown flag ${flag}; ${USAGE}`);
    if (!Number.isInteger(value) || value < 1)
      throw new UsageError(`${flag} needs a positive integer; ${USAGE}`);
    options[key] = value;
  }
  return options;
}

class UsageError extends Error {}

interface MemberRow {
  name: string;
  role: string;
  lag: number;
  lagMs: number;
  reachable: boolean;
}

async function members(node: ClusterNode): Promise<MemberRow[] | undefined> {
  try {
    const response = await fetch(`${node.url}/v1/members`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as { members: MemberRow[] }).members : undefined;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** 3 voters and a joiner in `role`, caught up. */
async function clusterWith(
  role: string,
  args: readonly string[],
): Promise<{ cluster: LocalCluster; extra: ClusterNode }> {
  const cluster = new LocalCluster(args);
  await cluster.create(3);
  cluster.startAll();
  await cluster.waitForLeader();
  const extra = await cluster.addJoiner(['--role', role]);
  cluster.start(extra);
  await until(
    `${role} caught up`,
    async () => {
      const row = (await members(cluster.nodes[0]!))?.find((m) => m.name === extra.name);
      return row?.role === role && row.lag === 0 ? row : undefined;
    },
    30_000,
  );
  return { cluster, extra };
}

async function spareRounds(options: Options): Promise<void> {
  const promoted: number[] = [];
  const replaced: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const { cluster, extra: spare } = await clusterWith('spare', [
      '--spare-promote-after',
      String(options.promoteAfterMs),
    ]);
    try {
      const leader = await cluster.waitForLeader();
      const victim = cluster.nodes.find((n) => n !== leader && n !== spare)!;
      const killedAt = performance.now();
      await cluster.kill(victim);
      let promotedAt = 0;
      await until(
        'the dead voter replaced',
        async () => {
          const rows = await members(leader);
          if (rows === undefined) return undefined;
          if (promotedAt === 0 && rows.find((m) => m.name === spare.name)?.role === 'voter')
            promotedAt = performance.now();
          return promotedAt > 0 && !rows.some((m) => m.name === victim.name) ? true : undefined;
        },
        options.promoteAfterMs + 30_000,
      );
      promoted.push(promotedAt - killedAt);
      replaced.push(performance.now() - killedAt);
    } finally {
      await cluster.stop();
    }
  }
  const fmt = (values: number[]) => values.map((v) => Math.round(v)).join(', ');
  console.log(
    `spare: kill -9 of a voter to the spare's promotion, --spare-promote-after ${options.promoteAfterMs} ms: ` +
      `median ${Math.round(median(promoted))} ms [${fmt(promoted)}]; to 3 voters again: median ${Math.round(median(replaced))} ms [${fmt(replaced)}]`,
  );
}

async function satelliteReads(options: Options): Promise<void> {
  const { cluster, extra: satellite } = await clusterWith('satellite', []);
  try {
    const writer = new Client({ endpoints: cluster.nodes.filter((n) => n !== satellite).map((n) => n.url) });
    await writer.put('default', 'read-me', { payload: 'x'.repeat(240) });
    writer.close();
    const reader = new Client({ endpoints: [satellite.url] });
    const time = async (consistency: 'stale' | 'linearizable', n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const started = performance.now();
        await reader.get('default', 'read-me', { consistency });
        out.push(performance.now() - started);
      }
      return out;
    };
    await time('stale', 50);
    await time('linearizable', 50);
    // Alternating blocks, so drift on this machine falls on both alike.
    const stale: number[] = [];
    const linearizable: number[] = [];
    const block = Math.max(1, Math.floor(options.reads / 10));
    for (let done = 0; done < options.reads; done += block) {
      stale.push(...(await time('stale', block)));
      linearizable.push(...(await time('linearizable', block)));
    }
    reader.close();
    const s = ascending(stale);
    const l = ascending(linearizable);
    console.log(
      `satellite: ${s.length} sequential gets each: stale p50 ${median(s).toFixed(2)} ms p99 ${percentile(s, 99).toFixed(2)} ms; ` +
        `linearizable (ReadIndex through the leader) p50 ${median(l).toFixed(2)} ms p99 ${percentile(l, 99).toFixed(2)} ms; ` +
        `ratio of medians ${(median(l) / median(s)).toFixed(2)}`,
    );
  } finally {
    await cluster.stop();
  }
}

async function drLag(options: Options): Promise<void> {
  const { cluster, extra: dr } = await clusterWith('dr', []);
  try {
    const voters = cluster.nodes.filter((n) => n !== dr);
    const client = new Client({ endpoints: voters.map((n) => n.url) });
    const leader = await cluster.waitForLeader();
    const samples: { lag: number; lagMs: number }[] = [];
    let sent = 0;
    let acked = 0;
    let errors = 0;
    let inflight = 0;
    const started = performance.now();
    const end = started + options.seconds * 1000;
    const value = { payload: 'x'.repeat(240) };
    // Open loop: puts issued at the target rate (at most 256 in flight), whatever the latency.
    const issuing = (async () => {
      while (performance.now() < end) {
        const due = Math.floor(((performance.now() - started) / 1000) * options.rate);
        while (sent < due && inflight < 256) {
          const key = `dr/${sent++ % 10_000}`;
          inflight++;
          client.put('default', key, value).then(
            () => {
              acked++;
              inflight--;
            },
            () => {
              errors++;
              inflight--;
            },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const sampling = (async () => {
      while (performance.now() < end) {
        const row = (await members(leader))?.find((m) => m.name === dr.name);
        if (row) samples.push({ lag: row.lag, lagMs: row.lagMs });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    await Promise.all([issuing, sampling]);
    await until('the load drained', async () => (inflight === 0 ? true : undefined), 30_000);
    client.close();
    const seconds = (performance.now() - started) / 1000;
    const lags = ascending(samples.map((s) => s.lag));
    const lagMs = ascending(samples.map((s) => s.lagMs));
    console.log(
      `dr: ${options.rate} puts/s asked, ${Math.round(acked / seconds)}/s acknowledged (${errors} errors) over ${options.seconds} s; ` +
        `the DR replica's lag in ${samples.length} samples of the leader's view: entries p50 ${median(lags)} max ${lags[lags.length - 1] ?? '-'}; ` +
        `ms p50 ${median(lagMs)} max ${lagMs[lagMs.length - 1] ?? '-'}`,
    );
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  console.log(
    `bench:roles — ${options.rounds} spare round(s), ${options.reads} satellite reads of each kind, DR lag at ${options.rate} puts/s for ${options.seconds} s`,
  );
  await spareRounds(options);
  await satelliteReads(options);
  await drLag(options);
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench:roles: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
