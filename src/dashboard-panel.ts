// One node's part of the dashboard: its raft view, the leader's view of each member, its requests per second, its connections and the leader changes it saw.

import type { ActivitySample } from './activity-series.js';
import type { NodeStatus } from './kv-service.js';
import type { NodeMetrics } from './metrics.js';
import type { LeaderChange } from './raft-driver.js';

/** A member as the serving node sees it; match, lag and last contact only from the leader. */
export interface MemberView {
  readonly name: string;
  readonly role: string;
  readonly match?: number;
  /** The leader's commit index minus the member's match index (at least 0). */
  readonly lagEntries?: number;
  /** Milliseconds since the leader last heard from it (null: never). */
  readonly lastContactMs?: number | null;
  /** Replication state (probe, replicate, snapshot). */
  readonly state?: string;
}

/**
 * What one node shows of itself: its status's raft fields (NodeStatus, kv-service.ts; `role` is
 * voter, a learner role, none or proxy; `state` the raft state or proxy), then the dashboard's.
 */
export interface NodePanel
  extends Pick<
    NodeStatus,
    | 'name'
    | 'role'
    | 'state'
    | 'leader'
    | 'term'
    | 'commitIndex'
    | 'appliedIndex'
    | 'revision'
    | 'member'
    | 'backups'
  > {
  /** When the panel was made, ms since the epoch (the node's clock). */
  readonly at: number;
  readonly members: readonly MemberView[];
  /** Closed seconds of requests after the asked `since`, oldest first. */
  readonly activity: readonly ActivitySample[];
  readonly wsConnections: number | null;
  /** HTTP requests taken and not yet answered. */
  readonly httpInFlight: number | null;
  readonly watches: number | null;
  readonly sessions: number | null;
  readonly leaderChanges: readonly LeaderChange[];
}

/** What a panel is made from: the node's status and metrics, and its raft side if a member. */
export interface PanelSources {
  readonly status: () => NodeStatus;
  readonly metrics: NodeMetrics;
  readonly raft?: {
    readonly lastContactMs: (member: string) => number | undefined;
    readonly recentLeaders: () => readonly LeaderChange[];
  };
}

/** The panel of this node, with the seconds of activity after `since` (ms since the epoch). */
export function nodePanel(sources: PanelSources, since: number): NodePanel {
  const status = sources.status();
  const raftSource = sources.metrics.sources.raft;
  const edge = sources.metrics.sources.edge?.();
  const leading = status.state === 'leader';
  const members: MemberView[] = status.members.map((member) => {
    if (!leading || member.match === undefined) return { name: member.name, role: member.role };
    const contact = sources.raft?.lastContactMs(member.name);
    return {
      name: member.name,
      role: member.role,
      match: member.match,
      lagEntries: Math.max(0, status.commitIndex - member.match),
      lastContactMs: contact ?? null,
      ...(member.state === undefined ? {} : { state: member.state }),
    };
  });
  return {
    name: status.name,
    role: status.role,
    state: status.state,
    leader: status.leader,
    term: status.term,
    commitIndex: status.commitIndex,
    appliedIndex: status.appliedIndex,
    revision: status.revision,
    at: Date.now(),
    members,
    activity: sources.metrics.activity.since(since),
    wsConnections: edge === undefined ? null : edge.wsOpened - edge.wsClosed,
    httpInFlight: sources.metrics.sources.httpInFlight?.() ?? null,
    watches: raftSource === undefined ? null : raftSource.watches(),
    sessions: raftSource === undefined ? null : raftSource.sessions(),
    leaderChanges: sources.raft?.recentLeaders() ?? [],
    ...(status.backups === undefined ? {} : { backups: status.backups }),
    ...(status.member === undefined ? {} : { member: status.member }),
  };
}
