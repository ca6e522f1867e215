// On the leader: replaces a voter that stayed unreachable with a caught-up spare, and re-adds a replaced node as a spare when it comes back (raft/spare-policy.ts decides).

import type { Logger } from '../net/index.js';
import { decideSpareChange, MembershipChangeType, Role, type SpareDecision } from '../raft/index.js';
import { encodeMemberContext, encodePromotionContext } from '../storage/index.js';
import type { RaftGroup } from './raft-group.js';

export interface SpareKeeperInit {
  readonly name: string;
  readonly group: RaftGroup;
  readonly logger: Logger;
  /** When the leader last heard from each node (ms since epoch), by name. */
  readonly lastContact: ReadonlyMap<string, number>;
  /** A voter not heard from for this long is replaced (--spare-promote-after). */
  readonly promoteAfterMs: number;
  /** Heard from within this: live (the election timeout). */
  readonly liveWithinMs: number;
  readonly requestTimeoutMs: number;
  /** How often the leader looks. */
  readonly intervalMs: number;
}

/** A spare this many entries behind the commit index, or more, is not promoted. */
export const MAX_SPARE_LAG = 100;

/**
 * Runs the spare policy on this node whenever it leads, one proposal at a time. Silence is
 * counted from when this node began to lead at the latest (or woke from a pause its own timer
 * noticed): before that it knows nothing, so it waits a whole --spare-promote-after before
 * replacing anyone.
 */
export class SpareKeeper {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private leaderSince: number | undefined;
  /** When decide() last ran: a long gap means this process was paused (GC, a stopped VM). */
  private lastRun: number | undefined;
  private lastWhy = '';

  constructor(private readonly init: SpareKeeperInit) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.init.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** What the policy says now (for tests and status); undefined when this node does not lead. */
  decide(now = Date.now()): SpareDecision | undefined {
    const { group, lastContact } = this.init;
    const raft = group.driver.status();
    if (raft.role !== Role.Leader || raft.progress === undefined) {
      this.leaderSince = undefined;
      return undefined;
    }
    // After a pause, what was read on waking is old news: start watching again.
    const paused = this.lastRun !== undefined && now - this.lastRun > 3 * this.init.intervalMs;
    this.lastRun = now;
    if (this.leaderSince === undefined || paused) this.leaderSince = now;
    const since = this.leaderSince;
    const meta = group.storage.state.meta;
    const roles = meta.roles ?? {};
    const replaced = (meta.replaced ?? []).map((r) => r.name);
    const peers = new Map<string, { match: number; silentFor: number | undefined }>();
    for (const name of [...raft.membership.voters, ...raft.membership.learners, ...replaced]) {
      if (name === this.init.name) continue;
      // Contact from before this node led (as a follower it hears only the leader) says nothing.
      const heard = lastContact.get(name);
      peers.set(name, {
        match: raft.progress.get(name)?.match ?? 0,
        silentFor: heard === undefined || heard <= since ? undefined : now - heard,
      });
    }
    return decideSpareChange({
      leader: this.init.name,
      membership: raft.membership,
      spares: raft.membership.learners.filter((name) => roles[name] === 'spare'),
      replacing: meta.replacing,
      replaced,
      // Raft would refuse any change now (one in flight, a new leader's first commit, a
      // transfer), or the latest membership in the log is not applied to the state yet.
      changePending:
        raft.membershipChangeRefusal !== undefined || raft.membershipIndex > group.storage.state.appliedIndex,
      commitIndex: raft.commitIndex,
      peers,
      watchedFor: now - since,
      liveWithin: this.init.liveWithinMs,
      promoteAfter: this.init.promoteAfterMs,
      maxSpareLag: MAX_SPARE_LAG,
    });
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const decision = this.decide();
      if (decision === undefined) return;
      if (decision.kind === 'none') {
        if (decision.why !== this.lastWhy) this.init.logger.debug('spare.idle', { why: decision.why });
        this.lastWhy = decision.why;
        return;
      }
      this.lastWhy = '';
      await this.carryOut(decision);
    } finally {
      this.busy = false;
    }
  }

  private async carryOut(decision: Exclude<SpareDecision, { kind: 'none' }>): Promise<void> {
    const { driver, storage } = this.init.group;
    const { logger, requestTimeoutMs } = this.init;
    try {
      switch (decision.kind) {
        case 'promote':
          logger.warn('spare.promoting', {
            spare: decision.spare,
            replaces: decision.replaces,
            silentMs: this.silentMs(decision.replaces),
          });
          await driver.proposeMembershipChange(
            {
              type: MembershipChangeType.PromoteLearner,
              nodeId: decision.spare,
              context: encodePromotionContext(decision.replaces),
            },
            requestTimeoutMs,
          );
          logger.warn('spare.promoted', { spare: decision.spare, replaces: decision.replaces });
          return;
        case 'remove':
          logger.warn('spare.removing_replaced', { voter: decision.voter, replacedBy: decision.replacedBy });
          await driver.proposeMembershipChange(
            { type: MembershipChangeType.RemoveNode, nodeId: decision.voter },
            requestTimeoutMs,
          );
          logger.warn('spare.replaced', { voter: decision.voter, replacedBy: decision.replacedBy });
          return;
        case 'readd': {
          const address = storage.state.meta.replaced?.find((r) => r.name === decision.node)?.address ?? '';
          logger.warn('spare.readding', { node: decision.node, address });
          await driver.proposeMembershipChange(
            {
              type: MembershipChangeType.AddLearner,
              nodeId: decision.node,
              context: encodeMemberContext({ address, role: 'spare' }),
            },
            requestTimeoutMs,
          );
          logger.warn('spare.readded', { node: decision.node });
          return;
        }
      }
    } catch (error) {
      // Refused (leadership lost, a change raced in) or timed out: the next check looks again.
      const { code, message } = error as { code?: string; message?: string };
      logger.warn('spare.change_failed', { decision: decision.kind, code, error: message ?? String(error) });
    }
  }

  private silentMs(name: string): number | undefined {
    const heard = this.init.lastContact.get(name);
    return heard === undefined ? undefined : Date.now() - heard;
  }
}
