// Membership changes through the admin HTTP routes (add learner, promote, remove, leader transfer), each retried until the membership shows it done or a deadline passes.

import type { FaultCluster, Slot } from './cluster.js';

export interface MemberRole {
  readonly name: string;
  readonly role: 'voter' | 'learner' | 'spare' | 'satellite' | 'dr';
}

export interface AdminAnswer {
  readonly status: number;
  readonly body: { code?: string; reason?: string; message?: string } & Record<string, unknown>;
}

/** One admin request to `slot`; undefined when no answer came. */
export async function adminRequest(
  slot: Slot,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 5000,
): Promise<AdminAnswer | undefined> {
  try {
    const response = await fetch(`${slot.url}${path}`, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => ({}))) as AdminAnswer['body'],
    };
  } catch {
    return undefined;
  }
}

/** The members as the current leader lists them (status of the leader); undefined without a leader. */
export async function currentMembers(cluster: FaultCluster): Promise<MemberRole[] | undefined> {
  const leader = await cluster.leader();
  if (!leader) return undefined;
  const status = await cluster.status(leader);
  return status?.members.map((m) => ({ name: m.name, role: m.role }));
}

/**
 * Repeats `request` (sent to the leader, or any running member) until `done` holds for the
 * membership, or `deadlineMs` passes. Returns whether it is done, and the last refusal.
 */
export async function changeUntil(
  cluster: FaultCluster,
  done: (members: readonly MemberRole[]) => boolean,
  request: (via: Slot) => Promise<AdminAnswer | undefined>,
  deadlineMs: number,
): Promise<{ done: boolean; last: string }> {
  let last = 'not tried';
  let attempt = 0;
  while (Date.now() < deadlineMs) {
    const members = await currentMembers(cluster);
    if (members && done(members)) return { done: true, last };
    const running = cluster.members.filter((s) => cluster.running(s) && !s.paused);
    const via = (await cluster.leader()) ?? running[attempt++ % Math.max(1, running.length)];
    if (via) {
      const answer = await request(via);
      last = answer ? describe(answer) : 'no answer';
      if (answer?.status === 200) {
        // Applied on the leader; the next loop confirms it through the membership.
        continue;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const members = await currentMembers(cluster);
  return { done: members !== undefined && done(members), last };
}

/** An admin answer in one line: status, code, reason and the start of the message. */
function describe(answer: AdminAnswer): string {
  const { code, reason, message } = answer.body;
  return [String(answer.status), code, reason, message?.slice(0, 160)].filter(Boolean).join(' ');
}

export const has = (members: readonly MemberRole[], name: string, role?: MemberRole['role']): boolean =>
  members.some((m) => m.name === name && (role === undefined || m.role === role));

export function addLearner(cluster: FaultCluster, slot: Slot, deadlineMs: number) {
  return changeUntil(
    cluster,
    (m) => has(m, slot.name),
    (via) => adminRequest(via, 'POST', '/v1/members', { name: slot.name, peer: slot.peer }),
    deadlineMs,
  );
}

export function promote(cluster: FaultCluster, slot: Slot, deadlineMs: number) {
  return changeUntil(
    cluster,
    (m) => has(m, slot.name, 'voter'),
    (via) => adminRequest(via, 'POST', `/v1/members/${slot.name}/promote`),
    deadlineMs,
  );
}

export function remove(cluster: FaultCluster, slot: Slot, deadlineMs: number) {
  return changeUntil(
    cluster,
    (m) => !has(m, slot.name),
    (via) => adminRequest(via, 'DELETE', `/v1/members/${slot.name}`),
    deadlineMs,
  );
}

/** Asks for leadership to move to `to`; resolves with whether `to` leads afterwards. */
export async function transferLeadership(cluster: FaultCluster, to: Slot, deadlineMs: number) {
  let last = 'not tried';
  while (Date.now() < deadlineMs) {
    const leader = await cluster.leader();
    if (leader === to) return { done: true, last };
    if (leader) {
      const answer = await adminRequest(leader, 'POST', '/v1/leader/transfer', { to: to.name });
      last = answer ? describe(answer) : 'no answer';
      if (answer?.status === 200) return { done: true, last };
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { done: false, last };
}
