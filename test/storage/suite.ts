// The storage test suite, one function run against every engine (rocksdb, leveldb, memory).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { CompactedError, UnavailableError } from '../../raft/errors.js';
import { encodeMembershipChange, MembershipChangeType } from '../../raft/membership-change.js';
import { MemoryStorage } from '../../raft/memory-storage.js';
import { SeededPrng } from '../../raft/prng.js';
import { type Entry, EntryType } from '../../raft/types.js';
import { encodeEntry, encodeJson } from '../../storage/codec.js';
import type { Operation } from '../../storage/commands.js';
import * as crc from '../../storage/crc32c.js';
import type { EngineKind } from '../../storage/engine.js';
import { StorageInvariantError } from '../../storage/errors.js';
import { logKey, nodeKey } from '../../storage/keys.js';
import { SnapshotReader, writeSnapshotFile } from '../../storage/snapshot-file.js';
import type { GroupStorage } from '../../storage/storage.js';
import {
  applyOps,
  commandEntry,
  Disk,
  dumpDocs,
  dumpEngine,
  entries,
  entry,
  ONE,
  payload,
  THREE,
  tempDir,
} from './helpers.js';

const put = (key: string, value: unknown, extra: Record<string, unknown> = {}): Operation =>
  ({ type: 'put', realm: 'default', key, value, ...extra }) as Operation;

/** Registers the whole storage suite on tap's root test for one engine. */
export function storageSuite(engine: EngineKind): void {
  logStoreTests(engine);
  groupCommitTests(engine);
  stateMachineTests(engine);
  sessionTests(engine);
  historyTests(engine);
  snapshotTests(engine);
  dataDirTests(engine);
  modelTest(engine);
}

function logStoreTests(engine: EngineKind): void {
  t.test(`${engine}: a founder starts from the bootstrap snapshot at index 1, term 1`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, THREE);
    const log = group.log;
    t.same(log.initialState(), { hardState: { term: 1, vote: '', commit: 1 }, membership: THREE });
    t.equal(log.firstIndex(), 2);
    t.equal(log.lastIndex(), 1);
    t.equal(log.term(1), 1);
    t.same(log.snapshot().metadata, { index: 1, term: 1, membership: THREE });
    t.throws(() => log.term(0), CompactedError);
    t.throws(() => log.term(2), UnavailableError);
    t.throws(() => log.entries(1, 2, 100), CompactedError);
    t.same(log.entries(2, 2, 100), []);
    t.same(group.state.realms(), ['default']);
    t.equal(group.state.revision, 1);
    const reader = await SnapshotReader.open(group.snapshotPath(log.snapshot()));
    t.equal(reader.header.index, 1, 'the bootstrap snapshot file exists for joiners');
    await reader.close();
  });

  t.test(`${engine}: a joiner starts empty`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.createGroup(7);
    t.same(group.log.initialState(), {
      hardState: { term: 0, vote: '', commit: 0 },
      membership: { voters: [], learners: [] },
    });
    t.equal(group.log.firstIndex(), 1);
    t.equal(group.log.lastIndex(), 0);
    t.equal(group.log.term(0), 0);
    t.equal(group.log.snapshot().metadata.index, 0);
    t.same(group.state.realms(), []);
    t.same(await node.groupIds(), [7]);
    await t.rejects(node.createGroup(7), { code: 'GROUP_EXISTS' });
    await t.rejects(node.openGroup(8), { code: 'GROUP_NOT_FOUND' });
  });

  t.test(
    `${engine}: entries and hard state read back exactly, from cache and from disk, after reopen`,
    async (t) => {
      const disk = new Disk(t, engine);
      // A cache of 4 entries forces most reads to the engine.
      const node = await disk.open({ logCacheMaxEntries: 4 });
      const group = await node.bootstrapGroup(1, ONE);
      const written = [
        ...entries(2, 40, 2, 100),
        { index: 41, term: 2, type: EntryType.MembershipChange, data: new Uint8Array([1, 0, 1, 120]) },
        { index: 42, term: 3, type: EntryType.Normal, data: new Uint8Array(0) },
      ];
      await group.persist({ entries: written, hardState: { term: 3, vote: 'n1', commit: 30 } });
      t.equal(group.log.lastIndex(), 42);
      t.same(group.log.entries(2, 43, Number.MAX_SAFE_INTEGER), written);
      t.same(
        group.log.entries(10, 20, 250),
        written.slice(8, 10),
        'maxBytes stops after the entry that passes it',
      );
      t.same(group.log.entries(10, 20, 0), written.slice(8, 9), 'at least one entry');
      t.equal(group.log.term(5), 2);
      t.equal(group.log.term(42), 3);
      t.throws(() => group.log.entries(2, 44, 100), UnavailableError);
      await node.close();
      const reopened = await (await disk.open({ logCacheMaxEntries: 4 })).openGroup(1);
      t.same(reopened.log.entries(2, 43, Number.MAX_SAFE_INTEGER), written);
      t.same(reopened.log.initialState().hardState, { term: 3, vote: 'n1', commit: 30 });
    },
  );

  t.test(`${engine}: a conflicting suffix is replaced, durably`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await disk.open();
    const group = await node.bootstrapGroup(1, ONE);
    await group.persist({ entries: entries(2, 10, 2) });
    await group.persist({ entries: entries(6, 7, 3) });
    t.equal(group.log.lastIndex(), 7);
    t.equal(group.log.term(6), 3);
    t.equal(group.log.term(5), 2);
    t.throws(() => group.log.term(8), UnavailableError);
    await node.close();
    const reopened = await (await disk.open()).openGroup(1);
    t.equal(reopened.log.lastIndex(), 7, 'the replaced entries 8..10 stay gone after reopen');
    t.same(reopened.log.entries(2, 8, 1e9), [...entries(2, 5, 2), ...entries(6, 7, 3)]);
  });

  t.test(`${engine}: compaction range-deletes the prefix and survives reopen`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await disk.open();
    const group = await node.bootstrapGroup(1, ONE);
    await applyOps(
      group,
      Array.from({ length: 20 }, (_, i) => put(`k${i}`, i)),
    );
    t.equal(group.log.lastIndex(), 21);
    await t.rejects(
      (async () => group.compact(15))(),
      StorageInvariantError,
      'compacting past the latest snapshot is refused',
    );
    await group.createSnapshot();
    await group.compact(15);
    t.equal(group.log.firstIndex(), 16);
    t.equal(group.log.term(15), 1);
    t.throws(() => group.log.entries(15, 16, 1e9), CompactedError);
    t.throws(() => group.log.term(14), CompactedError);
    await node.queue.drain();
    const left: number[] = [];
    for await (const [key] of node.engine.iterate(logKey(1, 0), logKey(1, 1e9)))
      left.push(Buffer.from(key).readUInt32BE(10));
    t.same(left, [16, 17, 18, 19, 20, 21], 'no key of a compacted entry is left');
    await node.close();
    const reopened = await (await disk.open()).openGroup(1);
    t.equal(reopened.log.firstIndex(), 16);
    t.equal(reopened.log.lastIndex(), 21);
  });

  t.test(`${engine}: an entry whose bytes changed on disk is reported as DATA_CORRUPT`, async (t) => {
    const node = await new Disk(t, engine).open({ logCacheMaxEntries: 0 });
    const group = await node.bootstrapGroup(1, ONE);
    await group.persist({ entries: entries(2, 5, 2) });
    const flipped = encodeEntry(entry(3, 2));
    flipped[flipped.length - 1]! ^= 1;
    await node.engine.write([{ type: 'put', key: logKey(1, 3), value: flipped }], true);
    t.throws(() => group.log.entries(2, 6, 1e9), { code: 'DATA_CORRUPT' });
    // An entry stored under another index fails too: the checksum covers the index.
    await node.engine.write([{ type: 'put', key: logKey(1, 4), value: encodeEntry(entry(5, 2)) }], true);
    t.throws(() => group.log.entries(4, 5, 1e9), { code: 'DATA_CORRUPT' });
    await node.engine.write([{ type: 'del', key: logKey(1, 5) }], true);
    t.throws(() => group.log.term(5), { code: 'DATA_CORRUPT' }, 'a hole inside the log is corruption');
  });

  t.test(`${engine}: appending with a gap is a contract violation`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    t.throws(() => group.log.prepareSave({ entries: entries(5, 6, 2) }), StorageInvariantError);
  });
}

function groupCommitTests(engine: EngineKind): void {
  t.test(`${engine}: Readies saved without waiting share synced batches and land in order`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    const before = node.queue.stats;
    const order: number[] = [];
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      const index = 2 + i;
      saves.push(
        group
          .persist({ entries: [entry(index, 2)], hardState: { term: 2, vote: 'n1', commit: index } })
          .then(() => {
            order.push(index);
            t.ok(group.log.lastIndex() >= index, 'the log shows the entry once its save resolves');
          }),
      );
    }
    await Promise.all(saves);
    const after = node.queue.stats;
    t.equal(after.requests - before.requests, 200);
    t.ok(
      after.batches - before.batches <= 3,
      `200 saves took ${after.batches - before.batches} synced batches`,
    );
    t.same(
      order,
      Array.from({ length: 200 }, (_, i) => 2 + i),
      'saves resolve in the order made',
    );
    t.equal(group.log.lastIndex(), 201);
    t.equal(group.log.initialState().hardState.commit, 201);
  });

  t.test(`${engine}: a write queue over its byte limit refuses with STORAGE_BUSY`, async (t) => {
    const node = await new Disk(t, engine).open({
      writeBatchMaxBytes: 4096,
      writeQueueMaxPendingBytes: 8192,
    });
    const group = await node.bootstrapGroup(1, ONE);
    const first = group.persist({ entries: [entry(2, 2, 6000)] });
    await t.rejects(group.persist({ entries: [entry(3, 2, 6000)] }), { code: 'STORAGE_BUSY' });
    await first;
  });
}

function stateMachineTests(engine: EngineKind): void {
  t.test(`${engine}: put, patch, get, delete keep revisions and versions`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    const results = await applyOps(group, [
      put('a', { x: 1, n: { p: 1, q: 2 } }),
      { type: 'patch', realm: 'default', key: 'a', patch: { x: null, y: 2, n: { p: null, r: 3 } } },
      put('b', [1, 2]),
      { type: 'delete', realm: 'default', key: 'b' },
    ]);
    t.same(
      results.map((r) => r.ok && r.revision),
      [2, 3, 4, 5],
      'each change is one cluster revision (bootstrap was revision 1)',
    );
    const a = await group.state.get('default', 'a');
    t.same(a, {
      ok: true,
      revision: 5,
      value: { key: 'a', value: { n: { q: 2, r: 3 }, y: 2 }, createRevision: 2, modRevision: 3, version: 2 },
    });
    t.match(await group.state.get('default', 'b'), { ok: false, error: { code: 'NOT_FOUND' } });
    t.same(results[3], { ok: true, revision: 5, result: { type: 'delete', key: 'b', prevModRevision: 4 } });
    t.equal(group.state.appliedIndex, 5);
  });

  t.test(`${engine}: conditional writes refuse with CONFLICT and change nothing`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    await applyOps(group, [put('a', 1)]);
    const before = await dumpDocs(group);
    const results = await applyOps(group, [
      put('a', 2, { ifAbsent: true }),
      put('a', 2, { ifRevision: 1 }),
      put('new', 2, { ifRevision: 5 }),
      { type: 'delete', realm: 'default', key: 'a', ifRevision: 9 },
      { type: 'patch', realm: 'default', key: 'a', patch: { z: 1 }, ifRevision: 0 },
    ]);
    t.same(
      results.map((r) => !r.ok && r.error.code),
      ['CONFLICT', 'CONFLICT', 'CONFLICT', 'CONFLICT', 'CONFLICT'],
    );
    t.same(await dumpDocs(group), before);
    t.equal(group.state.revision, 2, 'failed commands do not advance the revision');
    const ok = await applyOps(group, [put('a', 3, { ifRevision: 2 }), put('fresh', 1, { ifRevision: 0 })]);
    t.ok(
      ok.every((r) => r.ok),
      'the right revision (0 for absent) is accepted',
    );
  });

  t.test(`${engine}: transactions apply all of a branch at one revision, or nothing`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    await applyOps(group, [put('a', 1), put('b', { v: 1 })]);
    const [won, lost, failedOp] = await applyOps(group, [
      {
        type: 'txn',
        realm: 'default',
        compares: [
          { key: 'a', target: 'modRevision', op: 'eq', value: 2 },
          { key: 'b', target: 'value', op: 'eq', value: { v: 1 } },
          { key: 'c', target: 'exists', op: 'eq', value: false },
          { key: 'a', target: 'version', op: 'lt', value: 2 },
        ],
        success: [
          { type: 'put', key: 'c', value: 'made' },
          { type: 'delete', key: 'a' },
          { type: 'patch', key: 'b', patch: { w: 2 } },
        ],
        failure: [{ type: 'put', key: 'x', value: 'no' }],
      },
      {
        type: 'txn',
        realm: 'default',
        compares: [{ key: 'c', target: 'createRevision', op: 'gt', value: 100 }],
        success: [{ type: 'put', key: 'x', value: 'no' }],
        failure: [{ type: 'put', key: 'y', value: 'else' }],
      },
      {
        type: 'txn',
        realm: 'default',
        compares: [],
        success: [
          { type: 'put', key: 'z', value: 1 },
          { type: 'delete', key: 'missing' },
        ],
      },
    ]);
    t.match(won, { ok: true, revision: 4, result: { type: 'txn', succeeded: true } });
    t.match(lost, { ok: true, revision: 5, result: { type: 'txn', succeeded: false } });
    t.match(failedOp, { ok: false, revision: 5, error: { code: 'NOT_FOUND' } });
    const docs = (await dumpDocs(group)) as { key: string; modRevision: number }[];
    t.same(
      docs.map((d) => [d.key, d.modRevision]),
      [
        ['b', 4],
        ['c', 4],
        ['y', 5],
      ],
      'z was not written: its branch had a failing op',
    );
  });

  t.test(
    `${engine}: every malformed command is refused with a stable code and changes nothing`,
    async (t) => {
      const node = await new Disk(t, engine).open({
        keyMaxBytes: 16,
        valueMaxBytes: 64,
        commandMaxBytes: 2048,
        txnMaxOps: 3,
        jsonMaxDepth: 4,
      });
      const group = await node.bootstrapGroup(1, ONE);
      await applyOps(group, [put('a', { deep: 1 })]);
      const before = await dumpDocs(group);
      const revision = group.state.revision;
      const raw = (data: string | Uint8Array) =>
        typeof data === 'string' ? new TextEncoder().encode(data) : data;
      const cmd = (op: unknown, extra: Record<string, unknown> = {}) =>
        JSON.stringify({ v: 1, time: 5, op, ...extra });
      const cases: [string, string | Uint8Array, string][] = [
        ['not JSON', 'garbage', 'INVALID_ARGUMENT'],
        ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'INVALID_ARGUMENT'],
        ['wrong version', JSON.stringify({ v: 2, time: 1, op: { type: 'openSession' } }), 'INVALID_ARGUMENT'],
        ['no time', JSON.stringify({ v: 1, op: { type: 'openSession' } }), 'INVALID_ARGUMENT'],
        [
          'unknown field',
          cmd({ type: 'put', realm: 'default', key: 'k', value: 1, extra: 1 }),
          'INVALID_ARGUMENT',
        ],
        ['unknown op', cmd({ type: 'frobnicate' }), 'INVALID_ARGUMENT'],
        ['bad realm name', cmd({ type: 'put', realm: 'Bad Realm', key: 'k', value: 1 }), 'INVALID_ARGUMENT'],
        ['missing realm', cmd({ type: 'put', realm: 'nope', key: 'k', value: 1 }), 'NOT_FOUND'],
        ['empty key', cmd({ type: 'put', realm: 'default', key: '', value: 1 }), 'INVALID_ARGUMENT'],
        [
          'lone surrogate key',
          cmd({ type: 'put', realm: 'default', key: 'a\ud800', value: 1 }),
          'INVALID_ARGUMENT',
        ],
        ['key too long', cmd({ type: 'put', realm: 'default', key: 'k'.repeat(17), value: 1 }), 'TOO_LARGE'],
        [
          'value too large',
          cmd({ type: 'put', realm: 'default', key: 'k', value: 'x'.repeat(70) }),
          'TOO_LARGE',
        ],
        ['value too deep', cmd({ type: 'put', realm: 'default', key: 'k', value: [[[[[1]]]]] }), 'TOO_LARGE'],
        ['put without value', cmd({ type: 'put', realm: 'default', key: 'k' }), 'INVALID_ARGUMENT'],
        [
          'ifRevision negative',
          cmd({ type: 'delete', realm: 'default', key: 'a', ifRevision: -1 }),
          'INVALID_ARGUMENT',
        ],
        [
          'ifAbsent false',
          cmd({ type: 'put', realm: 'default', key: 'k', value: 1, ifAbsent: false }),
          'INVALID_ARGUMENT',
        ],
        ['patch missing key', cmd({ type: 'patch', realm: 'default', key: 'zz', patch: {} }), 'NOT_FOUND'],
        [
          'patch makes it too large',
          cmd({ type: 'patch', realm: 'default', key: 'a', patch: { more: 'y'.repeat(50) } }),
          'TOO_LARGE',
        ],
        ['delete missing key', cmd({ type: 'delete', realm: 'default', key: 'zz' }), 'NOT_FOUND'],
        [
          'txn with too many ops',
          cmd({
            type: 'txn',
            realm: 'default',
            compares: [],
            success: [1, 2, 3, 4].map((i) => ({ type: 'delete', key: `k${i}` })),
          }),
          'TOO_LARGE',
        ],
        [
          'txn touching a key twice',
          cmd({
            type: 'txn',
            realm: 'default',
            compares: [],
            success: [
              { type: 'put', key: 'k', value: 1 },
              { type: 'delete', key: 'k' },
            ],
          }),
          'INVALID_ARGUMENT',
        ],
        [
          'txn compare with a bad op',
          cmd({
            type: 'txn',
            realm: 'default',
            compares: [{ key: 'a', target: 'value', op: 'lt', value: 1 }],
            success: [],
          }),
          'INVALID_ARGUMENT',
        ],
        [
          'txn op with a realm',
          cmd({
            type: 'txn',
            realm: 'default',
            compares: [],
            success: [{ type: 'put', realm: 'x', key: 'k', value: 1 }],
          }),
          'INVALID_ARGUMENT',
        ],
        ['createRealm exists', cmd({ type: 'createRealm', realm: 'default' }), 'CONFLICT'],
        ['closeSession without session', cmd({ type: 'closeSession' }), 'INVALID_ARGUMENT'],
        [
          'openSession inside a session',
          cmd({ type: 'openSession' }, { session: { id: 1, seq: 1 } }),
          'INVALID_ARGUMENT',
        ],
        [
          'unknown session',
          cmd({ type: 'delete', realm: 'default', key: 'a' }, { session: { id: 99, seq: 1 } }),
          'SESSION_EXPIRED',
        ],
        [
          'command too large',
          cmd({ type: 'put', realm: 'default', key: 'k', value: 'z'.repeat(5000) }),
          'TOO_LARGE',
        ],
      ];
      const start = group.state.appliedIndex + 1;
      const list: Entry[] = cases.map(([, data], i) => ({
        index: start + i,
        term: 1,
        type: 0,
        data: raw(data),
      }));
      await group.persist({ entries: list });
      const outcomes = await group.apply(list);
      cases.forEach(([name, , code], i) => {
        const outcome = outcomes[i]!;
        t.match(outcome, { kind: 'command', result: { ok: false, error: { code } } }, name);
        if (outcome.kind === 'command' && !outcome.result.ok)
          t.ok(outcome.result.error.message.length > 0, `${name}: says why`);
      });
      t.same(await dumpDocs(group), before, 'no document changed');
      t.equal(group.state.revision, revision, 'the revision did not move');
      t.equal(
        group.state.appliedIndex,
        start + cases.length - 1,
        'every refused command was still applied (consumed)',
      );
      t.same(group.state.realms(), ['default']);
    },
  );

  t.test(`${engine}: realms are separate namespaces; listing by prefix pages through one view`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    const results = await applyOps(group, [
      { type: 'createRealm', realm: 'a' },
      { type: 'createRealm', realm: 'ab' },
      { type: 'put', realm: 'a', key: 'bx', value: 1 },
      { type: 'put', realm: 'ab', key: 'x', value: 2 },
      ...['user/1', 'user/2', 'user/3', 'user0', 'use', 'zeta'].map(
        (key) => ({ type: 'put', realm: 'a', key, value: key }) as Operation,
      ),
    ]);
    t.ok(results.every((r) => r.ok));
    t.same(group.state.realms(), ['a', 'ab', 'default']);
    const keys = async (options: Parameters<GroupStorage['state']['list']>[1], realm = 'a') => {
      const page = await group.state.list(realm, options);
      if (!page.ok) throw new Error(page.error.message);
      return [page.value.documents.map((d) => d.key), page.value.more];
    };
    t.same(await keys({}), [['bx', 'use', 'user/1', 'user/2', 'user/3', 'user0', 'zeta'], false]);
    t.same(await keys({ prefix: 'user/' }), [['user/1', 'user/2', 'user/3'], false]);
    t.same(await keys({ prefix: 'user/', limit: 2 }), [['user/1', 'user/2'], true]);
    t.same(await keys({ prefix: 'user/', limit: 2, after: 'user/2' }), [['user/3'], false]);
    t.same(await keys({ after: 'user0' }), [['zeta'], false]);
    t.same(await keys({}, 'ab'), [['x'], false], "realm ab does not see realm a's keys");
    t.match(await group.state.list('nope'), { ok: false, error: { code: 'NOT_FOUND' } });
    t.match(await group.state.list('a', { limit: 0 }), { ok: false, error: { code: 'INVALID_ARGUMENT' } });
    t.match(await group.state.get('Bad', 'k'), { ok: false, error: { code: 'INVALID_ARGUMENT' } });
  });

  t.test(
    `${engine}: membership changes are applied with the index; the applied index and data agree after reopen`,
    async (t) => {
      const disk = new Disk(t, engine);
      const node = await disk.open();
      const group = await node.bootstrapGroup(1, ONE);
      const change = encodeMembershipChange({ type: MembershipChangeType.AddLearner, nodeId: 'n9' });
      const list: Entry[] = [
        { index: 2, term: 2, type: EntryType.Normal, data: new Uint8Array(0) },
        { index: 3, term: 2, type: EntryType.MembershipChange, data: change },
        commandEntry(4, 2, put('a', 'b')),
      ];
      await group.persist({ entries: list });
      const outcomes = await group.apply(list);
      t.same(
        outcomes.map((o) => o.kind),
        ['noop', 'membership', 'command'],
      );
      t.same(group.log.initialState().membership, { voters: ['n1'], learners: ['n9'] });
      t.same(await group.apply(list), [], 'entries already applied are skipped');
      await t.rejects(
        group.apply([commandEntry(9, 2, put('a', 'c'))]),
        StorageInvariantError,
        'a gap is refused',
      );
      await node.close();
      const reopened = await (await disk.open()).openGroup(1);
      t.equal(reopened.state.appliedIndex, 4);
      t.equal(reopened.state.meta.appliedTerm, 2);
      t.same(reopened.log.initialState().membership, { voters: ['n1'], learners: ['n9'] });
      t.match(await reopened.state.get('default', 'a'), { ok: true, value: { value: 'b', modRevision: 2 } });
    },
  );

  t.test(`${engine}: the same entries give the same state whatever the batching`, async (t) => {
    const ops: Operation[] = [];
    const prng = new SeededPrng(7);
    for (let i = 0; i < 300; i++) {
      const key = `k${prng.nextInt(20)}`;
      const kind = prng.nextInt(4);
      if (kind === 0) ops.push(put(key, { i, tag: prng.nextInt(3) }));
      if (kind === 1) ops.push({ type: 'patch', realm: 'default', key, patch: { p: i } });
      if (kind === 2) ops.push({ type: 'delete', realm: 'default', key });
      if (kind === 3) ops.push(put(key, i, { ifRevision: prng.nextInt(i + 2) }));
    }
    const list = ops.map((op, i) => commandEntry(2 + i, 1, op, { time: 1000 + i }));
    const dumps: string[][] = [];
    // The document cache: default (every key stays), 1 KiB (a few entries, evicted all the time), none.
    const runs = [
      { batch: 1, docCacheBytes: undefined },
      { batch: 7, docCacheBytes: undefined },
      { batch: 300, docCacheBytes: undefined },
      { batch: 7, docCacheBytes: 1024 },
      { batch: 7, docCacheBytes: 0 },
    ];
    for (const { batch, docCacheBytes } of runs) {
      const node = await new Disk(t, engine).open({ historyMaxRevisions: 50, docCacheBytes });
      const group = await node.bootstrapGroup(1, ONE);
      await group.persist({ entries: list });
      for (let i = 0; i < list.length; i += batch) await group.apply(list.slice(i, i + batch));
      await node.queue.drain();
      dumps.push(await dumpEngine(node));
    }
    t.same(dumps[1], dumps[0], 'batches of 7 equal batches of 1');
    t.same(dumps[2], dumps[0], 'one batch equals batches of 1');
    t.same(dumps[3], dumps[0], 'a document cache of 1 KiB changes nothing');
    t.same(dumps[4], dumps[0], 'no document cache changes nothing');
  });
}

function sessionTests(engine: EngineKind): void {
  t.test(`${engine}: a retried write in a session applies once and answers the same (§6.3)`, async (t) => {
    const node = await new Disk(t, engine).open();
    const group = await node.bootstrapGroup(1, ONE);
    const [opened] = await applyOps(group, [{ type: 'openSession' }]);
    t.match(opened, { ok: true, result: { type: 'openSession' } });
    const id = opened!.ok && opened!.result.type === 'openSession' ? opened!.result.session : 0;
    t.equal(id, 2, 'the session id is its log index');
    const inc = (seq: number, value: number, time = 2000) => ({
      op: put('counter', value, { ifRevision: seq === 1 ? 0 : undefined }),
      extra: { session: { id, seq }, time },
    });
    const [first, retry] = await applyOps(group, [inc(1, 1), inc(1, 1)]);
    t.same(retry, first, 'the retry answers with the first result');
    t.equal(group.state.revision, 2, 'applied once');
    const [second] = await applyOps(group, [{ op: put('x', 1), extra: { session: { id, seq: 2, ack: 1 } } }]);
    t.ok(second!.ok);
    const [late] = await applyOps(group, [inc(1, 1)]);
    t.match(late, { ok: false, error: { code: 'SESSION_EXPIRED' } }, 'an acknowledged seq is not re-applied');
    const [closed] = await applyOps(group, [
      { op: { type: 'closeSession' }, extra: { session: { id, seq: 3 } } },
    ]);
    t.ok(closed!.ok);
    const [after] = await applyOps(group, [{ op: put('y', 1), extra: { session: { id, seq: 4 } } }]);
    t.match(after, { ok: false, error: { code: 'SESSION_EXPIRED' } });
  });

  t.test(`${engine}: sessions expire by log time and by count, deterministically`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await disk.open({ sessionTtlMs: 10_000, sessionsMax: 3, sessionResponsesMax: 2 });
    const group = await node.bootstrapGroup(1, ONE);
    const open = (time: number) => ({ op: { type: 'openSession' } as Operation, extra: { time } });
    const ids = (await applyOps(group, [open(1000), open(2000), open(3000)])).map((r) =>
      r.ok && r.result.type === 'openSession' ? r.result.session : 0,
    );
    t.equal(group.state.sessionCount, 3);
    // Touch the first; opening a fourth evicts the least recently active: the second.
    await applyOps(group, [{ op: put('a', 1), extra: { time: 4000, session: { id: ids[0]!, seq: 1 } } }]);
    await applyOps(group, [open(5000)]);
    const [evicted] = await applyOps(group, [
      { op: put('b', 1), extra: { time: 5000, session: { id: ids[1]!, seq: 1 } } },
    ]);
    t.match(
      evicted,
      { ok: false, error: { code: 'SESSION_EXPIRED' } },
      'the least recently active was evicted',
    );
    // Log time jumps: sessions idle more than 10 s of log time expire, whatever the wall clock says.
    const [alive] = await applyOps(group, [
      { op: put('c', 1), extra: { time: 13_500, session: { id: ids[0]!, seq: 2 } } },
    ]);
    t.ok(alive!.ok, 'idle since 4000, log time 13500: within the 10 s TTL');
    const [expired] = await applyOps(group, [
      { op: put('d', 1), extra: { time: 13_000, session: { id: ids[2]!, seq: 1 } } },
    ]);
    t.match(
      expired,
      { ok: false, error: { code: 'SESSION_EXPIRED' } },
      'idle since 3000, log time 13500: expired',
    );
    t.equal(group.state.meta.logTime, 13_500, 'log time never goes back');
    // Only sessionResponsesMax responses are kept per session.
    for (let seq = 3; seq <= 5; seq++) {
      await applyOps(group, [
        { op: put(`r${seq}`, seq), extra: { time: 15_000, session: { id: ids[0]!, seq } } },
      ]);
    }
    const [trimmed] = await applyOps(group, [
      { op: put('r3', 3), extra: { time: 15_000, session: { id: ids[0]!, seq: 3 } } },
    ]);
    t.match(trimmed, { ok: false, error: { code: 'SESSION_EXPIRED' } }, 'the oldest response was trimmed');
    const [kept] = await applyOps(group, [
      { op: put('r5', 99), extra: { time: 15_000, session: { id: ids[0]!, seq: 5 } } },
    ]);
    t.match(kept, { ok: true }, 'a kept response answers the retry');
    t.match(
      await group.state.get('default', 'r5'),
      { ok: true, value: { value: 5 } },
      'and does not re-apply it',
    );
    await node.close();
    const reopened = await (
      await disk.open({ sessionTtlMs: 10_000, sessionsMax: 3, sessionResponsesMax: 2 })
    ).openGroup(1);
    t.equal(reopened.state.sessionCount, group.state.sessionCount, 'sessions survive reopen');
    const [again] = await applyOps(reopened, [
      { op: put('r5', 99), extra: { time: 15_000, session: { id: ids[0]!, seq: 5 } } },
    ]);
    t.same(again, kept, 'and answer retries the same after reopen');
  });
}

function historyTests(engine: EngineKind): void {
  t.test(
    `${engine}: watchers resume from a revision; older than the history answers COMPACTED`,
    async (t) => {
      const node = await new Disk(t, engine).open({ historyMaxRevisions: 32 });
      const group = await node.bootstrapGroup(1, ONE);
      // Nothing compacted yet: a watch from revision 1 (the bootstrap) misses nothing, as in etcd.
      t.match(await group.state.history('default', { fromRevision: 1 }), {
        ok: true,
        value: { events: [] },
      });
      await applyOps(group, [
        { type: 'createRealm', realm: 'other' },
        put('p/1', 1),
        { type: 'put', realm: 'other', key: 'p/1', value: 'x' },
        {
          type: 'txn',
          realm: 'default',
          compares: [],
          success: [
            { type: 'put', key: 'p/2', value: 2 },
            { type: 'delete', key: 'p/1' },
            { type: 'put', key: 'q', value: 3 },
          ],
        },
      ]);
      const page = await group.state.history('default', { fromRevision: 2, prefix: 'p/' });
      t.match(page, {
        ok: true,
        value: {
          events: [
            { type: 'put', revision: 3, key: 'p/1', value: 1, version: 1 },
            { type: 'put', revision: 5, key: 'p/2', value: 2 },
            { type: 'delete', revision: 5, key: 'p/1', prevModRevision: 3 },
          ],
          nextRevision: 6,
        },
      });
      const limited = await group.state.history('default', { fromRevision: 2, limit: 1 });
      t.ok(
        limited.ok && limited.value.events.length === 1 && limited.value.nextRevision === 4,
        'limit 1 stops after revision 3',
      );
      const txnPage = await group.state.history('default', { fromRevision: 5, limit: 1 });
      t.ok(
        txnPage.ok && txnPage.value.events.length === 3,
        "a transaction's events are not split by the limit",
      );
      await applyOps(
        group,
        Array.from({ length: 60 }, (_, i) => put(`n${i}`, i)),
      );
      const compacted = await group.state.history('default', { fromRevision: 2 });
      t.match(compacted, { ok: false, revision: group.state.revision, error: { code: 'COMPACTED' } });
      t.ok(
        group.state.meta.historyFloor > 2 && group.state.revision - group.state.meta.historyFloor <= 32,
        'at most 32 revisions kept',
      );
      const resume = await group.state.history('default', {
        fromRevision: group.state.meta.historyFloor + 1,
        limit: 1000,
      });
      t.ok(resume.ok && resume.value.events.length === group.state.revision - group.state.meta.historyFloor);
      await node.queue.drain();
      let stored = 0;
      for await (const _ of node.engine.iterate(...historyKeyRangeAll())) stored++;
      t.equal(
        stored,
        group.state.revision - group.state.meta.historyFloor,
        'evicted history is range-deleted',
      );
      t.match(await group.state.history('default', { fromRevision: 0 }), {
        ok: false,
        error: { code: 'INVALID_ARGUMENT' },
      });
    },
  );

  t.test(`${engine}: history is bounded by bytes too`, async (t) => {
    const node = await new Disk(t, engine).open({ historyMaxBytes: 4096 });
    const group = await node.bootstrapGroup(1, ONE);
    await applyOps(
      group,
      Array.from({ length: 40 }, (_, i) => put(`k${i}`, 'v'.repeat(400))),
    );
    const kept = group.state.revision - group.state.meta.historyFloor;
    t.ok(kept >= 5 && kept <= 10, `about 4 KiB of ~450-byte events kept (${kept})`);
  });
}

function historyKeyRangeAll(): [Uint8Array, Uint8Array] {
  // Generation 1, kind HISTORY, every revision (see storage/keys.ts).
  const start = Uint8Array.of(1, 0, 0, 0, 1, 4, 0, 0, 0, 1, 4);
  return [start, Uint8Array.of(1, 0, 0, 0, 1, 4, 0, 0, 0, 1, 5)];
}

function snapshotTests(engine: EngineKind): void {
  t.test(
    `${engine}: a snapshot is the state as of its start while applies go on, and installs on a joiner`,
    async (t) => {
      const node = await new Disk(t, engine).open({ snapshotChunkBytes: 4096 });
      const group = await node.bootstrapGroup(1, THREE);
      await applyOps(group, [
        { type: 'createRealm', realm: 'r' },
        ...Array.from({ length: 200 }, (_, i) => put(`k${i}`, { i, pad: 'p'.repeat(i) })),
      ]);
      await applyOps(group, [{ op: { type: 'openSession' }, extra: { time: 5000 } }]);
      const reference = await dumpDocs(group);
      const index = group.state.appliedIndex;
      const source = group.state.snapshotSource(); // Taken now.
      await applyOps(
        group,
        Array.from({ length: 50 }, (_, i) => put(`k${i}`, 'changed')),
      );
      const { meta, records } = await source;
      t.equal(meta.appliedIndex, index);
      const dir = tempDir(t, 'snap');
      const file = join(dir, 'manual.snap');
      const info = await writeSnapshotFile(
        file,
        {
          clusterId: 'test-cluster',
          group: 1,
          index,
          term: meta.appliedTerm,
          membership: meta.membership,
          revision: meta.revision,
          createdAtMs: 0,
        },
        records,
        4096,
      );
      t.ok(info.chunks > 5, `several chunks (${info.chunks})`);
      const joinerNode = await new Disk(t, engine).open();
      const joiner = await joinerNode.createGroup(1);
      const header = await joiner.installSnapshot(file, { index, term: 1 });
      t.equal(header.index, index);
      t.same(await dumpDocs(joiner), reference, 'exactly the state at the snapshot index');
      t.equal(joiner.state.appliedIndex, index);
      t.equal(joiner.state.sessionCount, 1, 'sessions travel in snapshots');
      t.equal(joiner.log.firstIndex(), index + 1);
      t.equal(joiner.log.lastIndex(), index);
      t.equal(joiner.log.term(index), 1);
      t.same(joiner.log.snapshot().metadata, { index, term: 1, membership: THREE });
      t.same(joiner.log.initialState().membership, THREE);
      const kept = await SnapshotReader.open(joiner.snapshotPath(joiner.log.snapshot()));
      t.equal(kept.header.index, index, 'the joiner keeps the file as its own snapshot');
      await kept.close();
      // The joiner continues from the snapshot: entries after it append and apply.
      await applyOps(joiner, [put('after', 1)]);
      t.match(await joiner.state.get('default', 'after'), { ok: true });
    },
  );

  t.test(
    `${engine}: persisting a Ready with a snapshot installs it; saves called meanwhile land after it`,
    async (t) => {
      const leader = await (await new Disk(t, engine).open()).bootstrapGroup(1, THREE);
      await applyOps(
        leader,
        Array.from({ length: 30 }, (_, i) => put(`k${i}`, i)),
        2,
      );
      const info = await leader.createSnapshot();
      const S = info.header.index;
      const snapshot = { metadata: { index: S, term: 2, membership: THREE }, data: new Uint8Array(0) };
      const file = leader.snapshotPath(leader.log.snapshot());
      const follower = await (await new Disk(t, engine).open()).createGroup(1);
      await follower.persist({ entries: entries(1, 3, 1) }); // A stale log the snapshot replaces.
      const order: string[] = [];
      const first = follower
        .persist({ snapshot, hardState: { term: 2, vote: '', commit: S } }, file)
        .then(() => order.push('snapshot'));
      const second = follower
        .persist({ entries: entries(S + 1, S + 3, 2) })
        .then(() => order.push('entries'));
      await Promise.all([first, second]);
      t.same(order, ['snapshot', 'entries']);
      t.equal(follower.log.firstIndex(), S + 1);
      t.equal(follower.log.lastIndex(), S + 3);
      t.equal(follower.log.term(S + 1), 2);
      t.equal(follower.state.appliedIndex, S);
      t.same(follower.log.initialState().hardState, { term: 2, vote: '', commit: S });
      t.same(await dumpDocs(follower), await dumpDocs(leader));
      t.throws(
        () => follower.persist({ snapshot, entries: [] }),
        StorageInvariantError,
        'a snapshot needs its file',
      );
    },
  );

  t.test(
    `${engine}: after a snapshot replaces a follower's documents, its next writes build on the snapshot's, not on what it had read before`,
    async (t) => {
      const leader = await (await new Disk(t, engine).open()).bootstrapGroup(1, THREE);
      const follower = await (await new Disk(t, engine).open()).bootstrapGroup(1, THREE);
      // Both apply the same first entries, so the follower has read and written k, gone and new.
      const first = [put('k', 1), put('gone', 1), put('new', 0, { ifRevision: 5 })];
      await applyOps(leader, first);
      await applyOps(follower, first);
      // The leader goes on; the follower misses it and gets a snapshot instead.
      await applyOps(leader, [
        put('k', 2),
        put('k', 3),
        { type: 'delete', realm: 'default', key: 'gone' },
        put('new', 1),
      ]);
      const info = await leader.createSnapshot();
      const S = info.header.index;
      await follower.persist(
        {
          snapshot: { metadata: { index: S, term: 1, membership: THREE }, data: new Uint8Array(0) },
          hardState: { term: 1, vote: '', commit: S },
        },
        leader.snapshotPath(leader.log.snapshot()),
      );
      const next = [put('k', 4), put('gone', 2), put('new', 2)];
      const fromLeader = await applyOps(leader, next);
      const fromFollower = await applyOps(follower, next);
      t.same(fromFollower, fromLeader, 'the same results on both');
      t.same(await dumpDocs(follower), await dumpDocs(leader), 'the same documents on both');
      t.match(await follower.state.get('default', 'k'), { ok: true, value: { value: 4, version: 4 } });
      t.match(await follower.state.get('default', 'gone'), { ok: true, value: { version: 1 } });
      t.match(await follower.state.get('default', 'new'), { ok: true, value: { value: 2, version: 2 } });
    },
  );

  t.test(
    `${engine}: createSnapshot records the snapshot raft sends and keeps the newest files`,
    async (t) => {
      const node = await new Disk(t, engine).open({ snapshotsRetained: 2 });
      const group = await node.bootstrapGroup(1, ONE);
      const indexes: number[] = [];
      for (let round = 0; round < 4; round++) {
        await applyOps(group, [put(`k${round}`, round)]);
        const info = await group.createSnapshot();
        indexes.push(info.header.index);
        t.same(group.log.snapshot().metadata.index, info.header.index);
      }
      const again = await group.createSnapshot();
      t.equal(again.header.index, indexes[3], 'a second snapshot at the same index reuses the file');
      const { readdirSync } = await import('node:fs');
      const files = readdirSync(join(node.config.dataDir, 'snapshots', 'g1')).sort();
      t.same(files, [`${indexes[2]}-1.snap`, `${indexes[3]}-1.snap`]);
    },
  );

  t.test(
    `${engine}: bad snapshot files are refused naming the problem; existing data is untouched`,
    async (t) => {
      const source = await new Disk(t, engine).open({ snapshotChunkBytes: 4096 });
      const sourceGroup = await source.bootstrapGroup(1, ONE);
      await applyOps(
        sourceGroup,
        Array.from({ length: 100 }, (_, i) => put(`k${i}`, 'v'.repeat(100))),
      );
      const dir = tempDir(t, 'bad');
      const good = join(dir, 'good.snap');
      await sourceGroup.backup(good);
      const bytes = readFileSync(good);
      const reader = await SnapshotReader.open(good);
      const headerEnd = 16 + bytes.readUInt32BE(12) + 4;
      await reader.close();

      const targetDisk = new Disk(t, engine);
      const target = await targetDisk.open();
      const targetGroup = await target.bootstrapGroup(1, ONE);
      await applyOps(targetGroup, [put('mine', 'keep me')]);
      const before = await dumpEngine(target);

      const variant = (name: string, mutate: (b: Buffer) => Buffer): string => {
        const path = join(dir, `${name}.snap`);
        writeFileSync(path, mutate(Buffer.from(bytes)));
        return path;
      };
      const flip = (at: number) => (b: Buffer) => {
        b[at]! ^= 0x40;
        return b;
      };
      const withHeader = (patch: Record<string, unknown>) => (b: Buffer) => {
        const header = JSON.parse(b.subarray(16, headerEnd - 4).toString()) as Record<string, unknown>;
        const json = Buffer.from(JSON.stringify({ ...header, ...patch }));
        const pre = Buffer.alloc(16);
        b.copy(pre, 0, 0, 16);
        pre.writeUInt32BE(json.length, 12);
        const { crc32c } = crc;
        const crcBytes = Buffer.alloc(4);
        crcBytes.writeUInt32BE(crc32c(json, crc32c(pre)));
        return Buffer.concat([pre, json, crcBytes, b.subarray(headerEnd)]);
      };
      const cases: [string, string, string][] = [
        [
          'not a snapshot',
          variant('text', () => Buffer.from('hello, this is not a snapshot')),
          'SNAPSHOT_NOT_A_SNAPSHOT',
        ],
        ['empty file', variant('empty', () => Buffer.alloc(0)), 'SNAPSHOT_TRUNCATED'],
        [
          'newer format',
          variant('newer', (b) => {
            b.writeUInt32BE(3, 8);
            return b;
          }),
          'SNAPSHOT_NEWER_FORMAT',
        ],
        [
          'a backup set (format 2) where one group is expected',
          variant('set', (b) => {
            b.writeUInt32BE(2, 8);
            return withHeader({})(b); // The header checksum covers the version.
          }),
          'SNAPSHOT_NOT_A_SNAPSHOT',
        ],
        ['cut in the preamble', variant('cut1', (b) => b.subarray(0, 10)), 'SNAPSHOT_TRUNCATED'],
        ['cut in the header', variant('cut2', (b) => b.subarray(0, headerEnd - 2)), 'SNAPSHOT_TRUNCATED'],
        ['cut in a chunk header', variant('cut3', (b) => b.subarray(0, headerEnd + 5)), 'SNAPSHOT_TRUNCATED'],
        ['cut in a chunk', variant('cut4', (b) => b.subarray(0, headerEnd + 3000)), 'SNAPSHOT_TRUNCATED'],
        [
          'cut before the end record',
          variant('cut5', (b) => b.subarray(0, b.length - 25)),
          'SNAPSHOT_TRUNCATED',
        ],
        ['cut in the end record', variant('cut6', (b) => b.subarray(0, b.length - 3)), 'SNAPSHOT_TRUNCATED'],
        ['flipped header byte', variant('flip1', flip(20)), 'SNAPSHOT_CORRUPT'],
        ['flipped chunk byte', variant('flip2', flip(headerEnd + 2000)), 'SNAPSHOT_CORRUPT'],
        ['flipped last chunk byte', variant('flip3', flip(bytes.length - 30)), 'SNAPSHOT_CORRUPT'],
        ['flipped end record', variant('flip4', flip(bytes.length - 10)), 'SNAPSHOT_CORRUPT'],
        ['trailing bytes', variant('trail', (b) => Buffer.concat([b, Buffer.from('x')])), 'SNAPSHOT_CORRUPT'],
        [
          'another cluster',
          variant('foreign', withHeader({ clusterId: 'elsewhere' })),
          'SNAPSHOT_FOREIGN_CLUSTER',
        ],
        ['another group', variant('group', withHeader({ group: 2 })), 'SNAPSHOT_FOREIGN_GROUP'],
        [
          'a header that lies about the index',
          variant('lie', withHeader({ index: 5000 })),
          'SNAPSHOT_CORRUPT',
        ],
      ];
      for (const [name, path, code] of cases) {
        await t.rejects(targetGroup.installSnapshot(path), { code }, name);
        const rejection = await targetGroup.installSnapshot(path).catch((error: Error) => error.message);
        t.match(rejection, path, `${name}: the error names the file`);
      }
      await t.rejects(targetGroup.installSnapshot(good, { index: 3, term: 1 }), {
        code: 'SNAPSHOT_MISMATCH',
      });
      await target.queue.drain();
      t.same(await dumpEngine(target), before, 'not one key of the node changed');
      t.match(await targetGroup.state.get('default', 'mine'), { ok: true, value: { value: 'keep me' } });
      // A snapshot not newer than what is applied is stale.
      await applyOps(
        targetGroup,
        Array.from({ length: 200 }, (_, i) => put(`z${i}`, i)),
      );
      await t.rejects(targetGroup.installSnapshot(good), { code: 'SNAPSHOT_STALE' });
      // The good file installs, replacing the state.
      const fresh = await (await new Disk(t, engine).open()).bootstrapGroup(1, ONE);
      await fresh.installSnapshot(good);
      t.same(await dumpDocs(fresh), await dumpDocs(sourceGroup));
    },
  );

  t.test(`${engine}: a lost snapshot file is written again at open; a backup never overwrites`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await disk.open();
    const group = await node.bootstrapGroup(1, ONE);
    await applyOps(group, [put('a', 1), put('b', 2)]);
    const created = await group.createSnapshot();
    t.equal(created.reused, false);
    t.equal((await group.createSnapshot()).reused, true, 'same index and term: the file is reused');
    await applyOps(group, [put('c', 3)]);
    await node.close();
    const { rmSync, existsSync, writeFileSync: write } = await import('node:fs');
    rmSync(created.path);
    const reopened = await (await disk.open()).openGroup(1);
    const path = reopened.snapshotPath(reopened.log.snapshot());
    t.ok(existsSync(path), 'a snapshot file exists again');
    t.equal(
      reopened.log.snapshot().metadata.index,
      reopened.state.appliedIndex,
      'written at the applied index',
    );
    const target = join(tempDir(t, 'backup'), 'taken.snap');
    write(target, 'precious');
    await t.rejects(reopened.backup(target), { code: 'FILE_EXISTS' });
    t.equal(readFileSync(target, 'utf8'), 'precious');
  });

  t.test(`${engine}: a backup restores into a new cluster with new members`, async (t) => {
    const source = await new Disk(t, engine).open();
    const group = await source.bootstrapGroup(1, THREE);
    await applyOps(group, [put('a', 1), { type: 'createRealm', realm: 'b' }]);
    const file = join(tempDir(t, 'backup'), 'backup.snap');
    const info = await group.backup(file);
    t.equal(info.header.clusterId, 'test-cluster');
    const otherDisk = new Disk(t, engine, tempDir(t), 'other-cluster');
    const other = await otherDisk.open();
    const joiner = await other.createGroup(1);
    await t.rejects(joiner.installSnapshot(file), { code: 'SNAPSHOT_FOREIGN_CLUSTER' });
    const restoredNode = await new Disk(t, engine, tempDir(t), 'new-cluster').open();
    const restored = await restoredNode.restoreGroup(1, file, {
      membership: { voters: ['n2'], learners: [] },
    });
    t.same(await dumpDocs(restored), await dumpDocs(group));
    t.same(restored.log.initialState().membership, { voters: ['n2'], learners: [] });
    t.same(restored.log.snapshot().metadata.membership, { voters: ['n2'], learners: [] });
    const ownFile = await SnapshotReader.open(restored.snapshotPath(restored.log.snapshot()));
    t.equal(ownFile.header.clusterId, 'new-cluster', 'its own snapshot file is of the new cluster');
    t.same(ownFile.header.membership, { voters: ['n2'], learners: [] });
    await ownFile.close();
  });
}

function dataDirTests(engine: EngineKind): void {
  t.test(
    `${engine}: a data directory of another cluster, a newer format or another engine is refused`,
    async (t) => {
      const disk = new Disk(t, engine);
      const node = await disk.open();
      await node.bootstrapGroup(1, ONE);
      await node.close();
      await t.rejects(disk.open({ clusterId: 'intruder' }), { code: 'DATA_DIR_FOREIGN_CLUSTER' });
      const markerPath = join(disk.dir, 'conclave-storage.json');
      const marker = JSON.parse(readFileSync(markerPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(markerPath, JSON.stringify({ ...marker, format: 2 }));
      await t.rejects(disk.open(), { code: 'DATA_DIR_NEWER_FORMAT' });
      const otherEngine = engine === 'rocksdb' ? 'leveldb' : 'rocksdb';
      writeFileSync(markerPath, JSON.stringify({ ...marker, engine: otherEngine }));
      await t.rejects(disk.open(), { code: 'DATA_DIR_ENGINE_MISMATCH' });
      writeFileSync(markerPath, '{ not json');
      await t.rejects(disk.open(), { code: 'DATA_DIR_CORRUPT' });
      // The database's own records are checked too: a marker edited to another cluster is caught inside.
      writeFileSync(markerPath, JSON.stringify({ ...marker, clusterId: 'intruder' }));
      await t.rejects(disk.open({ clusterId: 'intruder' }), { code: 'DATA_DIR_FOREIGN_CLUSTER' });
      writeFileSync(markerPath, JSON.stringify(marker));
      const reopened = await disk.open();
      t.same(await reopened.groupIds(), [1], 'the directory still opens with the right identity');
      await t.rejects(disk.open(), { code: 'DATA_DIR_LOCKED' }, 'a second open while open is refused');
      // A database whose own format record is newer is refused even under a current marker.
      await reopened.engine.write([{ type: 'put', key: nodeKey('format'), value: encodeJson(2) }], true);
      await reopened.close();
      await t.rejects(disk.open(), { code: 'DATA_DIR_NEWER_FORMAT' });
    },
  );

  if (engine !== 'memory') {
    t.test(`${engine}: a database without its marker is refused rather than adopted`, async (t) => {
      const disk = new Disk(t, engine);
      await (await disk.open()).close();
      const { rmSync } = await import('node:fs');
      rmSync(join(disk.dir, 'conclave-storage.json'));
      await t.rejects(disk.open(), { code: 'DATA_DIR_CORRUPT' });
    });
  }

  t.test(`${engine}: configuration errors name the setting`, async (t) => {
    const disk = new Disk(t, engine);
    await t.rejects(disk.open({ logCacheMaxEntries: -1 }), {
      name: 'StorageConfigError',
      setting: 'logCacheMaxEntries',
    });
    await t.rejects(disk.open({ clusterId: 'has space' }), {
      name: 'StorageConfigError',
      setting: 'clusterId',
    });
  });
}

/**
 * Random appends, conflicting suffixes, hard states, snapshots, compactions and reopens,
 * checked after every step against raft's MemoryStorage as the model.
 */
function modelTest(engine: EngineKind): void {
  t.test(
    `${engine}: the log store behaves like raft's MemoryStorage over random operations and reopens`,
    async (t) => {
      const disk = new Disk(t, engine);
      const limits = { logCacheMaxEntries: 16, logCacheMaxBytes: 4096 };
      let node = await disk.open(limits);
      let group = await node.bootstrapGroup(1, ONE);
      const model = MemoryStorage.bootstrap(ONE);
      const prng = new SeededPrng(engine.length * 1000 + 3);
      let term = 1;
      let applied = 1;
      let mismatches = 0;
      const check = (step: string): void => {
        const same = (what: string, a: unknown, b: unknown) => {
          if (!isDeepStrictEqual(a, b)) {
            mismatches++;
            t.fail(`${step}: ${what} differs`, { found: a, wanted: b });
          }
        };
        same('firstIndex', group.log.firstIndex(), model.firstIndex());
        same('lastIndex', group.log.lastIndex(), model.lastIndex());
        same('hardState', group.log.initialState().hardState, model.initialState().hardState);
        const first = model.firstIndex();
        const last = model.lastIndex();
        for (let i = first - 1; i <= last; i++) same(`term(${i})`, group.log.term(i), model.term(i));
        if (last >= first) {
          const low = first + prng.nextInt(last - first + 1);
          const high = low + prng.nextInt(last - low + 2);
          const maxBytes = prng.nextInt(3000);
          same(
            `entries(${low}, ${high}, ${maxBytes})`,
            group.log.entries(low, high, maxBytes),
            model.entries(low, high, maxBytes),
          );
        }
      };
      for (let step = 0; step < 120; step++) {
        const roll = prng.nextInt(100);
        if (roll < 60) {
          // Append, possibly replacing a suffix (never below what is applied).
          const last = model.lastIndex();
          const from = Math.max(applied + 1, model.firstIndex(), last + 1 - prng.nextInt(4));
          if (from <= last && prng.nextInt(2) === 0) term++;
          const count = 1 + prng.nextInt(12);
          const list: Entry[] = [];
          for (let i = 0; i < count; i++) {
            list.push({ index: from + i, term, type: 0, data: payload(from + i, term, prng.nextInt(400)) });
          }
          const hardState = {
            term,
            vote: 'n1',
            commit: Math.max(model.initialState().hardState.commit, from - 1),
          };
          await group.persist({ entries: list, hardState });
          model.append(list);
          model.setHardState(hardState);
          applied = Math.max(applied, hardState.commit);
        } else if (roll < 75) {
          // Commit and apply what is committed (empty entries), snapshot, compact a prefix.
          const commit = model.lastIndex();
          const hardState = { ...model.initialState().hardState, commit };
          await group.persist({ hardState });
          model.setHardState(hardState);
          const toApply =
            commit > group.state.appliedIndex
              ? group.log.entries(group.state.appliedIndex + 1, commit + 1, 1e12)
              : [];
          await group.apply(toApply.map((e) => ({ ...e, data: new Uint8Array(0) })));
          applied = commit;
          if (commit >= group.log.firstIndex()) {
            await group.createSnapshot();
            model.createSnapshot(commit, ONE, new Uint8Array(0));
            const compactTo = commit - prng.nextInt(5);
            if (compactTo >= model.firstIndex()) {
              await group.compact(compactTo);
              model.compact(compactTo);
            }
          }
        } else if (roll < 85) {
          await node.close();
          node = await disk.open(limits);
          group = await node.openGroup(1);
        } else {
          // Many saves in flight at once, as a pipelined driver makes them.
          const pending: Promise<void>[] = [];
          for (let k = 0; k < 5; k++) {
            const index = model.lastIndex() + 1;
            const list = [{ index, term, type: 0, data: payload(index, term, 50) }];
            pending.push(group.persist({ entries: list }));
            model.append(list);
          }
          await Promise.all(pending);
        }
        check(`step ${step}`);
        if (mismatches > 5) break;
      }
      t.equal(mismatches, 0, 'no difference from the model');
      t.ok(model.lastIndex() > 100, `the log grew to ${model.lastIndex()}`);
    },
  );
}
