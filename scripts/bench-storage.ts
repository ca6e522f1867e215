// Storage benchmark: synced appends per engine beside raw fdatasync, apply throughput, cold log reads, snapshot MB/s.

/*
 * npm run bench:storage -- [--seconds 2] [--runs 3] [--engines rocksdb,leveldb] [--snapshot-mb 1024]
 *                          [--dir <directory on the disk to measure>] [--skip-snapshot]
 *
 * Everything runs in fresh directories under --dir (default: the OS temp dir), removed at the end.
 * Appends are 256-byte entries, persisted with RaftLogStore.save through the group-commit queue:
 * "batch N" awaits each save of N entries before the next (one fsync each); "64 in flight" keeps
 * 64 one-entry saves outstanding, as a busy leader does, so the queue coalesces them.
 * Rates are medians over --runs runs of --seconds each; latencies are the median run's p50/p99.
 */

import { spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../raft/types.js';
import { encodeCommand } from '../storage/commands.js';
import type { EngineKind } from '../storage/engine.js';
import { SnapshotReader } from '../storage/snapshot-file.js';
import { type GroupStorage, NodeStorage } from '../storage/storage.js';
import { buildState } from './state-builder.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    engines: { type: 'string', default: 'rocksdb,leveldb' },
    'snapshot-mb': { type: 'string', default: '1024' },
    dir: { type: 'string', default: tmpdir() },
    'skip-snapshot': { type: 'boolean', default: false },
  },
});

const SECONDS = positive('seconds', Number(args.seconds));
const RUNS = positive('runs', Number(args.runs));
const SNAPSHOT_MB = positive('snapshot-mb', Number(args['snapshot-mb']));
const ENGINES = args.engines!.split(',') as EngineKind[];
const ENTRY_BYTES = 256;
const MB = 1024 * 1024;

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${name} must be a positive number, got ${value}`);
  return value;
}

interface Row {
  readonly what: string;
  readonly engine: string;
  readonly perSecond: string;
  readonly mbPerSecond: string;
  readonly syncsPerSecond: string;
  readonly latency: string;
  readonly note: string;
}

const rows: Row[] = [];
const dirs: string[] = [];

function freshDir(label: string): string {
  const dir = mkdtempSync(join(args.dir!, `conclave-bench-${label}-`));
  dirs.push(dir);
  return dir;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

interface Run {
  readonly operations: number;
  readonly entries: number;
  readonly bytes: number;
  readonly syncs: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
}

function summarise(what: string, engine: string, runs: Run[], note = ''): void {
  const rates = runs.map((r) => r.entries / r.seconds);
  const mid = runs[rates.indexOf(median(rates))]!;
  const sorted = [...mid.latenciesMs].sort((a, b) => a - b);
  rows.push({
    what,
    engine,
    perSecond: fmt(median(rates)),
    mbPerSecond: fmt(median(runs.map((r) => r.bytes / MB / r.seconds)), 2),
    syncsPerSecond: fmt(median(runs.map((r) => r.syncs / r.seconds))),
    latency:
      sorted.length > 0 ? `${fmt(percentile(sorted, 0.5), 2)} / ${fmt(percentile(sorted, 0.99), 2)}` : '',
    note,
  });
  console.error(`  ${what} ${engine}: ${fmt(median(rates))}/s`);
}

/** The physical reference: write 4 KiB and fdatasync, in a loop, on the same disk. */
function benchFdatasync(append: boolean): Run {
  const dir = freshDir('fsync');
  const fd = openSync(join(dir, 'f'), 'w');
  const block = Buffer.alloc(4096, 7);
  const latencies: number[] = [];
  const start = performance.now();
  let operations = 0;
  let position = 0;
  while (performance.now() - start < SECONDS * 1000) {
    const t0 = performance.now();
    writeSync(fd, block, 0, block.length, append ? position : 0);
    fdatasyncSync(fd);
    latencies.push(performance.now() - t0);
    position += block.length;
    operations++;
  }
  const seconds = (performance.now() - start) / 1000;
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
  return {
    operations,
    entries: operations,
    bytes: operations * block.length,
    syncs: operations,
    seconds,
    latenciesMs: latencies,
  };
}

function payloadEntry(index: number): Entry {
  const data = new Uint8Array(ENTRY_BYTES);
  for (let i = 0; i < ENTRY_BYTES; i++) data[i] = (index * 31 + i * 7) & 0xff;
  return { index, term: 2, type: 0, data };
}

async function openGroup(
  engine: EngineKind,
  label: string,
  extra: Record<string, number> = {},
): Promise<[NodeStorage, GroupStorage]> {
  const node = await NodeStorage.open({
    dataDir: freshDir(label),
    clusterId: 'bench',
    storageEngine: engine,
    ...extra,
  });
  return [node, await node.bootstrapGroup(1, { voters: ['n1'], learners: [] })];
}

/** One save of `batch` entries at a time, awaited. */
async function benchAppend(engine: EngineKind, batch: number): Promise<Run> {
  const [node, group] = await openGroup(engine, 'append');
  let next = 2;
  const latencies: number[] = [];
  const syncs0 = node.queue.stats.batches;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const entries: Entry[] = [];
    for (let i = 0; i < batch; i++) entries.push(payloadEntry(next++));
    const t0 = performance.now();
    await group.persist({ entries, hardState: { term: 2, vote: 'n1', commit: next - 1 } });
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  const entries = next - 2;
  const syncs = node.queue.stats.batches - syncs0;
  await node.close();
  return {
    operations: latencies.length,
    entries,
    bytes: entries * ENTRY_BYTES,
    syncs,
    seconds,
    latenciesMs: latencies,
  };
}

/** `inFlight` one-entry saves outstanding at all times: the group commit at work. */
async function benchAppendConcurrent(engine: EngineKind, inFlight: number): Promise<Run> {
  const [node, group] = await openGroup(engine, 'append-concurrent');
  let next = 2;
  let done = 0;
  const latencies: number[] = [];
  const syncs0 = node.queue.stats.batches;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  await new Promise<void>((resolve, reject) => {
    let outstanding = 0;
    const launch = (): void => {
      while (outstanding < inFlight && performance.now() < deadline) {
        const t0 = performance.now();
        outstanding++;
        group.persist({ entries: [payloadEntry(next++)] }).then(() => {
          latencies.push(performance.now() - t0);
          outstanding--;
          done++;
          if (performance.now() < deadline) launch();
          else if (outstanding === 0) resolve();
        }, reject);
      }
    };
    launch();
  });
  const seconds = (performance.now() - start) / 1000;
  const syncs = node.queue.stats.batches - syncs0;
  await node.close();
  return {
    operations: done,
    entries: done,
    bytes: done * ENTRY_BYTES,
    syncs,
    seconds,
    latenciesMs: latencies,
  };
}

function putCommand(index: number, valueChars: number, keys: number): Entry {
  const value = `v${index}`.padEnd(valueChars, 'abcdefghijklmnopqrstuvwxyz0123456789');
  return {
    index,
    term: 1,
    type: 0,
    data: encodeCommand({
      v: 1,
      time: index,
      op: { type: 'put', realm: 'default', key: `key/${index % keys}`, value },
    }),
  };
}

/** Applies put commands of ~256 bytes in batches of `batch` entries. */
async function benchApply(engine: EngineKind, batch: number): Promise<Run> {
  const [node, group] = await openGroup(engine, 'apply');
  let next = 2;
  const latencies: number[] = [];
  let bytes = 0;
  const syncs0 = node.queue.stats.batches;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const entries: Entry[] = [];
    for (let i = 0; i < batch; i++) {
      const entry = putCommand(next++, 180, 100_000);
      bytes += entry.data.length;
      entries.push(entry);
    }
    const t0 = performance.now();
    await group.apply(entries);
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  const entries = next - 2;
  const syncs = node.queue.stats.batches - syncs0;
  await node.close();
  return { operations: latencies.length, entries, bytes, syncs, seconds, latenciesMs: latencies };
}

/** entries(low, low + 64) with no cache: the synchronous read path raft uses for a lagging follower. */
async function benchColdRead(engine: EngineKind): Promise<Run> {
  const [node, group] = await openGroup(engine, 'read', { logCacheMaxEntries: 0 });
  const total = 100_000;
  for (let from = 2; from < total; from += 1000) {
    const entries: Entry[] = [];
    for (let i = from; i < Math.min(from + 1000, total); i++) entries.push(payloadEntry(i));
    await group.persist({ entries });
  }
  const latencies: number[] = [];
  let entries = 0;
  let state = 12345;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    state = (state * 1103515245 + 12345) >>> 0;
    const low = 2 + (state % (total - 100));
    const t0 = performance.now();
    entries += group.log.entries(low, low + 64, 1 << 30).length;
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  await node.close();
  return {
    operations: latencies.length,
    entries,
    bytes: entries * ENTRY_BYTES,
    syncs: 0,
    seconds,
    latenciesMs: latencies,
  };
}

/** Builds a state of about `mb` MiB of document values, then writes a snapshot file and reads it back. */
async function benchSnapshot(engine: EngineKind): Promise<void> {
  const [node, group] = await openGroup(engine, 'snapshot');
  const genStart = performance.now();
  const { documents, valueBytes } = await buildState(group, SNAPSHOT_MB);
  const genSeconds = (performance.now() - genStart) / 1000;
  rows.push({
    what: `apply 4 KB docs (build ${fmt(valueBytes / MB)} MiB)`,
    engine,
    perSecond: fmt(documents / genSeconds),
    mbPerSecond: fmt(valueBytes / MB / genSeconds, 2),
    syncsPerSecond: '',
    latency: '',
    note: 'single run, batches of 64',
  });
  console.error(`  built ${fmt(valueBytes / MB)} MiB in ${fmt(genSeconds, 1)} s`);

  const file = join(freshDir('snapfile'), 'state.snap');
  const writeStart = performance.now();
  const info = await group.backup(file);
  const writeSeconds = (performance.now() - writeStart) / 1000;
  await node.close();
  rows.push({
    what: 'snapshot write (stream + file + fsync)',
    engine,
    perSecond: '',
    mbPerSecond: fmt(info.bytes / MB / writeSeconds, 1),
    syncsPerSecond: '',
    latency: `${fmt(writeSeconds, 1)} s`,
    note: `${fmt(info.bytes / MB)} MiB file, ${fmt(info.records)} records, single run`,
  });

  const verifyStart = performance.now();
  const reader = await SnapshotReader.open(file);
  for await (const _ of reader.chunks()) {
    // Only reading and verifying.
  }
  await reader.close();
  const verifySeconds = (performance.now() - verifyStart) / 1000;
  rows.push({
    what: 'snapshot read + verify only',
    engine: '(format)',
    perSecond: '',
    mbPerSecond: fmt(info.bytes / MB / verifySeconds, 1),
    syncsPerSecond: '',
    latency: `${fmt(verifySeconds, 1)} s`,
    note: 'CRC-32C per chunk, page cache warm',
  });

  const joinerNode = await NodeStorage.open({
    dataDir: freshDir('install'),
    clusterId: 'bench',
    storageEngine: engine,
  });
  const joiner = await joinerNode.createGroup(1);
  const installStart = performance.now();
  await joiner.installSnapshot(file);
  const installSeconds = (performance.now() - installStart) / 1000;
  await joinerNode.close();
  rows.push({
    what: 'snapshot read (verify + write aside + switch)',
    engine,
    perSecond: '',
    mbPerSecond: fmt(info.bytes / MB / installSeconds, 1),
    syncsPerSecond: '',
    latency: `${fmt(installSeconds, 1)} s`,
    note: 'installSnapshot into a fresh joiner, single run',
  });
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

async function repeat(fn: () => Promise<Run> | Run): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await fn());
  return runs;
}

async function main(): Promise<void> {
  const df = spawnSync('df', ['-h', args.dir!], { encoding: 'utf8' }).stdout.trim().split('\n').pop();
  console.error(`bench:storage in ${args.dir} (${df}); ${RUNS} runs x ${SECONDS} s; node ${process.version}`);
  try {
    summarise(
      'fdatasync 4 KiB, same block',
      '(disk)',
      await repeat(() => benchFdatasync(false)),
      'physical reference',
    );
    summarise(
      'fdatasync 4 KiB, appending',
      '(disk)',
      await repeat(() => benchFdatasync(true)),
      'file grows: metadata too',
    );
    for (const engine of ENGINES) {
      for (const batch of [1, 16, 256]) {
        summarise(
          `append, batch ${batch}`,
          engine,
          await repeat(() => benchAppend(engine, batch)),
          '256-byte entries, one save at a time',
        );
      }
      summarise(
        'append, batch 1, 64 in flight',
        engine,
        await repeat(() => benchAppendConcurrent(engine, 64)),
        'group commit',
      );
    }
    for (const engine of ENGINES) {
      for (const batch of [1, 16, 256]) {
        summarise(
          `apply, batch ${batch}`,
          engine,
          await repeat(() => benchApply(engine, batch)),
          '~256-byte put commands',
        );
      }
    }
    for (const engine of ENGINES) {
      summarise(
        'cold log read, 64 entries',
        engine,
        await repeat(() => benchColdRead(engine)),
        'no cache; latency per entries() call',
      );
    }
    if (!args['skip-snapshot']) for (const engine of ENGINES) await benchSnapshot(engine);
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  printTable();
}

function printTable(): void {
  const header = ['what', 'engine', 'entries/s', 'MB/s', 'fsyncs/s', 'latency ms p50 / p99', 'note'];
  const body = rows.map((r) => [
    r.what,
    r.engine,
    r.perSecond,
    r.mbPerSecond,
    r.syncsPerSecond,
    r.latency,
    r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(
    `| ${widths.map((w, i) => (i >= 2 && i <= 4 ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`,
  );
  for (const row of body) console.log(line(row));
}

await main();
