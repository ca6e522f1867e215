// The client API's query and key-path parsing: strict decoding, each bad value refused with INVALID_ARGUMENT.

import t, { type Test } from 'tap';
import { EdgeError } from '../../net/index.js';
import {
  booleanParam,
  consistencyParam,
  integerParam,
  keyFromPath,
  nonEmptyParam,
  parseQuery,
} from '../../src/http-query.js';

/** Asserts that `fn` throws an INVALID_ARGUMENT EdgeError whose message matches `message`. */
function refuses(t: Test, fn: () => unknown, message: RegExp, what: string): void {
  t.throws(fn, { code: 'INVALID_ARGUMENT', message }, what);
  try {
    fn();
  } catch (error) {
    t.ok(error instanceof EdgeError, `${what}: an EdgeError`);
  }
}

t.test('parseQuery decodes form-encoded names and values', async (t) => {
  const params = parseQuery('prefix=a%2Fb+c%2B&after=%E2%82%AC&&limit=5&', ['prefix', 'after', 'limit']);
  t.same(
    [...params],
    [
      ['prefix', 'a/b c+'],
      ['after', '€'],
      ['limit', '5'],
    ],
  );
  t.same([...parseQuery('', ['prefix'])], [], 'an empty query has no parameters');
  t.same([...parseQuery('ifAbsent', ['ifAbsent'])], [['ifAbsent', '']], 'a name without = has the value ""');
  t.same([...parseQuery('prefix=a=b', ['prefix'])], [['prefix', 'a=b']], 'only the first = splits');
});

t.test('parseQuery refuses unknown and repeated names and bad percent-encoding', async (t) => {
  refuses(
    t,
    () => parseQuery('ifrevision=3', ['ifRevision']),
    /unknown query parameter "ifrevision"/,
    'misspelt',
  );
  refuses(t, () => parseQuery('x=1', []), /this route takes none/, 'a route without parameters');
  refuses(t, () => parseQuery('limit=1&limit=2', ['limit']), /more than once/, 'repeated');
  refuses(t, () => parseQuery('prefix=%', ['prefix']), /percent-encoding/, 'a lone %');
  refuses(t, () => parseQuery('prefix=%zz', ['prefix']), /percent-encoding/, 'not hex');
  refuses(t, () => parseQuery('prefix=%C3', ['prefix']), /percent-encoding/, 'truncated UTF-8');
  refuses(
    t,
    () => parseQuery('prefix=%ED%A0%80', ['prefix']),
    /percent-encoding/,
    'an encoded lone surrogate',
  );
});

t.test('integerParam takes plain non-negative decimal safe integers only', async (t) => {
  const one = (value: string) => integerParam(new Map([['n', value]]), 'n');
  t.equal(one('0'), 0);
  t.equal(one('42'), 42);
  t.equal(one('9007199254740991'), Number.MAX_SAFE_INTEGER);
  t.equal(integerParam(new Map(), 'n'), undefined, 'absent');
  for (const bad of ['', '-1', '1.5', '1e3', '0x10', '007', ' 1', 'abc', '9007199254740992', 'Infinity']) {
    refuses(t, () => one(bad), /n must be a non-negative integer/, JSON.stringify(bad));
  }
});

t.test('booleanParam takes exactly true or false', async (t) => {
  const one = (value: string) => booleanParam(new Map([['b', value]]), 'b');
  t.equal(one('true'), true);
  t.equal(one('false'), false);
  t.equal(booleanParam(new Map(), 'b'), undefined);
  for (const bad of ['', 'TRUE', '1', 'yes']) refuses(t, () => one(bad), /b must be true or false/, bad);
});

t.test('nonEmptyParam refuses an empty value', async (t) => {
  t.equal(nonEmptyParam(new Map([['after', 'k']]), 'after'), 'k');
  t.equal(nonEmptyParam(new Map(), 'after'), undefined);
  refuses(t, () => nonEmptyParam(new Map([['after', '']]), 'after'), /after must not be empty/, 'empty');
});

t.test('consistencyParam defaults to linearizable and knows only linearizable and stale', async (t) => {
  t.equal(consistencyParam(new Map()), 'linearizable');
  t.equal(consistencyParam(new Map([['consistency', 'stale']])), 'stale');
  t.equal(consistencyParam(new Map([['consistency', 'linearizable']])), 'linearizable');
  for (const bad of ['', 'eventual', 'STALE']) {
    refuses(t, () => consistencyParam(new Map([['consistency', bad]])), /consistency must be/, bad);
  }
});

t.test('keyFromPath takes everything after /kv/, decoded once, slashes included', async (t) => {
  t.equal(keyFromPath('/v1/realms/default/kv/a'), 'a');
  t.equal(keyFromPath('/v1/realms/default/kv/a/b//c/'), 'a/b//c/', 'raw slashes stay');
  t.equal(keyFromPath('/v1/realms/default/kv/a%2Fb'), 'a/b', 'encoded slashes decode');
  t.equal(keyFromPath('/v1/realms/default/kv/a+b%20c'), 'a+b c', "'+' in a path is itself");
  t.equal(keyFromPath('/v1/realms/default/kv/%2541'), '%41', 'decoded once, not twice');
  t.equal(keyFromPath('/v1/realms/kv/kv/kv/x'), 'kv/x', 'a realm named kv');
  t.equal(keyFromPath('/v1/realms/de%66ault/kv/k'), 'k', 'an encoded realm segment');
  t.equal(keyFromPath('/v1/realms/r/kv/%E2%82%AC%F0%9F%98%80'), '€😀');
  refuses(t, () => keyFromPath('/v1/realms/default/kv/'), /the key is empty/, 'empty');
  refuses(t, () => keyFromPath('/v1/realms/default/kv/100%'), /percent-encoding/, 'a lone %');
  t.throws(
    () => keyFromPath('/v1/realms/default/txn'),
    /not a key path/,
    'a programmer error, not a client one',
  );
});
