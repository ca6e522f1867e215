// Group 1's catalog of raft groups: createGroup picks ids and members deterministically, refuses bad ones, survives a reopen and travels in snapshots.

import t from 'tap';
import type { Membership } from '../../raft/types.js';
import type { Operation } from '../../storage/commands.js';
import { pickMembers } from '../../storage/group-catalog.js';
import { applyOps, Disk, ONE, THREE } from './helpers.js';

const FIVE: Membership = { voters: ['n1', 'n2', 'n3', 'n4', 'n5'], learners: [] };

t.test('ids count up from 2; unnamed members are the voters in the fewest groups', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, FIVE);
  const revision = group.state.revision;
  const results = await applyOps(group, [
    { type: 'createGroup' },
    { type: 'createGroup' },
    { type: 'createGroup', members: ['n5', 'n2'] },
    { type: 'createGroup' },
  ] as Operation[]);
  t.match(
    results.map((r) => (r.ok ? r.result : r.error)),
    [
      { type: 'createGroup', group: 2, members: ['n1', 'n2', 'n3'] },
      { type: 'createGroup', group: 3, members: ['n4', 'n5', 'n1'] },
      { type: 'createGroup', group: 4, members: ['n5', 'n2'] },
      // Load now: n1 2, n2 2, n3 1, n4 1, n5 2.
      { type: 'createGroup', group: 5, members: ['n3', 'n4', 'n1'] },
    ],
  );
  t.same(
    group.state.groups.groups.map((g) => [g.id, g.members, g.createRevision]),
    [
      [2, ['n1', 'n2', 'n3'], revision],
      [3, ['n4', 'n5', 'n1'], revision],
      [4, ['n5', 'n2'], revision],
      [5, ['n3', 'n4', 'n1'], revision],
    ],
  );
  t.equal(group.state.revision, revision, 'creating groups changes no document, so takes no revision');
});

t.test('a cluster smaller than three founds groups on every voter', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const [created] = await applyOps(group, [{ type: 'createGroup' }] as Operation[]);
  t.match(created, { ok: true, result: { group: 2, members: ['n1'] } });
});

t.test('bad createGroup operations are refused and change nothing', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, THREE);
  const results = await applyOps(group, [
    { type: 'createGroup', members: ['n1', 'n9'] },
    { type: 'createGroup', members: [] },
    { type: 'createGroup', members: ['n1', 'n1'] },
    { type: 'createGroup', members: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] },
    { type: 'createGroup', members: 'n1' },
    { type: 'createGroup', members: [7] },
    { type: 'createGroup', extra: true },
  ] as unknown as Operation[]);
  for (const [i, result] of results.entries()) {
    t.match(result, { ok: false, error: { code: 'INVALID_ARGUMENT' } }, `refused: operation ${i}`);
  }
  t.match(results[0], { error: { message: /not a voter of group 1: n9/ } }, 'the stranger is named');
  t.same(group.state.groups.groups, [], 'the catalog is still empty');

  const other = await node.bootstrapGroup(2, THREE, undefined, { defaultRealm: false });
  const [elsewhere] = await applyOps(other, [{ type: 'createGroup' }] as Operation[]);
  t.match(elsewhere, { ok: false, error: { code: 'INVALID_ARGUMENT', message: /through group 1/ } });
  t.same(other.state.groups.groups, []);
  t.equal(
    other.state.realm('default'),
    undefined,
    'a group besides group 1 starts without the default realm',
  );
});

t.test('the catalog survives a reopen and travels in a snapshot', async (t) => {
  const disk = new Disk(t, 'memory');
  const node = await disk.open();
  const group = await node.bootstrapGroup(1, THREE);
  await applyOps(group, [{ type: 'createGroup' }, { type: 'createGroup', members: ['n2'] }] as Operation[]);
  const catalog = group.state.groups;
  const snapshot = await group.createSnapshot();
  await node.close();

  const reopened = await disk.open();
  t.same((await reopened.openGroup(1)).state.groups, catalog, 'the same catalog after a reopen');

  const joinerNode = await new Disk(t, 'memory').open();
  const joiner = await joinerNode.createGroup(1);
  await joiner.installSnapshot(snapshot.path, { index: snapshot.header.index, term: snapshot.header.term });
  t.same(joiner.state.groups, catalog, 'a node that installs the snapshot has the catalog');
  const [next] = await applyOps(joiner, [{ type: 'createGroup' }] as Operation[]);
  t.match(next, { ok: true, result: { group: 4 } }, 'and goes on numbering from it');
});

t.test('pickMembers: fewest groups first, ties by name, members of other clusters ignored', async (t) => {
  const catalog = {
    groups: [
      { id: 2, members: ['b', 'gone'], createRevision: 1 },
      { id: 3, members: ['b', 'c'], createRevision: 1 },
    ],
  };
  t.same(pickMembers(catalog, ['c', 'b', 'a', 'd'], 3), ['a', 'd', 'c']);
  t.same(pickMembers(catalog, ['b'], 3), ['b']);
  t.same(pickMembers(catalog, [], 3), []);
});

t.test('placeRealm: a realm goes to one group, once; group 1 then refuses to create it', async (t) => {
  const disk = new Disk(t, 'memory');
  const node = await disk.open();
  const group = await node.bootstrapGroup(1, THREE);
  await applyOps(group, [{ type: 'createGroup' }, { type: 'createGroup' }] as Operation[]);
  const results = await applyOps(group, [
    { type: 'placeRealm', realm: 'shop', group: 9 },
    { type: 'placeRealm', realm: 'default', group: 2 },
    { type: 'placeRealm', realm: 'shop', group: 2 },
    { type: 'placeRealm', realm: 'shop', group: 2 },
    { type: 'placeRealm', realm: 'shop', group: 3 },
    { type: 'createRealm', realm: 'shop' },
    { type: 'placeRealm', realm: 'Bad Name', group: 2 },
    { type: 'placeRealm', realm: 'x', group: 1 },
  ] as Operation[]);
  t.same(
    results.map((r) => (r.ok ? 'ok' : r.error.code)),
    ['NOT_FOUND', 'CONFLICT', 'ok', 'ok', 'CONFLICT', 'CONFLICT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'],
  );
  t.match(results[4], { error: { message: /placed in group 2/ } });
  t.same(group.state.groups.placements, { shop: 2 });
  t.same(group.state.realms(), ['default'], 'group 1 holds no realm shop');
  await node.close();
  t.same((await (await disk.open()).openGroup(1)).state.groups.placements, { shop: 2 }, 'after a reopen');

  const other = await (await new Disk(t, 'memory').open()).bootstrapGroup(2, THREE, undefined, {
    defaultRealm: false,
  });
  const [elsewhere] = await applyOps(other, [{ type: 'placeRealm', realm: 'shop', group: 2 }] as Operation[]);
  t.match(elsewhere, { ok: false, error: { code: 'INVALID_ARGUMENT', message: /through group 1/ } });
  const [created] = await applyOps(other, [{ type: 'createRealm', realm: 'shop' }] as Operation[]);
  t.match(created, { ok: true }, 'the realm is created in its group');
});

t.test('applyDefinition refuses a definition naming a realm placed in another group', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, THREE);
  await applyOps(group, [
    { type: 'createGroup' },
    { type: 'placeRealm', realm: 'shop', group: 2 },
  ] as Operation[]);
  const version = group.state.access.version;
  const [refused] = await applyOps(group, [
    {
      type: 'applyDefinition',
      definition: { auth: false, realms: { default: {}, shop: {} }, users: {} },
    },
  ] as Operation[]);
  t.match(refused, { ok: false, error: { code: 'CONFLICT', message: /shop live in other raft groups/ } });
  t.same(group.state.realms(), ['default'], 'no realm shop in group 1');
  t.equal(group.state.access.version, version, 'the definition did not change');
});

t.test('groupMember: a group gains and loses members in the catalog; bad changes are refused', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, FIVE);
  await applyOps(group, [{ type: 'createGroup', members: ['n1', 'n2', 'n3'] }] as Operation[]);
  const results = await applyOps(group, [
    { type: 'groupMember', group: 2, node: 'n4', change: 'add' },
    { type: 'groupMember', group: 2, node: 'n4', change: 'add' },
    { type: 'groupMember', group: 2, node: 'n1', change: 'remove' },
    { type: 'groupMember', group: 2, node: 'n1', change: 'remove' },
    { type: 'groupMember', group: 2, node: 'n1', change: 'add' },
    { type: 'groupMember', group: 2, node: 'stranger', change: 'add' },
    { type: 'groupMember', group: 2, node: 'n5', change: 'remove' },
    { type: 'groupMember', group: 9, node: 'n5', change: 'add' },
  ] as Operation[]);
  t.same(
    results.map((r) => (r.ok ? r.result : r.error.code)),
    [
      { type: 'groupMember', group: 2, members: ['n1', 'n2', 'n3', 'n4'] },
      { type: 'groupMember', group: 2, members: ['n1', 'n2', 'n3', 'n4'] },
      { type: 'groupMember', group: 2, members: ['n2', 'n3', 'n4'] },
      { type: 'groupMember', group: 2, members: ['n2', 'n3', 'n4'] },
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'NOT_FOUND',
    ],
    'add, a retried add, remove, a retried remove; no rejoin, no stranger, no non-member, no unknown group',
  );
  const [record] = group.state.groups.groups;
  t.same(
    [record?.members, record?.joined, record?.left],
    [['n1', 'n2', 'n3'], ['n4'], ['n1']],
    'founders kept apart',
  );
  const last = await new Disk(t, 'memory').open();
  const g1 = await last.bootstrapGroup(1, FIVE);
  await applyOps(g1, [{ type: 'createGroup', members: ['n1'] }] as Operation[]);
  const [refused] = await applyOps(g1, [
    { type: 'groupMember', group: 2, node: 'n1', change: 'remove' },
  ] as Operation[]);
  t.match(refused, { ok: false, error: { code: 'CONFLICT', message: /last member/ } });
});

t.test('placed realms in group 1: grants on them, a definition granting them, unplaceRealm', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, THREE);
  await applyOps(group, [
    { type: 'createGroup' },
    { type: 'placeRealm', realm: 'shop', group: 2 },
    { type: 'addUser', user: 'alice', clusterAdmin: false },
  ] as Operation[]);
  const [granted, unknown] = await applyOps(group, [
    { type: 'grant', user: 'alice', realm: 'shop', level: 'write' },
    { type: 'grant', user: 'alice', realm: 'nowhere', level: 'read' },
  ] as Operation[]);
  t.match(granted, { ok: true }, 'a grant on a placed realm is taken');
  t.match(unknown, { ok: false, error: { code: 'NOT_FOUND' } }, 'one on a realm placed nowhere is not');
  const [applied] = await applyOps(group, [
    {
      type: 'applyDefinition',
      definition: {
        auth: false,
        realms: { default: {} },
        users: { alice: { clusterAdmin: false, grants: { shop: 'read' } } },
      },
    },
  ] as Operation[]);
  t.match(applied, { ok: true }, 'a definition may grant a placed realm it does not list');
  t.same(group.state.definition().users.alice?.grants, { shop: 'read' });
  const version = group.state.access.version;
  const [unplaced, again, bad] = await applyOps(group, [
    { type: 'unplaceRealm', realm: 'shop' },
    { type: 'unplaceRealm', realm: 'shop' },
    { type: 'unplaceRealm', realm: 'Bad Name' },
  ] as Operation[]);
  t.match(unplaced, { ok: true, result: { type: 'definition', version: version + 1 } }, 'unplaced');
  t.same(group.state.groups.placements, {}, 'the placement is gone');
  t.same(group.state.definition().users.alice?.grants, {}, 'and the grants on it');
  t.match(
    again,
    { ok: false, error: { code: 'NOT_FOUND', message: /no realm shop/ } },
    'a second time: NOT_FOUND',
  );
  t.match(bad, { ok: false, error: { code: 'INVALID_ARGUMENT' } });
  const other = await (await new Disk(t, 'memory').open()).bootstrapGroup(2, THREE, undefined, {
    defaultRealm: false,
  });
  const [elsewhere] = await applyOps(other, [{ type: 'unplaceRealm', realm: 'shop' }] as Operation[]);
  t.match(elsewhere, { ok: false, error: { code: 'INVALID_ARGUMENT', message: /through group 1/ } });
});
