// JSON merge patch (RFC 7386 appendix A cases), deep equality and depth limits.

import t from 'tap';
import { isJson, type Json, jsonEqual, mergePatch, withinDepth } from '../../storage/json.js';

t.test('merge patch follows RFC 7386 appendix A', async (t) => {
  const cases: [Json, Json, Json][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of cases) {
    t.same(mergePatch(target, patch), result, `${JSON.stringify(target)} + ${JSON.stringify(patch)}`);
  }
});

t.test('merge patch is deterministic in member order and does not mutate its inputs', async (t) => {
  const target = { z: 1, a: { y: 1, b: 2 } } as Json;
  const patch = { m: 1, a: { c: 3, b: null } } as Json;
  const snapshot = JSON.stringify([target, patch]);
  t.equal(JSON.stringify(mergePatch(target, patch)), '{"z":1,"a":{"y":1,"c":3},"m":1}');
  t.equal(JSON.stringify([target, patch]), snapshot);
});

t.test('a member named __proto__ is data, not a prototype change', async (t) => {
  const patch = JSON.parse('{"__proto__": {"polluted": true}}') as Json;
  const merged = mergePatch({}, patch) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(merged), Object.prototype);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.equal(JSON.stringify(merged), '{"__proto__":{"polluted":true}}');
});

t.test('jsonEqual ignores member order, not array order', async (t) => {
  t.ok(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }));
  t.notOk(jsonEqual([1, 2], [2, 1]));
  t.notOk(jsonEqual({ a: 1 }, { a: 1, b: 2 }));
  t.notOk(jsonEqual(null, {}));
  t.notOk(jsonEqual({ a: undefined } as unknown as Json, { b: 1 }));
});

t.test('depth limits stop at the limit, even on very deep input', async (t) => {
  let deep: Json = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  t.notOk(withinDepth(deep, 64));
  t.notOk(isJson(deep, 64));
  t.ok(withinDepth([[1]], 2));
  t.notOk(withinDepth([[[1]]], 2));
  t.notOk(isJson({ a: Number.NaN }, 4), 'NaN is not JSON');
  t.notOk(isJson(new Date(0), 4), 'a Date is not JSON');
});
