// The backup set (storage/backup-set.ts): every raft group in one file, each section checked; restore builds every group from it, and refuses one that lacks a group of the catalog.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildDataDir } from '../../src/new-cluster.js';
import {
  BackupSet,
  type GroupStorage,
  NodeStorage,
  type Operation,
  SnapshotReader,
  writeBackupSet,
} from '../../storage/index.js';
import { encodeHeaderBlock } from '../../storage/snapshot-file.js';
import { applyOps, Disk, dumpDocs, THREE, tempDir } from './helpers.js';

/** Group 1 with groups 2 and 3 in its catalog, a realm placed in each, and documents in all three. */
async function threeGroups(t: Test): Promise<{ groups: GroupStorage[]; dir: string }> {
  const node = await new Disk(t, 'rocksdb').open();
  const first = await node.bootstrapGroup(1, THREE);
  await applyOps(first, [
    { type: 'createGroup' },
    { type: 'createGroup' },
    { type: 'placeRealm', realm: 'two', group: 2 },
    { type: 'placeRealm', realm: 'three', group: 3 },
    { type: 'put', realm: 'default', key: 'a', value: { in: 1 } },
  ] as Operation[]);
  const groups = [first];
  for (const [id, realm] of [
    [2, 'two'],
    [3, 'three'],
  ] as const) {
    const group = await node.bootstrapGroup(id, THREE, undefined, { defaultRealm: false });
    const ops: Operation[] = [{ type: 'createRealm', realm } as Operation];
    for (let i = 0; i < 50 * id; i++)
      ops.push({ type: 'put', realm, key: `k${i}`, value: { id, i } } as Operation);
    await applyOps(group, ops);
    groups.push(group);
  }
  return { groups, dir: tempDir(t, 'backup-set') };
}

async function backupEach(groups: GroupStorage[], dir: string): Promise<{ group: number; file: string }[]> {
  const parts: { group: number; file: string }[] = [];
  for (const group of groups) {
    const file = join(dir, `part-${group.group}.snap`);
    await group.backup(file);
    parts.push({ group: group.group, file });
  }
  return parts;
}

t.test('a set holds every group; each section reads, verifies and extracts as a snapshot file', async (t) => {
  const { groups, dir } = await threeGroups(t);
  const parts = await backupEach(groups, dir);
  const path = join(dir, 'set.snap');
  const size = await writeBackupSet(path, 'test-cluster', parts);
  const set = await BackupSet.open(path);
  t.equal(set.format, 2);
  t.equal(set.size, size);
  t.same(
    set.sections.map((s) => [s.group, s.header.group, s.header.index]),
    groups.map((g) => [g.group, g.group, g.state.appliedIndex]),
    'one section per group, group 1 first, each at its applied index',
  );
  const count = await set.verify();
  t.same([...count.recordsByGroup.keys()], [1, 2, 3]);
  t.ok(
    count.recordsByGroup.get(3)! > count.recordsByGroup.get(2)!,
    'group 3 holds more documents than group 2',
  );

  const extracted = join(dir, 'group-2.snap');
  await set.extract(2, extracted);
  t.same(
    readFileSync(extracted),
    readFileSync(parts[1]!.file),
    'the extracted section is the group backup, byte for byte',
  );
  await t.rejects(set.extract(2, extracted), { code: 'EEXIST' }, 'extract never writes over a file');
  await t.rejects(set.extract(7, join(dir, 'nope.snap')), { code: 'GROUP_NOT_FOUND' });

  await t.rejects(
    SnapshotReader.open(path),
    { code: 'SNAPSHOT_NOT_A_SNAPSHOT', message: /backup set/ },
    'a set is not taken where one group snapshot is expected',
  );
  await t.rejects(writeBackupSet(path, 'test-cluster', parts), { code: 'FILE_EXISTS' });
  await t.rejects(
    writeBackupSet(join(dir, 'x.snap'), 'test-cluster', parts.slice(1)),
    /must start with group 1/,
  );

  const plain = await BackupSet.open(parts[0]!.file);
  t.same(
    [plain.format, plain.sections.length, plain.first.group],
    [1, 1, 1],
    'a plain snapshot file is a set of group 1',
  );
});

t.test('a damaged set is refused with the code that says how', async (t) => {
  const { groups, dir } = await threeGroups(t);
  const parts = await backupEach(groups, dir);
  const path = join(dir, 'set.snap');
  await writeBackupSet(path, 'test-cluster', parts);
  const bytes = readFileSync(path);
  const headerEnd = 16 + bytes.readUInt32BE(12) + 4;
  const sizes = parts.map((p) => readFileSync(p.file).length);
  const variant = (name: string, mutate: (b: Buffer) => Buffer): string => {
    const file = join(dir, `${name}.snap`);
    writeFileSync(file, mutate(Buffer.from(bytes)));
    return file;
  };
  const withSections = (sections: unknown) => (b: Buffer) =>
    Buffer.concat([
      encodeHeaderBlock(2, { clusterId: 'test-cluster', createdAtMs: 1, sections }),
      b.subarray(headerEnd),
    ]);
  const inThird = headerEnd + sizes[0]! + sizes[1]! + Math.floor(sizes[2]! / 2);
  const cases: [string, string, string, RegExp][] = [
    [
      'cut in the last section',
      variant('cut', (b) => b.subarray(0, b.length - 100)),
      'SNAPSHOT_TRUNCATED',
      /file has/,
    ],
    [
      'a byte after it',
      variant('trail', (b) => Buffer.concat([b, Buffer.of(0)])),
      'SNAPSHOT_CORRUPT',
      /after the last/,
    ],
    [
      'groups out of order',
      variant(
        'order',
        withSections([
          { group: 1, bytes: sizes[0] },
          { group: 3, bytes: sizes[1] },
          { group: 2, bytes: sizes[2] },
        ]),
      ),
      'SNAPSHOT_CORRUPT',
      /out of order/,
    ],
    [
      'a section listed under another group',
      variant(
        'mislabel',
        withSections([
          { group: 1, bytes: sizes[0] },
          { group: 2, bytes: sizes[1] },
          { group: 4, bytes: sizes[2] },
        ]),
      ),
      'SNAPSHOT_CORRUPT',
      /listed as group 4 holds group 3/,
    ],
    [
      'section sizes that do not fall on a section',
      variant(
        'sizes',
        withSections([
          { group: 1, bytes: sizes[0]! + 10 },
          { group: 2, bytes: sizes[1]! - 10 },
          { group: 3, bytes: sizes[2] },
        ]),
      ),
      'SNAPSHOT_NOT_A_SNAPSHOT',
      /no snapshot magic at byte/,
    ],
    ['no sections', variant('none', withSections([])), 'SNAPSHOT_CORRUPT', /lacks a field/],
    [
      'a newer format',
      variant('newer', (b) => {
        b.writeUInt32BE(3, 8);
        return b;
      }),
      'SNAPSHOT_NEWER_FORMAT',
      /format version 3/,
    ],
  ];
  for (const [what, file, code, message] of cases) {
    await t.rejects(BackupSet.open(file), { code, message }, what);
  }
  const flipped = variant('flip', (b) => {
    b[inThird]! ^= 0x40;
    return b;
  });
  const set = await BackupSet.open(flipped);
  await t.rejects(set.verify(), { code: 'SNAPSHOT_CORRUPT' }, 'a flipped byte in group 3 fails verify');
});

t.test('restore builds every group of the set with the new node as voter and founder', async (t) => {
  const { groups, dir } = await threeGroups(t);
  const parts = await backupEach(groups, dir);
  const path = join(dir, 'set.snap');
  await writeBackupSet(path, 'test-cluster', parts);
  const target = join(dir, 'restored');
  const lines: string[] = [];
  const built = await buildDataDir(target, {
    name: 'solo',
    clusterId: 'new-cluster',
    engine: 'rocksdb',
    file: path,
    progress: (line) => lines.push(line),
  });
  t.same([built.groups, built.missingGroups], [[1, 2, 3], []]);
  t.match(lines.join('\n'), /restoring raft group 2[\s\S]*restoring raft group 3/);
  const storage = await NodeStorage.open({
    dataDir: target,
    clusterId: 'new-cluster',
    storageEngine: 'rocksdb',
  });
  t.teardown(() => storage.close());
  t.same((await storage.groupIds()).sort(), [1, 2, 3]);
  const first = await storage.openGroup(1);
  t.same(
    first.state.groups.groups.map((g) => [g.id, g.members]),
    [
      [2, ['solo']],
      [3, ['solo']],
    ],
    'the catalog names the restored node as each group founder',
  );
  t.same(first.state.groups.placements, { two: 2, three: 3 }, 'placements as backed up');
  for (const original of groups) {
    const restored = original.group === 1 ? first : await storage.openGroup(original.group);
    t.same(
      restored.state.membership,
      { voters: ['solo'], learners: [] },
      `group ${original.group}: solo votes`,
    );
    t.equal(
      restored.state.appliedIndex,
      original.state.appliedIndex,
      `group ${original.group}: applied index`,
    );
    t.same(await dumpDocs(restored), await dumpDocs(original), `group ${original.group}: every document`);
  }
});

t.test(
  'restore refuses a set lacking a group of the catalog, and skips a group the catalog does not list',
  async (t) => {
    const { groups, dir } = await threeGroups(t);
    const parts = await backupEach(groups, dir);
    const lacking = join(dir, 'lacking.snap');
    await writeBackupSet(lacking, 'test-cluster', parts.slice(0, 2));
    const target = join(dir, 'restored');
    await t.rejects(
      buildDataDir(target, { name: 'solo', clusterId: 'c', engine: 'rocksdb', file: lacking }),
      { code: 'BACKUP_INCOMPLETE', message: /lacks raft groups 3/ },
    );
    const partial = await buildDataDir(join(dir, 'own'), {
      name: 'solo',
      clusterId: 'c',
      engine: 'rocksdb',
      file: lacking,
      allowMissingGroups: true,
    });
    t.same(
      [partial.groups, partial.missingGroups],
      [[1, 2], [3]],
      'allowed (a node own data): group 3 missing',
    );

    // Group 1 saved before group 3 existed: its catalog does not list the group 4 of this set.
    const old = join(dir, 'old-first.snap');
    const node = await new Disk(t, 'rocksdb').open();
    const early = await node.bootstrapGroup(1, THREE);
    await applyOps(early, [
      { type: 'createGroup' },
      { type: 'placeRealm', realm: 'two', group: 2 },
    ] as Operation[]);
    await early.backup(old);
    const skewed = join(dir, 'skewed.snap');
    await writeBackupSet(skewed, 'test-cluster', [
      { group: 1, file: old },
      parts[1]!,
      { group: 3, file: parts[2]!.file },
    ]);
    const lines: string[] = [];
    const built = await buildDataDir(join(dir, 'skewed'), {
      name: 'solo',
      clusterId: 'c',
      engine: 'rocksdb',
      file: skewed,
      progress: (line) => lines.push(line),
    });
    t.same(built.groups, [1, 2], 'group 3, not in the catalog, is not restored');
    t.match(lines.join('\n'), /skipping raft group 3/);
  },
);
