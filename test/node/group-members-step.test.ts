// The pure decisions of src/group-members.ts: the next raft membership step toward the catalog's members, and which group member a spare's replacement leaves to repair.

import t from 'tap';
import { type LeaderView, nextCatalogRepair, nextMembershipStep } from '../../src/group-members.js';
import type { GroupCatalog } from '../../storage/index.js';

function view(partial: Partial<LeaderView>): LeaderView {
  return {
    self: 'n1',
    voters: ['n1', 'n2', 'n3'],
    learners: [],
    commitIndex: 100,
    match: new Map([
      ['n1', 100],
      ['n2', 100],
      ['n3', 100],
    ]),
    ...partial,
  };
}

t.test('nextMembershipStep', async (t) => {
  t.equal(nextMembershipStep(view({}), ['n1', 'n2', 'n3']), undefined, 'agreement: nothing to do');
  t.same(
    nextMembershipStep(view({}), ['n1', 'n2', 'n3', 'n4']),
    { kind: 'addLearner', node: 'n4' },
    'a new node is added as a learner',
  );
  const learning = view({ learners: ['n4'], match: new Map([['n4', 40]]) });
  t.equal(
    nextMembershipStep(learning, ['n1', 'n2', 'n3', 'n4']),
    undefined,
    'a learner behind is not promoted yet',
  );
  t.same(
    nextMembershipStep(view({ learners: ['n4'], match: new Map([['n4', 100]]) }), ['n1', 'n2', 'n3', 'n4']),
    { kind: 'promote', node: 'n4' },
    'a caught-up learner is promoted',
  );
  t.same(
    nextMembershipStep(learning, ['n1', 'n2', 'n4']),
    { kind: 'remove', node: 'n3' },
    'a dropped voter is removed while its replacement still learns',
  );
  t.same(
    nextMembershipStep(view({ learners: ['n5'] }), ['n1', 'n2', 'n3']),
    { kind: 'remove', node: 'n5' },
    'a dropped learner is removed',
  );
  t.same(
    nextMembershipStep(
      view({
        match: new Map([
          ['n2', 90],
          ['n3', 99],
        ]),
      }),
      ['n2', 'n3'],
    ),
    { kind: 'transfer', node: 'n3' },
    'the leader dropped: leadership goes to the most advanced voter that stays',
  );
  t.equal(
    nextMembershipStep(view({ voters: ['n1'], learners: ['n2'], match: new Map([['n2', 10]]) }), ['n2']),
    undefined,
    'a lone leader dropped waits for its replacement to vote',
  );
  t.same(
    nextMembershipStep(view({ voters: ['n1'], learners: ['n2'], match: new Map([['n2', 100]]) }), ['n2']),
    { kind: 'promote', node: 'n2' },
    'and promotes it once caught up',
  );
  t.same(
    nextMembershipStep(view({ voters: ['n1', 'n2'], learners: [] }), ['n2']),
    { kind: 'transfer', node: 'n2' },
    'then hands over',
  );
  t.same(
    nextMembershipStep(view({ self: 'n2', voters: ['n1', 'n2'] }), ['n2']),
    { kind: 'remove', node: 'n1' },
    'and the new leader removes it',
  );
  t.same(
    nextMembershipStep(view({}), ['n4']),
    { kind: 'addLearner', node: 'n4' },
    'adds come before removes',
  );
});

t.test('nextCatalogRepair', async (t) => {
  const catalog: GroupCatalog = {
    groups: [
      { id: 2, members: ['n1', 'n2', 'n3'], createRevision: 1 },
      { id: 3, members: ['n1', 'n2'], createRevision: 2 },
    ],
  };
  t.equal(
    nextCatalogRepair(catalog, { voters: ['n1', 'n2', 'n3'], learners: [] }),
    undefined,
    'every member is in group 1',
  );
  t.equal(
    nextCatalogRepair(catalog, { voters: ['n1', 'n2'], learners: ['n3'] }),
    undefined,
    'a member still in group 1 (as a learner) is left alone',
  );
  t.same(
    nextCatalogRepair(catalog, { voters: ['n1', 'n2', 's1'], learners: [] }),
    { group: 2, gone: 'n3', replacement: 's1' },
    'n3 replaced by spare s1: s1 takes its place in group 2',
  );
  t.same(
    nextCatalogRepair(
      { groups: [{ id: 2, members: ['n1', 'n2', 'n3'], createRevision: 1, left: ['s1'] }] },
      { voters: ['n1', 'n2', 's1'], learners: [] },
    ),
    { group: 2, gone: 'n3' },
    'a voter that left the group before is no replacement: n3 is only dropped',
  );
  t.same(
    nextCatalogRepair(
      {
        groups: [
          { id: 2, members: ['n1', 'n3'], createRevision: 1 },
          { id: 3, members: ['n4'], createRevision: 2 },
        ],
      },
      { voters: ['n1', 'n2', 'n4'], learners: [] },
    ),
    { group: 2, gone: 'n3', replacement: 'n2' },
    'the replacement is the voter outside the group in the fewest groups',
  );
});

t.test('nextMembershipStep with observers (satellites and DR replicas of group 1)', async (t) => {
  t.same(
    nextMembershipStep(view({}), ['n1', 'n2', 'n3'], ['d1']),
    { kind: 'addLearner', node: 'd1' },
    'an observer is added as a learner',
  );
  t.equal(
    nextMembershipStep(view({ learners: ['d1'], match: new Map([['d1', 100]]) }), ['n1', 'n2', 'n3'], ['d1']),
    undefined,
    'and never promoted, caught up or not',
  );
  t.same(
    nextMembershipStep(view({ learners: ['d1'] }), ['n1', 'n2', 'n3'], []),
    { kind: 'remove', node: 'd1' },
    'a learner that is no observer any more is removed',
  );
  t.same(
    nextMembershipStep(
      view({ learners: ['n4'], match: new Map([['n4', 100]]) }),
      ['n1', 'n2', 'n3', 'n4'],
      ['n4'],
    ),
    { kind: 'promote', node: 'n4' },
    'a node the catalog names is a member, even if it is also listed as an observer',
  );
});
