// The nesting scan that runs before JSON.parse: depth counted outside strings, escapes respected.

import t from 'tap';
import { nestsDeeperThan } from '../../net/json-depth.js';

const bytes = (text: string) => new TextEncoder().encode(text);

t.test('arrays and objects count; scalars do not', async (t) => {
  t.notOk(nestsDeeperThan(bytes('7'), 0), 'a scalar has depth 0');
  t.ok(nestsDeeperThan(bytes('[]'), 0));
  t.notOk(nestsDeeperThan(bytes('[]'), 1));
  t.notOk(nestsDeeperThan(bytes('{"a":[1,{"b":2}]}'), 3));
  t.ok(nestsDeeperThan(bytes('{"a":[1,{"b":2}]}'), 2));
  t.notOk(nestsDeeperThan(bytes('[[1],[2],[3]]'), 2), 'siblings do not add up');
});

t.test('brackets inside strings, escaped quotes included, are text', async (t) => {
  t.notOk(nestsDeeperThan(bytes('["[[[[{{{{"]'), 1));
  t.notOk(nestsDeeperThan(bytes('["a\\"[[[[", "\\\\"]'), 1), 'an escaped quote does not end the string');
  t.ok(
    nestsDeeperThan(bytes('["\\\\", [[1]]]'), 2),
    'an escaped backslash does: the brackets after it count',
  );
});

t.test('a megabyte of [ is refused at the limit', async (t) => {
  const deep = bytes('['.repeat(1024 * 1024));
  t.ok(nestsDeeperThan(deep, 100));
  t.notOk(
    nestsDeeperThan(bytes(`${'['.repeat(100)}${']'.repeat(100)}`), 100),
    'exactly at the limit is fine',
  );
});
