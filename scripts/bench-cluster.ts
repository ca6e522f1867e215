// Load script for a three-node cluster: put throughput and latency at several client counts, and leader failover time.
//
// usage: npm run bench:cluster -- [--clients 1,16,64,256] [--seconds 5] [--failovers 5]
// The nodes are separate processes on loopback; the clients run in this process (HTTP keep-alive),
// each sending 256-byte JSON documents to a node chosen round-robin, one request at a time.

import { type ClusterNode, LocalCluster } from './local-cluster.js';

interface Options {
  clients: number[];
  seconds: number;
  failovers: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { clients: [1, 16, 64, 256], seconds: 5, failovers: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${argv[i]} needs a value`);
    if (argv[i] === '--clients') options.clients = value.split(',').map(Number);
    else if (argv[i] === '--seconds') options.seconds = Number(value);
    else if (argv[i] === '--failovers') options.failovers = Number(value);
    else throw new Error(`unknown flag ${argv[i]} (--clients 1,16 --seconds S --failovers N)`);
  }
  if (!options.clients.every((n) => Number.isInteger(n) && n > 0)) throw new Error('bad --clients');
  if (!(options.seconds > 0) || !Number.isInteger(options.failovers) || options.failovers < 0)
    throw new Error('bad --seconds/--failovers');
  return options;
}

const VALUE = JSON.stringify({ payload: 'x'.repeat(240) });
const HEADERS = { 'content-type': 'application/json' };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function load(nodes: ClusterNode[], clients: number, seconds: number) {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      let i = 0;
      while (performance.now() < deadline) {
        const node = nodes[(client + i) % nodes.length]!;
        const key = `c${client}-${i++ % 1000}`;
        const t0 = performance.now();
        try {
          const response = await fetch(`${node.url}/v1/realms/default/kv/${key}`, {
            method: 'PUT',
            headers: HEADERS,
            body: VALUE,
          });
          await response.arrayBuffer();
          if (response.ok) latencies.push(performance.now() - t0);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
  };
}

/** kill -9 of the leader, then the time until a put through a survivor succeeds. */
async function failover(cluster: LocalCluster): Promise<number> {
  const leader = await cluster.waitForLeader();
  const survivors = cluster.nodes.filter((n) => n !== leader);
  await cluster.kill(leader, 'SIGKILL');
  const killed = performance.now();
  for (let attempt = 0; ; attempt++) {
    const node = survivors[attempt % survivors.length]!;
    try {
      const response = await fetch(`${node.url}/v1/realms/default/kv/failover`, {
        method: 'PUT',
        headers: HEADERS,
        body: VALUE,
        signal: AbortSignal.timeout(2000),
      });
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // The survivor is still electing; try the next one.
    }
    if (performance.now() - killed > 30_000) throw new Error('no successful put within 30 s of the kill');
  }
  const ms = performance.now() - killed;
  cluster.start(leader);
  await cluster.waitForLeader();
  return ms;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  try {
    await cluster.create(3);
    cluster.startAll();
    await cluster.waitForLeader();
    console.log(
      `bench:cluster — 3 voters (separate processes, loopback, RocksDB, synced writes), 256-byte JSON puts, ` +
        `${options.seconds} s per row, clients round-robin over all nodes (node ${process.version})`,
    );
    const rows = [['clients', 'puts/s', 'p50 ms', 'p99 ms', 'errors', 'elections']];
    for (const clients of options.clients) {
      await load(cluster.nodes, clients, 1); // Warm-up.
      const termBefore = (await cluster.status(await cluster.waitForLeader()))?.term ?? 0;
      const result = await load(cluster.nodes, clients, options.seconds);
      const termAfter = (await cluster.status(await cluster.waitForLeader()))?.term ?? 0;
      rows.push([
        String(clients),
        Math.round(result.rate).toLocaleString('en-US'),
        result.p50.toFixed(2),
        result.p99.toFixed(2),
        String(result.errors),
        // Terms started during the row: a leader change under load is a spurious election.
        String(termAfter - termBefore),
      ]);
    }
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
    if (options.failovers > 0) {
      const times: number[] = [];
      for (let i = 0; i < options.failovers; i++) times.push(await failover(cluster));
      const sorted = times.slice().sort((a, b) => a - b);
      console.log(
        `failover (kill -9 of the leader → first successful put through a survivor): median ${percentile(sorted, 50).toFixed(0)} ms ` +
          `of ${times.length} [${times.map((t) => t.toFixed(0)).join(', ')}]`,
      );
    }
  } finally {
    await cluster.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench:cluster: ${error.message}`);
  process.exitCode = 1;
});
