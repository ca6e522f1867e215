// Raft on the real storage path after a restart: a membership change in the log but not yet applied is in effect (issue 12, seed 1853).

import t from 'tap';
import { encodeMembershipChange, MembershipChangeType } from '../../raft/membership-change.js';
import { SeededPrng } from '../../raft/prng.js';
import { RawNode } from '../../raft/raw-node.js';
import { type Entry, EntryType } from '../../raft/types.js';
import type { EngineKind } from '../../storage/engine.js';
import { Disk } from './helpers.js';

const promote = (index: number, term: number, nodeId: string): Entry => ({
  index,
  term,
  type: EntryType.MembershipChange,
  data: encodeMembershipChange({ type: MembershipChangeType.PromoteLearner, nodeId }),
});
const noop = (index: number, term: number): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new Uint8Array(0),
});

for (const engine of ['rocksdb', 'leveldb'] as EngineKind[]) {
  t.test(`${engine}: a restarted node counts the voters its log promoted, applied or not`, async (t) => {
    const disk = new Disk(t, engine);
    const before = await disk.open();
    const group = await before.bootstrapGroup(1, { voters: ['n1', 'n2', 'n3'], learners: ['n6', 'n7'] });
    // The log holds two promotions; the node applied only the no-op before them, and its saved
    // commit index says 2 (the driver need not save a Ready that only moves the commit index).
    const log = [noop(2, 2), promote(3, 2, 'n6'), noop(4, 2), promote(5, 2, 'n7')];
    await group.persist({ entries: log, hardState: { term: 2, vote: 'n1', commit: 2 } });
    await group.apply(log.slice(0, 1));
    await before.close();

    const after = await disk.open();
    const reopened = await after.openGroup(1);
    t.equal(reopened.state.appliedIndex, 2);
    t.same(
      reopened.log.initialState().membership,
      { voters: ['n1', 'n2', 'n3'], learners: ['n6', 'n7'] },
      'the storage reports the membership as of the applied index: before issue 12, raft used this one, so the real node was exposed',
    );
    const raw = new RawNode({
      id: 'n2',
      storage: reopened.log,
      prng: new SeededPrng(1),
      applied: reopened.state.appliedIndex,
    });
    t.same(
      raw.status().membership,
      { voters: ['n1', 'n2', 'n3', 'n6', 'n7'], learners: [] },
      'raft now uses the latest membership in the durable log: a quorum is 3 of these 5',
    );
    t.equal(raw.status().membershipIndex, 5);
    t.same(
      raw.membership(),
      { voters: ['n1', 'n2', 'n3'], learners: ['n6', 'n7'] },
      'the applied one is unchanged',
    );

    // Once the rest is applied, the state store agrees with what raft had in effect.
    await reopened.apply(log.slice(1));
    t.same(reopened.state.membership, raw.status().membership);
  });
}
