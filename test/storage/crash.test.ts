// Crash test: kill -9 a child that appends, syncs and applies; every acknowledged write must survive intact.

/*
 * Each round starts the child (test/storage/crash-child.ts) on the same data directory, lets it
 * run for a random time, SIGKILLs it, reopens the directory here and checks:
 * - every entry in the log decodes, passes its checksum and is the one written at its index
 *   and term (the payload is a function of both);
 * - the log is what some prefix of the child's submitted writes, at least through the last
 *   acknowledged one, makes of the log the round started with (writes land whole and in order;
 *   an acknowledged write is never lost);
 * - the applied index is at least the last one reported, its term is the log's, and the data
 *   agrees with it: revision = applied index (one change per entry), the `last` document names
 *   the applied index, and each k<j> document holds the latest entry for it at or below it.
 * A second test kills the child while it installs a snapshot (state written aside, then one
 * switch): after reopen the node holds exactly its old state or exactly the snapshot's, an
 * acknowledged install is kept, and nothing of an interrupted import is left.
 * Rounds per engine: CONCLAVE_CRASH_ROUNDS (default 8; install rounds 3/4 of it). A failure
 * prints the seed of its round.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { SeededPrng } from '../../raft/prng.js';
import { decodeJson } from '../../storage/codec.js';
import type { EngineKind, RocksSyncedWrites } from '../../storage/engine.js';
import { otherGenerationRanges, pointerKey } from '../../storage/keys.js';
import { NodeStorage } from '../../storage/storage.js';
import { applyOps, crashEntry, dumpDocs, ONE, tempDir } from './helpers.js';

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'crash-child.js');
const ROUNDS = Number(process.env.CONCLAVE_CRASH_ROUNDS ?? 8);
const BASE_SEED = Number(process.env.CONCLAVE_CRASH_SEED ?? 20_260_101);

interface Submit {
  readonly from: number;
  readonly to: number;
  readonly term: number;
}

interface RoundReport {
  readonly submits: Submit[];
  /** Position in `submits` after the last acknowledged write (0: none acknowledged). */
  readonly ackedPrefix: number;
  readonly applied: number;
  readonly lines: number;
  readonly exit: string;
}

/** Runs the child until a random moment, kills it with SIGKILL, and returns what it reported. */
async function runChild(
  t: Tap,
  dir: string,
  engine: EngineKind,
  seed: number,
  killAfterMs: number,
  syncedWrites: RocksSyncedWrites | undefined,
): Promise<RoundReport> {
  const child: ChildProcess = spawn(process.execPath, [CHILD, 'append', dir, engine, String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env:
      syncedWrites === undefined
        ? process.env
        : { ...process.env, CONCLAVE_TEST_SYNCED_WRITES: syncedWrites },
  });
  const pid = child.pid!;
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  const submits: Submit[] = [];
  const seqToPosition = new Map<number, number>();
  let ackedPrefix = 0;
  let applied = 0;
  let lines = 0;
  let buffer = '';
  let stderr = '';
  let timer: NodeJS.Timeout | undefined;
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const [kind, ...rest] = buffer.slice(0, newline).split(' ');
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      lines++;
      const n = rest.map(Number);
      if (kind === 'ready') timer ??= setTimeout(() => process.kill(pid, 'SIGKILL'), killAfterMs);
      if (kind === 'submit') {
        seqToPosition.set(n[0]!, submits.length);
        submits.push({ from: n[1]!, to: n[2]!, term: n[3]! });
      }
      if (kind === 'ack') ackedPrefix = Math.max(ackedPrefix, seqToPosition.get(n[0]!)! + 1);
      if (kind === 'applied') applied = Math.max(applied, n[0]!);
      if (kind === 'error') stderr += rest.join(' ');
    }
  });
  const exit = await new Promise<string>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? `code ${code}`);
    }),
  );
  if (stderr) t.comment(`child stderr: ${stderr.slice(0, 2000)}`);
  return { submits, ackedPrefix, applied, lines, exit };
}

/** The parts of a tap test runChild uses. */
interface Tap {
  teardown(fn: () => unknown): void;
  comment(message: string): void;
}

/** The log as index -> term over [first, last]. */
type LogTerms = { first: number; last: number; terms: Map<number, number> };

function applySubmit(log: LogTerms, submit: Submit): LogTerms {
  const terms = new Map(log.terms);
  for (let i = submit.from; i <= log.last; i++) terms.delete(i);
  for (let i = submit.from; i <= submit.to; i++) terms.set(i, submit.term);
  return { first: log.first, last: submit.to, terms };
}

function crashTest(engine: EngineKind, syncedWrites?: RocksSyncedWrites): void {
  const name = syncedWrites === undefined ? engine : `${engine} (synced writes ${syncedWrites})`;
  t.test(
    `${name}: acknowledged writes survive kill -9, intact, and the applied index agrees with the data`,
    async (t) => {
      const dir = tempDir(t, `crash-${engine}`);
      const prng = new SeededPrng(BASE_SEED + engine.length);
      let before: LogTerms = { first: 2, last: 1, terms: new Map() };
      let lastApplied = 1;
      let totalAcked = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const seed = BASE_SEED * 100 + round;
        const where = `round ${round} (CONCLAVE_CRASH_SEED=${BASE_SEED}, child seed ${seed})`;
        const report = await runChild(t, dir, engine, seed, 40 + prng.nextInt(400), syncedWrites);
        t.equal(report.exit, 'SIGKILL', `${where}: the child ran until killed`);
        totalAcked += report.ackedPrefix;

        const node = await NodeStorage.open({ dataDir: dir, clusterId: 'crash-test', storageEngine: engine });
        try {
          const group = await node.openGroup(1);
          const log = group.log;
          const first = log.firstIndex();
          const last = log.lastIndex();
          // Every entry is intact: right payload for its index and term.
          const disk = new Map<number, number>();
          let broken = 0;
          for (let i = first; i <= last; ) {
            const chunk = log.entries(i, last + 1, 1 << 20);
            for (const e of chunk) {
              disk.set(e.index, e.term);
              const expected = crashEntry(e.index, e.term);
              if (Buffer.compare(Buffer.from(e.data), Buffer.from(expected.data)) !== 0) broken++;
            }
            i += chunk.length;
          }
          t.equal(broken, 0, `${where}: every entry on disk is intact`);
          // The log is some prefix (>= everything acknowledged) of the submitted writes applied in order.
          let candidate = before;
          let matched = -1;
          const matches = (state: LogTerms) => {
            if (state.last !== last) return false;
            for (let i = first; i <= last; i++) if (state.terms.get(i) !== disk.get(i)) return false;
            return true;
          };
          for (let p = 0; p <= report.submits.length; p++) {
            if (p > 0) candidate = applySubmit(candidate, report.submits[p - 1]!);
            if (p >= report.ackedPrefix && matches(candidate)) {
              matched = p;
              break;
            }
          }
          t.ok(
            matched >= report.ackedPrefix,
            `${where}: the log is the round's first ${matched} of ${report.submits.length} writes (${report.ackedPrefix} acknowledged)`,
          );
          // The applied index, its term and the data agree.
          const state = group.state;
          const applied = state.appliedIndex;
          lastApplied = Math.max(lastApplied, report.applied);
          t.ok(applied >= lastApplied, `${where}: applied ${applied} >= last reported ${lastApplied}`);
          t.ok(applied <= log.initialState().hardState.commit, `${where}: applied <= durable commit`);
          t.ok(applied >= first - 1 && applied <= last, `${where}: applied index inside the log`);
          t.equal(state.meta.appliedTerm, log.term(applied), `${where}: applied term matches the log`);
          t.equal(state.revision, applied, `${where}: one revision per applied entry`);
          const lastDoc = await state.get('default', 'last');
          if (applied > 1) {
            t.match(
              lastDoc,
              { ok: true, value: { value: { index: applied }, modRevision: applied } },
              `${where}: "last" is the applied index`,
            );
            let mismatched = 0;
            for (let j = Math.max(2, applied - 12); j <= applied; j++) {
              const doc = await state.get('default', `k${j % 13}`);
              if (!doc.ok || (doc.value.value as { index: number; term: number }).index !== j) mismatched++;
              else if ((doc.value.value as { term: number }).term !== log.term(j)) mismatched++;
            }
            t.equal(mismatched, 0, `${where}: each k<j> holds the latest applied entry for it`);
          }
          before = { first, last, terms: disk };
          lastApplied = applied;
        } finally {
          await node.close();
        }
      }
      t.ok(totalAcked > ROUNDS, `the child acknowledged ${totalAcked} writes over ${ROUNDS} rounds`);
    },
  );
}

/** Runs the child's install of `file`, killing it `killAfterMs` after it starts installing. */
async function runInstallChild(
  t: Tap,
  dir: string,
  engine: EngineKind,
  file: string,
  killAfterMs: number,
): Promise<{ installed: boolean; exit: string }> {
  const child = spawn(process.execPath, [CHILD, 'install', dir, engine, file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  let installed = false;
  let timer: NodeJS.Timeout | undefined;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    if (text.includes('installing')) timer ??= setTimeout(() => process.kill(pid, 'SIGKILL'), killAfterMs);
    if (text.includes('installed')) installed = true;
    if (text.includes('error')) stderr += text;
  });
  const exit = await new Promise<string>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? `code ${code}`);
    }),
  );
  if (stderr) t.comment(`child stderr: ${stderr.slice(0, 2000)}`);
  return { installed, exit };
}

/** The snapshot the install test installs: its file, its documents and its index. */
interface InstallSource {
  file: string;
  docs: unknown[];
  index: number;
}

function installCrashTest(engine: EngineKind, source: InstallSource, rounds: number): void {
  t.test(
    `${engine}: a snapshot install killed at any moment leaves the old state or the new one, never a mix`,
    async (t) => {
      const prng = new SeededPrng(BASE_SEED + 7 * engine.length);
      let killedBefore = 0;
      let killedAfter = 0;
      for (let round = 0; round < rounds; round++) {
        const where = `round ${round} (CONCLAVE_CRASH_SEED=${BASE_SEED})`;
        const dir = tempDir(t, `install-${engine}`);
        const setup = await NodeStorage.open({
          dataDir: dir,
          clusterId: 'crash-test',
          storageEngine: engine,
        });
        const own = await setup.bootstrapGroup(1, ONE);
        await applyOps(
          own,
          Array.from(
            { length: 5 },
            (_, i) => ({ type: 'put', realm: 'default', key: `mine${i}`, value: i }) as const,
          ),
        );
        const ownDocs = await dumpDocs(own);
        const ownApplied = own.state.appliedIndex;
        await setup.close();

        const report = await runInstallChild(t, dir, engine, source.file, prng.nextInt(700));
        t.equal(report.exit, 'SIGKILL', `${where}: killed`);
        if (report.installed) killedAfter++;
        else killedBefore++;

        const node = await NodeStorage.open({ dataDir: dir, clusterId: 'crash-test', storageEngine: engine });
        try {
          const group = await node.openGroup(1);
          const applied = group.state.appliedIndex;
          if (report.installed) t.equal(applied, source.index, `${where}: an acknowledged install survives`);
          if (applied === ownApplied) {
            t.same(await dumpDocs(group), ownDocs, `${where}: the old state, whole`);
            t.equal(group.log.lastIndex(), ownApplied, `${where}: the old log`);
          } else {
            t.equal(applied, source.index, `${where}: otherwise the snapshot's index`);
            t.same(await dumpDocs(group), source.docs, `${where}: the new state, whole`);
            t.equal(group.log.firstIndex(), source.index + 1, `${where}: the log starts after the snapshot`);
            t.equal(group.log.lastIndex(), source.index);
          }
          const [pointer] = await node.engine.getMany([pointerKey(1)]);
          const generation = pointer === undefined ? 0 : decodeJson<number>(pointer, 'pointer');
          let stray = 0;
          for (const [gte, lt] of otherGenerationRanges(1, generation))
            for await (const _ of node.engine.iterate(gte, lt)) stray++;
          t.equal(stray, 0, `${where}: nothing of an interrupted import is left after reopen`);
        } finally {
          await node.close();
        }
      }
      t.comment(`${engine}: ${killedBefore} kills before the install finished, ${killedAfter} after`);
      t.ok(killedBefore > 0, 'some kills landed inside an install');
    },
  );
}

// RocksDB's synced writes run on the event loop by default; on a worker thread (once it started,
// tens of ms after open) with rocksdbSyncedWrites 'worker', tested too.
crashTest('rocksdb');
crashTest('rocksdb', 'worker');
crashTest('leveldb');

// One snapshot file for the install tests, built on the memory engine (the format is engine-independent).
const installSource: InstallSource = { file: '', docs: [], index: 0 };
t.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-install-source-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const source = await NodeStorage.open({
    dataDir: join(dir, 'node'),
    clusterId: 'crash-test',
    storageEngine: 'memory',
  });
  const group = await source.bootstrapGroup(1, ONE);
  const pad = 'p'.repeat(3000);
  for (let batch = 0; batch < 10; batch++) {
    await applyOps(
      group,
      Array.from(
        { length: 400 },
        (_, i) =>
          ({ type: 'put', realm: 'default', key: `d${batch}/${i}`, value: { batch, i, pad } }) as const,
      ),
    );
  }
  installSource.docs = await dumpDocs(group);
  installSource.file = join(dir, 'source.snap');
  installSource.index = (await group.backup(installSource.file)).header.index;
  await source.close();
});
const INSTALL_ROUNDS = Math.max(2, Math.ceil(ROUNDS * 0.75));
installCrashTest('rocksdb', installSource, INSTALL_ROUNDS);
installCrashTest('leveldb', installSource, INSTALL_ROUNDS);
