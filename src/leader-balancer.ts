// Spreads the leaders of the raft groups over the nodes (HA and scaled mode): a node leading more than its share hands one group's leadership to the member leading the fewest.

/*
 * Each node decides for the groups it leads, from what it sees of the groups it runs: how
 * many groups each node leads, and how many nodes those groups have. Its share is the number
 * of groups over the number of nodes, rounded up. Every `intervalMs`, a node leading more
 * than its share picks one group it leads (the lowest id first) and transfers its leadership
 * to the voter of that group that leads the fewest groups, if that voter is up to date and
 * was heard from in the last election timeout, and leads at least two fewer than this node
 * (so a move always narrows the gap and two nodes never trade a group back and forth). One
 * transfer per interval per node: leaderships move one at a time while elections settle. No
 * step is taken while any group this node runs has no known leader.
 *
 * So once the cluster is stable no node leads more than its share + 1 of the groups it
 * sees, and a node that restarts (and so leads nothing) gets its share back within a few
 * intervals. Leadership transfer is raft's (§3.10): the group is unavailable for at most an
 * election timeout if the transferee fails meanwhile.
 */

import type { Logger } from '../net/index.js';
import type { RaftGroup } from './raft-group.js';
import type { Service } from './service.js';

export interface LeaderBalancerInit {
  /** This node's name. */
  readonly name: string;
  /** Every group this node runs, group 1 included. */
  readonly groups: ReadonlyMap<number, RaftGroup>;
  readonly intervalMs: number;
  /** False while the node is stopping or draining: no transfer is started then. */
  readonly active: () => boolean;
  readonly logger: Logger;
}

/** One transfer to start: group `group` to member `to`. */
export interface BalanceStep {
  readonly group: number;
  readonly to: string;
  /** Groups led by this node and by `to` before the step. */
  readonly mine: number;
  readonly theirs: number;
}

export class LeaderBalancer implements Service {
  readonly name = 'leader balancer';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly init: LeaderBalancerInit) {}

  async start(): Promise<void> {
    this.timer = setInterval(() => this.tick(), this.init.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round: at most one transfer started. Exposed for tests. */
  tick(): BalanceStep | undefined {
    if (!this.init.active()) return undefined;
    const step = planStep(this.init.name, this.init.groups);
    if (step === undefined) return undefined;
    const group = this.init.groups.get(step.group);
    const refused = group?.driver.transferLeadership(step.to);
    if (refused !== undefined) {
      this.init.logger.debug('leader.balance_refused', {
        group: step.group,
        to: step.to,
        reason: refused.code,
      });
      return undefined;
    }
    this.init.logger.info('leader.balance', { ...step });
    return step;
  }
}

/** The transfer one round starts, or undefined (see the header comment for the rules). */
export function planStep(name: string, groups: ReadonlyMap<number, RaftGroup>): BalanceStep | undefined {
  const led = new Map<string, number>();
  const nodes = new Set<string>();
  const mineList: RaftGroup[] = [];
  for (const group of groups.values()) {
    const status = group.driver.status();
    if (status.leader === '') return undefined;
    led.set(status.leader, (led.get(status.leader) ?? 0) + 1);
    for (const voter of status.membership.voters) nodes.add(voter);
    if (status.leader === name && status.leadTransferee === '') mineList.push(group);
  }
  const mine = led.get(name) ?? 0;
  const share = Math.ceil(groups.size / Math.max(1, nodes.size));
  if (mine <= share) return undefined;
  for (const group of mineList.sort((a, b) => a.id - b.id)) {
    const status = group.driver.status();
    const candidates = status.membership.voters
      .filter((voter) => voter !== name)
      .filter((voter) => {
        const progress = status.progress?.get(voter);
        return progress?.recentActive === true && progress.match >= status.commitIndex;
      })
      .map((voter) => ({ voter, count: led.get(voter) ?? 0 }))
      .sort((a, b) => a.count - b.count || (a.voter < b.voter ? -1 : 1));
    const best = candidates[0];
    if (best !== undefined && best.count + 2 <= mine) {
      return { group: group.id, to: best.voter, mine, theirs: best.count };
    }
  }
  return undefined;
}
