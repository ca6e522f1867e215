// Backups measured: `backup save` and `restore` MB/s on a large state, and put latency during a backup against without.
//
// usage: npm run bench:backup -- [--mb 1024] [--clients 16] [--seconds 10]
// Three node processes on 127.0.0.1: n1 starts on a state built offline (scripts/state-builder.ts),
// n2 and n3 join as voters and catch up by snapshot; the backup is taken by the CLI, from a
// caught-up follower, while the clients put to the leader.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '../src/client/index.js';
import { NodeStorage } from '../storage/storage.js';
import { ascending, percentile } from './bench-stats.js';
import { LocalCluster } from './local-cluster.js';
import { buildState } from './state-builder.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'src', 'cli.js');
const run = promisify(execFile);
const MB = 1024 * 1024;
const USAGE = 'usage: npm run bench:backup -- [--mb 1024] [--clients 16] [--seconds 10]';

interface Options {
  mb: number;
  clients: number;
  seconds: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { mb: 1024, clients: 16, seconds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    const key = ({ '--mb': 'mb', '--clients': 'clients', '--seconds': 'seconds' } as const)[flag ?? ''];
    const value = Number(argv[++i]);
    if (key === undefined) throw new UsageError(`unknown flag ${flag}; ${USAGE}`);
    if (!Number.isInteger(value) || value < 1)
      throw new UsageError(`${flag} needs a positive integer; ${USAGE}`);
    options[key] = value;
  }
  return options;
}

class UsageError extends Error {}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Sequential puts from `clients` clients until `stop()` says so; the latencies in ms. */
async function putLoad(client: Client, clients: number, stop: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  const value = { payload: 'x'.repeat(240) };
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; !stop(); i++) {
        const started = performance.now();
        await client.put('default', `load/${c}/${i % 1000}`, value);
        latencies.push(performance.now() - started);
      }
    }),
  );
  return ascending(latencies);
}

function describe(latencies: number[], seconds: number): string {
  return `${latencies.length} puts in ${seconds.toFixed(1)} s (${Math.round(latencies.length / seconds)}/s), p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  try {
    await cluster.create(1);
    const n1 = cluster.nodes[0]!;
    const clusterId = 'bench-backup';
    console.error(`building a state of ${options.mb} MiB in ${n1.dataDir}…`);
    const buildStarted = performance.now();
    const storage = await NodeStorage.open({ dataDir: n1.dataDir, clusterId, storageEngine: 'rocksdb' });
    const group = await storage.bootstrapGroup(
      1,
      { voters: ['n1'], learners: [] },
      {
        n1: `/ip4/127.0.0.1/tcp/${n1.peerPort}`,
      },
    );
    const built = await buildState(group, options.mb, { persistLog: true });
    const snapshot = await group.createSnapshot();
    await group.compact(snapshot.header.index);
    await storage.close();
    writeFileSync(join(n1.dataDir, 'node.json'), `${JSON.stringify({ name: 'n1', clusterId })}\n`);
    console.error(
      `  ${built.documents} documents, ${(built.valueBytes / MB).toFixed(0)} MiB of values in ${((performance.now() - buildStarted) / 1000).toFixed(1)} s`,
    );
    cluster.start(n1);
    await cluster.waitForLeader(60_000);
    for (let i = 0; i < 2; i++) cluster.start(await cluster.addJoiner(['--role', 'voter']));
    const joinStarted = performance.now();
    await until(
      'n2 and n3 voters, caught up',
      async () => {
        const response = await fetch(`${n1.url}/v1/members`, { signal: AbortSignal.timeout(2000) });
        const { members } = (await response.json()) as { members: { role: string; lag: number }[] };
        return members.filter((m) => m.role === 'voter' && m.lag === 0).length === 3 ? true : undefined;
      },
      600_000,
    );
    console.error(
      `  n2 and n3 joined and caught up in ${((performance.now() - joinStarted) / 1000).toFixed(1)} s`,
    );
    const leader = await cluster.waitForLeader();
    const endpoints = cluster.nodes.map((n) => n.url).join(',');
    const client = new Client({ endpoints: [leader.url] });

    // Without a backup.
    let until1 = performance.now() + options.seconds * 1000;
    const baseStarted = performance.now();
    const base = await putLoad(client, options.clients, () => performance.now() > until1);
    const baseSeconds = (performance.now() - baseStarted) / 1000;

    // During a backup (the load runs from the backup's start to its end).
    const file = join(n1.dataDir, '..', 'bench.snap');
    let backupDone = false;
    const backupStarted = performance.now();
    const backup = run(process.execPath, [CLI, 'backup', 'save', file, '--endpoints', endpoints, '--json'], {
      maxBuffer: 1024 * 1024,
    }).finally(() => {
      backupDone = true;
    });
    const during = await putLoad(client, options.clients, () => backupDone);
    const backupSeconds = (performance.now() - backupStarted) / 1000;
    const { stdout, stderr } = await backup;
    const summary = JSON.parse(stdout) as { bytes: number; revision: number; node: string };
    const transfer = /in ([\d.]+) s \(the node wrote it in ([\d.]+) s\)/.exec(stderr);
    client.close();

    // Restore.
    until1 = 0;
    const restoreStarted = performance.now();
    await run(process.execPath, [
      CLI,
      'restore',
      file,
      '--data-dir',
      join(n1.dataDir, '..', 'restored'),
      '--name',
      'r1',
      '--json',
    ]);
    const restoreSeconds = (performance.now() - restoreStarted) / 1000;

    const mib = summary.bytes / MB;
    console.log(
      `bench:backup — state of ${options.mb} MiB of values, backup file ${mib.toFixed(0)} MiB (revision ${summary.revision}, from ${summary.node}), ${options.clients} clients putting to the leader`,
    );
    console.log(
      `backup save: ${backupSeconds.toFixed(1)} s end to end = ${(mib / backupSeconds).toFixed(1)} MB/s` +
        (transfer
          ? ` (the node writes the file in ${transfer[2]} s, the transfer takes ${transfer[1]} s, then the CLI verifies it)`
          : ''),
    );
    console.log(
      `restore: ${restoreSeconds.toFixed(1)} s = ${(mib / restoreSeconds).toFixed(1)} MB/s (verify + build)`,
    );
    console.log(`puts without a backup: ${describe(base, baseSeconds)}`);
    console.log(`puts during the backup: ${describe(during, backupSeconds)}`);
    console.log(
      `ratio during/without: p50 ${(percentile(during, 50) / percentile(base, 50)).toFixed(2)}, p99 ${(percentile(during, 99) / percentile(base, 99)).toFixed(2)}`,
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench:backup: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
