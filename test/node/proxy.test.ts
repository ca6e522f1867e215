// Stateless proxies: 3 members and 2 proxies with no data directory; the member a proxy uses dies and clients notice nothing.

import { readdirSync } from 'node:fs';
import t from 'tap';
import { type ClusterNode, LocalCluster, type ProxyProcess } from '../../scripts/local-cluster.js';
import { Client, type WatchEvent } from '../../src/client/index.js';
import { TestWebSocket } from '../net/ws-client.js';
import { runCli } from './cli-run.js';
import { FAST_TIMING } from './running-cluster.js';
import { checkDelivery, collect, waitFor, writeKeys } from './watch-delivery.js';

interface ProxyStatus {
  readonly name: string;
  readonly role: string;
  readonly state: string;
  readonly member: string;
  readonly leader: string;
}

async function statusOf(proxy: ProxyProcess): Promise<ProxyStatus | undefined> {
  try {
    const response = await fetch(`${proxy.url}/v1/status`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as ProxyStatus) : undefined;
  } catch {
    return undefined;
  }
}

async function ready(proxy: ProxyProcess): Promise<boolean> {
  try {
    const response = await fetch(`${proxy.url}/readyz`, { signal: AbortSignal.timeout(2000) });
    return response.status === 200;
  } catch {
    return false;
  }
}

t.test(
  'through 2 proxies, kill -9 of the member a proxy uses: no event missed or repeated, every acknowledged write kept, a lost answer applied once, no file written',
  async (t) => {
    const cluster = new LocalCluster(FAST_TIMING);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    const [n1] = cluster.nodes as [ClusterNode];
    // n1 dies (SIGKILL) right after applying the write of key "lost", before it answers.
    cluster.start(n1, { CONCLAVE_FAULT_KILL_BEFORE_ANSWER: 'lost' });
    for (const node of cluster.nodes.slice(1)) cluster.start(node);
    await cluster.waitForLeader(60_000);

    const p1 = await cluster.addProxy();
    const p2 = await cluster.addProxy();
    // p1 knows only n1 at first, so n1 is the member it uses; p2 knows every member.
    cluster.startProxy(p1, 'api', [n1], ['--log-level', 'info']);
    cluster.startProxy(p2, 'api', cluster.nodes, ['--log-level', 'info']);
    await waitFor('both proxies ready', async () => (await ready(p1)) && (await ready(p2)));
    t.match(
      p1.stdout,
      /conclave: proxy p1 serving http:\/\/127\.0\.0\.1:\d+ \(stateless: .*no files written/,
    );
    const before = await statusOf(p1);
    t.equal(before?.role, 'proxy', 'a proxy says it is one');
    t.equal(before?.member, 'n1', 'p1 uses n1, the only member it was told of');

    const watcher = new Client({ endpoints: [p1.url] });
    const writer = new Client({ endpoints: [p2.url] });
    const retrier = new Client({ endpoints: [p1.url] });
    t.teardown(() => Promise.all([watcher.close(), writer.close(), retrier.close()]));

    const start = await writer.put('default', 'marker', 0);
    const TOTAL = 300;
    const watch = collect(watcher.watch('default', 'w/', { fromRevision: start.revision + 1 }), TOTAL);

    // A session write through p1 whose answer n1 never sends: the client retries it (same
    // session and sequence number) through p1, which now forwards to another member.
    let lost: { revision: number } | undefined;
    const acked = await writeKeys(writer, TOTAL, 8, async (i) => {
      if (i === Math.floor(TOTAL / 3)) lost = await retrier.put('default', 'lost', { once: true });
    });
    t.equal(n1.child?.signalCode, 'SIGKILL', 'n1, the member p1 used, was killed (-9) mid-stream');
    await watch.finish().catch(async (error: Error) => {
      t.fail(`${error.message}, the last at revision ${watch.events.at(-1)?.modRevision}`, {
        p1: await statusOf(p1),
      });
    });
    t.equal(watch.error(), undefined, 'the watch through p1 did not fail');
    checkDelivery(t, watch.events, acked, TOTAL);

    const after = await statusOf(p1);
    t.not(after?.member, 'n1', `p1 moved to another member (${after?.member})`);
    t.ok(after?.member === 'n2' || after?.member === 'n3', 'a live one');

    // The lost answer: applied once, answered with the first application's revision.
    const doc = await writer.get('default', 'lost');
    t.equal(doc.version, 1, 'the retried write applied once (version 1)');
    t.equal(doc.modRevision, lost?.revision, "the retry's answer is the first application's revision");

    // A watch from a past revision through a proxy: its first page (history) is delivered too.
    const past = retrier.watch('default', '', { fromRevision: lost?.revision ?? 1 });
    // A later change, so that a watch that skipped its history still gets an event (and fails fast).
    await writer.put('default', 'after-past', 1);
    let firstPast: WatchEvent | undefined;
    for await (const event of past) {
      firstPast = event;
      break;
    }
    past.close();
    t.equal(firstPast?.key, 'lost', 'a watch from a past revision starts with the change at that revision');
    t.equal(firstPast?.modRevision, lost?.revision, 'at its revision');

    // Reads through both proxies: linearizable and stale, every acknowledged write present.
    for (const client of [writer, retrier]) {
      const page = await client.list('default', 'w/', { limit: 1000 });
      const found = new Map(page.documents.map((d) => [d.key, d.modRevision]));
      t.same(
        [...acked].filter(([key, revision]) => found.get(key) !== revision),
        [],
        'a linearizable list through a proxy holds every acknowledged write',
      );
    }
    const stale = await retrier.get('default', 'w/0000', { consistency: 'stale' });
    t.same(stale.value, { i: 0 }, 'a stale read through a proxy');

    // A transaction through a proxy.
    const txn = await retrier.txn('default', {
      compares: [{ key: 'lost', target: 'version', op: 'eq', value: 1 }],
      success: [
        { type: 'put', key: 'txn/a', value: 1 },
        { type: 'delete', key: 'lost' },
      ],
    });
    t.equal(txn.succeeded, true, 'a transaction through p1 succeeded');
    t.same((await writer.get('default', 'txn/a')).value, 1, 'and its put is visible through p2');

    // conclave status through a proxy says so, and which member it uses.
    const status = await runCli(t, ['status', '--endpoints', p1.url]);
    t.equal(status.code, 0, `status through p1 exits 0: ${status.stderr}`);
    t.match(status.stdout, new RegExp(`p1 is a stateless proxy, forwarding to ${after?.member}`));

    // The proxies wrote nothing: their working directories are empty, and nothing new beside the members.
    t.same(readdirSync(p1.cwd), [], 'p1 wrote no file');
    t.same(readdirSync(p2.cwd), [], 'p2 wrote no file');

    // A proxy's dashboard: its own panel first, then every member's (n1 is dead).
    const dashboard = (await (await fetch(`${p2.url}/v1/dashboard`)).json()) as {
      servedBy: string;
      nodes: { name: string; role?: string; state?: string; unreachable?: string }[];
    };
    t.equal(dashboard.servedBy, 'p2');
    t.same(
      dashboard.nodes.map((n) => `${n.name} ${n.unreachable === undefined ? n.role : 'unreachable'}`).sort(),
      ['n1 unreachable', 'n2 voter', 'n3 voter', 'p2 proxy'],
      'the dashboard through a proxy shows the proxy and every member',
    );

    // Draining a proxy (conclave drain; --drain-delay 1s): not ready at once, then gone, while a
    // client that also knows p2 writes and watches through it without a failed operation.
    const p3 = await cluster.addProxy();
    cluster.startProxy(p3, 'api,admin', cluster.nodes.slice(1), ['--drain-delay', '1s']);
    await waitFor('p3 ready', () => ready(p3));
    const mover = new Client({ endpoints: [p3.url, p2.url] });
    t.teardown(() => mover.close());
    const from = (await mover.put('default', 'drain/start', 0)).revision + 1;
    const moved = collect(mover.watch('default', 'drain/w/', { fromRevision: from }), 200);
    let failures = 0;
    let writes = 0;
    let writing = true;
    const loop = (async () => {
      for (let i = 0; writing && i < 200; i++) {
        try {
          await mover.put('default', `drain/w/${String(i).padStart(4, '0')}`, i);
          writes++;
        } catch {
          failures++;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exited = new Promise((resolve) => p3.child!.once('exit', resolve));
    const drainRun = runCli(t, ['drain', '--endpoints', p3.url]);
    await waitFor('p3 not ready', async () => !(await ready(p3)));
    const why = await fetch(`${p3.url}/readyz`).then((r) => r.text());
    t.match(why, /draining/, 'the proxy says it is draining');
    const drained = await drainRun;
    t.equal(drained.code, 0, `conclave drain of a proxy: ${drained.stderr}`);
    t.equal(drained.stdout, 'p3 stopped\n');
    await exited;
    t.equal(p3.child?.exitCode, 0, 'p3 stopped cleanly');
    await loop;
    writing = false;
    await moved.finish();
    t.equal(failures, 0, `no failed write while the proxy drained (${writes} written)`);
    t.equal(moved.events.length, 200, 'the watch moved to p2 and missed nothing');
  },
);

t.test('a proxy with no member reachable answers UNAVAILABLE (retryable) at once, never hangs', async (t) => {
  const cluster = new LocalCluster(FAST_TIMING);
  t.teardown(() => cluster.stop());
  // Members that are never started: nothing listens at their mesh addresses.
  await cluster.create(1);
  const proxy = await cluster.addProxy();
  cluster.startProxy(proxy, 'api,admin', cluster.nodes, ['--request-timeout-ms', '1000']);
  // /healthz: /v1/status needs the caller checked by a member, and none is reachable.
  await waitFor(
    'the proxy to listen',
    async () => (await fetch(`${proxy.url}/healthz`).catch(() => undefined))?.status === 200,
    30_000,
  );

  const ask = async (method: string, path: string, body?: unknown) => {
    const started = performance.now();
    const response = await fetch(`${proxy.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(15_000),
    });
    return {
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
      ms: performance.now() - started,
    };
  };
  for (const [method, path, body] of [
    ['PUT', '/v1/realms/default/kv/k', { v: 1 }],
    ['GET', '/v1/realms/default/kv/k', undefined],
    ['GET', '/v1/realms/default/kv/k?consistency=stale', undefined],
    ['GET', '/v1/members', undefined],
  ] as const) {
    const answer = await ask(method, path, body);
    t.equal(answer.status, 503, `${method} ${path}: 503`);
    t.equal(answer.body.code, 'UNAVAILABLE', `${method} ${path}: UNAVAILABLE`);
    t.equal(answer.body.retryable, true, `${method} ${path}: retryable`);
    t.ok(answer.ms < 5000, `${method} ${path}: answered in ${Math.round(answer.ms)} ms`);
  }
  const readyz = await fetch(`${proxy.url}/readyz`);
  t.equal(readyz.status, 503, '/readyz says not ready');
  t.match(await readyz.text(), /no member of the cluster is reachable/);

  // A watch over the WebSocket API is refused the same way, promptly.
  const socket = await TestWebSocket.open(proxy.clientPort, '/v1/ws');
  t.teardown(() => socket.destroy());
  const started = performance.now();
  socket.sendText(JSON.stringify({ id: 1, op: 'watch', realm: 'default' }));
  await waitFor('the watch answer', () => socket.messages.length > 0, 15_000);
  const answer = JSON.parse(socket.messages[0]!) as {
    id: number;
    ok: boolean;
    error?: { code: string; retryable: boolean };
  };
  t.equal(answer.ok, false, 'the watch is refused');
  t.equal(answer.error?.code, 'UNAVAILABLE', 'UNAVAILABLE');
  t.equal(answer.error?.retryable, true, 'retryable');
  t.ok(performance.now() - started < 8000, `in ${Math.round(performance.now() - started)} ms`);
  t.same(readdirSync(proxy.cwd), [], 'the proxy wrote no file');
});
