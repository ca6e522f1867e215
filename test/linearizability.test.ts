// Tests for the linearizability checker: hand-written histories and the Porcupine/Jepsen reference histories.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseJepsenEtcdLog, parseKvEdn } from './lib/history-formats.js';
import {
  checkOperations,
  createKvModel,
  formatCheckResult,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from './lib/linearizability.js';

/** Per-file wall-clock budget for a reference history. */
const FILE_BUDGET_MS = 10_000;

/**
 * Finds test/testdata/linearizability by walking up from this module's directory, so it works both
 * from the compiled file (dist/test/) and from the source (test/), whatever the cwd.
 */
function findTestdata(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'test', 'testdata', 'linearizability');
    if (existsSync(join(candidate, 'README.md'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('test/testdata/linearizability not found above ' + import.meta.url);
    dir = parent;
  }
}

const TESTDATA = findTestdata();

type RegOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvOutput>;

function reg(
  clientId: number,
  call: number,
  ret: number,
  input: RegisterInput,
  output: RegisterOutput | undefined,
): RegOp {
  return { clientId, call, return: ret, input, output };
}
const read = (c: number, call: number, ret: number, out: number | null | undefined) =>
  reg(c, call, ret, { op: 'read' }, out);
const write = (c: number, call: number, ret: number, value: number, out: true | undefined) =>
  reg(c, call, ret, { op: 'write', value }, out);
const cas = (c: number, call: number, ret: number, from: number, to: number, out: boolean | undefined) =>
  reg(c, call, ret, { op: 'cas', from, to }, out);

t.test('hand-written register histories', async (t) => {
  const verdict = (ops: RegOp[]) => checkOperations(registerModel, ops).result;

  t.equal(verdict([]), 'ok', 'empty history');
  t.equal(
    verdict([write(0, 1, 2, 1, true), read(1, 3, 4, 1), read(0, 5, 6, 1)]),
    'ok',
    'sequential write then reads',
  );
  t.equal(verdict([read(0, 1, 2, null)]), 'ok', 'register starts absent');
  t.equal(verdict([read(0, 1, 2, 0)]), 'illegal', 'reading a value never written');

  t.equal(
    verdict([write(0, 1, 2, 1, true), write(1, 3, 4, 2, true), read(2, 5, 6, 1)]),
    'illegal',
    'stale read after write',
  );
  t.equal(
    verdict([write(0, 1, 4, 1, true), read(1, 2, 3, 1)]),
    'ok',
    'read concurrent with the write may see it',
  );
  t.equal(
    verdict([write(0, 1, 4, 1, true), read(1, 2, 3, null)]),
    'ok',
    'read concurrent with the write may miss it',
  );
  t.equal(
    verdict([write(0, 1, 4, 1, true), read(1, 2, 3, 1), read(2, 5, 6, null)]),
    'illegal',
    'value cannot disappear after being read',
  );
  t.equal(
    verdict([write(0, 1, 3, 1, true), read(2, 2, 5, 1), read(3, 4, 6, null)]),
    'illegal',
    'a read starting after the write returned cannot miss it',
  );

  // Concurrent writes: either order, but all readers after both must agree.
  const concurrent = [write(0, 1, 4, 1, true), write(1, 2, 3, 2, true)];
  t.equal(verdict([...concurrent, read(2, 5, 6, 1)]), 'ok', 'concurrent writes, 2 then 1');
  t.equal(verdict([...concurrent, read(2, 5, 6, 2)]), 'ok', 'concurrent writes, 1 then 2');
  t.equal(
    verdict([...concurrent, read(2, 5, 6, 2), read(3, 7, 8, 1)]),
    'illegal',
    'concurrent writes: later readers cannot flip',
  );

  // CAS.
  t.equal(
    verdict([write(0, 1, 2, 1, true), cas(1, 3, 4, 1, 2, true), read(0, 5, 6, 2)]),
    'ok',
    'successful cas',
  );
  t.equal(
    verdict([write(0, 1, 2, 1, true), cas(1, 3, 4, 1, 2, false)]),
    'illegal',
    'cas fails although it should succeed',
  );
  t.equal(
    verdict([write(0, 1, 2, 1, true), cas(1, 3, 4, 3, 2, true)]),
    'illegal',
    'cas succeeds although it should fail',
  );
  t.equal(
    verdict([write(0, 1, 2, 1, true), cas(1, 3, 4, 3, 2, false), read(0, 5, 6, 1)]),
    'ok',
    'cas rightly fails',
  );

  // Pending write (never returned): it may or may not take effect, at any point after its call.
  const pending = write(0, 1, Infinity, 1, undefined);
  t.equal(verdict([pending, read(1, 2, 3, 1)]), 'ok', 'pending write seen');
  t.equal(verdict([pending, read(1, 2, 3, null)]), 'ok', 'pending write not seen');
  t.equal(
    verdict([pending, read(1, 2, 3, null), read(1, 10, 11, 1)]),
    'ok',
    'pending write takes effect late',
  );
  t.equal(
    verdict([pending, read(1, 2, 3, 1), read(1, 10, 11, null)]),
    'illegal',
    'pending write cannot be undone once seen',
  );
  t.equal(
    verdict([read(1, 0, 1, 1), write(0, 2, Infinity, 1, undefined)]),
    'illegal',
    'pending write cannot take effect before its call',
  );
  t.equal(
    verdict([
      write(2, 0, 1, 5, true),
      pending,
      cas(0, 2, Infinity, 5, 7, undefined),
      read(1, 3, 4, 7),
      read(1, 5, 6, 1),
    ]),
    'ok',
    'two pending ops, both linearized after their calls in the needed order',
  );

  // Unknown outcome within a bounded window: either took effect inside it, or never.
  const bounded = write(0, 1, 5, 1, undefined);
  t.equal(verdict([bounded, read(1, 10, 11, 1)]), 'ok', 'bounded unknown write took effect');
  t.equal(verdict([bounded, read(1, 10, 11, null)]), 'ok', 'bounded unknown write had no effect');
  t.equal(
    verdict([bounded, read(1, 10, 11, null), read(1, 20, 21, 1)]),
    'illegal',
    'bounded unknown write cannot take effect after its return',
  );

  // Unknown-output read constrains nothing.
  t.equal(
    verdict([write(0, 1, 2, 1, true), read(1, 3, 4, undefined), read(1, 5, 6, 1)]),
    'ok',
    'unknown read',
  );
});

t.test('illegal result carries a debugging prefix', async (t) => {
  const ops = [write(0, 1, 2, 1, true), write(0, 3, 4, 2, true), read(1, 5, 6, 1)];
  const res = checkOperations(registerModel, ops);
  t.equal(res.result, 'illegal');
  t.ok(res.illegal);
  t.equal(res.illegal?.longestPrefix.length, 2, 'both writes linearize');
  t.equal(res.illegal?.stateAfterPrefix, 2);
  t.same(res.illegal?.stuckAt?.input, { op: 'read' });
  t.match(formatCheckResult(registerModel, res), /could not linearize: client 1 \[5, 6\] read\(\) -> 1/);
});

t.test('HistoryRecorder', async (t) => {
  const rec = new HistoryRecorder<KvInput, KvOutput>();
  const a = rec.invoke(0, { op: 'put', key: 'k', value: 'a' });
  rec.complete(a, true);
  const b = rec.invoke(1, { op: 'put', key: 'k', value: 'b' });
  rec.completeUnknown(b); // may apply later
  const c = rec.invoke(2, { op: 'put', key: 'k', value: 'c' });
  rec.discard(c); // definitely did not apply
  const r1 = rec.invoke(3, { op: 'get', key: 'k' });
  rec.complete(r1, 'a');
  const r2 = rec.invoke(3, { op: 'get', key: 'k' });
  rec.complete(r2, 'b');
  const open = rec.invoke(4, { op: 'cas', key: 'k', expected: 'b', value: 'd' });
  t.equal(rec.pending, 1);
  t.throws(() => rec.complete(a, true), /already completed/);

  const ops = rec.operations();
  t.equal(ops.length, 5, 'discarded op left out');
  t.equal(ops[1]?.return, Infinity, 'unknown outcome returns at Infinity');
  t.equal(ops[4]?.return, Infinity, 'outstanding op returns at Infinity');
  t.equal(ops[4]?.output, undefined);
  t.ok(
    ops.every((op, i) => i === 0 || op.call > ops[i - 1]!.call),
    'logical clock increases',
  );
  t.equal(checkOperations(kvModel, ops).result, 'ok', 'late-applied put is accepted');

  const r3 = rec.invoke(3, { op: 'get', key: 'k' });
  rec.complete(r3, 'c');
  t.equal(checkOperations(kvModel, rec.operations()).result, 'illegal', 'discarded put must not be seen');
  void open;
});

t.test('kv model', async (t) => {
  let time = 0;
  const op = (clientId: number, input: KvInput, output: KvOutput | undefined): KvOp => ({
    clientId,
    input,
    output,
    call: ++time,
    return: ++time,
  });
  const ops = [
    op(0, { op: 'get', key: 'x' }, null),
    op(0, { op: 'cas', key: 'x', expected: null, value: 'a' }, true),
    op(1, { op: 'cas', key: 'x', expected: null, value: 'b' }, false),
    op(1, { op: 'put', key: 'y', value: '1' }, true),
    op(1, { op: 'append', key: 'x', value: '+' }, true),
    op(2, { op: 'get', key: 'x' }, 'a+'),
    op(2, { op: 'get', key: 'y' }, '1'),
    op(2, { op: 'put', key: 'y', value: null }, true),
    op(2, { op: 'get', key: 'y' }, null),
  ];
  const res = checkOperations(kvModel, ops);
  t.equal(res.result, 'ok', formatCheckResult(kvModel, res));
  t.equal(res.partitions, 2, 'partitioned by key');

  const bad = [...ops, op(3, { op: 'get', key: 'x' }, 'a')];
  const badRes = checkOperations(kvModel, bad);
  t.equal(badRes.result, 'illegal');
  t.equal(badRes.illegal?.operations[0]?.input.key, 'x', 'offending partition is key x');

  const emptyInit = createKvModel({ initial: '' });
  t.equal(checkOperations(emptyInit, [op(0, { op: 'get', key: 'z' }, '')]).result, 'ok', "initial ''");
  t.equal(checkOperations(kvModel, [op(0, { op: 'get', key: 'z' }, '')]).result, 'illegal', 'initial null');
});

/** Brute-force oracle: tries every subset of optional operations and every real-time-respecting order. */
function bruteForceRegister(ops: RegOp[]): 'ok' | 'illegal' {
  const required = ops.map((o) => o.output !== undefined && Number.isFinite(o.return));
  const optional = ops.flatMap((_, i) => (required[i] ? [] : [i]));
  for (let mask = 0; mask < 1 << optional.length; mask++) {
    const chosen = required.slice();
    optional.forEach((i, k) => {
      if ((mask >> k) & 1) chosen[i] = true;
    });
    const used = ops.map(() => false);
    const total = chosen.filter(Boolean).length;
    const search = (state: number | null, count: number): boolean => {
      if (count === total) return true;
      for (let x = 0; x < ops.length; x++) {
        if (!chosen[x] || used[x]) continue;
        // x may go next unless some other remaining chosen op returned before x was called.
        if (ops.some((y, j) => chosen[j] && !used[j] && j !== x && y.return < ops[x]!.call)) continue;
        const r = registerModel.step(state, ops[x]!.input, ops[x]!.output);
        if (!r.ok) continue;
        used[x] = true;
        const found = search(r.state, count + 1);
        used[x] = false;
        if (found) return true;
      }
      return false;
    };
    if (search(null, 0)) return 'ok';
  }
  return 'illegal';
}

t.test('random small histories agree with a brute-force oracle', async (t) => {
  let seed = 20240601;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const verdicts = { ok: 0, illegal: 0 };
  let mismatches = 0;
  for (let iter = 0; iter < 3000; iter++) {
    const ops: RegOp[] = [];
    const n = 1 + Math.floor(rnd() * 7);
    for (let i = 0; i < n; i++) {
      const call = Math.floor(rnd() * 12);
      const pendingOp = rnd() < 0.2;
      const ret = pendingOp ? Infinity : call + Math.floor(rnd() * 6);
      const unknown = pendingOp || rnd() < 0.15;
      const kind = pick(['read', 'write', 'cas'] as const);
      if (kind === 'read') ops.push(read(i, call, ret, unknown ? undefined : pick([null, 1, 2, 3])));
      else if (kind === 'write') ops.push(write(i, call, ret, pick([1, 2, 3]), unknown ? undefined : true));
      else ops.push(cas(i, call, ret, pick([1, 2, 3]), pick([1, 2, 3]), unknown ? undefined : rnd() < 0.5));
    }
    const want = bruteForceRegister(ops);
    verdicts[want]++;
    const got = checkOperations(registerModel, ops).result;
    if (got !== want && mismatches++ < 5) t.equal(got, want, `history ${iter}: ${JSON.stringify(ops)}`);
  }
  t.equal(mismatches, 0, 'checker agrees with the oracle on every history');
  t.ok(verdicts.ok > 500 && verdicts.illegal > 500, `both verdicts exercised (${JSON.stringify(verdicts)})`);
});

t.test('timeout gives unknown', async (t) => {
  // Many concurrent pending writes and reads that rule out every order: hard to refute.
  const ops: RegOp[] = [];
  for (let i = 0; i < 40; i++) ops.push(write(i, 0, Infinity, i, undefined));
  for (let i = 0; i < 40; i++) ops.push(read(100 + i, 1, 2, 1000 + i));
  const res = checkOperations(registerModel, ops, { timeoutMs: 0 });
  t.equal(res.result, 'unknown');
});

t.test('jepsen format parsing', async (t) => {
  const log = [
    'INFO  jepsen.util - 0\t:invoke\t:write\t1',
    'INFO  jepsen.util - 1\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 2\t:invoke\t:cas\t[1 2]',
    'INFO  jepsen.util - 3\t:invoke\t:write\t3',
    'INFO  jepsen.util - 0\t:ok\t:write\t1',
    'INFO  jepsen.util - 1\t:fail\t:read\t:timed-out',
    'INFO  jepsen.util - 2\t:fail\t:cas\t[1 2]',
    'INFO  jepsen.util - 3\t:info\t:write\t:timed-out',
    'INFO  jepsen.util - 4   :invoke :read   nil',
    'INFO  jepsen.util - 4   :ok     :read   3',
    'some other noise',
  ].join('\n');
  const ops = parseJepsenEtcdLog(log);
  t.same(
    ops.map((o) => [o.clientId, o.input, o.output, o.call, o.return]),
    [
      [0, { op: 'write', value: 1 }, true, 1, 5],
      [1, { op: 'read' }, undefined, 2, Infinity],
      [2, { op: 'cas', from: 1, to: 2 }, false, 3, 6],
      [3, { op: 'write', value: 3 }, undefined, 4, Infinity],
      [4, { op: 'read' }, 3, 7, 8],
    ],
  );
  t.equal(checkOperations(registerModel, ops).result, 'ok', 'the failed cas linearizes before the write');
  t.throws(() => parseJepsenEtcdLog('INFO  jepsen.util - 0\t:ok\t:read\t1'), /without an open invocation/);
});

t.test('kv format parsing', async (t) => {
  const log = [
    '{:process 0, :type :invoke, :f :append, :key "k", :value "x 0 0 y"}',
    '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
    '{:process 0, :type :ok, :f :append, :key "k", :value "x 0 0 y"}',
    '{:process 1, :type :ok, :f :get, :key "k", :value ""}',
    '{:process 2, :type :invoke, :f :put, :key "j", :value "v"}',
  ].join('\n');
  const ops = parseKvEdn(log);
  t.same(
    ops.map((o) => [o.clientId, o.input, o.output, o.call, o.return]),
    [
      [0, { op: 'append', key: 'k', value: 'x 0 0 y' }, true, 1, 3],
      [1, { op: 'get', key: 'k' }, '', 2, 4],
      [2, { op: 'put', key: 'j', value: 'v' }, undefined, 5, Infinity],
    ],
  );
  t.throws(() => parseKvEdn('{:process 0, :type :invoke, :f :delete, :key "k", :value nil}'), /unrecognised/);
});

interface Timing {
  file: string;
  ms: number;
}

function summarise(label: string, timings: Timing[]): string {
  const total = timings.reduce((s, x) => s + x.ms, 0);
  const slowest = timings.reduce((a, b) => (b.ms > a.ms ? b : a), { file: '-', ms: 0 });
  return `${label}: ${timings.length} files, total ${total.toFixed(0)} ms, max ${slowest.ms.toFixed(0)} ms (${slowest.file})`;
}

t.test('jepsen etcd reference histories', async (t) => {
  const dir = join(TESTDATA, 'jepsen-etcd');
  const expected = new Map<string, string>();
  for (const line of readFileSync(join(dir, 'expected.txt'), 'utf8').split('\n')) {
    const [file, verdict] = line.trim().split(/\s+/);
    if (file && verdict) expected.set(file, verdict);
  }
  t.equal(expected.size, 102, 'a verdict for each of the 102 reference logs');
  // The directory also holds etcd_095.log, which is empty and has no verdict (as in Porcupine's data).
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.log') && !expected.has(f))) {
    t.equal(readFileSync(join(dir, file), 'utf8').trim(), '', `${file} has no verdict and is empty`);
  }
  const timings: Timing[] = [];
  for (const file of [...expected.keys()].sort()) {
    const ops = parseJepsenEtcdLog(readFileSync(join(dir, file), 'utf8'));
    const start = performance.now();
    const res = checkOperations(registerModel, ops, { timeoutMs: FILE_BUDGET_MS });
    const ms = performance.now() - start;
    timings.push({ file, ms });
    const want = expected.get(file) === 'linearizable' ? 'ok' : 'illegal';
    t.equal(res.result, want, `${file}: ${expected.get(file)}`);
    t.ok(ms < FILE_BUDGET_MS, `${file} checked within budget (${ms.toFixed(0)} ms)`);
  }
  t.comment(summarise('jepsen-etcd', timings));
});

t.test('kv reference histories', async (t) => {
  const dir = join(TESTDATA, 'kv');
  const model = createKvModel({ initial: '' });
  const timings: Timing[] = [];
  for (const name of ['c01', 'c10', 'c50']) {
    for (const kind of ['ok', 'bad'] as const) {
      const file = `${name}-${kind}.txt`;
      const ops = parseKvEdn(readFileSync(join(dir, file), 'utf8'));
      const start = performance.now();
      const res = checkOperations(model, ops, { timeoutMs: FILE_BUDGET_MS });
      const ms = performance.now() - start;
      timings.push({ file, ms });
      t.equal(
        res.result,
        kind === 'ok' ? 'ok' : 'illegal',
        `${file} (${ops.length} ops, ${res.partitions} keys)`,
      );
      t.ok(ms < FILE_BUDGET_MS, `${file} checked within budget (${ms.toFixed(0)} ms)`);
    }
  }
  t.comment(summarise('kv', timings));
});
