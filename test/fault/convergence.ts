// After the last heal: waits until every member holds the same state at the same applied index (stale reads on each node).

import type { NodeStatus } from '../../src/kv-service.js';
import type { FaultCluster, Slot } from './cluster.js';

export interface NodeState {
  readonly name: string;
  readonly appliedIndex: number;
  readonly commitIndex: number;
  readonly revision: number;
  readonly leader: string;
  readonly members: string;
  /** A digest-friendly listing of every document in the default realm. */
  readonly documents: string;
}

export interface Convergence {
  readonly converged: boolean;
  readonly elapsedMs: number;
  readonly appliedIndex: number;
  readonly revision: number;
  readonly documents: number;
  /** What each member said last (for the report when it did not converge). */
  readonly nodes: NodeState[];
  readonly detail: string;
}

/**
 * Converged: every member answers, names the same leader, has applied everything it knows to
 * be committed, all at one applied index and revision with one membership, and a stale listing
 * of the realm, taken between two status reads that agree, is identical on every member.
 */
export async function waitForConvergence(cluster: FaultCluster, timeoutMs: number): Promise<Convergence> {
  const started = Date.now();
  let last: NodeState[] = [];
  let detail = 'no attempt';
  while (Date.now() - started < timeoutMs) {
    const members = cluster.members;
    const states = await Promise.all(members.map((slot) => nodeState(cluster, slot)));
    if (states.every((s) => s !== undefined)) {
      last = states as NodeState[];
      detail = disagreement(last);
      if (detail === '') {
        return {
          converged: true,
          elapsedMs: Date.now() - started,
          appliedIndex: last[0]!.appliedIndex,
          revision: last[0]!.revision,
          documents: (JSON.parse(last[0]!.documents) as unknown[]).length,
          nodes: last,
          detail: '',
        };
      }
    } else {
      detail = `no answer from ${members
        .filter((_, i) => states[i] === undefined)
        .map((s) => s.name)
        .join(',')}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return {
    converged: false,
    elapsedMs: Date.now() - started,
    appliedIndex: -1,
    revision: -1,
    documents: -1,
    nodes: last,
    detail,
  };
}

function disagreement(states: readonly NodeState[]): string {
  const first = states[0]!;
  if (first.leader === '') return `${first.name} knows no leader`;
  for (const s of states) {
    if (s.appliedIndex !== s.commitIndex) return `${s.name} applied ${s.appliedIndex} of ${s.commitIndex}`;
    for (const field of ['leader', 'appliedIndex', 'revision', 'members', 'documents'] as const) {
      if (s[field] !== first[field]) {
        const show = (v: string | number) => String(v).slice(0, 200);
        return `${field}: ${first.name} has ${show(first[field])}, ${s.name} has ${show(s[field])}`;
      }
    }
  }
  return '';
}

/** One member's status and stale listing; undefined if it did not answer or moved meanwhile. */
async function nodeState(cluster: FaultCluster, slot: Slot): Promise<NodeState | undefined> {
  const before = await cluster.status(slot, 2000);
  if (!before) return undefined;
  const documents: unknown[] = [];
  let after: string | null = null;
  for (;;) {
    const query = `consistency=stale&limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    let page: { documents: unknown[]; more: boolean; next: string | null };
    try {
      const response = await fetch(`${slot.url}/v1/realms/default/kv?${query}`, {
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) return undefined;
      page = (await response.json()) as typeof page;
    } catch {
      return undefined;
    }
    documents.push(...page.documents);
    if (!page.more || page.next === null) break;
    after = page.next;
  }
  const again = await cluster.status(slot, 2000);
  if (!again || again.appliedIndex !== before.appliedIndex) return undefined;
  return {
    name: slot.name,
    appliedIndex: before.appliedIndex,
    commitIndex: before.commitIndex,
    revision: before.revision,
    leader: before.leader,
    members: membersOf(before),
    documents: JSON.stringify(documents),
  };
}

function membersOf(status: NodeStatus): string {
  return status.members
    .map((m) => `${m.name}:${m.role}`)
    .sort()
    .join(',');
}
