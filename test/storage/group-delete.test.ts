// NodeStorage.deleteGroup: a node that left a raft group deletes its copy, every key and snapshot file, and finishes a deletion a crash interrupted.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeJson } from '../../storage/codec.js';
import type { Operation } from '../../storage/commands.js';
import { groupRange, nodeKey } from '../../storage/keys.js';
import type { NodeStorage } from '../../storage/storage.js';
import { applyOps, Disk, dumpDocs, ONE } from './helpers.js';

async function keysIn(storage: NodeStorage, [start, end]: [Uint8Array, Uint8Array]): Promise<number> {
  let n = 0;
  for await (const _ of storage.engine.iterate(start, end)) n++;
  return n;
}

async function twoGroups(disk: Disk): Promise<NodeStorage> {
  const node = await disk.open();
  const first = await node.bootstrapGroup(1, ONE);
  await applyOps(first, [{ type: 'put', realm: 'default', key: 'stay', value: 1 } as Operation]);
  const second = await node.bootstrapGroup(2, ONE, {}, { defaultRealm: false });
  const ops: Operation[] = [{ type: 'createRealm', realm: 'shop' } as Operation];
  for (let i = 0; i < 300; i++)
    ops.push({ type: 'put', realm: 'shop', key: `k${i}`, value: { i } } as Operation);
  await applyOps(second, ops);
  return node;
}

for (const engine of ['memory', 'rocksdb'] as const) {
  t.test(`${engine}: deleteGroup removes every key and file of the group, and nothing else`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await twoGroups(disk);
    const firstDocs = await dumpDocs(await node.openGroup(1));
    t.ok((await keysIn(node, groupRange(2))) > 300, 'group 2 holds its documents');
    t.ok(existsSync(join(disk.dir, 'snapshots', 'g2')), 'and a snapshot directory');
    await node.deleteGroup(2);
    t.equal(await keysIn(node, groupRange(2)), 0, 'no key of group 2 is left');
    t.notOk(existsSync(join(disk.dir, 'snapshots', 'g2')), 'nor its snapshot directory');
    t.same(await node.groupIds(), [1], 'the node holds group 1 only');
    t.same(await dumpDocs(await node.openGroup(1)), firstDocs, 'group 1 is as it was');
    await t.rejects(node.openGroup(2), { code: 'GROUP_NOT_FOUND' }, 'group 2 no longer opens');
    await node.deleteGroup(5);
    t.pass('deleting a group the node does not hold does nothing');
    await t.rejects(node.deleteGroup(1), 'group 1 is never deleted');
    // The id can be created again (a group this node joins later under a new id is no different).
    const again = await node.createGroup(2);
    t.equal(again.state.appliedIndex, 0, 'a group created under the same id starts empty');
  });

  t.test(`${engine}: a deletion a crash interrupted is finished when the groups are listed`, async (t) => {
    const disk = new Disk(t, engine);
    const node = await twoGroups(disk);
    // What deleteGroup writes first: the record marked. A crash right after it leaves every key.
    await node.queue.submit([
      {
        type: 'put',
        key: nodeKey(`group/${String(2).padStart(10, '0')}`),
        value: encodeJson({ group: 2, deleting: true }),
      },
    ]);
    await node.close();
    const reopened = await disk.open();
    t.ok((await keysIn(reopened, groupRange(2))) > 0, 'the keys are still there after the crash');
    t.same(await reopened.groupIds(), [1], 'the marked group is not listed');
    t.equal(await keysIn(reopened, groupRange(2)), 0, 'and its keys are gone');
    t.notOk(existsSync(join(disk.dir, 'snapshots', 'g2')), 'and its snapshot directory');
  });
}
