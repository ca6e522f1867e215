// The Figure 8 fault schedule (Raft paper §5.4.2): two leaders' entries diverge, the older returns and is cut off mid-catch-up, the newer returns.

import type { NodeId } from '../../raft/index.js';

/** What the schedule may do to the simulated cluster. */
export interface Figure8Host {
  /** Cuts every link to and from `id` (messages in flight on them are lost too). */
  isolate(id: NodeId): void;
  /** Restores every link to and from `id`. */
  reconnect(id: NodeId): void;
  /** Makes `id`'s election timer fire now (a timeout is random: any moment is a legal one). */
  campaign(id: NodeId): void;
  /** How many voters make a quorum in `id`'s membership. */
  quorum(id: NodeId): number;
  /** Proposes `count` writes at leader `id`, outside the checked keys (a client of its own). */
  write(id: NodeId, count: number): void;
  log(text: string): void;
}

type Phase =
  | { readonly name: 'idle' }
  /** The first leader is cut off at once: its new entries stay in its own log. */
  | { readonly name: 'first'; readonly first: NodeId; readonly since: number }
  /** The first is back; the second leader is cut off at once, its entries local too. */
  | { readonly name: 'return'; readonly first: NodeId; readonly second: NodeId; readonly since: number }
  /** The first leads again, catching followers up with its older entries, one Append at a time. */
  | {
      readonly name: 'catch-up';
      readonly first: NodeId;
      readonly second: NodeId;
      readonly since: number;
      /** Followers that acknowledged part of the first's log while it probed them. */
      readonly caughtUp: Set<NodeId>;
    }
  /** The first was cut off after one follower acknowledged part of its log; the second is back. */
  | { readonly name: 'swap'; readonly first: NodeId; readonly second: NodeId; readonly since: number };

/**
 * Drives the cluster through the paper's Figure 8, with the timing left to the simulation:
 * leader A is cut off as it is elected (its entries of term t stay local); the rest elect B,
 * cut off as it is elected (its entry at the same index, term t' > t, stays local); A returns
 * and leads term T, and as soon as a follower acknowledges part of A's old entries, A is cut
 * off; B returns. A raft that commits A's term-t entries by counting replicas has then
 * committed entries that B, elected with the votes of nodes lacking A's term-T entries,
 * overwrites. Any phase that does not progress within `patienceSteps` is abandoned.
 */
export class Figure8Schedule {
  private phase: Phase = { name: 'idle' };
  /** Rounds that reached the last phase. */
  completed = 0;

  constructor(
    private readonly host: Figure8Host,
    private readonly patienceSteps: number,
  ) {}

  /** `id` was just elected (before its first messages go out). */
  onLeader(id: NodeId, step: number): void {
    const phase = this.phase;
    switch (phase.name) {
      case 'idle':
        this.host.isolate(id);
        // Entries of its term after its no-op, so that catching a follower up takes several
        // Appends before the one that carries its next term's no-op.
        this.host.write(id, 3);
        this.phase = { name: 'first', first: id, since: step };
        this.host.log(`figure 8: ${id} leads, cut off at once`);
        return;
      case 'first':
        if (id === phase.first) return;
        this.host.isolate(id);
        this.host.reconnect(phase.first);
        this.host.campaign(phase.first);
        this.phase = { name: 'return', first: phase.first, second: id, since: step };
        this.host.log(`figure 8: ${id} leads, cut off at once; ${phase.first} is back`);
        return;
      case 'return':
        if (id === phase.first) {
          this.phase = { ...phase, name: 'catch-up', since: step, caughtUp: new Set() };
          this.host.log(`figure 8: ${id} leads again`);
        } else {
          this.abandon(`${id} leads instead of ${phase.first}`);
        }
        return;
      case 'catch-up':
      case 'swap':
        if (phase.name === 'swap') this.completed++;
        this.abandon(`${id} leads`);
        return;
    }
  }

  /**
   * Leader `id` just heard that `from`, a follower it was probing, holds part of its log. Once
   * enough have for the leader and them to be a quorum, the leader is cut off.
   */
  onCatchUpAck(id: NodeId, from: NodeId, step: number): void {
    const phase = this.phase;
    if (phase.name !== 'catch-up' || id !== phase.first) return;
    phase.caughtUp.add(from);
    if (phase.caughtUp.size + 1 < this.host.quorum(id)) return;
    this.host.isolate(phase.first);
    this.host.reconnect(phase.second);
    this.host.campaign(phase.second);
    this.phase = { name: 'swap', first: phase.first, second: phase.second, since: step };
    this.host.log(`figure 8: ${phase.first} cut off mid-catch-up; ${phase.second} is back`);
  }

  /** Gives up on a phase that has waited too long. */
  tick(step: number): void {
    if (this.phase.name !== 'idle' && step - this.phase.since > this.patienceSteps) this.abandon('timed out');
  }

  /** Ends any round in progress and restores the links it cut. */
  abandon(reason: string): void {
    const phase = this.phase;
    if (phase.name === 'idle') return;
    this.host.reconnect(phase.first);
    if (phase.name !== 'first') this.host.reconnect(phase.second);
    this.phase = { name: 'idle' };
    this.host.log(`figure 8: round over (${reason})`);
  }
}
