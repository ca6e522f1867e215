// The dashboard's per-second series: seconds closed by the clock, empty seconds as zeros, bounded history, percentiles from buckets, and how requests are classified.

import t from 'tap';
import { ActivitySeries } from '../../src/activity-series.js';
import { collectDashboard } from '../../src/dashboard.js';
import { nodePanel } from '../../src/dashboard-panel.js';
import type { NodeStatus } from '../../src/kv-service.js';
import { NodeMetrics } from '../../src/metrics.js';

t.test('seconds close when the clock passes them; gaps are zeros; only `keep` are kept', async (t) => {
  let now = 10_000;
  const series = new ActivitySeries(5, () => now);
  series.record('write', false, 2);
  series.record('write', false, 4);
  series.record('read', true, 1);
  t.same(series.since(), [], 'the open second is not shown');
  now = 11_200;
  const [first] = series.since();
  t.equal(first?.t, 10_000);
  t.equal(first?.writes, 2);
  t.equal(first?.reads, 1);
  t.equal(first?.errors, 1);
  now = 14_100;
  t.same(
    series.since().map((s) => [s.t, s.writes, s.writeP50Ms]),
    [
      [10_000, 2, first?.writeP50Ms],
      [11_000, 0, null],
      [12_000, 0, null],
      [13_000, 0, null],
    ],
    'seconds without requests are zeros, latency null',
  );
  t.same(
    series.since(11_000).map((s) => s.t),
    [12_000, 13_000],
    'since: only seconds after it',
  );
  now = 100_000;
  const kept = series.since();
  t.equal(kept.length, 5, 'at most keep seconds');
  t.equal(kept.at(-1)?.t, 99_000);
  t.equal(kept[0]?.t, 95_000);
});

t.test('percentiles are bucket upper bounds: never below the true value, at most 25 % above', async (t) => {
  let now = 0;
  const series = new ActivitySeries(10, () => now);
  // 100 writes: 1..100 ms. True p50 = 50 ms, p99 = 99 ms.
  for (let ms = 1; ms <= 100; ms++) series.record('write', false, ms);
  for (let i = 0; i < 10; i++) series.record('read', false, 0.01);
  now = 1000;
  const [s] = series.since();
  t.ok(s !== undefined);
  if (s === undefined) return;
  t.ok(s.writeP50Ms !== null && s.writeP50Ms >= 50 && s.writeP50Ms <= 62.5, `p50 ${s.writeP50Ms}`);
  t.ok(s.writeP99Ms !== null && s.writeP99Ms >= 99 && s.writeP99Ms <= 123.75, `p99 ${s.writeP99Ms}`);
  t.equal(s.readP50Ms, 0.05, 'below the first bound: the first bucket');
  t.equal(s.errors, 0);
});

t.test(
  'metrics classify requests: data reads and writes are charted, status and admin are not',
  async (t) => {
    const metrics = new NodeMetrics({}, 'n1');
    metrics.httpAnswered('/v1/realms/:realm/kv/*', 'PUT', 'OK', 0.002);
    metrics.httpAnswered('/v1/realms/:realm/kv/*', 'GET', 'NOT_FOUND', 0.001);
    metrics.httpAnswered('/v1/realms/:realm/kv', 'GET', 'OK', 0.001);
    metrics.httpAnswered('/v1/realms/:realm/txn', 'POST', 'TIMEOUT', 1);
    metrics.httpAnswered('/v1/status', 'GET', 'OK', 0.001);
    metrics.httpAnswered('/v1/members', 'GET', 'OK', 0.001);
    metrics.wsAnswered('put', 'OK', 0.001);
    metrics.wsAnswered('get', 'UNAVAILABLE', 0.001);
    metrics.wsAnswered('status', 'OK', 0.001);
    metrics.wsAnswered('unknown', 'INVALID_ARGUMENT', 0.001);
    await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
    const seconds = metrics.activity.since();
    const total = seconds.reduce(
      (sum, s) => ({
        writes: sum.writes + s.writes,
        reads: sum.reads + s.reads,
        errors: sum.errors + s.errors,
      }),
      { writes: 0, reads: 0, errors: 0 },
    );
    t.same(
      total,
      { writes: 3, reads: 3, errors: 2 },
      'NOT_FOUND is an answer, TIMEOUT and UNAVAILABLE are errors',
    );
  },
);

const status = (name: string, state: string, extra: Partial<NodeStatus> = {}): NodeStatus => ({
  name,
  id: name,
  role: 'voter',
  state,
  leader: 'n1',
  term: 3,
  commitIndex: 100,
  appliedIndex: 99,
  revision: 50,
  members: [
    { name: 'n1', role: 'voter', match: 100, next: 101, state: 'replicate' },
    { name: 'n2', role: 'voter', match: 60, next: 61, state: 'replicate' },
    { name: 'n3', role: 'voter', match: 0, next: 1, state: 'probe' },
  ],
  ...extra,
});

t.test('a leader panel shows lag and last contact per member; a follower does not', async (t) => {
  const metrics = new NodeMetrics({}, 'n1');
  const contact: Record<string, number | undefined> = { n1: 0, n2: 40 };
  const leader = nodePanel(
    {
      status: () => status('n1', 'leader'),
      metrics,
      raft: { lastContactMs: (m) => contact[m], recentLeaders: () => [{ at: 5, leader: 'n1', term: 3 }] },
    },
    -1,
  );
  t.same(
    leader.members.map((m) => [m.name, m.lagEntries, m.lastContactMs]),
    [
      ['n1', 0, 0],
      ['n2', 40, 40],
      ['n3', 100, null],
    ],
  );
  t.same(leader.leaderChanges, [{ at: 5, leader: 'n1', term: 3 }]);
  const follower = nodePanel({ status: () => status('n2', 'follower'), metrics }, -1);
  t.same(
    follower.members.map((m) => Object.keys(m).sort()),
    [
      ['name', 'role'],
      ['name', 'role'],
      ['name', 'role'],
    ],
    'progress is the leader’s to tell',
  );
});

t.test(
  'the dashboard asks every other member at once; one that fails or answers nonsense is shown why',
  async (t) => {
    const metrics = new NodeMetrics({}, 'n1');
    const self = (since: number) => nodePanel({ status: () => status('n1', 'leader'), metrics }, since);
    const asked: string[] = [];
    const started = Date.now();
    const view = await collectDashboard(
      {
        self,
        others: () => [
          { name: 'n2', peer: 'p2' },
          { name: 'n3', peer: 'p3' },
          { name: 'n4', peer: undefined },
          { name: 'n5', peer: 'p5' },
          { name: 'n6', peer: 'p6' },
        ],
        ask: async (peer, name, since, timeoutMs) => {
          asked.push(`${peer}:${since}:${timeoutMs}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
          if (name === 'n2') return nodePanel({ status: () => status('n2', 'follower'), metrics }, since);
          if (name === 'n3') throw new Error('TIMEOUT: n3 did not answer');
          if (name === 'n5') return { name: 'n5' };
          return nodePanel({ status: () => status('someone-else', 'follower'), metrics }, since);
        },
        timeoutMs: 700,
      },
      1234,
    );
    t.ok(Date.now() - started < 380, 'asked at once, not one after the other');
    t.same(asked.sort(), ['p2:1234:700', 'p3:1234:700', 'p5:1234:700', 'p6:1234:700']);
    t.equal(view.servedBy, 'n1');
    t.same(
      view.nodes.map((n) => ('unreachable' in n ? `${n.name}: ${n.unreachable}` : `${n.name} ${n.state}`)),
      [
        'n1 leader',
        'n2 follower',
        'n3: TIMEOUT: n3 did not answer',
        'n4: not connected',
        'n5: answered in an unknown shape',
        'n6: answered in an unknown shape',
      ],
    );
  },
);
