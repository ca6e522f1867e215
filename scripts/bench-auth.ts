// What tokens cost: put and get throughput of 64 concurrent clients on a cluster with auth off and one with --auth, measured in pairs back to back in one run.
//
// usage: npm run bench:auth -- [--seconds S] [--pairs N] [--clients N] [--nodes 1|3]
// Two clusters of node processes on 127.0.0.1 (one started with --auth, its clients sending a
// token of a user with write on the realm). For each kind (HTTP put and get, every request
// checked; WebSocket put and get through the client library, every op checked) the two clusters
// are measured back to back, N times, the first of each pair alternating; each pair gives a
// ratio (auth on / auth off) from one moment of the machine, so slow drift cancels. Figures: the
// median of the pairs' ratios, and median ops/s, p50 and p99 in ms of each side.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AccessView, StateGate } from '../src/auth.js';
import { Client } from '../src/client/index.js';
import { newToken } from '../src/tokens.js';
import { ascending, loop, median, type LoadResult as Result } from './bench-stats.js';
import { type ClusterNode, LocalCluster } from './local-cluster.js';

interface Options {
  seconds: number;
  pairs: number;
  clients: number;
  nodes: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { seconds: 1.5, pairs: 15, clients: 64, nodes: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[++i]);
    if (!(value > 0)) throw new Error(`${flag} needs a positive number`);
    if (flag === '--seconds') options.seconds = value;
    else if (flag === '--pairs' && Number.isInteger(value)) options.pairs = value;
    else if (flag === '--clients' && Number.isInteger(value)) options.clients = value;
    else if (flag === '--nodes' && (value === 1 || value === 3)) options.nodes = value;
    else throw new Error(`bad flag ${flag} (--seconds S --pairs N --clients N --nodes 1|3)`);
  }
  return options;
}

const VALUE = { payload: 'x'.repeat(240) };
const BODY = JSON.stringify(VALUE);
const KEYS = 10_000;

interface Setup {
  readonly name: 'off' | 'on';
  readonly cluster: LocalCluster;
  readonly leader: ClusterNode;
  readonly headers: Record<string, string>;
  readonly token: string | undefined;
}

async function setUp(auth: boolean, nodes: number): Promise<Setup> {
  const cluster = new LocalCluster(auth ? ['--auth'] : []);
  await cluster.create(nodes);
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

const rate = (r: Result) => r.perSecond;
const p50 = (r: Result) => r.p50;
const p99 = (r: Result) => r.p99;

/** The CPU one token check costs on a member (StateGate.principal: parse, look up, SHA-256, compare), in µs. */
function gateMicroseconds(): { open: number; token: number } {
  const made = newToken();
  const view: AccessView = {
    auth: true,
    user: () => ({ clusterAdmin: false, grants: { default: 'write' } }),
    token: (id) =>
      id === made.id ? { id, user: 'bench', hash: made.hash, createdAt: 0, expiresAt: 0 } : undefined,
    realm: () => undefined,
  };
  const time = (gate: StateGate, token: string | undefined): number => {
    const calls = 200_000;
    for (let i = 0; i < 10_000; i++) gate.principal(token);
    const started = performance.now();
    for (let i = 0; i < calls; i++) gate.principal(token);
    return ((performance.now() - started) * 1000) / calls;
  };
  return {
    open: time(new StateGate(() => ({ ...view, auth: false }), false), undefined),
    token: time(new StateGate(() => view, false), made.token),
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const gate = gateMicroseconds();
  console.log(
    `one token check on a member: ${gate.token.toFixed(2)} µs of CPU (auth off: ${gate.open.toFixed(3)} µs)`,
  );
  console.log(
    `two ${options.nodes}-node clusters (auth off, auth on); ${options.clients} clients; ${options.pairs} pairs of ${options.seconds} s runs per kind`,
  );
  const setups = [await setUp(false, options.nodes), await setUp(true, options.nodes)];
  try {
    console.log(
      'kind      | auth off: ops/s    p50    p99 | auth on: ops/s    p50    p99 | ratio of ops/s: median of pairs [min, max]',
    );
    for (const kind of KINDS) {
      const off: Result[] = [];
      const on: Result[] = [];
      const ratios: number[] = [];
      for (let pair = 0; pair < options.pairs; pair++) {
        // Alternate which goes first, so neither always runs on a warmer machine.
        const order = pair % 2 === 0 ? setups : [...setups].reverse();
        const got = new Map<string, Result>();
        for (const setup of order) got.set(setup.name, await measure(setup, kind, options));
        const a = got.get('off')!;
        const b = got.get('on')!;
        if (a.errors + b.errors > 0)
          console.log(`  ${kind} pair ${pair + 1}: errors off ${a.errors}, on ${b.errors}`);
        off.push(a);
        on.push(b);
        ratios.push(b.perSecond / a.perSecond);
      }
      const m = (list: Result[], f: (r: Result) => number, digits: number) =>
        median(list.map(f)).toFixed(digits);
      const sorted = ascending(ratios);
      console.log(
        `${kind.padEnd(9)} | ${m(off, rate, 0).padStart(14)} ${m(off, p50, 2).padStart(6)} ${m(off, p99, 2).padStart(6)} |` +
          ` ${m(on, rate, 0).padStart(13)} ${m(on, p50, 2).padStart(6)} ${m(on, p99, 2).padStart(6)} |` +
          ` ${median(ratios).toFixed(3)} [${sorted[0]!.toFixed(2)}, ${sorted[sorted.length - 1]!.toFixed(2)}]`,
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
