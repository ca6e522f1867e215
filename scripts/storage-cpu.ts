// CPU per put of one member's storage/ (a synced log append, then the apply) beside raw engine writes of the same entries, in one process.

/*
 * usage: npm run bench:storage-cpu -- [--store conclave|raw] [--batch B] [--puts N] [--warmup W]
 *                                     [--sessions K]
 *
 * What a member's storage costs per put without the network, the Raft core or other processes:
 * puts of 256-byte JSON documents to keys floor/0..9999, B per batch (default 20, what a busy
 * leader's Ready carries; 1 is a sequential writer), each batch persisted as raft entries
 * (synced) and then applied, as a member does. `conclave` runs them through storage/
 * (NodeStorage: log store, state machine, write queue); `raw` writes the same entries with two
 * engine writes per batch (the entries synced; the documents and an applied index unsynced), as
 * the stack floor of bench:floor does. W puts (default 10,000) warm V8 and the engine first.
 * --sessions K (conclave only): the puts run in K client sessions, round-robin, each put with
 * the next seq and acknowledging the one before, as the client library's writes do (one session
 * per client object; bench drives up to 6): the state machine then also keeps each session's
 * last answer. Default 0: no sessions.
 * Prints CPU (user + system of this process) and wall time per put. To compare two builds, run
 * each build's copy of this script alternately, several times: one machine's noise is larger
 * than most single changes.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, EntryType } from '../raft/types.js';
import { type Command, encodeCommand } from '../storage/commands.js';
import { createEngine } from '../storage/engine.js';
import { NodeStorage } from '../storage/storage.js';

const USAGE =
  'usage: npm run bench:storage-cpu -- [--store conclave|raw] [--batch B] [--puts N] [--warmup W] [--sessions K]';
const VALUE = { payload: 'x'.repeat(240) };
const KEYS = 10_000;

interface Options {
  store: 'conclave' | 'raw';
  batch: number;
  puts: number;
  warmup: number;
  sessions: number;
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { store: 'conclave', batch: 20, puts: 40_000, warmup: 10_000, sessions: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const n = Number(value);
    if (value === undefined) throw new UsageError(`${flag} needs a value; ${USAGE}`);
    if (flag === '--store' && (value === 'conclave' || value === 'raw')) options.store = value;
    else if (flag === '--batch' && Number.isInteger(n) && n >= 1 && n <= 10_000) options.batch = n;
    else if (flag === '--puts' && Number.isInteger(n) && n >= 1) options.puts = n;
    else if (flag === '--warmup' && Number.isInteger(n) && n >= 0) options.warmup = n;
    else if (flag === '--sessions' && Number.isInteger(n) && n >= 0 && n <= 1000) options.sessions = n;
    else throw new UsageError(`bad flag or value: ${flag} ${value}; ${USAGE}`);
  }
  if (options.sessions > 0 && options.store !== 'conclave') {
    throw new UsageError(`--sessions applies to --store conclave only; ${USAGE}`);
  }
  return options;
}

/** Persists a batch of entries (synced), then applies them. */
interface Store {
  persist(entries: Entry[]): Promise<unknown>;
  apply(entries: Entry[]): Promise<unknown>;
  close(): Promise<void>;
}

async function conclaveStore(dir: string): Promise<Store> {
  const node = await NodeStorage.open({ dataDir: dir, clusterId: 'storage-cpu', storageEngine: 'rocksdb' });
  const group = await node.bootstrapGroup(1, { voters: ['n1'], learners: [] });
  return {
    persist: (entries) => group.persist({ entries }),
    apply: async (entries) => {
      // A benchmark of refused commands would measure the wrong path: every put must apply.
      for (const outcome of await group.apply(entries)) {
        if (outcome.kind === 'command' && !outcome.result.ok) {
          throw new Error(`entry ${outcome.index} was refused: ${outcome.result.error.message}`);
        }
      }
    },
    close: () => node.close(),
  };
}

async function rawStore(dir: string): Promise<Store> {
  const engine = createEngine({ kind: 'rocksdb', location: dir });
  await engine.open();
  const encoder = new TextEncoder();
  const logKey = (index: number) => {
    const key = new Uint8Array(9);
    key[0] = 1;
    new DataView(key.buffer).setBigUint64(1, BigInt(index));
    return key;
  };
  const document = encoder.encode(JSON.stringify(VALUE));
  return {
    persist: (entries) =>
      engine.write(
        entries.map((e) => ({ type: 'put' as const, key: logKey(e.index), value: e.data })),
        true,
      ),
    apply: (entries) => {
      const applied = new Uint8Array(8);
      new DataView(applied.buffer).setBigUint64(0, BigInt(entries[entries.length - 1]!.index));
      return engine.write(
        [
          ...entries.map((e) => ({
            type: 'put' as const,
            key: encoder.encode(`\u0003floor/${e.index % KEYS}`),
            value: document,
          })),
          { type: 'put', key: encoder.encode('\u0002applied'), value: applied },
        ],
        false,
      );
    },
    close: () => engine.close(),
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'conclave-storage-cpu-'));
  try {
    const store = options.store === 'conclave' ? await conclaveStore(dir) : await rawStore(dir);
    let next = 2; // The bootstrapped group's log starts at index 1.
    // A session's id is the index of the entry that opened it.
    const sessions: { id: number; seq: number }[] = [];
    if (options.sessions > 0) {
      const opens: Entry[] = [];
      for (let i = 0; i < options.sessions; i++, next++) {
        const data = encodeCommand({ v: 1, time: next, op: { type: 'openSession' } });
        opens.push({ index: next, term: 1, type: EntryType.Normal, data });
        sessions.push({ id: next, seq: 0 });
      }
      await store.persist(opens);
      await store.apply(opens);
    }
    let turn = 0;
    const sessionRef = () => {
      const session = sessions[turn++ % sessions.length]!;
      session.seq++;
      return { id: session.id, seq: session.seq, ...(session.seq > 1 ? { ack: session.seq - 1 } : {}) };
    };
    const run = async (puts: number) => {
      for (let done = 0; done < puts; done += options.batch) {
        const entries: Entry[] = [];
        for (let i = 0; i < options.batch; i++, next++) {
          const op = { type: 'put' as const, realm: 'default', key: `floor/${next % KEYS}`, value: VALUE };
          const command: Command =
            sessions.length > 0 ? { v: 1, time: next, session: sessionRef(), op } : { v: 1, time: next, op };
          entries.push({ index: next, term: 1, type: EntryType.Normal, data: encodeCommand(command) });
        }
        await store.persist(entries);
        await store.apply(entries);
      }
    };
    await run(options.warmup);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await run(options.puts);
    const used = process.cpuUsage(cpu);
    const wallMs = performance.now() - started;
    await store.close();
    const per = (us: number) => (us / options.puts).toFixed(1);
    console.log(
      `storage-cpu ${options.store}, batches of ${options.batch}, ${options.sessions} sessions: ${per(used.user + used.system)} µs CPU per put ` +
        `(user ${per(used.user)}, system ${per(used.system)}), wall ${per(wallMs * 1000)} µs per put, ${options.puts} puts`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(
    `storage-cpu: ${error instanceof UsageError ? error.message : ((error as Error).stack ?? error)}`,
  );
  process.exit(error instanceof UsageError ? 2 : 1);
});
