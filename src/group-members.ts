// On the leader of a raft group besides group 1: brings the group's raft membership to the members group 1's catalog names, one change at a time.

/*
 * `conclave groups members add|remove` records in group 1's catalog who should run a group
 * (storage/group-catalog.ts changeGroupMember). The group's own log holds its raft membership,
 * and only the group's leader can change that. So each leader compares the two every few
 * ticks and takes one step (nextMembershipStep): a node the catalog adds becomes a learner (it
 * has created the group's storage empty and takes a snapshot), a learner that has caught up is
 * promoted, and a member the catalog removed is removed, or, when that is the leader itself,
 * it first hands leadership to a member that stays. The node that left deletes its copy once
 * the removal is committed (group-host.ts). Each step is one raft membership change, so the
 * usual overlap rules make it safe; a step raft refuses for now (a change pending, a learner
 * behind, a new leader without an entry in its term) is tried again at the next round.
 *
 * The catalog this node has applied may be behind group 1's leader: a step it takes from an
 * older catalog is undone by a later round (the catalog never readds a node that left).
 */

import type { Logger } from '../net/index.js';
import { MembershipChangeType, RaftError, Role } from '../raft/index.js';
import {
  type CommandResult,
  currentMembers,
  encodeMemberContext,
  GROUP_MEMBERS_MAX,
  type GroupCatalog,
  groupMembers,
  type Operation,
  pickMembers,
} from '../storage/index.js';
import type { RaftGroup } from './raft-group.js';

/** One raft membership change (or leadership move) toward the catalog's members. */
export type MembershipStep =
  | { readonly kind: 'addLearner'; readonly node: string }
  | { readonly kind: 'promote'; readonly node: string }
  | { readonly kind: 'remove'; readonly node: string }
  | { readonly kind: 'transfer'; readonly node: string };

/** What the leader knows of its group: raft's latest membership (applied or not) and each follower's progress. */
export interface LeaderView {
  readonly self: string;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly commitIndex: number;
  /** Highest log index known to be held by each member (absent: unknown). */
  readonly match: ReadonlyMap<string, number>;
}

/**
 * The next step from `view` toward `desired` (the catalog's members) and `observers` (group 1's
 * satellites and DR replicas, learners of every group, never promoted), or undefined when they
 * agree or no step can be taken now. Order: add missing nodes as learners; promote a desired
 * learner that holds everything committed; remove a member that is neither (a voter only if a
 * voter stays); for the leader itself, hand leadership to the most advanced voter that stays
 * first. Pure.
 */
export function nextMembershipStep(
  view: LeaderView,
  desired: readonly string[],
  observers: readonly string[] = [],
): MembershipStep | undefined {
  const inRaft = new Set([...view.voters, ...view.learners]);
  const wanted = new Set(desired);
  const watching = new Set(observers.filter((o) => !wanted.has(o)));
  for (const node of [...desired, ...watching]) if (!inRaft.has(node)) return { kind: 'addLearner', node };
  for (const node of view.learners) {
    if (wanted.has(node) && (view.match.get(node) ?? 0) >= view.commitIndex) return { kind: 'promote', node };
  }
  for (const node of [...view.learners, ...view.voters]) {
    if (wanted.has(node) || (watching.has(node) && view.learners.includes(node))) continue;
    if (node !== view.self) {
      const votersLeft = view.voters.filter((v) => v !== node);
      if (votersLeft.length > 0) return { kind: 'remove', node };
      continue;
    }
    const heir = view.voters
      .filter((v) => v !== view.self && wanted.has(v))
      .sort((a, b) => (view.match.get(b) ?? 0) - (view.match.get(a) ?? 0) || (a < b ? -1 : 1))[0];
    if (heir !== undefined) return { kind: 'transfer', node: heir };
  }
  return undefined;
}

export interface GroupMembershipKeeperInit {
  /** This node's name. */
  readonly name: string;
  /** The groups this node runs (group 1 among them: never touched here). */
  readonly groups: ReadonlyMap<number, RaftGroup>;
  /** Group 1's applied state: its catalog and address book. */
  readonly main: () => RaftGroup;
  /** Proposes a group 1 operation on this node, which leads group 1 (MemberKv.proposeHere). */
  readonly proposeInFirstGroup: (op: Operation) => Promise<CommandResult>;
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
}

/**
 * For the leader of group 1: a group member that is no longer a member of group 1 (a spare
 * replaced it) and who takes its place: the voter of group 1 outside the group in the fewest
 * groups, or none (the member is only dropped). Undefined when every group's members are
 * members of group 1. Pure.
 */
export function nextCatalogRepair(
  catalog: GroupCatalog,
  firstGroup: { readonly voters: readonly string[]; readonly learners: readonly string[] },
): { readonly group: number; readonly gone: string; readonly replacement?: string } | undefined {
  const inFirst = new Set([...firstGroup.voters, ...firstGroup.learners]);
  for (const record of catalog.groups) {
    const members = currentMembers(record);
    const gone = members.find((m) => !inFirst.has(m));
    if (gone === undefined) continue;
    const outside = firstGroup.voters.filter((v) => !members.includes(v) && !(record.left ?? []).includes(v));
    const replacement = members.length < GROUP_MEMBERS_MAX ? pickMembers(catalog, outside, 1)[0] : undefined;
    return { group: record.id, gone, ...(replacement === undefined ? {} : { replacement }) };
  }
  return undefined;
}

/** Raft's refusals that pass with time: tried again at the next round, logged at debug level only. */
const PASSING: ReadonlySet<string> = new Set([
  'MEMBERSHIP_CHANGE_PENDING',
  'NO_COMMITTED_ENTRY_IN_TERM',
  'LEARNER_NOT_CAUGHT_UP',
  'NOT_LEADER',
  'NO_LEADER',
  'TRANSFER_IN_PROGRESS',
  'UNCOMMITTED_LIMIT',
  'TIMEOUT',
]);

/**
 * Runs nextMembershipStep for every group this node leads, one step per group per round(),
 * never two at once for the same group. round() returns at once; the steps run in the
 * background, and a failure is logged, never thrown.
 */
export class GroupMembershipKeeper {
  private readonly busy = new Set<number>();
  private repairing = false;
  private lastRepairProblem = '';
  private readonly lastStepProblem = new Map<number, string>();

  constructor(private readonly init: GroupMembershipKeeperInit) {}

  round(): void {
    const main = this.init.main();
    const catalog = main.storage.state.groups;
    if (!this.repairing && main.driver.status().role === Role.Leader) {
      const repair = nextCatalogRepair(catalog, main.storage.state.membership);
      if (repair !== undefined) {
        this.repairing = true;
        void this.repair(repair).finally(() => {
          this.repairing = false;
        });
      }
    }
    // Satellites and DR replicas of group 1 learn every group (group-host.ts runs them there).
    const roles = main.storage.state.meta.roles ?? {};
    const observers = main.storage.state.membership.learners.filter(
      (name) => roles[name] === 'satellite' || roles[name] === 'dr',
    );
    for (const [id, group] of this.init.groups) {
      if (id === 1 || this.busy.has(id)) continue;
      if (!catalog.groups.some((g) => g.id === id)) continue;
      const raft = group.driver.status();
      if (raft.role !== Role.Leader || raft.progress === undefined) continue;
      const match = new Map<string, number>();
      for (const [node, progress] of raft.progress) match.set(node, progress.match);
      const step = nextMembershipStep(
        {
          self: this.init.name,
          voters: raft.membership.voters,
          learners: raft.membership.learners,
          commitIndex: raft.commitIndex,
          match,
        },
        groupMembers(catalog, id),
        observers,
      );
      if (step === undefined) continue;
      this.busy.add(id);
      void this.take(group, step).finally(() => this.busy.delete(id));
    }
  }

  /**
   * Adds the replacement to the group in group 1's catalog, then removes the member that is
   * gone (one after the other: a leader that fails between them leaves the group one member
   * larger, never smaller, and the next round removes the gone member after adding another).
   */
  private async repair(repair: { group: number; gone: string; replacement?: string }): Promise<void> {
    const fields = { group: repair.group, gone: repair.gone, replacement: repair.replacement ?? null };
    try {
      for (const [node, change] of [
        ...(repair.replacement === undefined ? [] : [[repair.replacement, 'add'] as const]),
        [repair.gone, 'remove'] as const,
      ]) {
        const result = await this.init.proposeInFirstGroup({
          type: 'groupMember',
          group: repair.group,
          node,
          change,
        });
        if (!result.ok) throw Object.assign(new Error(result.error.message), { code: result.error.code });
      }
      this.init.logger.warn('group.member_replaced', {
        ...fields,
        detail: 'the member is no longer in the cluster (a spare replaced it)',
      });
      this.lastRepairProblem = '';
    } catch (error) {
      // Tried again every round: said once until it changes.
      const problem = `${repair.group} ${repair.gone} ${(error as Error).message}`;
      if (problem === this.lastRepairProblem) return;
      this.lastRepairProblem = problem;
      this.init.logger.warn('group.member_replace_failed', { ...fields, error: (error as Error).message });
    }
  }

  private async take(group: RaftGroup, step: MembershipStep): Promise<void> {
    const { driver } = group;
    const timeoutMs = this.init.requestTimeoutMs;
    const fields = { group: group.id, step: step.kind, member: step.node };
    try {
      switch (step.kind) {
        case 'addLearner': {
          const meta = this.init.main().storage.state.meta;
          const address = meta.addresses?.[step.node] ?? '';
          const role = meta.roles?.[step.node];
          await driver.proposeMembershipChange(
            {
              type: MembershipChangeType.AddLearner,
              nodeId: step.node,
              // A satellite or DR replica keeps its role in every group (it is never promoted).
              context: encodeMemberContext({
                address,
                role: role === 'satellite' || role === 'dr' ? role : 'learner',
              }),
            },
            timeoutMs,
          );
          break;
        }
        case 'promote':
          await driver.proposeMembershipChange(
            { type: MembershipChangeType.PromoteLearner, nodeId: step.node },
            timeoutMs,
          );
          break;
        case 'remove':
          await driver.proposeMembershipChange(
            { type: MembershipChangeType.RemoveNode, nodeId: step.node },
            timeoutMs,
          );
          break;
        case 'transfer': {
          const refused = driver.transferLeadership(step.node);
          if (refused) throw refused;
          break;
        }
      }
      this.lastStepProblem.delete(group.id);
      this.init.logger.info('group.membership_step', fields);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if ((error instanceof RaftError || typeof code === 'string') && PASSING.has(String(code))) {
        this.init.logger.debug('group.membership_step_later', { ...fields, reason: String(code) });
        return;
      }
      const problem = `${step.kind} ${step.node} ${(error as Error).message}`;
      if (this.lastStepProblem.get(group.id) === problem) return; // Said once until it changes.
      this.lastStepProblem.set(group.id, problem);
      this.init.logger.warn('group.membership_step_failed', {
        ...fields,
        error: (error as Error).message,
        ...(typeof code === 'string' ? { code } : {}),
      });
    }
  }
}
