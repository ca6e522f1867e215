// The requests a stateless proxy sends members: they travel as peer requests, and malformed ones are refused.

import t from 'tap';
import { decodePeerRequest, encodePeerMessage } from '../../src/peer-protocol.js';

t.test("a proxy's client calls, watch polls and directory requests decode as sent", async (t) => {
  for (const sent of [
    { type: 'client', call: 'write', op: { type: 'put', realm: 'default', key: 'k', value: 1 } },
    {
      type: 'client',
      call: 'write',
      op: { type: 'delete', realm: 'r', key: 'k' },
      session: { id: 3, seq: 4 },
    },
    { type: 'client', call: 'get', realm: 'default', key: 'k', consistency: 'linearizable' },
    {
      type: 'client',
      call: 'list',
      realm: 'default',
      options: { prefix: 'a/', limit: 10 },
      consistency: 'stale',
    },
    { type: 'client', call: 'realms', consistency: 'stale' },
    { type: 'watch', realm: 'default', prefix: '', waitMs: 0 },
    { type: 'watch', realm: 'default', prefix: 'w/', from: 17, waitMs: 10_000 },
    { type: 'directory' },
  ]) {
    t.same(decodePeerRequest(encodePeerMessage(sent)), sent, JSON.stringify(sent));
  }
});

t.test('malformed proxy requests are refused INVALID_ARGUMENT, never crash the member', async (t) => {
  for (const bad of [
    { type: 'client' },
    { type: 'client', call: 'drop' },
    { type: 'client', call: 'write' },
    { type: 'client', call: 'write', op: 1, session: 'x' },
    { type: 'client', call: 'get', realm: 'default', key: 'k' },
    { type: 'client', call: 'get', realm: 'default', key: 5, consistency: 'stale' },
    { type: 'client', call: 'get', key: 'k', consistency: 'stale' },
    { type: 'client', call: 'list', realm: 'default', consistency: 'stale' },
    { type: 'client', call: 'list', realm: 'default', options: { limit: 'ten' }, consistency: 'stale' },
    { type: 'client', call: 'list', realm: 'default', options: { prefix: 1 }, consistency: 'stale' },
    { type: 'client', call: 'realms', consistency: 'eventual' },
    { type: 'watch', realm: 'default', waitMs: 0 },
    { type: 'watch', realm: 'default', prefix: '', waitMs: -1 },
    { type: 'watch', realm: 'default', prefix: '', waitMs: 3_600_000 },
    { type: 'watch', realm: 'default', prefix: '', waitMs: 0, from: 0 },
    { type: 'watch', realm: 'default', prefix: '', waitMs: 0, from: '5' },
    { type: 'client', call: 'placeRealm', group: 2 },
    { type: 'client', call: 'placeRealm', realm: 'shop', group: 0 },
    { type: 'client', call: 'placeRealm', realm: 'shop', group: 'any' },
    { type: 'client', call: 'write', op: {}, route: { group: -1 } },
    { type: 'client', call: 'write', op: {}, route: { realm: 5 } },
    { type: 'write', op: {}, group: 'two' },
  ]) {
    t.throws(
      () => decodePeerRequest(encodePeerMessage(bad)),
      { code: 'INVALID_ARGUMENT' },
      JSON.stringify(bad),
    );
  }
});

t.test('join requests and role-carrying adds decode as sent; bad ones are refused', async (t) => {
  for (const sent of [
    { type: 'join', role: 'spare', address: '/ip4/127.0.0.1/tcp/7004' },
    { type: 'join', role: 'voter', address: '/ip4/127.0.0.1/tcp/7005' },
    { type: 'join', role: 'satellite', address: '' },
    { type: 'admin', action: 'addLearner', name: 'n4', address: '/ip4/127.0.0.1/tcp/7004', role: 'dr' },
    { type: 'admin', action: 'addLearner', name: 'n4', address: '/ip4/127.0.0.1/tcp/7004' },
  ]) {
    t.same(decodePeerRequest(encodePeerMessage(sent)), sent, JSON.stringify(sent));
  }
  for (const bad of [
    { type: 'join', address: '' },
    { type: 'join', role: 'emperor', address: '' },
    { type: 'join', role: 'spare' },
    { type: 'join', role: 'spare', address: 'x'.repeat(2000) },
    { type: 'admin', action: 'addLearner', name: 'n4', address: '', role: 'voter' },
    { type: 'admin', action: 'addLearner', name: 'n4', address: '', role: 7 },
  ]) {
    t.throws(
      () => decodePeerRequest(encodePeerMessage(bad)),
      { code: 'INVALID_ARGUMENT' },
      JSON.stringify(bad),
    );
  }
});

t.test('group routing fields decode as sent (issue 20)', async (t) => {
  for (const good of [
    { type: 'client', call: 'placeRealm', realm: 'shop', group: 2 },
    { type: 'client', call: 'placeRealm', realm: 'shop', group: 'auto' },
    { type: 'client', call: 'write', op: { type: 'openSession' }, route: { realm: 'shop' } },
    { type: 'write', op: { type: 'put' }, group: 3 },
    { type: 'groups' },
    { type: 'groupBackup', group: 3, id: 'b9a1' },
  ]) {
    t.same(decodePeerRequest(encodePeerMessage(good)), good, JSON.stringify(good));
  }
  for (const bad of [
    { type: 'groupBackup', group: 0, id: 'x' },
    { type: 'groupBackup', group: '2', id: 'x' },
    { type: 'groupBackup', group: 2 },
    { type: 'groupBackup', group: 2, id: '' },
    { type: 'groupBackup', group: 2, id: 'x'.repeat(65) },
  ]) {
    t.throws(
      () => decodePeerRequest(encodePeerMessage(bad)),
      { code: 'INVALID_ARGUMENT' },
      JSON.stringify(bad),
    );
  }
});
