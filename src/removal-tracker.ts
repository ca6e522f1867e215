// A member's side of removal: telling non-members they are out, and stopping when this node itself is.

import type { Logger, Mesh } from '../net/index.js';
import type { RaftStatus } from '../raft/index.js';
import { decodePeerAnswer, encodePeerMessage } from './peer-protocol.js';
import {
  NodeRemovedError,
  provesRemoval,
  type RemovalNotice,
  type RemovedRecord,
  writeRemovedMarker,
} from './removal.js';

export interface RemovalTrackerInit {
  readonly name: string;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly mesh: Mesh | undefined;
  readonly logger: Logger;
  /** The raft group's status now (membership, its index, the commit index, the role). */
  readonly raftStatus: () => RaftStatus;
  /** Whether this node is stopping: it then neither tells nor listens. */
  readonly stopping: () => boolean;
  /**
   * Whether `name` was removed by a spare replacing it (the applied state's list): such a node
   * is re-added as a spare when it comes back, so it is never told it was removed, and this
   * node, if it is one, does not stop when it applies its own removal.
   */
  readonly replaced: (name: string) => boolean;
  /** Called once, after the marker was written, with the error the node's fatal listeners get. */
  readonly onRemoved: (error: NodeRemovedError) => void;
}

/**
 * Members tell a node that is outside their latest *committed* membership that it is not a
 * member (on its raft traffic at most once a second, when they identify it, and the leader
 * after applying its removal); the node decides with provesRemoval whether that proves it.
 */
export class RemovalTracker {
  /** Set once this node learns it was removed; it then serves nothing. */
  private removedRecord: RemovedRecord | undefined;
  /** Whether this node has been in an applied membership (a joiner before its addition has not). */
  private wasMember: boolean;
  /** Whether node.replaced was logged since this node was last a member. */
  private toldReplaced = false;
  /** When each peer's membership was last checked on its raft traffic (ms), by name. */
  private readonly checkedAt = new Map<string, number>();

  constructor(private readonly init: RemovalTrackerInit) {
    const { voters, learners } = init.raftStatus().membership;
    this.wasMember = voters.includes(init.name) || learners.includes(init.name);
  }

  /** The record of this node's removal, once it happened. */
  get removed(): RemovedRecord | undefined {
    return this.removedRecord;
  }

  /** Throws NodeRemovedError once this node was removed. */
  refuseIfRemoved(): void {
    if (this.removedRecord !== undefined) throw new NodeRemovedError(this.removedRecord);
  }

  /** A peer's raft traffic arrived: tell it if it is not a member (at most once a second per peer). */
  onRaftTraffic(peer: string, name: string, now: number): void {
    if (now - (this.checkedAt.get(name) ?? 0) < 1000) return;
    if (this.checkedAt.size > 10_000) this.checkedAt.clear();
    this.checkedAt.set(name, now);
    this.noticeIfNotMember(peer, name);
  }

  /** Tells `peer` (named `name`) that it is not a member, if this node's latest committed membership leaves it out. */
  noticeIfNotMember(peer: string, name: string): void {
    if (!this.init.mesh || this.init.stopping() || this.removedRecord !== undefined) return;
    const notice = this.noticeFor(name);
    if (notice !== undefined) void this.send(peer, name, notice);
  }

  /** The leader tells a member it just removed, a few times until it answers (it may not be connected). */
  async tellRemoved(peer: string, name: string): Promise<void> {
    for (let attempt = 0; attempt < 5 && !this.init.stopping(); attempt++) {
      const notice = this.noticeFor(name);
      if (notice === undefined || (await this.send(peer, name, notice))) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** After a membership entry applied: stop if it leaves this node, once a member, out. */
  onMembershipApplied(members: ReadonlySet<string>, appliedIndex: number): void {
    if (members.has(this.init.name)) {
      this.wasMember = true;
      this.toldReplaced = false;
    } else if (this.wasMember && this.init.replaced(this.init.name)) {
      // A spare took this node's place: the leader re-adds it as a spare; keep running.
      if (!this.toldReplaced) {
        this.init.logger.warn('node.replaced', {
          membershipIndex: appliedIndex,
          hint: 'a spare replaced this node while it was unreachable; the leader adds it back as a spare',
        });
      }
      this.toldReplaced = true;
    } else if (this.wasMember) void this.becomeRemoved(appliedIndex, 'self');
  }

  /** A member says this node is not in its membership: stop if that proves a removal. Answers whether it did. */
  consider(notice: RemovalNotice, by: string): boolean {
    if (this.removedRecord !== undefined) return true;
    if (this.init.stopping() || !provesRemoval(notice, this.init.name, this.init.raftStatus())) return false;
    void this.becomeRemoved(notice.membershipIndex, by);
    return true;
  }

  /** The notice for `name` if this node's latest membership leaves it out and is committed. */
  private noticeFor(name: string): RemovalNotice | undefined {
    const raft = this.init.raftStatus();
    const { voters, learners } = raft.membership;
    if (name === this.init.name || voters.includes(name) || learners.includes(name)) return undefined;
    if (this.init.replaced(name)) return undefined;
    // One still in flight may yet be undone.
    if (raft.membershipIndex > raft.commitIndex) return undefined;
    return { type: 'removed', membershipIndex: raft.membershipIndex, voters, learners };
  }

  /** Sends one notice; true once the peer answered (whatever it concluded). */
  private async send(peer: string, name: string, notice: RemovalNotice): Promise<boolean> {
    const { mesh, logger } = this.init;
    if (!mesh) return false;
    try {
      const answer = decodePeerAnswer<{ accepted?: unknown }>(
        await mesh.request(peer, encodePeerMessage(notice), { timeoutMs: 2000 }),
      );
      if (answer.accepted === true) {
        logger.info('peer.removal_told', { name, membershipIndex: notice.membershipIndex });
      }
      return true;
    } catch (error) {
      logger.debug('peer.removal_notice_failed', { name, error: (error as Error).message });
      return false;
    }
  }

  /**
   * This node is no longer a member: it says so in its log, refuses every request with
   * REMOVED, writes the marker that keeps it from starting again with this data directory, and
   * then reports a NodeRemovedError.
   */
  private async becomeRemoved(membershipIndex: number, by: string): Promise<void> {
    if (this.removedRecord !== undefined || this.init.stopping()) return;
    const record: RemovedRecord = {
      name: this.init.name,
      clusterId: this.init.clusterId,
      membershipIndex,
      by,
      at: new Date().toISOString(),
    };
    this.removedRecord = record;
    this.init.logger.error('node.removed', {
      ...record,
      hint: 'this node is no longer a member of its cluster; it stops serving and will not start again with this data directory',
    });
    try {
      await writeRemovedMarker(this.init.dataDir, record);
    } catch (error) {
      this.init.logger.error('node.removed_marker_failed', { error: (error as Error).message });
    }
    this.init.onRemoved(new NodeRemovedError(record));
  }
}
