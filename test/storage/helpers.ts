// Shared helpers of the storage tests: temp directories, opening storage per engine, entries and commands.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, Membership } from '../../raft/types.js';
import type { Command, Operation } from '../../storage/commands.js';
import { encodeCommand } from '../../storage/commands.js';
import type { StorageConfigInput } from '../../storage/config.js';
import { type EngineKind, MemoryVolume } from '../../storage/engine.js';
import { type GroupStorage, NodeStorage } from '../../storage/storage.js';

/** The parts of a tap Test the helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export function tempDir(t: Teardown, label = 'storage'): string {
  const dir = mkdtempSync(join(tmpdir(), `conclave-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Opens storage on one engine in one directory, again and again (the memory engine keeps its
 * data in a MemoryVolume shared by every open of the same Disk).
 */
export class Disk {
  readonly volume = new MemoryVolume();
  private readonly opened: NodeStorage[] = [];

  constructor(
    readonly t: Teardown,
    readonly engine: EngineKind,
    readonly dir: string = tempDir(t),
    readonly clusterId = 'test-cluster',
  ) {
    t.teardown(async () => {
      for (const storage of this.opened) await storage.close().catch(() => undefined);
    });
  }

  async open(extra: Partial<StorageConfigInput> = {}): Promise<NodeStorage> {
    const storage = await NodeStorage.open(this.config(extra));
    this.opened.push(storage);
    return storage;
  }

  config(extra: Partial<StorageConfigInput> = {}): StorageConfigInput {
    return {
      dataDir: this.dir,
      clusterId: this.clusterId,
      storageEngine: this.engine,
      ...(this.engine === 'memory' ? { memoryVolume: this.volume } : {}),
      ...extra,
    };
  }
}

export const ONE: Membership = { voters: ['n1'], learners: [] };
export const THREE: Membership = { voters: ['n1', 'n2', 'n3'], learners: [] };

/** Deterministic payload bytes for (index, term), so any reader can tell a right entry from a wrong one. */
export function payload(index: number, term: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function entry(index: number, term: number, length = 32): Entry {
  return { index, term, type: 0, data: payload(index, term, length) };
}

export function entries(from: number, to: number, term: number, length = 32): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, length));
  return out;
}

/** A log entry carrying a command. */
export function commandEntry(
  index: number,
  term: number,
  op: Operation,
  extra: Partial<Command> = {},
): Entry {
  return { index, term, type: 0, data: encodeCommand({ v: 1, time: 1000, op, ...extra }) };
}

/** Feeds commands to a group as consecutive entries after its applied index; returns their results. */
export async function applyOps(
  group: GroupStorage,
  ops: readonly (Operation | { op: Operation; extra: Partial<Command> })[],
  term = 1,
) {
  const start = group.state.appliedIndex + 1;
  const list = ops.map((item, i) =>
    'op' in item ? commandEntry(start + i, term, item.op, item.extra) : commandEntry(start + i, term, item),
  );
  await group.persist({ entries: list });
  const outcomes = await group.apply(list);
  return outcomes.map((outcome) => {
    if (outcome.kind !== 'command') throw new Error(`expected a command outcome at ${outcome.index}`);
    return outcome.result;
  });
}

/** Every key and value in the engine, hex-encoded: compares whole databases. */
export async function dumpEngine(storage: NodeStorage): Promise<string[]> {
  const out: string[] = [];
  for await (const [key, value] of storage.engine.iterate(Uint8Array.of(0), Uint8Array.of(0xff))) {
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`);
  }
  return out;
}

/** The realm documents of a group as plain data, for comparing states. */
export async function dumpDocs(group: GroupStorage): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const realm of group.state.realms()) {
    let after: string | undefined;
    for (;;) {
      const page = await group.state.list(realm, { limit: 1000, ...(after ? { after } : {}) });
      if (!page.ok) throw new Error(page.error.message);
      out.push(...page.value.documents.map((d) => ({ realm, ...d })));
      if (!page.value.more) break;
      after = page.value.documents[page.value.documents.length - 1]!.key;
    }
  }
  return out;
}

/**
 * The entry the crash test writes at (index, term): a transaction putting `k<index % 13>` and
 * `last`, both carrying the index and term, so a reader can check an entry is intact and
 * the state agrees with the applied index.
 */
export function crashEntry(index: number, term: number): Entry {
  const pad = 'x'.repeat((index * 7) % 300);
  return commandEntry(
    index,
    term,
    {
      type: 'txn',
      realm: 'default',
      compares: [],
      success: [
        { type: 'put', key: `k${index % 13}`, value: { index, term, pad } },
        { type: 'put', key: 'last', value: { index, term } },
      ],
    },
    { time: index },
  );
}
