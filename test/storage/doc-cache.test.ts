// The apply path's document cache: hits, known-absent keys, its byte bound, FIFO eviction, a limit of 0.

import t from 'tap';
import type { StoredDoc } from '../../storage/codec.js';
import { DocCache } from '../../storage/doc-cache.js';

const doc = (json: string, version = 1): StoredDoc => ({
  createRevision: 1,
  modRevision: version,
  version,
  json,
});

t.test('a cached document or known absence is returned; anything else is a miss', async (t) => {
  const cache = new DocCache(1 << 20);
  cache.set('a', doc('"x"'));
  cache.set('b', null);
  t.same(cache.get('a'), doc('"x"'));
  t.equal(cache.get('b'), null, 'null: known absent');
  t.equal(cache.get('c'), undefined, 'undefined: not cached');
  cache.set('a', doc('"y"', 2));
  t.same(cache.get('a'), doc('"y"', 2), 'an update replaces the entry');
  cache.clear();
  t.equal(cache.get('a'), undefined);
  t.equal(cache.countedBytes, 0);
});

t.test('it stays within its bytes, dropping the entries cached first', async (t) => {
  // Each entry: 96 bytes of overhead + 2 per UTF-16 unit of name and JSON (2 + 100): 300 bytes.
  const cache = new DocCache(1000);
  const json = `"${'v'.repeat(98)}"`;
  for (const name of ['k1', 'k2', 'k3']) cache.set(name, doc(json));
  t.equal(cache.countedBytes, 900);
  cache.set('k1', doc(json, 2)); // An update keeps k1's place: it is still the oldest.
  cache.set('k4', doc(json));
  t.equal(cache.size, 3);
  t.ok(cache.countedBytes <= 1000, `within the bound (${cache.countedBytes})`);
  t.equal(cache.get('k1'), undefined, 'the first cached went first');
  t.same(cache.get('k4'), doc(json));
  t.same(cache.get('k2'), doc(json));
});

t.test('an entry larger than the whole bound is not kept, and drops its older version', async (t) => {
  const cache = new DocCache(500);
  cache.set('big', doc('"small"'));
  cache.set('big', doc(`"${'x'.repeat(1000)}"`, 2));
  t.equal(cache.get('big'), undefined, 'the older version is not served');
  t.equal(cache.countedBytes, 0);
});

t.test('a limit of 0 keeps nothing', async (t) => {
  const cache = new DocCache(0);
  cache.set('a', null);
  cache.set('b', doc('1'));
  t.equal(cache.size, 0);
  t.equal(cache.get('a'), undefined);
});
