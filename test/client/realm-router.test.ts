// RealmRouter (src/client/realm-router.ts) on a fake host: routes are looked up in the background, used once the leader's endpoint is known, forgotten on trouble, bounded, and turned off by an older node.

import t from 'tap';
import type { Connection } from '../../src/client/connection.js';
import { type RealmRoute, RealmRouter, ROUTES_MAX, type RouterHost } from '../../src/client/realm-router.js';

const URLS = ['ws://a', 'ws://b', 'ws://c'];
const NAMES: Record<string, string> = { 'ws://a': 'n1', 'ws://b': 'n2', 'ws://c': 'n3' };

class FakeHost implements RouterHost {
  time = 0;
  routes = new Map<string, RealmRoute | 'unsupported'>();
  asked: string[] = [];
  named = 0;
  connected: string[] = [];
  closed = 0;
  route(realm: string): Promise<RealmRoute | undefined | 'unsupported'> {
    this.asked.push(realm);
    return Promise.resolve(this.routes.get(realm));
  }
  nameAt(url: string): Promise<string | undefined> {
    this.named += 1;
    return Promise.resolve(NAMES[url]);
  }
  connect(url: string): Connection {
    this.connected.push(url);
    return {
      url,
      close: () => {
        this.closed += 1;
        return Promise.resolve();
      },
    } as unknown as Connection;
  }
  now(): number {
    return this.time;
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

t.test('a route is used once looked up and the leader named by an endpoint', async (t) => {
  const host = new FakeHost();
  host.routes.set('shop', { group: 2, leader: 'n3' });
  const router = new RealmRouter(host, URLS, 1000);
  t.equal(router.connectionFor('shop'), undefined, 'the first write goes over the main connection');
  await settle();
  await settle();
  t.same(host.asked, ['shop'], 'while the route is looked up');
  t.same(router.routeOf('shop'), { group: 2, leader: 'n3' });
  t.equal(host.named, 3, 'and every endpoint says its name');
  const connection = router.connectionFor('shop') as unknown as { url: string };
  t.equal(connection?.url, 'ws://c', 'the next write goes to n3, the leader');
  t.equal(router.connectionFor('shop') as unknown, connection, 'over the same connection');
  t.same(host.connected, ['ws://c'], 'dialed once');
  t.same(host.asked, ['shop'], 'no new lookup within the interval');
  host.time = 1000;
  router.connectionFor('shop');
  await settle();
  t.same(host.asked, ['shop', 'shop'], 'looked up again after the interval');
  router.forget('shop');
  t.equal(
    router.connectionFor('shop'),
    undefined,
    'a forgotten route sends the write over the main connection',
  );
  t.equal(router.routedWrites, 3);
  await router.close();
  t.equal(host.closed, 1, 'close closes the routed connections');
  t.equal(router.connectionFor('shop'), undefined, 'and routes nothing after');
});

t.test('no routing to a leader none of the endpoints is, nor with one endpoint', async (t) => {
  const host = new FakeHost();
  host.routes.set('shop', { group: 2, leader: 'elsewhere' });
  host.routes.set('void', { group: 3, leader: '' });
  const router = new RealmRouter(host, URLS, 1000);
  router.connectionFor('shop');
  router.connectionFor('void');
  await settle();
  await settle();
  t.equal(router.connectionFor('shop'), undefined, 'an unknown leader name: main connection');
  t.equal(router.connectionFor('void'), undefined, 'no leader known: main connection');
  t.equal(host.named, 3, 'names were asked once within the interval');
  const single = new RealmRouter(host, ['ws://a'], 1000);
  t.equal(single.connectionFor('shop'), undefined);
  await settle();
  t.same(
    host.asked.filter((r) => r === 'shop'),
    ['shop'],
    'with one endpoint nothing is looked up',
  );
});

t.test('an older node turns routing off; the routes kept are bounded', async (t) => {
  const host = new FakeHost();
  host.routes.set('shop', 'unsupported');
  const router = new RealmRouter(host, URLS, 1000);
  router.connectionFor('shop');
  await settle();
  router.connectionFor('other');
  await settle();
  t.same(host.asked, ['shop'], 'after an older node answered, nothing more is looked up');

  const many = new FakeHost();
  const bounded = new RealmRouter(many, URLS, 1000);
  for (let i = 0; i <= ROUTES_MAX; i++) {
    many.routes.set(`r${i}`, { group: 2, leader: 'n1' });
    bounded.connectionFor(`r${i}`);
  }
  await settle();
  await settle();
  t.equal(bounded.routeOf('r0'), undefined, 'the oldest route is forgotten past the bound');
  t.same(bounded.routeOf(`r${ROUTES_MAX}`), { group: 2, leader: 'n1' }, 'the newest is kept');
});
