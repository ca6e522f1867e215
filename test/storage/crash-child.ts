// Crash-test child: appends, syncs and applies entries (or installs a snapshot), reporting each step until killed.

/*
 * Usage: node crash-child.js append <dataDir> <engine> <seed>
 *        node crash-child.js install <dataDir> <engine> <snapshot file>
 * Lines (each written with one synchronous write, so a kill never leaves half a line that parses):
 *   ready <firstIndex> <lastIndex> <appliedIndex>   after opening
 *   submit <seq> <from> <to> <term>                 before a write is handed to storage
 *   ack <seq>                                       after that write is durable
 *   applied <index>                                 after entries up to <index> are applied (durably)
 *   installing / installed <index>                  around installSnapshot (install mode)
 * The child exits by itself after 30 s so that a lost parent never leaves it running.
 */

import { writeSync } from 'node:fs';
import { SeededPrng } from '../../raft/prng.js';
import type { EngineKind, RocksSyncedWrites } from '../../storage/engine.js';
import { NodeStorage } from '../../storage/storage.js';
import { crashEntry, ONE } from './helpers.js';

const [mode, dataDir, engine, argument] = process.argv.slice(2);
const prng = new SeededPrng(Number(argument));
/** CONCLAVE_TEST_SYNCED_WRITES=worker: RocksDB's synced writes on a worker thread (see rocks-writer.ts). */
const SYNCED_WRITES =
  process.env.CONCLAVE_TEST_SYNCED_WRITES === undefined
    ? {}
    : { rocksdbSyncedWrites: process.env.CONCLAVE_TEST_SYNCED_WRITES as RocksSyncedWrites };

function report(line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}

async function install(): Promise<void> {
  const node = await NodeStorage.open({
    dataDir: dataDir!,
    clusterId: 'crash-test',
    storageEngine: engine as EngineKind,
  });
  const group = await node.openGroup(1);
  report('installing');
  const header = await group.installSnapshot(argument!);
  report(`installed ${header.index}`);
  setInterval(() => undefined, 1000); // Stay alive until killed (the 30 s exit still applies).
}

async function main(): Promise<void> {
  setTimeout(() => process.exit(3), 30_000).unref();
  if (mode === 'install') return install();
  const node = await NodeStorage.open({
    dataDir: dataDir!,
    clusterId: 'crash-test',
    storageEngine: engine as EngineKind,
    logCacheMaxEntries: 64,
    ...SYNCED_WRITES,
  });
  const group = (await node.groupIds()).includes(1)
    ? await node.openGroup(1)
    : await node.bootstrapGroup(1, ONE);
  const log = group.log;
  let term = Math.max(log.initialState().hardState.term, log.lastIndex() > 0 ? log.term(log.lastIndex()) : 1);
  let last = log.lastIndex();
  let commit = log.initialState().hardState.commit;
  let ackedLast = last;
  let seq = 0;
  report(`ready ${log.firstIndex()} ${last} ${group.state.appliedIndex}`);
  let applying = Promise.resolve();
  const inFlight = new Set<Promise<void>>();
  for (;;) {
    // Keep a few writes in flight, as a pipelining driver does.
    while (inFlight.size >= 4) await Promise.race(inFlight);
    let from = last + 1;
    if (prng.nextInt(10) === 0 && last > commit + 1) {
      // A new term replaces an uncommitted suffix.
      term++;
      from = last - prng.nextInt(Math.min(5, last - commit - 1));
    }
    const to = from + prng.nextInt(8);
    const list = [];
    for (let i = from; i <= to; i++) list.push(crashEntry(i, term));
    // Commit what is acknowledged (never past it), lagging a little.
    commit = Math.max(commit, Math.min(ackedLast, last) - prng.nextInt(3));
    const mySeq = ++seq;
    report(`submit ${mySeq} ${from} ${to} ${term}`);
    const write = group.persist({ entries: list, hardState: { term, vote: 'n1', commit } });
    last = to;
    const committedNow = commit;
    const tracked = write.then(() => {
      report(`ack ${mySeq}`);
      ackedLast = Math.max(ackedLast, to);
      inFlight.delete(tracked);
      // Apply what the durable hard state says is committed, reading entries back from the log.
      applying = applying.then(async () => {
        const applied = group.state.appliedIndex;
        if (committedNow <= applied) return;
        await group.apply(log.entries(applied + 1, committedNow + 1, 1 << 20));
        report(`applied ${group.state.appliedIndex}`);
        if (prng.nextInt(8) === 0 && group.state.appliedIndex > 40) {
          await group.createSnapshot();
          await group.compact(group.state.appliedIndex - 30);
        }
      });
    });
    inFlight.add(tracked);
    if (prng.nextInt(4) === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

main().catch((error: unknown) => {
  report(`error ${String(error instanceof Error ? error.stack : error).replaceAll('\n', ' | ')}`);
  process.exit(2);
});
