// startNewCluster on a stopped node's data directory: committed entries applied, uncommitted ones discarded, a new cluster id, the old directory kept; and its refusals.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadOrCreateNodeKey } from '../../net/identity.js';
import { readHoldings, startNewCluster } from '../../src/new-cluster.js';
import type { Operation } from '../../storage/commands.js';
import { NodeStorage } from '../../storage/index.js';
import { applyOps, commandEntry, THREE, tempDir } from '../storage/helpers.js';

const put = (key: string, value: unknown): Operation =>
  ({ type: 'put', realm: 'default', key, value }) as Operation;
const ADDRESSES = {
  n1: '/ip4/127.0.0.1/tcp/7101',
  n2: '/ip4/127.0.0.1/tcp/7102',
  n3: '/ip4/127.0.0.1/tcp/7103',
};

/** A stopped voter n1 of `old-cluster`: entries 2-4 applied, 5-6 committed only, 7-8 not committed. */
async function stoppedVoter(t: Test): Promise<string> {
  const dir = join(tempDir(t, 'new-cluster'), 'data');
  const storage = await NodeStorage.open({
    dataDir: dir,
    clusterId: 'old-cluster',
    storageEngine: 'rocksdb',
  });
  const group = await storage.bootstrapGroup(1, THREE, ADDRESSES);
  await applyOps(group, [put('a', 1), put('b', 2), put('c', 3)]);
  await group.persist({
    entries: [
      commandEntry(5, 2, put('d', 4)),
      commandEntry(6, 2, put('e', 5)),
      commandEntry(7, 2, put('f', 6)),
      commandEntry(8, 2, put('g', 7)),
    ],
    hardState: { term: 2, vote: 'n1', commit: 6 },
  });
  await storage.close();
  writeFileSync(join(dir, 'node.json'), JSON.stringify({ name: 'n1', clusterId: 'old-cluster' }));
  await loadOrCreateNodeKey(dir);
  return dir;
}

t.test('the node becomes the only voter of a new cluster with what it knew committed', async (t) => {
  const dir = await stoppedVoter(t);
  const holdings = await readHoldings(dir);
  t.equal(holdings.role, 'voter');
  t.same(holdings.voters, ['n1', 'n2', 'n3']);
  const key = readFileSync(join(dir, 'node.key'));
  const steps: string[] = [];
  const report = await startNewCluster(dir, (line) => steps.push(line));
  t.equal(report.appliedFromLog, 2, 'the committed entries 5 and 6 were applied first');
  t.equal(report.discarded, 2, 'entries 7 and 8 were past the commit index');
  t.equal(report.index, 6);
  t.equal(report.term, 2);
  t.equal(report.revision, 6, 'the default realm (revision 1) and five puts');
  t.equal(report.address, ADDRESSES.n1);
  t.not(report.clusterId, 'old-cluster');
  t.ok(
    steps.some((line) => line.startsWith('applying 2 committed entries')),
    'progress is told',
  );

  t.same(JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')), {
    name: 'n1',
    clusterId: report.clusterId,
  });
  t.same(readFileSync(join(dir, 'node.key')), key, 'the node keeps its key');
  const storage = await NodeStorage.open({
    dataDir: dir,
    clusterId: report.clusterId,
    storageEngine: 'rocksdb',
  });
  t.teardown(() => storage.close());
  const group = await storage.openGroup(1);
  t.same(group.state.membership, { voters: ['n1'], learners: [] });
  t.same(group.state.meta.addresses, { n1: ADDRESSES.n1 }, 'only its own address is left');
  t.same(group.log.initialState().hardState, { term: 2, vote: '', commit: 6 });
  for (const [k, value] of Object.entries({ a: 1, e: 5 })) {
    const read = await group.state.get('default', k);
    t.ok(read.ok && read.value.value === value, `${k} is there`);
  }
  for (const k of ['f', 'g']) t.notOk((await group.state.get('default', k)).ok, `${k} (uncommitted) is not`);

  // The directory as it was is kept, of the old cluster.
  const kept = await NodeStorage.open({
    dataDir: report.previousDataDir,
    clusterId: 'old-cluster',
    storageEngine: 'rocksdb',
  });
  t.teardown(() => kept.close());
  t.same((await kept.openGroup(1)).state.membership, THREE);
});

t.test('refusals leave the directory as it was', async (t) => {
  await t.rejects(readHoldings(join(tempDir(t, 'empty'), 'nothing')), { code: 'NOT_A_DATA_DIR' });
  const empty = tempDir(t, 'empty');
  await t.rejects(readHoldings(empty), { code: 'NOT_A_DATA_DIR' });
  await t.rejects(startNewCluster(empty), { code: 'NOT_A_DATA_DIR' });

  const dir = await stoppedVoter(t);
  const running = await NodeStorage.open({
    dataDir: dir,
    clusterId: 'old-cluster',
    storageEngine: 'rocksdb',
  });
  await t.rejects(readHoldings(dir), { code: 'NODE_RUNNING' });
  await t.rejects(startNewCluster(dir), { code: 'NODE_RUNNING' });
  await running.close();
  t.same(
    JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')).clusterId,
    'old-cluster',
    'still the old cluster',
  );

  writeFileSync(
    join(dir, 'removed.json'),
    JSON.stringify({ name: 'n1', clusterId: 'old-cluster', membershipIndex: 9, by: 'n2', at: 'then' }),
  );
  await t.rejects(startNewCluster(dir), { code: 'REMOVED' });
  t.same(
    JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')).clusterId,
    'old-cluster',
    'still the old cluster',
  );
});
