// The realm definition in the state machine: users, grants, tokens, realm settings and counts, whole-definition applies; refusals change nothing; all of it survives a reopen.

import t from 'tap';
import type { CommandResult, Operation } from '../../storage/commands.js';
import { applyOps, Disk, ONE } from './helpers.js';

const HASH = 'a'.repeat(64);
const HASH2 = 'b'.repeat(64);
const ID = '0123456789abcdef';
const ID2 = 'fedcba9876543210';

function version(result: CommandResult | undefined): number {
  if (!result?.ok || result.result.type !== 'definition')
    throw new Error(`not a definition result: ${JSON.stringify(result)}`);
  return result.result.version;
}

t.test('users, grants and tokens: each change a version, no revision', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const revision = group.state.revision;
  const results = await applyOps(group, [
    { type: 'addUser', user: 'alice', clusterAdmin: false },
    { type: 'grant', user: 'alice', realm: 'default', level: 'write' },
    { type: 'createToken', id: ID, user: 'alice', hash: HASH, expiresAt: 0 },
    { type: 'addUser', user: 'alice', clusterAdmin: true },
    { type: 'grant', user: 'bob', realm: 'default', level: 'read' },
    { type: 'grant', user: 'alice', realm: 'nope', level: 'read' },
    { type: 'createToken', id: ID, user: 'alice', hash: HASH2, expiresAt: 0 },
    { type: 'revokeToken', id: ID2 },
  ] as Operation[]);
  t.same(results.slice(0, 3).map(version), [1, 2, 3], 'each change raises the version by one');
  t.match(results[3], { ok: false, error: { code: 'CONFLICT' } }, 'an existing user');
  t.match(results[4], { ok: false, error: { code: 'NOT_FOUND' } }, 'no such user');
  t.match(results[5], { ok: false, error: { code: 'NOT_FOUND' } }, 'no such realm');
  t.match(results[6], { ok: false, error: { code: 'CONFLICT' } }, 'a token id twice');
  t.match(results[7], { ok: false, error: { code: 'NOT_FOUND' } }, 'revoking an unknown token');
  const state = group.state;
  t.equal(state.access.version, 3, 'refusals change no version');
  t.same(state.access.users, { alice: { clusterAdmin: false, grants: { default: 'write' } } });
  t.match(state.token(ID), { id: ID, user: 'alice', hash: HASH, expiresAt: 0, createdAt: 1000 });
  t.equal(state.revision, revision, 'no document revision is used');

  const [removed] = await applyOps(group, [{ type: 'removeUser', user: 'alice' }] as Operation[]);
  t.equal(version(removed), 4);
  t.equal(group.state.token(ID), undefined, "a removed user's tokens go with it");
  t.same(group.state.access.users, {});
});

t.test('bad definition operations are refused with the field named', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const results = await applyOps(group, [
    { type: 'addUser', user: 'Alice', clusterAdmin: false },
    { type: 'addUser', user: 'bob' },
    { type: 'grant', user: 'bob', realm: 'default', level: 'owner' },
    { type: 'createToken', id: 'short', user: 'bob', hash: HASH, expiresAt: 0 },
    { type: 'createToken', id: ID, user: 'bob', hash: 'nothex', expiresAt: 0 },
    { type: 'createRealm', realm: 'r', settings: { maxValueBytes: 0 } },
    { type: 'createRealm', realm: 'r', settings: { colour: 'red' } },
    { type: 'applyDefinition', definition: { realms: { default: {} }, users: null } },
  ] as unknown as Operation[]);
  const messages = results.map((r) => (r.ok ? 'ok' : `${r.error.code}: ${r.error.message}`));
  t.match(messages, [
    /INVALID_ARGUMENT: user must match/,
    /INVALID_ARGUMENT: addUser.clusterAdmin must be true or false/,
    /INVALID_ARGUMENT: grant.level must be one of read, write, admin/,
    /INVALID_ARGUMENT: createToken.id must match/,
    /INVALID_ARGUMENT: createToken.hash must match/,
    /INVALID_ARGUMENT: createRealm.settings.maxValueBytes must be an integer >= 1/,
    /INVALID_ARGUMENT: createRealm.settings has an unknown field "colour"/,
    /INVALID_ARGUMENT: definition.users must be an object/,
  ]);
  t.equal(group.state.access.version, 0);
  t.same(group.state.realms(), ['default']);
});

t.test(
  'realms count their documents; a realm with documents is not deleted; settings limit documents',
  async (t) => {
    const node = await new Disk(t, 'memory').open();
    const group = await node.bootstrapGroup(1, ONE);
    const created = await applyOps(group, [
      { type: 'createRealm', realm: 'small', settings: { maxValueBytes: 20 } },
      { type: 'put', realm: 'small', key: 'a', value: 'short' },
      { type: 'put', realm: 'small', key: 'b', value: 'x'.repeat(30) },
      { type: 'put', realm: 'small', key: 'a', value: 'again' },
      {
        type: 'txn',
        realm: 'small',
        compares: [],
        success: [
          { type: 'put', key: 'c', value: 1 },
          { type: 'delete', key: 'a' },
        ],
      },
      { type: 'deleteRealm', realm: 'small' },
    ] as Operation[]);
    t.equal(created[0]!.ok, true);
    t.match(created[2], { ok: false, error: { code: 'TOO_LARGE', message: /limit of realm small is 20/ } });
    t.match(created[5], { ok: false, error: { code: 'CONFLICT', message: /holds 1 document:/ } });
    t.match(group.state.realm('small'), { documents: 1, settings: { maxValueBytes: 20 } });
    const [del, gone, settings] = await applyOps(group, [
      { type: 'delete', realm: 'small', key: 'c' },
      { type: 'deleteRealm', realm: 'small' },
      { type: 'realmSettings', realm: 'small', settings: {} },
    ] as Operation[]);
    t.equal(del!.ok, true);
    t.equal(gone!.ok, true, 'an empty realm is deleted');
    t.match(settings, { ok: false, error: { code: 'NOT_FOUND' } });
    t.same(group.state.realms(), ['default']);
    const kept = await applyOps(group, [
      { type: 'deleteRealm', realm: 'default' },
      { type: 'applyDefinition', definition: { auth: false, realms: { other: {} }, users: {} } },
    ] as Operation[]);
    t.match(
      kept[0],
      { ok: false, error: { code: 'CONFLICT', message: /always there/ } },
      'default is not deleted',
    );
    t.match(kept[1], {
      ok: false,
      error: { code: 'INVALID_ARGUMENT', message: /must keep the default realm/ },
    });
    t.same(group.state.realms(), ['default']);
  },
);

t.test('applyDefinition: atomic, versioned, and checked as a whole', async (t) => {
  const disk = new Disk(t, 'memory');
  const node = await disk.open();
  const group = await node.bootstrapGroup(1, ONE);
  await applyOps(group, [
    { type: 'addUser', user: 'old', clusterAdmin: false },
    { type: 'createToken', id: ID, user: 'old', hash: HASH, expiresAt: 0 },
    { type: 'put', realm: 'default', key: 'k', value: 1 },
  ] as Operation[]);
  const before = group.state.access.version;
  const target = {
    auth: false,
    realms: { default: {}, orders: { maxValueBytes: 1000 } },
    users: {
      admin: { clusterAdmin: true, grants: {} },
      alice: { clusterAdmin: false, grants: { orders: 'write', default: 'read' } },
    },
  };
  const refused = await applyOps(group, [
    { type: 'applyDefinition', definition: target, ifVersion: before + 5 },
    { type: 'applyDefinition', definition: { ...target, realms: { orders: {} } } },
    {
      type: 'applyDefinition',
      definition: { ...target, users: { bob: { clusterAdmin: false, grants: { nowhere: 'read' } } } },
    },
    { type: 'applyDefinition', definition: { ...target, auth: true } },
  ] as Operation[]);
  t.match(
    refused.map((r) => (r.ok ? 'ok' : r.error.code)),
    ['CONFLICT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'CONFLICT'],
  );
  t.match(refused[1], { error: { message: /must keep the default realm/ } });
  t.match(refused[3], { error: { message: /no cluster admin could sign in/ } });
  t.equal(group.state.access.version, before, 'nothing changed');
  t.same(group.state.realms(), ['default']);

  const revision = group.state.revision;
  const [applied] = await applyOps(group, [
    { type: 'applyDefinition', definition: target, ifVersion: before },
  ] as Operation[]);
  t.match(applied, { ok: true, result: { type: 'definition', version: before + 1, created: ['orders'] } });
  t.equal(group.state.revision, revision + 1, 'the created realm took a revision');
  t.same(group.state.definition(), target, 'the state now is the definition applied');
  t.equal(group.state.token(ID), undefined, "the removed user's token went");
  const [again] = await applyOps(group, [{ type: 'applyDefinition', definition: target }] as Operation[]);
  t.equal(version(again), before + 2, 'applying the same definition is a version, and changes nothing else');
  t.same(group.state.definition(), target);

  await node.close();
  const reopened = await disk.open();
  const group2 = await reopened.openGroup(1);
  t.same(group2.state.definition(), target, 'the definition survives a reopen');
  t.equal(group2.state.access.version, before + 2);
  t.match(group2.state.realm('orders'), { documents: 0, settings: { maxValueBytes: 1000 } });
});

t.test('bootstrapAdmin: once per node, repeatable with its own token, turns auth on', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const results = await applyOps(group, [
    { type: 'bootstrapAdmin', node: 'n1', id: ID, hash: HASH },
    { type: 'bootstrapAdmin', node: 'n1', id: ID, hash: HASH },
    { type: 'bootstrapAdmin', node: 'n1', id: ID2, hash: HASH2 },
    { type: 'bootstrapAdmin', node: 'n2', id: ID2, hash: HASH2 },
    { type: 'revokeToken', id: ID },
    { type: 'bootstrapAdmin', node: 'n1', id: ID, hash: HASH },
  ] as Operation[]);
  t.match(
    results.map((r) => (r.ok ? 'ok' : r.error.code)),
    ['ok', 'ok', 'CONFLICT', 'ok', 'ok', 'CONFLICT'],
  );
  t.equal(group.state.access.auth, true);
  t.same(group.state.access.bootstrapped, ['n1', 'n2']);
  t.match(group.state.token(ID2), { user: 'admin', bootstrap: 'n2', expiresAt: 0 });
  t.equal(group.state.token(ID), undefined, 'a revoked bootstrap token is not made again');
});

t.test('the last cluster admin cannot be taken away while auth is on', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const results = await applyOps(group, [
    { type: 'bootstrapAdmin', node: 'n1', id: ID, hash: HASH },
    { type: 'clusterAdmin', user: 'admin', on: false },
  ] as Operation[]);
  t.match(results[1], { ok: false, error: { code: 'CONFLICT', message: /no cluster admin could sign in/ } });
  t.equal(group.state.access.users.admin?.clusterAdmin, true);
});
