// The rule that decides whether a member's notice proves this node's removal, and the notice's decoding.

import t from 'tap';
import { decodePeerRequest, encodePeerMessage } from '../../src/peer-protocol.js';
import { provesRemoval, type RemovalNotice } from '../../src/removal.js';

const notice = (membershipIndex: number, voters: string[], learners: string[] = []): RemovalNotice => ({
  type: 'removed',
  membershipIndex,
  voters,
  learners,
});
const own = (membershipIndex: number, voters: string[], learners: string[] = []) => ({
  membership: { voters, learners },
  membershipIndex,
});

t.test('a committed membership without this node, as new as its own, proves the removal', async (t) => {
  t.ok(provesRemoval(notice(10, ['a', 'b']), 'c', own(5, ['a', 'b', 'c'])), 'newer membership without c');
  t.ok(provesRemoval(notice(5, ['a', 'b']), 'c', own(5, ['a', 'b'], ['c'])), 'a learner, same index');
});

t.test('what does not prove a removal', async (t) => {
  t.notOk(provesRemoval(notice(10, ['a', 'b', 'c']), 'c', own(5, ['a', 'b', 'c'])), 'c is in it');
  t.notOk(provesRemoval(notice(10, ['a', 'b'], ['c']), 'c', own(5, ['a', 'b'])), 'c is a learner in it');
  t.notOk(
    provesRemoval(notice(4, ['a', 'b']), 'c', own(7, ['a', 'b', 'c'])),
    'a lagging member: its membership is older than the one that added c',
  );
  t.notOk(
    provesRemoval(notice(10, ['a', 'b']), 'c', own(0, [])),
    'a joiner that was never a member (its addition not yet in the sender log)',
  );
});

t.test('a removal notice travels as a peer request and a malformed one is refused', async (t) => {
  const sent = notice(12, ['a'], ['b']);
  t.same(decodePeerRequest(encodePeerMessage(sent)), sent);
  for (const bad of [
    { type: 'removed', membershipIndex: -1, voters: [], learners: [] },
    { type: 'removed', membershipIndex: 1.5, voters: [], learners: [] },
    { type: 'removed', membershipIndex: 3, voters: 'a', learners: [] },
    { type: 'removed', membershipIndex: 3, voters: [1], learners: [] },
    { type: 'removed', membershipIndex: 3, voters: [] },
  ]) {
    t.throws(
      () => decodePeerRequest(encodePeerMessage(bad)),
      { code: 'INVALID_ARGUMENT' },
      JSON.stringify(bad),
    );
  }
});
