// What `conclave groups list` shows: each raft group's members, leader, term, realms and lag, merged from what every member reports of the groups it runs.

import { currentMembers, type GroupCatalog } from '../storage/index.js';
import type { RaftGroup } from './raft-group.js';

/** One group as one node runs it (the answer to a peer's `groups` request). */
export interface LocalGroupStatus {
  readonly id: number;
  /** leader, follower, candidate, pre-candidate. */
  readonly role: string;
  /** Who this node believes leads ('' if nobody it knows of). */
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** The realms in the group's state, in name order. */
  readonly realms: readonly string[];
  /** Idle and quiesced here: no ticks, no heartbeats (absent from older builds). */
  readonly quiesced?: boolean;
}

/** What one node reported, or why it did not. */
export interface NodeReport {
  readonly node: string;
  readonly groups?: readonly LocalGroupStatus[];
  readonly error?: string;
}

export interface GroupView {
  readonly id: number;
  /** The voters as the leader (or, without one, the most advanced member) sees them; the catalog's members if no member answered. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** '' while no member that answered knows a leader. */
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly realms: readonly string[];
  /** Per member that answered: entries it has not applied of the commit index shown. */
  readonly lag: Readonly<Record<string, number>>;
  /** Members (per the catalog) that did not answer or do not run the group (yet). */
  readonly missing: readonly string[];
  /** The leader (or the member shown) reports the group quiesced: idle, sending no heartbeats. */
  readonly quiesced: boolean;
}

export interface GroupsView {
  readonly groups: readonly GroupView[];
  /** Nodes that were asked and did not answer, with why. */
  readonly unreachable: Readonly<Record<string, string>>;
  /** With `?detail=true`: what each node reported of the groups it runs (for diagnosis). */
  readonly reports?: readonly NodeReport[];
}

/** The status of every group `groups` holds, in id order. */
export function localGroupStatuses(groups: ReadonlyMap<number, RaftGroup>): LocalGroupStatus[] {
  return [...groups.values()]
    .sort((a, b) => a.id - b.id)
    .map((group) => {
      const raft = group.driver.status();
      const state = group.storage.state;
      return {
        id: group.id,
        role: raft.role,
        leader: raft.leader,
        term: raft.term,
        commitIndex: raft.commitIndex,
        appliedIndex: state.appliedIndex,
        voters: state.membership.voters,
        learners: state.membership.learners,
        realms: state.realms(),
        quiesced: raft.quiesced,
      };
    });
}

/**
 * One view per group (group 1 and every group of the catalog), from the members' reports: the
 * leader's own report where it answered (its term, commit index and membership), else the
 * member with the highest term and commit index. Deterministic for the same inputs.
 */
export function mergeGroupViews(
  catalog: GroupCatalog,
  firstGroupVoters: readonly string[],
  reports: readonly NodeReport[],
): GroupsView {
  const byGroup = new Map<number, { node: string; status: LocalGroupStatus }[]>();
  const unreachable: Record<string, string> = {};
  for (const report of reports) {
    if (report.groups === undefined) {
      unreachable[report.node] = report.error ?? 'no answer';
      continue;
    }
    for (const status of report.groups) {
      const list = byGroup.get(status.id) ?? [];
      list.push({ node: report.node, status });
      byGroup.set(status.id, list);
    }
  }
  const expected = new Map<number, readonly string[]>([[1, firstGroupVoters]]);
  for (const record of catalog.groups) expected.set(record.id, currentMembers(record));
  for (const id of byGroup.keys()) if (!expected.has(id)) expected.set(id, []);
  const groups = [...expected.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, members]): GroupView => {
      const seen = byGroup.get(id) ?? [];
      const best =
        seen.find((s) => s.status.role === 'leader') ??
        [...seen].sort(
          (a, b) =>
            b.status.term - a.status.term ||
            b.status.commitIndex - a.status.commitIndex ||
            (a.node < b.node ? -1 : 1),
        )[0];
      const commitIndex = best?.status.commitIndex ?? 0;
      const lag: Record<string, number> = {};
      for (const s of seen) lag[s.node] = Math.max(0, commitIndex - s.status.appliedIndex);
      const answered = new Set(seen.map((s) => s.node));
      return {
        id,
        voters: best?.status.voters ?? members,
        learners: best?.status.learners ?? [],
        leader: best?.status.role === 'leader' ? best.node : (best?.status.leader ?? ''),
        term: best?.status.term ?? 0,
        commitIndex,
        realms: best?.status.realms ?? [],
        lag,
        missing: members.filter((m) => !answered.has(m)),
        quiesced: best?.status.quiesced === true,
      };
    });
  return { groups, unreachable };
}
