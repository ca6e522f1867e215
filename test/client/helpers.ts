// Helpers of the client tests: fake clusters torn down with the test, and waiting on conditions instead of sleeping.

import type { Test } from 'tap';
import { Client } from '../../src/client/index.js';
import type { ClientOptions } from '../../src/client/options.js';
import { FakeCluster, FakeNode } from './fake-node.js';

/** Resolves once `condition()` holds; polls every few ms; fails after `timeoutMs` (generous: machines are slow). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** `count` fake nodes over one cluster, stopped when the test ends. */
export async function startFakes(
  t: Test,
  count: number,
): Promise<{ cluster: FakeCluster; nodes: FakeNode[] }> {
  const cluster = new FakeCluster();
  const nodes: FakeNode[] = [];
  for (let i = 0; i < count; i++) nodes.push(await FakeNode.start(cluster, `n${i + 1}`));
  t.teardown(() => Promise.all(nodes.map((node) => node.stop())));
  return { cluster, nodes };
}

/** A client of `nodes` with quick backoff (the deadline stays generous), closed when the test ends. */
export function clientOf(t: Test, nodes: readonly FakeNode[], options: Partial<ClientOptions> = {}): Client {
  const client = new Client({
    endpoints: nodes.map((node) => node.endpoint),
    requestTimeoutMs: 30_000,
    connectTimeoutMs: 5_000,
    backoff: { baseMs: 5, maxMs: 50 },
    ...options,
  });
  t.teardown(() => client.close());
  return client;
}

/** The error `promise` rejects with (fails if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}
