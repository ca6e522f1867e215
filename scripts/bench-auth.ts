// What tokens cost: put and get throughput of 64 concurrent clients on a three-node cluster with auth off and one with --auth, measured alternately in one run.
//
// usage: npm run bench:auth -- [--seconds S] [--runs N] [--clients N]
// Two clusters of three node processes on 127.0.0.1 (one started with --auth, its clients sending
// a token of a user with write on the realm); runs alternate between them so that both see the
// same machine. Each run: puts then gets, over HTTP (keep-alive, every request checked) and over
// the WebSocket client (every op checked). Figures: ops/s, p50 and p99 in ms; medians over runs;
// the ratio auth on / auth off.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import { ascending, median, percentile } from './bench-stats.js';
import { type ClusterNode, LocalCluster } from './local-cluster.js';

interface Options {
  seconds: number;
  runs: number;
  clients: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { seconds: 3, runs: 5, clients: 64 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[++i]);
    if (!(value > 0) || !Number.isInteger(value)) throw new Error(`${flag} needs a positive integer`);
    if (flag === '--seconds') options.seconds = value;
    else if (flag === '--runs') options.runs = value;
    else if (flag === '--clients') options.clients = value;
    else throw new Error(`unknown flag ${flag} (--seconds S --runs N --clients N)`);
  }
  return options;
}

const VALUE = { payload: 'x'.repeat(240) };
const BODY = JSON.stringify(VALUE);
const KEYS = 10_000;

interface Result {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

async function loop(
  concurrency: number,
  seconds: number,
  one: (i: number) => Promise<void>,
): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await one(counter++);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const sorted = ascending(latencies);
  return {
    perSecond: latencies.length / ((performance.now() - started) / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    errors,
  };
}

interface Setup {
  readonly name: 'off' | 'on';
  readonly cluster: LocalCluster;
  readonly leader: ClusterNode;
  readonly headers: Record<string, string>;
  readonly token: string | undefined;
}

async function setUp(auth: boolean): Promise<Setup> {
  const cluster = new LocalCluster(auth ? ['--auth'] : []);
  await cluster.create(3);
  cluster.startAll();
  const leader = await cluster.waitForLeader(60_000);
  let token: string | undefined;
  if (auth) {
    const admin = readFileSync(join(cluster.nodes[0]!.dataDir, 'admin.token'), 'utf8').trim();
    const call = async (method: string, path: string, body: unknown) => {
      const response = await fetch(`${leader.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as Record<string, unknown>;
    };
    await call('POST', '/v1/users', { name: 'bench' });
    await call('PUT', '/v1/realms/default/grants/bench', { level: 'write' });
    token = (await call('POST', '/v1/tokens', { user: 'bench' })).token as string;
  }
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  // Every key exists, so gets find documents.
  const client = new Client({ endpoints: [leader.url], ...(token === undefined ? {} : { token }) });
  for (let i = 0; i < KEYS; i += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, j) => client.put('default', `k${i + j}`, VALUE)));
  }
  await client.close();
  return { name: auth ? 'on' : 'off', cluster, leader, headers, token };
}

type Kind = 'http put' | 'http get' | 'ws put' | 'ws get';
const KINDS: readonly Kind[] = ['http put', 'http get', 'ws put', 'ws get'];

async function measure(setup: Setup, kind: Kind, options: Options): Promise<Result> {
  const { leader, headers } = setup;
  if (kind === 'http put' || kind === 'http get') {
    const put = kind === 'http put';
    return loop(options.clients, options.seconds, async (i) => {
      const response = await fetch(`${leader.url}/v1/realms/default/kv/k${i % KEYS}`, {
        method: put ? 'PUT' : 'GET',
        headers: put ? { ...headers, 'content-type': 'application/json' } : headers,
        ...(put ? { body: BODY } : {}),
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
    });
  }
  // A client per 16 concurrent callers, as an application's processes would hold them.
  const clients = Array.from(
    { length: Math.ceil(options.clients / 16) },
    () =>
      new Client({ endpoints: [leader.url], ...(setup.token === undefined ? {} : { token: setup.token }) }),
  );
  try {
    await Promise.all(clients.map((c) => c.get('default', 'k0')));
    return await loop(options.clients, options.seconds, async (i) => {
      const client = clients[i % clients.length]!;
      if (kind === 'ws put') await client.put('default', `k${i % KEYS}`, VALUE);
      else await client.get('default', `k${i % KEYS}`);
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  console.log(
    `setting up two 3-node clusters (auth off, auth on); ${options.clients} clients, ${options.runs} runs of ${options.seconds} s`,
  );
  const setups = [await setUp(false), await setUp(true)];
  try {
    const results = new Map<string, Result[]>();
    for (let run = 0; run < options.runs; run++) {
      for (const kind of KINDS) {
        // Alternate which goes first, so neither always runs on a warmer machine.
        const order = run % 2 === 0 ? setups : [...setups].reverse();
        for (const setup of order) {
          const result = await measure(setup, kind, options);
          const key = `${kind}|${setup.name}`;
          results.set(key, [...(results.get(key) ?? []), result]);
          if (result.errors > 0) console.log(`  ${key} run ${run + 1}: ${result.errors} errors`);
        }
      }
    }
    console.log('\nmedians over runs (ops/s, p50 ms, p99 ms); ratio = auth on / auth off');
    console.log(
      'kind      | auth off: ops/s  p50   p99 | auth on: ops/s  p50   p99 | ops/s ratio  p50 ratio',
    );
    for (const kind of KINDS) {
      const off = results.get(`${kind}|off`)!;
      const on = results.get(`${kind}|on`)!;
      const m = (list: Result[], f: (r: Result) => number) => median(list.map(f));
      const [offRate, onRate] = [m(off, (r) => r.perSecond), m(on, (r) => r.perSecond)];
      const [offP50, onP50] = [m(off, (r) => r.p50), m(on, (r) => r.p50)];
      console.log(
        `${kind.padEnd(9)} | ${offRate.toFixed(0).padStart(14)} ${offP50.toFixed(2).padStart(5)} ${m(
          off,
          (r) => r.p99,
        )
          .toFixed(2)
          .padStart(5)} |` +
          ` ${onRate.toFixed(0).padStart(13)} ${onP50.toFixed(2).padStart(5)} ${m(on, (r) => r.p99)
            .toFixed(2)
            .padStart(5)} |` +
          ` ${(onRate / offRate).toFixed(3).padStart(11)} ${(onP50 / offP50).toFixed(3).padStart(10)}`,
      );
      console.log(
        `          runs off: ${off.map((r) => r.perSecond.toFixed(0)).join(' ')}; on: ${on.map((r) => r.perSecond.toFixed(0)).join(' ')}`,
      );
    }
  } finally {
    await Promise.all(setups.map((s) => s.cluster.stop()));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
