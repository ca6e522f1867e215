// Learners' roles in the state machine: taken from add-learner entries in log order, dropped on promotion and removal, kept across a restart.

import t from 'tap';
import { encodeMembershipChange, MembershipChangeType } from '../../raft/membership-change.js';
import { type Entry, EntryType } from '../../raft/types.js';
import type { EngineKind } from '../../storage/engine.js';
import {
  decodeMemberContext,
  decodePromotionContext,
  encodeMemberContext,
  encodePromotionContext,
} from '../../storage/member-context.js';
import { Disk } from './helpers.js';

const change = (index: number, type: MembershipChangeType, nodeId: string, context?: Uint8Array): Entry => ({
  index,
  term: 2,
  type: EntryType.MembershipChange,
  data: encodeMembershipChange({ type, nodeId, ...(context === undefined ? {} : { context }) }),
});

t.test('the context: a plain learner is its bare address, as before roles; others are JSON', async (t) => {
  const plain = encodeMemberContext({ address: '/ip4/10.0.0.4/tcp/7001', role: 'learner' });
  t.equal(new TextDecoder().decode(plain), '/ip4/10.0.0.4/tcp/7001', 'readable by an older member');
  t.same(decodeMemberContext(plain), { address: '/ip4/10.0.0.4/tcp/7001', role: 'learner' });
  for (const role of ['spare', 'satellite', 'dr'] as const) {
    const bytes = encodeMemberContext({ address: '/ip4/10.0.0.5/tcp/7001', role });
    t.same(decodeMemberContext(bytes), { address: '/ip4/10.0.0.5/tcp/7001', role }, role);
  }
  t.same(decodeMemberContext(encodeMemberContext({ address: '', role: 'satellite' })), {
    address: '',
    role: 'satellite',
  });
  t.same(decodeMemberContext(encodeMemberContext({ address: '', role: 'learner' })), {
    address: '',
    role: 'learner',
  });
  // Committed entries must apply everywhere alike: nothing here throws.
  t.same(decodeMemberContext(undefined), { address: '', role: 'learner' });
  t.same(decodeMemberContext(new TextEncoder().encode('{not json')), { address: '', role: 'learner' });
  t.same(decodeMemberContext(new TextEncoder().encode('{"address":7,"role":"emperor"}')), {
    address: '',
    role: 'learner',
  });
  t.same(decodeMemberContext(new TextEncoder().encode('null')), { address: 'null', role: 'learner' });
});

for (const engine of ['rocksdb', 'leveldb'] as EngineKind[]) {
  t.test(`${engine}: roles follow the log, and survive a restart`, async (t) => {
    const disk = new Disk(t, engine);
    const first = await disk.open();
    const group = await first.bootstrapGroup(
      1,
      { voters: ['n1', 'n2', 'n3'], learners: [] },
      { n1: '/ip4/127.0.0.1/tcp/1', n2: '/ip4/127.0.0.1/tcp/2', n3: '/ip4/127.0.0.1/tcp/3' },
    );
    const ctx = (role: 'learner' | 'spare' | 'satellite' | 'dr', port: number | undefined) =>
      encodeMemberContext({ address: port === undefined ? '' : `/ip4/127.0.0.1/tcp/${port}`, role });
    const log = [
      change(2, MembershipChangeType.AddLearner, 's1', ctx('spare', 4)),
      change(3, MembershipChangeType.AddLearner, 'sat1', ctx('satellite', undefined)),
      change(4, MembershipChangeType.AddLearner, 'dr1', ctx('dr', 6)),
      change(5, MembershipChangeType.AddLearner, 'l1', ctx('learner', 7)),
      // Refused at apply (already a member): must not change s1's role or address.
      change(6, MembershipChangeType.AddLearner, 's1', ctx('dr', 9)),
    ];
    await group.persist({ entries: log, hardState: { term: 2, vote: 'n1', commit: 6 } });
    await group.apply(log);
    t.same(
      group.state.meta.roles,
      { s1: 'spare', sat1: 'satellite', dr1: 'dr' },
      'a plain learner has no entry',
    );
    t.equal(group.state.meta.addresses?.s1, '/ip4/127.0.0.1/tcp/4', 'the refused re-add left the address');
    t.equal(group.state.meta.addresses?.sat1, undefined, 'a satellite without an address has none');
    t.equal(group.state.meta.addresses?.l1, '/ip4/127.0.0.1/tcp/7');

    const more = [
      change(7, MembershipChangeType.PromoteLearner, 's1'),
      change(8, MembershipChangeType.RemoveNode, 'dr1'),
    ];
    await group.persist({ entries: more, hardState: { term: 2, vote: 'n1', commit: 8 } });
    await group.apply(more);
    t.same(
      group.state.meta.roles,
      { sat1: 'satellite' },
      'a promoted spare is a voter; a removed dr is gone',
    );
    t.same(group.state.membership, { voters: ['n1', 'n2', 'n3', 's1'], learners: ['l1', 'sat1'] });
    await first.close();

    const second = await disk.open();
    const reopened = await second.openGroup(1);
    t.same(reopened.state.meta.roles, { sat1: 'satellite' }, 'after a restart');
    await second.close();
  });
}

for (const engine of ['rocksdb', 'leveldb'] as EngineKind[]) {
  t.test(
    `${engine}: a replacement is remembered until its removal, then the replaced node until it is back`,
    async (t) => {
      const disk = new Disk(t, engine);
      const store = await disk.open();
      const group = await store.bootstrapGroup(
        1,
        { voters: ['n1', 'n2', 'n3'], learners: [] },
        { n1: '/ip4/127.0.0.1/tcp/1', n2: '/ip4/127.0.0.1/tcp/2', n3: '/ip4/127.0.0.1/tcp/3' },
      );
      const spare = encodeMemberContext({ address: '/ip4/127.0.0.1/tcp/4', role: 'spare' });
      const steps: [Entry, (meta: typeof group.state.meta) => void][] = [
        [
          change(2, MembershipChangeType.AddLearner, 's1', spare),
          (m) => t.same([m.replacing, m.replaced], [undefined, undefined], 'a spare: nothing under way'),
        ],
        [
          change(3, MembershipChangeType.PromoteLearner, 's1', encodePromotionContext('n3')),
          (m) =>
            t.same(m.replacing, { spare: 's1', voter: 'n3' }, 'the promotion names the voter it replaces'),
        ],
        [
          change(4, MembershipChangeType.RemoveNode, 'n3'),
          (m) => {
            t.equal(m.replacing, undefined, 'the removal finishes it');
            t.same(
              m.replaced,
              [{ name: 'n3', address: '/ip4/127.0.0.1/tcp/3' }],
              'n3 is remembered with its address',
            );
            t.equal(m.addresses?.n3, undefined, 'and leaves the address book');
          },
        ],
        [
          change(
            5,
            MembershipChangeType.AddLearner,
            'n3',
            encodeMemberContext({ address: '/ip4/127.0.0.1/tcp/3', role: 'spare' }),
          ),
          (m) => {
            t.same(m.replaced, [], 'back as a spare: no longer waited for');
            t.same(m.roles, { n3: 'spare' });
          },
        ],
        [
          change(6, MembershipChangeType.PromoteLearner, 'n3'),
          (m) => t.equal(m.replacing, undefined, "an operator's promotion replaces nobody"),
        ],
      ];
      for (const [entry, check] of steps) {
        await group.persist({ entries: [entry], hardState: { term: 2, vote: 'n1', commit: entry.index } });
        await group.apply([entry]);
        check(group.state.meta);
      }
      await store.close();
    },
  );
}

t.test('the promotion context: written and read back; anything else is no replacement', async (t) => {
  t.equal(decodePromotionContext(encodePromotionContext('n3')), 'n3');
  t.equal(decodePromotionContext(undefined), undefined);
  t.equal(decodePromotionContext(new Uint8Array(0)), undefined);
  t.equal(decodePromotionContext(new TextEncoder().encode('{"replaces":""}')), undefined);
  t.equal(decodePromotionContext(new TextEncoder().encode('{"replaces":')), undefined);
  t.equal(decodePromotionContext(new TextEncoder().encode('/ip4/1.2.3.4/tcp/1')), undefined);
});
