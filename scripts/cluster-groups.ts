// Bench helpers for a LocalCluster's raft groups: JSON calls to a node's admin routes, and waiting until every group has a leader.

import type { ClusterNode } from './local-cluster.js';

interface GroupsList {
  readonly groups: readonly { readonly id: number; readonly leader: string }[];
}

/** A JSON request to `node` (30 s deadline); throws naming the route and the answer unless 2xx. */
export async function nodeCall<T>(
  node: ClusterNode,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${node.url}${path}`, {
    method,
    signal: AbortSignal.timeout(30_000),
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
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
