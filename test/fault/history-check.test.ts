// The fault tier's history reduction (unseen indeterminate writes dropped, full recheck on failure) and its availability arithmetic.

import t from 'tap';
import type { KvInput, KvOutput, Operation } from '../lib/linearizability.js';
import { faultAvailability } from './availability.js';
import { checkHistory } from './history-check.js';
import type { FaultRecord } from './nemesis.js';

type Op = Operation<KvInput, KvOutput>;
const op = (
  clientId: number,
  call: number,
  ret: number,
  input: KvInput,
  output: KvOutput | undefined,
): Op => ({
  clientId,
  call,
  return: ret,
  input,
  output,
});

t.test('an indeterminate write nobody read is dropped, and the verdict stands', async (t) => {
  const verdict = checkHistory(
    [
      op(0, 1, 2, { op: 'put', key: 'k', value: 'a' }, true),
      op(1, 3, Infinity, { op: 'put', key: 'k', value: 'x' }, undefined),
      op(2, 4, 5, { op: 'get', key: 'k' }, 'a'),
    ],
    5000,
  );
  t.equal(verdict.result, 'ok');
  t.equal(verdict.droppedUnseen, 1);
  t.equal(verdict.keptOpen, 0);
  t.notOk(verdict.fullHistory);
});

t.test(
  'a failed compare-and-set that saw an unread indeterminate write: the full history decides',
  async (t) => {
    const verdict = checkHistory(
      [
        op(0, 1, 2, { op: 'put', key: 'k', value: 'a' }, true),
        op(1, 3, Infinity, { op: 'put', key: 'k', value: 'x' }, undefined),
        op(2, 4, 5, { op: 'cas', key: 'k', expected: 'a', value: 'z' }, false),
      ],
      5000,
    );
    t.equal(verdict.result, 'ok', 'linearizable with the write taking effect before the cas');
    t.ok(verdict.fullHistory, 'only the full history shows it');
  },
);

t.test('a read of a write that may still apply keeps it open; a stale read after is caught', async (t) => {
  const verdict = checkHistory(
    [
      op(0, 1, 2, { op: 'put', key: 'k', value: 'a' }, true),
      op(1, 3, Infinity, { op: 'put', key: 'k', value: 'x' }, undefined),
      op(2, 4, 5, { op: 'get', key: 'k' }, 'x'),
      op(2, 6, 7, { op: 'get', key: 'k' }, 'a'),
    ],
    5000,
  );
  t.equal(verdict.keptOpen, 1);
  t.equal(verdict.result, 'illegal', 'a value cannot come back once overwritten');
});

t.test('write gaps and first writes around a fault', async (t) => {
  const fault = { start: 100, applied: 110, healed: 300, end: 400 } as FaultRecord;
  const a = faultAvailability(fault, [50, 105, 250, 260, 320, 500]);
  t.equal(a.maxGapMs, 145, '105 -> 250 is the longest stretch without a write');
  t.equal(a.firstWriteMs, 140, 'first write after the fault was in force');
  t.equal(a.afterHealMs, 20, 'first write after the heal');
  const none = faultAvailability(fault, [50]);
  t.equal(none.maxGapMs, 300, 'the whole window');
  t.equal(none.firstWriteMs, Infinity);
});
