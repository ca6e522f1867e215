// The spare policy's decisions, rule by rule: when a dead voter is replaced, and every case in which nothing may happen.

import t from 'tap';
import { decideSpareChange, type SparePolicyInput } from '../../raft/spare-policy.js';

/** n1 leads n1..n3 with spare s1 caught up; n3 silent for `n3Silent`. Times in ms. */
function input(
  overrides: Partial<SparePolicyInput> = {},
  n3Silent: number | undefined = 40_000,
): SparePolicyInput {
  return {
    leader: 'n1',
    membership: { voters: ['n1', 'n2', 'n3'], learners: ['s1'] },
    spares: ['s1'],
    replacing: undefined,
    replaced: [],
    changePending: false,
    commitIndex: 100,
    peers: new Map([
      ['n2', { match: 100, silentFor: 20 }],
      ['n3', { match: 50, silentFor: n3Silent }],
      ['s1', { match: 100, silentFor: 30 }],
    ]),
    liveWithin: 300,
    watchedFor: 1_000_000,
    promoteAfter: 30_000,
    maxSpareLag: 100,
    ...overrides,
  };
}

t.test(
  'a voter silent past promoteAfter is replaced by a live, caught-up spare: promotion first',
  async (t) => {
    t.same(decideSpareChange(input()), { kind: 'promote', spare: 's1', replaces: 'n3' });
    t.same(
      decideSpareChange(input({}, undefined)),
      { kind: 'promote', spare: 's1', replaces: 'n3' },
      'never heard from counts as silent',
    );
  },
);

t.test('then the replaced voter is removed, by whichever node leads', async (t) => {
  const promoted = input({
    membership: { voters: ['n1', 'n2', 'n3', 's1'], learners: [] },
    spares: [],
    replacing: { spare: 's1', voter: 'n3' },
  });
  t.same(decideSpareChange(promoted), { kind: 'remove', voter: 'n3', replacedBy: 's1' });
  t.same(
    decideSpareChange({
      ...promoted,
      leader: 's1',
      peers: new Map([...promoted.peers, ['n1', { match: 100, silentFor: 5 }]]),
    }),
    { kind: 'remove', voter: 'n3', replacedBy: 's1' },
    'a new leader finishes it',
  );
  t.same(
    decideSpareChange({
      ...promoted,
      peers: new Map([...promoted.peers, ['n3', { match: 100, silentFor: 10 }]]),
    }),
    { kind: 'remove', voter: 'n3', replacedBy: 's1' },
    'also if the replaced voter came back meanwhile: it will be re-added as the spare',
  );
});

t.test('a replaced node that comes back is re-added as a spare', async (t) => {
  const after = input({
    membership: { voters: ['n1', 'n2', 's1'], learners: [] },
    spares: [],
    replaced: ['n3'],
    peers: new Map([
      ['n2', { match: 100, silentFor: 20 }],
      ['s1', { match: 100, silentFor: 20 }],
      ['n3', { match: 0, silentFor: 40 }],
    ]),
  });
  t.same(decideSpareChange(after), { kind: 'readd', node: 'n3' });
  t.match(
    decideSpareChange({ ...after, peers: new Map([...after.peers, ['n3', { match: 0, silentFor: 5000 }]]) }),
    { kind: 'none' },
    'not while it is still away',
  );
  t.match(
    decideSpareChange({ ...after, membership: { voters: ['n1', 'n2', 's1'], learners: ['n3'] } }),
    { kind: 'none' },
    'not once it is a member again',
  );
});

t.test('nothing happens in any of these cases', async (t) => {
  const cases: [string, SparePolicyInput][] = [
    ['a membership change is pending', input({ changePending: true })],
    ['the voter is only slow: it answers', input({}, 200)],
    ['silent, but not yet for promoteAfter', input({}, 29_999)],
    ['no spare', input({ spares: [], membership: { voters: ['n1', 'n2', 'n3'], learners: ['s1'] } })],
    [
      'the spare is behind',
      input({
        peers: new Map([
          ['n2', { match: 100, silentFor: 20 }],
          ['n3', { match: 50, silentFor: 40_000 }],
          ['s1', { match: 0, silentFor: 30 }],
        ]),
      }),
    ],
    [
      'the spare is not live',
      input({
        peers: new Map([
          ['n2', { match: 100, silentFor: 20 }],
          ['n3', { match: 50, silentFor: 40_000 }],
          ['s1', { match: 100, silentFor: 5000 }],
        ]),
      }),
    ],
    [
      'a learner that is not a spare',
      input({ spares: [], membership: { voters: ['n1', 'n2', 'n3'], learners: ['s1', 'l1'] } }),
    ],
    [
      'two of three voters dead: no live quorum (the leader would step down anyway)',
      input({
        peers: new Map([
          ['n2', { match: 100, silentFor: 40_000 }],
          ['n3', { match: 50, silentFor: 40_000 }],
          ['s1', { match: 100, silentFor: 30 }],
        ]),
      }),
    ],
    [
      'the leader is not a voter (it is leaving)',
      input({ leader: 'n1', membership: { voters: ['n2', 'n3', 'n4'], learners: ['n1', 's1'] } }),
    ],
  ];
  for (const [why, c] of cases) t.match(decideSpareChange(c), { kind: 'none' }, why);
});

t.test('a removal that would leave no live quorum waits', async (t) => {
  // Five voters, replacement of n5 half done, and meanwhile n2 and n3 went silent: removing n5
  // leaves n1, n2, n3, n4, s1 with two of them dead: still 3 of 5 live, so it goes ahead; with n4
  // dead too it must wait.
  const base = input({
    membership: { voters: ['n1', 'n2', 'n3', 'n4', 'n5', 's1'], learners: [] },
    spares: [],
    replacing: { spare: 's1', voter: 'n5' },
    peers: new Map([
      ['n2', { match: 100, silentFor: 40_000 }],
      ['n3', { match: 100, silentFor: 40_000 }],
      ['n4', { match: 100, silentFor: 10 }],
      ['n5', { match: 100, silentFor: 40_000 }],
      ['s1', { match: 100, silentFor: 10 }],
    ]),
  });
  t.same(decideSpareChange(base), { kind: 'remove', voter: 'n5', replacedBy: 's1' });
  t.match(
    decideSpareChange({
      ...base,
      peers: new Map([...base.peers, ['n4', { match: 100, silentFor: 40_000 }]]),
    }),
    { kind: 'none', why: /no live quorum/ },
  );
});

t.test('the longest-silent voter goes first; ties and spares go by name', async (t) => {
  const five = input({
    membership: { voters: ['n1', 'n2', 'n3', 'n4', 'n5'], learners: ['s2', 's1'] },
    spares: ['s2', 's1'],
    peers: new Map([
      ['n2', { match: 100, silentFor: 10 }],
      ['n3', { match: 100, silentFor: 10 }],
      ['n4', { match: 100, silentFor: 31_000 }],
      ['n5', { match: 100, silentFor: 45_000 }],
      ['s1', { match: 100, silentFor: 10 }],
      ['s2', { match: 100, silentFor: 10 }],
    ]),
  });
  t.same(decideSpareChange(five), { kind: 'promote', spare: 's1', replaces: 'n5' });
});
