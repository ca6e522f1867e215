// When a leader replaces a dead voter with a caught-up spare, and re-adds the replaced node as a spare: a pure decision, run by the node and the simulator alike.

/*
 * A replacement is two single-server changes, one at a time: first the spare is promoted (the
 * promotion names the voter it replaces), then that voter is removed. Promoting first means the
 * voter count never drops below what it was: 3 -> 4 -> 3, never 3 -> 2 -> 3. The replicated state
 * remembers the replacement in progress, so a new leader finishes it, and remembers the nodes
 * replaced, so that one coming back is re-added as a spare instead of being told it was removed.
 *
 * The rules (what users of Consul's autopilot and etcd #15107 asked for):
 * - nothing while a membership change is pending: one change in flight at most;
 * - only a voter not heard from for `promoteAfter` is replaced; a slow voter still answers
 *   heartbeats and is never touched;
 * - only a spare heard from within `liveWithin` and at most `maxSpareLag` entries behind the
 *   commit index is promoted;
 * - a promotion needs a live majority of the voters after it, the spare counted; a removal a
 *   live majority of the voters left after it: never acting without a quorum of live voters;
 * - a removal only finishes a replacement: the voter count never shrinks below what it was.
 * Times are in the caller's unit (ticks in the simulator, milliseconds on a node).
 */

import type { Membership, NodeId } from './types.js';

/** A replacement whose promotion applied and whose removal has not. */
export interface Replacement {
  readonly spare: NodeId;
  readonly voter: NodeId;
}

export interface SparePolicyInput {
  /** The node deciding: it leads. */
  readonly leader: NodeId;
  /** The applied membership. */
  readonly membership: Membership;
  /** Learners whose role is spare. */
  readonly spares: readonly NodeId[];
  /** The replacement in progress, from the applied state, if any. */
  readonly replacing: Replacement | undefined;
  /** Nodes replaced earlier and not members now, to re-add as spares when they come back. */
  readonly replaced: readonly NodeId[];
  /** A membership change is proposed and not yet applied here. */
  readonly changePending: boolean;
  readonly commitIndex: number;
  /**
   * Per other node: its match index (0 if not a member) and how long since the leader heard
   * from it (undefined: not since it began to lead).
   */
  readonly peers: ReadonlyMap<NodeId, { readonly match: number; readonly silentFor: number | undefined }>;
  /**
   * How long the deciding node has led: it knows nothing of the time before, so no node has
   * been silent for longer than this as far as it can tell.
   */
  readonly watchedFor: number;
  /** Heard from within this: live. */
  readonly liveWithin: number;
  /** Not heard from for this long: a voter to replace. */
  readonly promoteAfter: number;
  /** A spare this many entries behind the commit index, or more, is not promoted. */
  readonly maxSpareLag: number;
}

export type SpareDecision =
  | { readonly kind: 'promote'; readonly spare: NodeId; readonly replaces: NodeId }
  | { readonly kind: 'remove'; readonly voter: NodeId; readonly replacedBy: NodeId }
  | { readonly kind: 'readd'; readonly node: NodeId }
  | { readonly kind: 'none'; readonly why: string };

/** What the leader should propose now, if anything. Deterministic: ties go by node id. */
export function decideSpareChange(input: SparePolicyInput): SpareDecision {
  if (input.changePending) return none('a membership change is pending');
  const { membership, leader } = input;
  const voters = membership.voters;
  if (!voters.includes(leader)) return none('the leader is not a voter');
  const live = (id: NodeId): boolean => {
    if (id === leader) return true;
    const silentFor = input.peers.get(id)?.silentFor;
    return silentFor !== undefined && silentFor <= input.liveWithin;
  };
  const silence = (id: NodeId): number =>
    Math.min(input.peers.get(id)?.silentFor ?? Number.POSITIVE_INFINITY, input.watchedFor);
  const liveCount = (ids: readonly NodeId[]): number => ids.filter(live).length;
  const majority = (n: number): number => Math.floor(n / 2) + 1;

  // Finish the replacement in progress: its spare is a voter, the replaced voter goes.
  const replacing = input.replacing;
  if (replacing && voters.includes(replacing.spare) && voters.includes(replacing.voter)) {
    if (replacing.voter === leader) return none('the voter being replaced leads: it should hand over');
    const after = voters.filter((id) => id !== replacing.voter);
    if (liveCount(after) < majority(after.length)) return none('no live quorum without the replaced voter');
    return { kind: 'remove', voter: replacing.voter, replacedBy: replacing.spare };
  }

  // A replaced node that is back: a spare again.
  const members = new Set([...voters, ...membership.learners]);
  const back = [...input.replaced].sort().find((id) => !members.has(id) && live(id));
  if (back !== undefined) return { kind: 'readd', node: back };

  // A dead voter and a caught-up spare that is live.
  const dead = voters
    .filter((id) => id !== leader)
    .map((id) => ({ id, silentFor: silence(id) }))
    .filter((v) => v.silentFor >= input.promoteAfter)
    .sort((a, b) => b.silentFor - a.silentFor || (a.id < b.id ? -1 : 1));
  if (dead.length === 0) return none('every voter answers');
  if (liveCount(voters) < majority(voters.length)) return none('no live quorum');
  const spare = [...input.spares]
    .sort()
    .find(
      (id) =>
        membership.learners.includes(id) &&
        live(id) &&
        input.commitIndex - (input.peers.get(id)?.match ?? 0) < input.maxSpareLag,
    );
  if (spare === undefined) return none('no live spare has caught up');
  // With a live majority of the voters and the spare live too, the voters after the promotion
  // have a live majority as well: majority(n + 1) <= majority(n) + 1.
  return { kind: 'promote', spare, replaces: dead[0]!.id };
}

function none(why: string): SpareDecision {
  return { kind: 'none', why };
}
