// Test helpers for the raft-group admin routes over HTTP: GET /v1/groups and a JSON POST.

import type { ClusterNode } from '../../scripts/local-cluster.js';
import type { GroupsView } from '../../src/groups-view.js';

/** GET /v1/groups from `node`, or undefined if it does not answer 200 within 5 s. */
export async function groupsOf(node: Pick<ClusterNode, 'url'>): Promise<GroupsView | undefined> {
  try {
    const response = await fetch(`${node.url}/v1/groups`, { signal: AbortSignal.timeout(5000) });
    return response.ok ? ((await response.json()) as GroupsView) : undefined;
  } catch {
    return undefined;
  }
}

/** POSTs `body` as JSON to `path` on `node`; throws with the status and answer unless it is 2xx. */
export async function postJson(node: Pick<ClusterNode, 'url'>, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${node.url}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(30_000),
  });
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
}
