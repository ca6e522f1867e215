// A write through a follower whose leader just died is answered at once with a definite UNAVAILABLE: it never left the follower.

import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { runningCluster } from './running-cluster.js';

t.test(
  'a forward that could not be sent is a definite UNAVAILABLE, not an indeterminate TIMEOUT',
  async (t) => {
    // A long election timeout keeps the followers believing in the dead leader for a while.
    const cluster = await runningCluster(
      t,
      3,
      ['--election-timeout-ms', '2000', '--heartbeat-interval-ms', '100'],
      60_000,
    );
    const leader = await cluster.waitForLeader(30_000);
    const follower = cluster.nodes.find((n) => n !== leader) as ClusterNode;
    await cluster.kill(leader);
    // The follower's mesh sees the connection close (the process is gone) well before its election timer fires.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    const response = await fetch(`${follower.url}/v1/realms/default/kv/never-sent`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1}',
      signal: AbortSignal.timeout(20_000),
    });
    const tookMs = Date.now() - started;
    const body = (await response.json()) as {
      code: string;
      indeterminate?: boolean;
      retryable?: boolean;
      leader?: string;
    };
    t.equal(response.status, 503, `answered 503 (${JSON.stringify(body)})`);
    t.equal(body.code, 'UNAVAILABLE', 'code UNAVAILABLE');
    t.notOk(body.indeterminate, 'not indeterminate: the write certainly did not happen');
    t.equal(body.retryable, true, 'retryable');
    t.ok(tookMs < 2000, `at once (${tookMs} ms), not after the request timeout`);
    // And indeed it did not happen: once a new leader is elected (the survivors name another node), the key is absent.
    const deadline = Date.now() + 30_000;
    while ((await cluster.waitForLeader(30_000)) === leader && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const read = await fetch(`${follower.url}/v1/realms/default/kv/never-sent`, {
      signal: AbortSignal.timeout(20_000),
    });
    t.equal(read.status, 404, `the key was never written (${read.status} ${await read.text()})`);
  },
);
