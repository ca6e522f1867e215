// Client-side figures of a three-node cluster: WebSocket vs HTTP put throughput, leader affinity, watch delivery latency, a new node's catch-up time.
//
// usage: npm run bench:clients -- [--quick] [--seconds S] [--runs N] [--catch-up-entries N] [--watch-writes N]
// Nodes are separate processes on 127.0.0.1; clients run in this process through the TypeScript
// client (one WebSocket each) or fetch (HTTP keep-alive). Values are 256-byte JSON documents.

import { Client, type WatchEvent } from '../src/client/index.js';
import { ascending, type LoadResult, loop, median, percentile } from './bench-stats.js';
import { type ClusterNode, LocalCluster, peerAddress } from './local-cluster.js';

interface Options {
  seconds: number;
  runs: number;
  catchUpEntries: number;
  watchWrites: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { seconds: 3, runs: 3, catchUpEntries: 100_000, watchWrites: 300 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--quick') {
      Object.assign(options, { seconds: 1, runs: 1, catchUpEntries: 10_000, watchWrites: 100 });
      continue;
    }
    const value = Number(argv[++i]);
    if (!(value > 0)) throw new Error(`${flag} needs a positive number`);
    if (flag === '--seconds') options.seconds = value;
    else if (flag === '--runs') options.runs = value;
    else if (flag === '--catch-up-entries') options.catchUpEntries = value;
    else if (flag === '--watch-writes') options.watchWrites = value;
    else
      throw new Error(
        `unknown flag ${flag} (--quick --seconds S --runs N --catch-up-entries N --watch-writes N)`,
      );
  }
  return options;
}

const VALUE = { payload: 'x'.repeat(240) };
const BODY = JSON.stringify(VALUE);
const KEYS = 10_000;

async function wsPuts(node: ClusterNode, concurrency: number, seconds: number): Promise<LoadResult> {
  const client = new Client({ endpoints: [node.url] });
  try {
    await client.put('default', 'warm', VALUE);
    return await loop(concurrency, seconds, async (i) => {
      await client.put('default', `k${i % KEYS}`, VALUE);
    });
  } finally {
    await client.close();
  }
}

async function httpPuts(node: ClusterNode, concurrency: number, seconds: number): Promise<LoadResult> {
  return loop(concurrency, seconds, async (i) => {
    const response = await fetch(`${node.url}/v1/realms/default/kv/k${i % KEYS}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: BODY,
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  });
}

/**
 * Puts from 6 clients whose endpoint lists start at different nodes (two start at each), as
 * an application's processes would: with preferLeader they move to the leader, without it
 * two thirds of the writes are forwarded by a follower.
 */
async function spreadPuts(
  cluster: LocalCluster,
  preferLeader: boolean,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  const urls = cluster.nodes.map((node) => node.url);
  const clients = Array.from(
    { length: 6 },
    (_, i) => new Client({ endpoints: [...urls.slice(i % 3), ...urls.slice(0, i % 3)], preferLeader }),
  );
  try {
    // Two writes each: the first opens the connection, the second lets a leader check run.
    for (const client of clients) for (const key of ['warm', 'warm']) await client.put('default', key, VALUE);
    return await loop(concurrency, seconds, async (i) => {
      await clients[i % clients.length]!.put('default', `k${i % KEYS}`, VALUE);
    });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}

/** `watchers` clients (spread over the nodes) watch one prefix; one writer puts sequentially. */
async function watchLatency(cluster: LocalCluster, watchers: number, writes: number) {
  const urls = cluster.nodes.map((n) => n.url);
  const writer = new Client({ endpoints: urls });
  const clients = Array.from(
    { length: watchers },
    (_, i) => new Client({ endpoints: [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)] }),
  );
  const prefix = `lat${watchers}/`;
  try {
    const { revision } = await writer.put('default', 'lat-start', 0);
    const arrivals: Map<number, number>[] = clients.map(() => new Map());
    const watches = clients.map((c) => c.watch('default', prefix, { fromRevision: revision + 1 }));
    const consumers = watches.map(async (watch, i) => {
      for await (const event of watch as AsyncIterable<WatchEvent>)
        arrivals[i]!.set(event.modRevision, performance.now());
    });
    // Every watcher is live once it has seen the warm-up write.
    const warm = await writer.put('default', `${prefix}warm`, 0);
    const deadline = Date.now() + 30_000;
    while (!arrivals.every((a) => a.has(warm.revision))) {
      if (Date.now() > deadline) throw new Error('watchers did not all see the warm-up write');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const acked = new Map<number, { sent: number; acked: number }>();
    for (let i = 0; i < writes; i++) {
      const sent = performance.now();
      const result = await writer.put('default', `${prefix}${i}`, VALUE);
      acked.set(result.revision, { sent, acked: performance.now() });
    }
    const last = Math.max(...acked.keys());
    while (!arrivals.every((a) => a.has(last))) {
      if (Date.now() > deadline + 60_000) throw new Error('watchers did not all see the last write');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const fromAck: number[] = [];
    const fromSend: number[] = [];
    let missing = 0;
    for (const a of arrivals) {
      for (const [rev, times] of acked) {
        const at = a.get(rev);
        if (at === undefined) {
          missing++;
          continue;
        }
        fromAck.push(at - times.acked);
        fromSend.push(at - times.sent);
      }
    }
    for (const watch of watches) watch.close();
    await Promise.all(consumers);
    const byAck = ascending(fromAck);
    const bySend = ascending(fromSend);
    return {
      watchers,
      writes,
      events: fromAck.length,
      missing,
      ackP50: percentile(byAck, 50),
      ackP99: percentile(byAck, 99),
      sendP50: percentile(bySend, 50),
      sendP99: percentile(bySend, 99),
    };
  } finally {
    await Promise.all([writer.close(), ...clients.map((c) => c.close())]);
  }
}

async function status(
  node: ClusterNode,
): Promise<{ appliedIndex: number; commitIndex: number; leader: string }> {
  const response = await fetch(`${node.url}/v1/status`);
  return (await response.json()) as { appliedIndex: number; commitIndex: number; leader: string };
}

/** Writes `entries` puts, then adds a fourth node and times how long it takes to apply them all. */
async function catchUp(cluster: LocalCluster, entries: number) {
  const urls = cluster.nodes.map((n) => n.url);
  const clients = Array.from({ length: 4 }, () => new Client({ endpoints: urls }));
  let next = 0;
  const fillStart = performance.now();
  await Promise.all(
    clients.flatMap((client) =>
      Array.from({ length: 64 }, async () => {
        while (next < entries) {
          const i = next++;
          await client.put('default', `fill${i % KEYS}`, VALUE);
        }
      }),
    ),
  );
  const fillSeconds = (performance.now() - fillStart) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  const joiner = await cluster.addJoiner();
  cluster.start(joiner);
  // Wait until the joiner's edge answers (it has discovered the cluster and opened its storage).
  for (let i = 0; ; i++) {
    try {
      await status(joiner);
      break;
    } catch {
      if (i > 600) throw new Error('the joiner did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const target = (await status(cluster.nodes[0]!)).commitIndex;
  const added = performance.now();
  const response = await fetch(`${cluster.nodes[0]!.url}/v1/members`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: joiner.name, peer: peerAddress(joiner) }),
  });
  if (!response.ok) throw new Error(`members add failed: ${await response.text()}`);
  for (;;) {
    const view = await status(joiner).catch(() => undefined);
    if (view && view.appliedIndex >= target) break;
    if (performance.now() - added > 600_000) throw new Error('the joiner did not catch up in 10 minutes');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - added) / 1000;
  return { writes: entries, behindEntries: target, fillSeconds, seconds, entriesPerSecond: target / seconds };
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  const stop = () => void cluster.stop().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await cluster.create(3);
    cluster.startAll();
    const leader = await cluster.waitForLeader();

    console.log(
      `puts with 64 concurrent requests to the leader, ${options.runs} x ${options.seconds} s, medians (alternating WS / HTTP)`,
    );
    const ws: LoadResult[] = [];
    const http: LoadResult[] = [];
    for (let run = 0; run < options.runs; run++) {
      ws.push(await wsPuts(leader, 64, options.seconds));
      http.push(await httpPuts(leader, 64, options.seconds));
    }
    const row = (name: string, results: LoadResult[]) =>
      console.log(
        `  ${name.padEnd(34)} ${fmt(median(results.map((r) => r.perSecond)), 0).padStart(8)} puts/s  p50 ${fmt(
          median(results.map((r) => r.p50)),
        )} ms  p99 ${fmt(median(results.map((r) => r.p99)))} ms  errors ${results.reduce((a, r) => a + r.errors, 0)}`,
      );
    row('WebSocket, one connection (client)', ws);
    row('HTTP, 64 keep-alive connections', http);
    console.log(
      `  ratio WS/HTTP: ${fmt(median(ws.map((r) => r.perSecond)) / median(http.map((r) => r.perSecond)), 2)}`,
    );

    console.log(
      `leader affinity: 64 concurrent puts from 6 clients starting at different nodes, ${options.runs} x ${options.seconds} s, medians (alternating)`,
    );
    const near: LoadResult[] = [];
    const spread: LoadResult[] = [];
    for (let run = 0; run < options.runs; run++) {
      near.push(await spreadPuts(cluster, true, 64, options.seconds));
      spread.push(await spreadPuts(cluster, false, 64, options.seconds));
    }
    row('preferLeader: true (default)', near);
    row('preferLeader: false', spread);
    console.log(
      `  ratio: ${fmt(median(near.map((r) => r.perSecond)) / median(spread.map((r) => r.perSecond)), 2)}`,
    );

    console.log(
      `watch delivery, one writer putting sequentially (${options.watchWrites} writes), watchers spread over the 3 nodes`,
    );
    for (const watchers of [1, 100]) {
      const r = await watchLatency(cluster, watchers, options.watchWrites);
      console.log(
        `  ${String(watchers).padStart(3)} watcher(s): ${r.events} events, ${r.missing} missing; ` +
          `from write ack p50 ${fmt(r.ackP50, 2)} ms p99 ${fmt(r.ackP99, 2)} ms; ` +
          `from write sent p50 ${fmt(r.sendP50, 2)} ms p99 ${fmt(r.sendP99, 2)} ms`,
      );
    }

    console.log(`catch-up of a new node (${options.catchUpEntries} puts written first)`);
    const c = await catchUp(cluster, options.catchUpEntries);
    console.log(
      `  filled in ${fmt(c.fillSeconds)} s; the new node applied ${c.behindEntries} entries in ${fmt(c.seconds, 2)} s ` +
        `(${fmt(c.entriesPerSecond, 0)} entries/s) from members add`,
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
