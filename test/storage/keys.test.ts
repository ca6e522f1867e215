// The key encoding: byte order equals the logical order each range scan relies on, and ranges do not overlap.

import t from 'tap';
import {
  compareKeys,
  docKey,
  docOfKey,
  docRange,
  generationRange,
  groupRange,
  historyKey,
  historyKeyRevision,
  logKey,
  logKeyIndex,
  otherGenerationRanges,
  prefixEnd,
  STATE_PREFIX_BYTES,
  stateKeyFromSuffix,
} from '../../storage/keys.js';

const inRange = (key: Uint8Array, [start, end]: [Uint8Array, Uint8Array]) =>
  compareKeys(key, start) >= 0 && compareKeys(key, end) < 0;

t.test('log keys sort by index, across the 32-bit boundary, and decode back', async (t) => {
  const indexes = [0, 1, 255, 256, 65_535, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER];
  for (let i = 1; i < indexes.length; i++) {
    t.ok(
      compareKeys(logKey(1, indexes[i - 1]!), logKey(1, indexes[i]!)) < 0,
      `${indexes[i - 1]} < ${indexes[i]}`,
    );
  }
  t.same(
    indexes.map((i) => logKeyIndex(logKey(9, i))),
    indexes,
  );
  t.throws(() => logKey(1, -1));
  t.throws(() => logKey(1, 1.5));
  t.throws(() => logKey(0, 1), 'group 0 is not a group');
});

t.test("one group's keys are one range, disjoint from its neighbours'", async (t) => {
  const keys = [logKey(2, 5), docKey(2, 1, 'default', 'a'), historyKey(2, 3, 7, 0)];
  for (const key of keys) {
    t.ok(inRange(key, groupRange(2)));
    t.notOk(inRange(key, groupRange(1)));
    t.notOk(inRange(key, groupRange(3)));
  }
});

t.test('document keys: a realm is one range, no realm sees another whose name it prefixes', async (t) => {
  const a = docKey(1, 1, 'a', 'bx');
  const ab = docKey(1, 1, 'ab', 'x');
  t.ok(inRange(a, docRange(1, 1, 'a', '')));
  t.notOk(inRange(ab, docRange(1, 1, 'a', '')), "realm ab's keys are not in realm a's range");
  t.notOk(inRange(a, docRange(1, 1, 'ab', '')));
  t.ok(inRange(docKey(1, 1, 'a', 'user/1'), docRange(1, 1, 'a', 'user/')));
  t.notOk(inRange(docKey(1, 1, 'a', 'user0'), docRange(1, 1, 'a', 'user/')));
  t.ok(
    inRange(docKey(1, 1, 'a', 'user/\u{10ffff}'), docRange(1, 1, 'a', 'user/')),
    'the highest code point stays inside',
  );
  t.same(docOfKey(docKey(1, 1, 'réalm', 'ключ/☃')), { realm: 'réalm', key: 'ключ/☃' });
  const keys = ['b', 'a', 'ab', 'a/', 'a\u0000', 'é', 'z'];
  const sorted = [...keys].sort((x, y) => compareKeys(docKey(1, 1, 'r', x), docKey(1, 1, 'r', y)));
  t.same(sorted, ['a', 'a\u0000', 'a/', 'ab', 'b', 'z', 'é'], 'document keys sort by their UTF-8 bytes');
});

t.test(
  'generations: a state key moves between generations, and "other generations" excludes exactly one',
  async (t) => {
    const key = docKey(1, 4, 'default', 'k');
    const suffix = key.subarray(STATE_PREFIX_BYTES);
    t.same(stateKeyFromSuffix(1, 5, suffix), docKey(1, 5, 'default', 'k'));
    const others = otherGenerationRanges(1, 4);
    t.notOk(others.some((range) => inRange(key, range)));
    t.ok(others.some((range) => inRange(docKey(1, 3, 'default', 'k'), range)));
    t.ok(others.some((range) => inRange(docKey(1, 5, 'default', 'k'), range)));
    t.notOk(
      others.some((range) => inRange(logKey(1, 1), range)),
      'the log is not a generation',
    );
    t.ok(inRange(key, generationRange(1, 4)));
  },
);

t.test('history keys sort by revision, then event, and decode', async (t) => {
  t.ok(compareKeys(historyKey(1, 1, 5, 9), historyKey(1, 1, 6, 0)) < 0);
  t.ok(compareKeys(historyKey(1, 1, 5, 0), historyKey(1, 1, 5, 1)) < 0);
  t.equal(historyKeyRevision(historyKey(1, 1, 2 ** 35, 3)), 2 ** 35);
});

t.test('prefixEnd is the least key above every key with the prefix', async (t) => {
  t.same(prefixEnd(Uint8Array.of(1, 2)), Uint8Array.of(1, 3));
  t.same(prefixEnd(Uint8Array.of(1, 0xff, 0xff)), Uint8Array.of(2));
  t.throws(() => prefixEnd(Uint8Array.of(0xff)));
});
