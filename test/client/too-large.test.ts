// A request over the node's message limit fails at once with TOO_LARGE (not applied), refused locally or on the node's 1009 close (issue 13).

import t, { type Test } from 'tap';
import { EDGE_DEFAULTS } from '../../net/index.js';
import { freePort } from '../../scripts/local-cluster.js';
import { DEFAULTS } from '../../src/client/constants.js';
import { Client, ConclaveError } from '../../src/client/index.js';
import { startSingleNode } from '../node/start-single.js';
import { rejection } from './helpers.js';

/** Far beyond the times below: a TOO_LARGE that waited for this would be the old bug. */
const REQUEST_TIMEOUT_MS = 20_000;
/** "At once": no deadline, no resend loop. Generous for a loaded 2-core machine. */
const AT_ONCE_MS = 3_000;

function client(t: Test, endpoints: string[], maxRequestBytes?: number): Client {
  const c = new Client({
    endpoints,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    backoff: { baseMs: 5, maxMs: 50 },
    ...(maxRequestBytes === undefined ? {} : { maxRequestBytes }),
  });
  t.teardown(() => c.close());
  return c;
}

async function timed(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await rejection(promise);
  return { error, ms: performance.now() - started };
}

function isTooLarge(t: Test, outcome: { error: unknown; ms: number }, what: string): void {
  const error = outcome.error as ConclaveError;
  t.ok(error instanceof ConclaveError, `${what}: a ConclaveError (${String(error)})`);
  t.equal(error.code, 'TOO_LARGE', `${what}: TOO_LARGE (${error.message})`);
  t.equal(error.indeterminate, false, `${what}: definitely not applied`);
  t.equal(error.retryable, false, `${what}: not retryable`);
  t.ok(outcome.ms < AT_ONCE_MS, `${what}: at once (${Math.round(outcome.ms)} ms)`);
}

t.test("the client's default limit is the node's WebSocket message limit", async (t) => {
  t.equal(DEFAULTS.maxRequestBytes, EDGE_DEFAULTS.maxWsPayloadBytes);
});

t.test('an oversize request is refused before it is sent, even with no node reachable', async (t) => {
  const c = client(t, [`http://127.0.0.1:${await freePort()}`]);
  isTooLarge(t, await timed(c.put('default', 'big', 'x'.repeat(1100 * 1024))), 'put of 1.1 MiB');
  isTooLarge(t, await timed(c.list('default', 'p'.repeat(1100 * 1024))), 'a list with a 1.1 MiB prefix');
});

t.test('against a node', async (t) => {
  const node = await startSingleNode(t);

  t.test('over the default limit: TOO_LARGE at once; the client goes on writing', async (t) => {
    const c = client(t, [node.url]);
    await c.put('default', 'before', 1);
    isTooLarge(t, await timed(c.put('default', 'big', 'x'.repeat(1100 * 1024))), 'put of 1.1 MiB');
    isTooLarge(t, await timed(c.put('default', 'huge', 'x'.repeat(3 * 1024 * 1024))), 'put of 3 MiB');
    const after = await c.put('default', 'after', 2);
    t.ok(after.revision > 0, 'a small put after them applies');
    t.equal(
      ((await rejection(c.get('default', 'big'))) as ConclaveError).code,
      'NOT_FOUND',
      'big was not written',
    );
  });

  t.test(
    "a client allowed more than the node takes: the node's 1009 close is TOO_LARGE for that request",
    async (t) => {
      const c = client(t, [node.url], 8 * 1024 * 1024);
      await c.put('default', 'warm', 1);
      // A small write in flight with the oversize one: it is resent and applies; the big one fails.
      const small = c.put('default', 'beside', 'small');
      const big = timed(c.put('default', 'big', 'x'.repeat(1500 * 1024)));
      isTooLarge(t, await big, 'put of 1.5 MiB');
      t.ok((await small).revision > 0, 'the write beside it applied');
      t.equal(
        ((await rejection(c.get('default', 'big'))) as ConclaveError).code,
        'NOT_FOUND',
        'big was not written',
      );
      const after = await c.put('default', 'after-1009', 3);
      t.ok(after.revision > 0, 'the client writes on after the close');
    },
  );
});
