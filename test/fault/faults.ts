// The nemesis's fault kinds: how each one is applied to the running cluster and how it is healed.

import { readFileSync } from 'node:fs';
import type { FaultCluster, Slot } from './cluster.js';
import { addLearner, currentMembers, promote, remove, transferLeadership } from './membership.js';
import type { FaultNetwork, NetNode } from './network.js';
import type { Prng } from './prng.js';

export const FAULT_KINDS = [
  'isolate-leader',
  'isolate-follower',
  'leader-deaf',
  'leader-mute',
  'link-down',
  'split',
  'kill-restart',
  'pause',
  'kill-all',
  'member-replace',
  'leader-transfer',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultContext {
  readonly cluster: FaultCluster;
  readonly network: FaultNetwork;
  readonly prng: Prng;
}

/** A fault in force: what was done, how to see that it still holds, and how to undo it (a no-op for membership changes). */
export interface AppliedFault {
  readonly kind: FaultKind;
  readonly detail: string;
  /** Undefined while the fault is in force (or, for a membership change, when it was carried out); else what is wrong. */
  check(): string | undefined;
  heal(): Promise<void>;
}

/** How long a membership change (all its steps) may take before the nemesis gives up on it. */
const MEMBERSHIP_DEADLINE_MS = 45_000;
const LEADER_WAIT_MS = 10_000;

const noHeal = async (): Promise<void> => {};

/** Whether `slot`'s process is stopped (state T in /proc). */
function stopped(slot: Slot): boolean {
  const pid = slot.child?.pid;
  if (pid === undefined) return false;
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .startsWith('T');
  } catch {
    return false;
  }
}

/** Applies `kind`; returns the reason when it could not be applied now (e.g. no leader). */
export async function applyFault(kind: FaultKind, ctx: FaultContext): Promise<AppliedFault | string> {
  const { cluster, network, prng } = ctx;
  const healNetwork = async (): Promise<void> => network.healAll();
  const running = cluster.members.filter((s) => cluster.running(s));
  const others = (slot: Slot) => network.nodes.filter((n) => n !== slot.net);
  const rulesIn = (nodes: readonly NetNode[]) => () => {
    const bare = nodes.filter((n) => network.ruleCount(n) === 0);
    return bare.length === 0 ? undefined : `no rules in ${bare.map((n) => n.ns).join(',')}`;
  };
  switch (kind) {
    case 'isolate-leader': {
      const leader = await cluster.waitForLeader(LEADER_WAIT_MS);
      if (!leader) return 'no leader';
      network.partition([leader.net], others(leader));
      return {
        kind,
        detail: `${leader.name} (leader) cut off`,
        check: rulesIn(network.nodes),
        heal: healNetwork,
      };
    }
    case 'isolate-follower': {
      const leader = await cluster.waitForLeader(LEADER_WAIT_MS);
      const followers = running.filter((s) => s !== leader);
      if (followers.length === 0) return 'no follower';
      const target = prng.pick(followers);
      network.partition([target.net], others(target));
      return { kind, detail: `${target.name} cut off`, check: rulesIn(network.nodes), heal: healNetwork };
    }
    case 'leader-deaf': {
      const leader = await cluster.waitForLeader(LEADER_WAIT_MS);
      if (!leader) return 'no leader';
      network.setRules(leader.net, { from: others(leader) });
      return {
        kind,
        detail: `${leader.name} (leader) hears nobody`,
        check: rulesIn([leader.net]),
        heal: healNetwork,
      };
    }
    case 'leader-mute': {
      const leader = await cluster.waitForLeader(LEADER_WAIT_MS);
      if (!leader) return 'no leader';
      network.setRules(leader.net, { to: others(leader) });
      return {
        kind,
        detail: `nobody hears ${leader.name} (leader)`,
        check: rulesIn([leader.net]),
        heal: healNetwork,
      };
    }
    case 'link-down': {
      const target = prng.pick(running);
      network.linkDown(target.net);
      return {
        kind,
        detail: `${target.name} link down`,
        check: () => (network.linkIsUp(target.net) ? `${target.net.veth} is up` : undefined),
        heal: async () => network.linkUp(target.net),
      };
    }
    case 'split': {
      const shuffled = prng.shuffle(cluster.members);
      const minority = shuffled.slice(0, Math.floor(shuffled.length / 2));
      const majority = network.nodes.filter((n) => !minority.some((s) => s.net === n));
      network.partition(
        minority.map((s) => s.net),
        majority,
      );
      const rest = shuffled.slice(minority.length);
      return {
        kind,
        detail: `${minority.map((s) => s.name).join(',')} | ${rest.map((s) => s.name).join(',')}`,
        check: rulesIn(network.nodes),
        heal: healNetwork,
      };
    }
    case 'kill-restart': {
      const target = prng.pick(running);
      const leader = await cluster.leader();
      await cluster.kill(target);
      return {
        kind,
        detail: `kill -9 ${target.name}${target === leader ? ' (leader)' : ''}`,
        check: () => (cluster.running(target) ? `${target.name} runs` : undefined),
        heal: async () => cluster.start(target),
      };
    }
    case 'pause': {
      const target = prng.pick(running);
      const leader = await cluster.leader();
      cluster.pause(target);
      return {
        kind,
        detail: `SIGSTOP ${target.name}${target === leader ? ' (leader)' : ''}`,
        check: () => (stopped(target) ? undefined : `${target.name} is not stopped`),
        heal: async () => cluster.resume(target),
      };
    }
    case 'kill-all': {
      const targets = cluster.members;
      await Promise.all(targets.map((s) => cluster.kill(s)));
      return {
        kind,
        detail: `kill -9 ${targets.map((s) => s.name).join(',')}`,
        check: () => {
          const alive = targets.filter((s) => cluster.running(s));
          return alive.length === 0 ? undefined : `${alive.map((s) => s.name).join(',')} run`;
        },
        heal: async () => {
          for (const slot of targets) cluster.start(slot);
        },
      };
    }
    case 'member-replace': {
      const { detail, done } = await replaceMember(ctx);
      return { kind, detail, check: () => (done ? undefined : 'not carried out'), heal: noHeal };
    }
    case 'leader-transfer': {
      const leader = await cluster.waitForLeader(LEADER_WAIT_MS);
      if (!leader) return 'no leader';
      const status = await cluster.status(leader);
      const voters = new Set(status?.members.filter((m) => m.role === 'voter').map((m) => m.name));
      const candidates = running.filter((s) => s !== leader && voters.has(s.name));
      if (candidates.length === 0) return 'no voter to transfer to';
      const to = prng.pick(candidates);
      const moved = await transferLeadership(cluster, to, Date.now() + MEMBERSHIP_DEADLINE_MS);
      return {
        kind,
        detail: `${leader.name} -> ${to.name}: ${moved.done ? 'done' : `not done (${moved.last})`}`,
        check: () => (moved.done ? undefined : 'not carried out'),
        heal: noHeal,
      };
    }
  }
}

/**
 * Brings a new voter in and takes one out: a learner left over from an earlier change is
 * promoted, or else a spare slot is wiped, started with --join, added as a learner and
 * promoted; then the leader (half the time) or a follower is removed, killed and becomes the
 * spare. The same names come back later with fresh data (remove and re-add).
 */
async function replaceMember(ctx: FaultContext): Promise<{ detail: string; done: boolean }> {
  const { cluster, prng } = ctx;
  const started = Date.now();
  const deadline = started + MEMBERSHIP_DEADLINE_MS;
  const steps: string[] = [];
  const took = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const members = await currentMembers(cluster);
  if (!members) return { detail: 'no leader', done: false };
  const learner = members.find((m) => m.role === 'learner');
  let incoming = learner ? cluster.slots.find((s) => s.name === learner.name) : undefined;
  if (!incoming) {
    incoming = cluster.slots.find((s) => !s.member);
    if (!incoming) return { detail: 'no spare slot', done: false };
    await cluster.wipe(incoming);
    cluster.start(incoming);
    const added = await addLearner(cluster, incoming, deadline);
    steps.push(`add ${incoming.name}: ${added.done ? 'ok' : added.last} at ${took()}`);
    if (!added.done) return { detail: await settle(cluster, steps), done: false };
    incoming.member = true;
  }
  const promoted = await promote(cluster, incoming, deadline);
  steps.push(`promote ${incoming.name}: ${promoted.done ? 'ok' : promoted.last} at ${took()}`);
  if (!promoted.done) return { detail: await settle(cluster, steps), done: false };
  const leader = await cluster.leader();
  const voters = cluster.members.filter((s) => s !== incoming);
  const victim = leader && prng.next() < 0.5 ? leader : prng.pick(voters.filter((s) => s !== leader));
  const removed = await remove(cluster, victim, deadline);
  steps.push(
    `remove ${victim.name}${victim === leader ? ' (leader)' : ''}: ${removed.done ? 'ok' : removed.last}`,
  );
  return { detail: await settle(cluster, steps), done: removed.done };
}

/** Makes the slots agree with the membership: a slot no longer a member is killed and becomes a spare. */
export async function settle(cluster: FaultCluster, steps: string[] = []): Promise<string> {
  await cluster.waitForLeader(LEADER_WAIT_MS);
  const members = await currentMembers(cluster);
  if (members) {
    for (const slot of cluster.slots) {
      slot.member = members.some((m) => m.name === slot.name);
      if (!slot.member) await cluster.kill(slot);
    }
  }
  return steps.join('; ');
}
