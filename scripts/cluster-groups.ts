// Bench helpers for a LocalCluster's raft groups: JSON calls to a node's admin routes, and waiting until every group has a leader.

import type { ClusterNode } from './local-cluster.js';

interface GroupsList {
  readonly groups: readonly { readonly id: number; readonly leader: string }[];
}

/**
 * A JSON request to `node` (30 s deadline); an answer that says it is retryable and did not
 * happen (a leader moving, say; not indeterminate) is asked again after 200 ms. Throws naming
 * the route and the answer unless 2xx.
 */
export async function nodeCall<T>(
  node: ClusterNode,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await fetch(`${node.url}${path}`, {
      method,
      signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as T;
    let answer: { retryable?: unknown; indeterminate?: unknown } = {};
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      // Not JSON: not retried.
    }
    if (answer.retryable !== true || answer.indeterminate === true || Date.now() >= deadline) {
      throw new Error(`${method} ${path}: ${response.status} ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Waits (up to `timeoutMs`) until `node` lists at least `count` groups and each has a leader;
 * resolves with how many groups each node leads.
 */
export async function waitForGroupLeaders(
  node: ClusterNode,
  count = 1,
  timeoutMs = 120_000,
): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await nodeCall<GroupsList>(node, 'GET', '/v1/groups');
    const led = list.groups.filter((g) => g.leader !== '').length;
    if (list.groups.length >= count && led === list.groups.length) {
      const counts = new Map<string, number>();
      for (const g of list.groups) counts.set(g.leader, (counts.get(g.leader) ?? 0) + 1);
      return counts;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${count} groups wanted: ${led} of ${list.groups.length} have a leader after ${timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
