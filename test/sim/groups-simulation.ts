// Several raft groups on the same simulated processes over one network (issue 20): a process's crash, pause or cut link hits every group on it; each group is checked on its own.

/*
 * What this adds to simulation.ts (one group, with clients and a linearizability check): the
 * shape of a node that runs many groups. Processes n1..nP each run a member of several groups;
 * the groups' messages share one network (one set of links that partitions and clogs cut for
 * all of them), a crash or pause stops every group of the process at once, and the groups change
 * their memberships and move their leaders independently, at the same time. Each group has its
 * own safety checker (election safety, log matching, leader completeness, state machine safety),
 * and every applied command must belong to the group applying it (a message or entry crossing
 * groups is a violation). After the faults, every group must elect and commit within the bound.
 */

import {
  type Entry,
  EntryType,
  type Membership,
  MembershipChangeType,
  type Message,
  MessageType,
  type NodeId,
  SeededPrng,
} from '../../raft/index.js';
import { SafetyChecker } from './checkers.js';
import { decodeCommand, encodeCommand } from './kv.js';
import { SimNetwork } from './network.js';
import { SimNode, type SimRaftOptions } from './node.js';
import type { SimulationResult } from './simulation.js';

const STEPS_PER_TICK = 10;

export interface GroupsSimulationOptions {
  seed: number;
  steps: number;
  livenessTicks: number;
  verbose: boolean;
}

export const GROUPS_SIMULATION_DEFAULTS: Omit<GroupsSimulationOptions, 'seed'> = {
  steps: 6000,
  livenessTicks: 300,
  verbose: false,
};

export function runGroupsSimulation(
  input: Partial<GroupsSimulationOptions> & { seed: number },
): SimulationResult {
  return new GroupsSimulation({ ...GROUPS_SIMULATION_DEFAULTS, ...input }).run();
}

interface SimGroup {
  readonly id: number;
  /** One member per process that is or was in the group. */
  readonly nodes: Map<NodeId, SimNode>;
  readonly checker: SafetyChecker;
  /** Processes removed from the group: never added again (a removed node's data is done). */
  readonly removed: Set<NodeId>;
}

class GroupsSimulation {
  private readonly prng: SeededPrng;
  private readonly network: SimNetwork;
  private readonly processes: NodeId[];
  private readonly groups: SimGroup[] = [];
  private readonly raftOptions: SimRaftOptions;
  /** Which group sent each message in flight (the network carries raft's messages as they are). */
  private readonly groupOf = new WeakMap<Message, number>();
  private readonly restartAt = new Map<NodeId, number>();
  private readonly violations: string[] = [];
  private step = 0;
  private nextOp = 1;
  private faultsOn = true;
  private readonly persistDelayMax: number;
  private readonly rates: Record<
    | 'crash'
    | 'flashCrash'
    | 'pause'
    | 'partition'
    | 'clog'
    | 'heal'
    | 'membership'
    | 'transfer'
    | 'snapshot'
    | 'write',
    number
  >;
  private readonly stats: Record<string, number> = {
    crashes: 0,
    flashCrashes: 0,
    pauses: 0,
    partitions: 0,
    clogs: 0,
    membershipChanges: 0,
    membershipRefused: 0,
    transfers: 0,
    snapshots: 0,
    proposals: 0,
  };

  constructor(private readonly options: GroupsSimulationOptions) {
    this.prng = new SeededPrng(options.seed);
    this.network = new SimNetwork(new SeededPrng(this.prng.nextUint32()), {
      dropRate: this.prng.nextFloat() * 0.1,
      duplicateRate: this.prng.nextFloat() * 0.05,
      delayStepsMin: 1,
      delayStepsMax: 2 + this.prng.nextInt(20),
    });
    this.persistDelayMax = 1 + this.prng.nextInt(30);
    this.raftOptions = {
      preVote: this.prng.chance(0.75),
      checkQuorum: this.prng.chance(0.75),
      electionTicks: 5 + this.prng.nextInt(8),
      heartbeatTicks: 1,
      maxMessageBytes: this.prng.chance(0.4) ? 96 : 128 + this.prng.nextInt(4096),
      maxInflightMessages: 1 + this.prng.nextInt(16),
    };
    // Idle groups quiesce in half the seeds (as a node's groups but group 1 do): each process
    // then wakes a group's follower whose leader it believes gone (wakeOrphans).
    if (this.prng.chance(0.5)) this.raftOptions.quiesceAfterTicks = 1 + this.prng.nextInt(6);
    this.rates = {
      crash: this.prng.nextFloat() * 0.03,
      flashCrash: this.prng.nextFloat() * 0.05,
      pause: this.prng.nextFloat() * 0.02,
      partition: this.prng.nextFloat() * 0.02,
      clog: this.prng.chance(0.4) ? 0.02 + this.prng.nextFloat() * 0.08 : 0,
      heal: 0.02 + this.prng.nextFloat() * 0.05,
      // Per group: so with several groups, changes overlap often.
      membership: this.prng.chance(0.5) ? 0.02 + this.prng.nextFloat() * 0.08 : this.prng.nextFloat() * 0.02,
      transfer: this.prng.nextFloat() * 0.03,
      snapshot: this.prng.nextFloat() * 0.05,
      write: 0.2 + this.prng.nextFloat() * 0.6,
    };
    const processCount = 3 + this.prng.nextInt(3);
    this.processes = Array.from({ length: processCount }, (_, i) => `n${i + 1}`);
    const groupCount = 2 + this.prng.nextInt(4);
    for (let id = 1; id <= groupCount; id++) {
      // Mostly three founders among the processes; sometimes one (a laptop's group), or five.
      const size = this.prng.chance(0.15) ? 1 : processCount >= 5 && this.prng.chance(0.3) ? 5 : 3;
      const founders = this.shuffled(this.processes).slice(0, size).sort();
      const membership: Membership = { voters: founders, learners: [] };
      const group: SimGroup = {
        id,
        nodes: new Map(),
        checker: new SafetyChecker(() => this.step),
        removed: new Set(),
      };
      this.groups.push(group);
      for (const process of founders) this.addNode(group, process, true, membership);
    }
  }

  run(): SimulationResult {
    try {
      for (; this.step < this.options.steps && !this.failed(); this.step++) this.safetyStep();
      if (!this.failed()) this.livenessPhase();
    } catch (error) {
      this.violations.push(`step ${this.step}: exception: ${(error as Error).stack ?? String(error)}`);
    }
    const all = [
      ...this.violations,
      ...this.groups.flatMap((g) => g.checker.violations.map((v) => `group ${g.id}: ${v}`)),
    ];
    return {
      seed: this.options.seed,
      violations: all,
      stats: {
        ...this.stats,
        processes: this.processes.length,
        groups: this.groups.length,
        applied: this.groups.reduce((sum, g) => sum + g.checker.appliedCount, 0),
        terms: this.groups.reduce((sum, g) => sum + g.checker.termsWithLeader, 0),
        quiesceAfterTicks: this.raftOptions.quiesceAfterTicks ?? 0,
        preVote: String(this.raftOptions.preVote),
        checkQuorum: String(this.raftOptions.checkQuorum),
        messages: this.network.sent,
        dropped: this.network.dropped,
      },
    };
  }

  private failed(): boolean {
    return this.violations.length > 0 || this.groups.some((g) => g.checker.violations.length > 0);
  }

  private safetyStep(): void {
    this.injectFaults();
    if (this.step % STEPS_PER_TICK === 0) {
      this.tickAll();
      this.propose();
    }
    this.exchange();
  }

  /** Heals everything; every group must elect a leader and commit a proposal within the bound. */
  private livenessPhase(): void {
    this.faultsOn = false;
    this.network.healAll();
    this.network.options = { ...this.network.options, dropRate: 0, duplicateRate: 0 };
    for (const node of this.allNodes()) {
      node.restart();
      node.pausedUntil = 0;
    }
    this.restartAt.clear();
    const start = this.step;
    const deadline = this.step + this.options.livenessTicks * STEPS_PER_TICK;
    const probes = new Map<number, { node: SimNode; index: number; term: number }>();
    const done = new Set<number>();
    for (; this.step < deadline && !this.failed() && done.size < this.groups.length; this.step++) {
      if (this.step % STEPS_PER_TICK === 0) {
        this.tickAll();
        if (this.options.verbose && this.step % (50 * STEPS_PER_TICK) === 0) {
          for (const group of this.groups.filter((g) => !done.has(g.id))) this.log(this.describe(group));
        }
        for (const group of this.groups) {
          if (done.has(group.id)) continue;
          // Propose again if the probe's leader lost its term, or a leader of a later term exists
          // (a removed leader without CheckQuorum may believe it leads an old term forever).
          const probe = probes.get(group.id);
          const leader = this.latestLeader(group);
          if (
            probe?.node === leader &&
            probe?.node.isLeader() &&
            probe.node.raft?.status().term === probe.term
          ) {
            continue;
          }
          const proposal = leader?.raft?.propose(
            encodeCommand({ kind: 'put', op: 0, key: `g${group.id}/liveness`, value: `${this.step}` }),
          );
          if (leader && proposal?.ok) {
            probes.set(group.id, { node: leader, ...proposal.value });
            this.log(
              `group ${group.id}: liveness probe at ${proposal.value.index} (term ${proposal.value.term}) on ${leader.id}`,
            );
          } else if (leader && proposal && !proposal.ok) {
            this.log(`group ${group.id}: liveness probe refused by ${leader.id}: ${proposal.error.code}`);
          }
        }
      }
      this.exchange();
      for (const [id, probe] of probes) {
        if (probe.node.appliedIndex >= probe.index && probe.node.raft?.logTerm(probe.index) === probe.term) {
          done.add(id);
        }
      }
    }
    this.stats.livenessTicks = Math.ceil((this.step - start) / STEPS_PER_TICK);
    if (!this.failed() && done.size < this.groups.length) {
      const stuck = this.groups.filter((g) => !done.has(g.id));
      this.violations.push(
        `liveness: groups ${stuck.map((g) => g.id).join(', ')} committed nothing within ${this.options.livenessTicks} ticks after healing: ` +
          stuck.map((g) => this.describe(g)).join(' | '),
      );
    }
  }

  /** Each process ticks every group it runs, together (one clock per node, as tick-clock.ts). */
  private tickAll(): void {
    this.wakeOrphans();
    for (const node of this.allNodes()) node.tick(this.step);
  }

  /**
   * What a node's group host does for quiesced groups (src/): a follower whose leader's process
   * is down, no longer leads, or is cut off from it in either direction is woken, so that its
   * election timer runs again. (A paused leader keeps its connections, so it wakes nobody.)
   */
  private wakeOrphans(): void {
    for (const group of this.groups) {
      for (const node of group.nodes.values()) {
        const status = node.raft?.status();
        if (status === undefined || !status.quiesced || status.role === 'leader') continue;
        const leader = status.leader === '' ? undefined : group.nodes.get(status.leader);
        if (
          leader === undefined ||
          !leader.isLeader() ||
          this.network.isCut(leader.id, node.id) ||
          this.network.isCut(node.id, leader.id)
        ) {
          node.raft!.wake();
          this.stats.wakes = (this.stats.wakes ?? 0) + 1;
          this.log(`group ${group.id}: wake ${node.id} (leader ${status.leader || 'none'})`);
        }
      }
    }
  }

  private exchange(): void {
    for (const message of this.network.due(this.step)) this.deliver(message);
    const persistDelay = () => this.prng.nextInt(this.persistDelayMax + 1);
    const applyDelay = () => (this.prng.chance(0.5) ? 0 : this.prng.nextInt(this.persistDelayMax + 1));
    for (const node of this.allNodes()) {
      if (node.isPaused(this.step)) continue;
      for (const message of node.inbox.splice(0)) this.deliver(message);
      node.collect(this.step, persistDelay);
      node.persistDue(this.step, applyDelay);
      node.collect(this.step, persistDelay);
    }
  }

  private deliver(message: Message): void {
    const id = this.groupOf.get(message);
    const group = this.groups.find((g) => g.id === id);
    if (group === undefined) {
      this.violations.push(`step ${this.step}: a message without a group (${MessageType[message.type]})`);
      return;
    }
    const target = group.nodes.get(message.to);
    if (message.type === MessageType.Snapshot) {
      group.nodes.get(message.from)?.raft?.reportSnapshot(message.to, target?.alive === true);
    }
    if (!target?.raft) return; // Not (yet) a member of this group on that process: dropped.
    if (target.isPaused(this.step)) {
      target.inbox.push(message);
      return;
    }
    const result = target.raft.step(message);
    if (!result.ok) {
      group.checker.violations.push(
        `step ${this.step}: ${target.id} refused a message from raft: ${result.error.message}`,
      );
    }
  }

  private send(group: SimGroup, message: Message): void {
    this.groupOf.set(message, group.id);
    this.network.send(message, this.step, (dropped) => {
      const sender = group.nodes.get(dropped.from);
      if (dropped.type === MessageType.Snapshot) sender?.raft?.reportSnapshot(dropped.to, false);
      if (this.network.isCut(dropped.from, dropped.to)) sender?.raft?.reportUnreachable(dropped.to);
    });
  }

  private onApplied(group: SimGroup, node: SimNode, entry: Entry): void {
    if (entry.type !== EntryType.Normal || entry.data.length === 0) return;
    const command = decodeCommand(entry.data);
    if (!command.key.startsWith(`g${group.id}/`)) {
      group.checker.violations.push(
        `step ${this.step}: ${node.id} applied ${command.key} in group ${group.id}: a command of another group`,
      );
      return;
    }
    node.kv.apply(command);
  }

  /**
   * Per tick, each group's leader takes a write with some chance. With quiescence on, groups
   * take turns being idle for 40 ticks (so that they quiesce, and writes wake them).
   */
  private propose(): void {
    const turn = Math.floor(this.step / (40 * STEPS_PER_TICK));
    for (const group of this.groups) {
      if (this.raftOptions.quiesceAfterTicks && (turn + group.id) % 2 === 0) continue;
      if (!this.prng.chance(this.rates.write)) continue;
      const leader = this.latestLeader(group);
      if (!leader?.raft || leader.isPaused(this.step)) continue;
      const op = this.nextOp++;
      const result = leader.raft.propose(
        encodeCommand({ kind: 'put', op, key: `g${group.id}/k${this.prng.nextInt(3)}`, value: `${op}` }),
      );
      if (result.ok) this.stats.proposals++;
    }
  }

  // ---- Faults: a process's fault hits every group on it ------------------------------------

  private injectFaults(): void {
    if (!this.faultsOn) return;
    const chance = (perTick: number) => this.prng.chance(perTick / STEPS_PER_TICK);
    for (const [process, at] of this.restartAt) {
      if (at > this.step) continue;
      this.restartAt.delete(process);
      for (const node of this.nodesOf(process)) node.restart();
      this.log(`restart ${process}`);
    }
    if (chance(this.rates.crash)) {
      const up = this.processes.filter((p) => !this.restartAt.has(p));
      if (up.length > 0) {
        // Half the time a process leading some group.
        const leading = up.filter((p) => this.nodesOf(p).some((n) => n.isLeader()));
        const victim = leading.length > 0 && this.prng.chance(0.5) ? this.pick(leading) : this.pick(up);
        for (const node of this.nodesOf(victim)) node.crash();
        this.restartAt.set(
          victim,
          this.step +
            (this.prng.chance(0.3)
              ? this.prng.nextInt(3 * STEPS_PER_TICK)
              : (5 + this.prng.nextInt(60)) * STEPS_PER_TICK),
        );
        this.stats.crashes++;
        this.log(`crash ${victim} (every group on it)`);
      }
    }
    if (chance(this.rates.flashCrash)) {
      const writing = this.processes.filter(
        (p) => !this.restartAt.has(p) && this.nodesOf(p).some((n) => n.persistQueueLength > 0),
      );
      if (writing.length > 0) {
        const victim = this.pick(writing);
        for (const node of this.nodesOf(victim)) {
          node.crash();
          node.restart();
        }
        this.stats.flashCrashes++;
        this.log(`flash crash ${victim}`);
      }
    }
    if (chance(this.rates.pause)) {
      const victim = this.pick(this.processes);
      const until = this.step + (5 + this.prng.nextInt(40)) * STEPS_PER_TICK;
      for (const node of this.nodesOf(victim)) if (node.alive) node.pausedUntil = until;
      this.stats.pauses++;
      this.log(`pause ${victim} until step ${until}`);
    }
    if (chance(this.rates.partition)) {
      const sideA = this.processes.filter(() => this.prng.chance(0.5));
      const sideB = this.processes.filter((p) => !sideA.includes(p));
      this.network.partition(sideA, sideB);
      this.stats.partitions++;
      this.log(`partition [${sideA}] | [${sideB}]`);
    }
    if (chance(this.rates.clog)) {
      const from = this.pick(this.processes);
      const to = this.pick(this.processes);
      if (from !== to) {
        this.network.cutLink(from, to);
        this.stats.clogs++;
        this.log(`clog ${from} -> ${to}`);
      }
    }
    if (this.network.cutCount > 0 && chance(this.rates.heal)) {
      this.network.heal();
      this.log('heal');
    }
    for (const group of this.groups) {
      if (chance(this.rates.membership)) this.changeMembership(group);
      if (chance(this.rates.transfer)) this.transferLeadership(group);
    }
    if (chance(this.rates.snapshot)) {
      const live = this.allNodes().filter((n) => n.alive);
      if (live.length > 0) {
        this.pick(live).snapshotAndCompact(this.prng.nextInt(20));
        this.stats.snapshots++;
      }
    }
  }

  /** A learner added (a process not in the group), promoted, or a member removed, through the group's leader. */
  private changeMembership(group: SimGroup): void {
    const leader = this.latestLeader(group);
    if (!leader?.raft) return;
    const { voters, learners } = leader.raft.status().membership;
    const members = [...voters, ...learners];
    const outside = this.processes.filter(
      (p) => !members.includes(p) && !group.removed.has(p) && !group.nodes.has(p) && !this.restartAt.has(p),
    );
    const choice = this.prng.nextInt(3);
    let change: { type: MembershipChangeType; nodeId: NodeId } | undefined;
    if (choice === 0 && outside.length > 0) {
      const process = this.pick(outside);
      this.addNode(group, process, false, { voters: [], learners: [] });
      change = { type: MembershipChangeType.AddLearner, nodeId: process };
    } else if (choice === 1 && learners.length > 0) {
      change = { type: MembershipChangeType.PromoteLearner, nodeId: this.pick(learners) };
    } else if (choice === 2 && (voters.length > 1 || learners.length > 0)) {
      const candidates = voters.length > 1 ? members : learners;
      change = { type: MembershipChangeType.RemoveNode, nodeId: this.pick(candidates) };
    }
    if (!change) return;
    const result = leader.raft.proposeMembershipChange(change);
    if (result.ok) {
      this.stats.membershipChanges++;
      if (change.type === MembershipChangeType.RemoveNode) group.removed.add(change.nodeId);
    } else {
      this.stats.membershipRefused++;
    }
    this.log(
      `group ${group.id}: ${MembershipChangeType[change.type]} ${change.nodeId}: ${result.ok ? 'proposed' : result.error.code}`,
    );
  }

  /** What the leader balancer does: the group's leader hands over to another voter. */
  private transferLeadership(group: SimGroup): void {
    const leader = this.latestLeader(group);
    if (!leader?.raft) return;
    const others = leader.raft.status().membership.voters.filter((id) => id !== leader.id);
    if (others.length === 0) return;
    const target = this.pick(others);
    const result = leader.raft.transferLeadership(target);
    if (result.ok) this.stats.transfers++;
    this.log(
      `group ${group.id}: transfer ${leader.id} -> ${target}: ${result.ok ? 'started' : result.error.code}`,
    );
  }

  // ---- Helpers ---------------------------------------------------------------------------

  /** Every member of `group` as it stands: role, term, vote, leader, log, membership, quiescence. */
  private describe(group: SimGroup): string {
    return `group ${group.id}: ${[...group.nodes.values()]
      .map((n) => {
        const st = n.raft?.status();
        return st
          ? `${n.id} ${st.role}${st.quiesced ? ' (quiesced)' : ''} t${st.term} vote ${st.vote || '-'} lead ${st.leader || '-'} commit ${st.commitIndex} applied ${st.appliedIndex} last ${st.lastIndex} voters ${st.membership.voters}@${st.membershipIndex}`
          : `${n.id} down`;
      })
      .join('; ')}`;
  }

  private addNode(group: SimGroup, process: NodeId, founder: boolean, membership: Membership): void {
    const node = new SimNode(
      process,
      founder,
      membership,
      this.raftOptions,
      new SeededPrng(this.prng.nextUint32()),
      group.checker,
      {
        send: (message) => this.send(group, message),
        applied: (n, entry) => this.onApplied(group, n, entry),
        readState: () => undefined,
        crashed: () => undefined,
        becameLeader: (n) => this.log(`group ${group.id}: ${n.id} leads term ${n.raft?.status().term}`),
      },
    );
    group.nodes.set(process, node);
  }

  private nodesOf(process: NodeId): SimNode[] {
    return this.groups.flatMap((g) => {
      const node = g.nodes.get(process);
      return node === undefined ? [] : [node];
    });
  }

  private allNodes(): SimNode[] {
    return this.groups.flatMap((g) => [...g.nodes.values()]);
  }

  private latestLeader(group: SimGroup): SimNode | undefined {
    let latest: SimNode | undefined;
    for (const node of group.nodes.values()) {
      if (!node.isLeader()) continue;
      if (!latest || node.raft!.status().term > latest.raft!.status().term) latest = node;
    }
    return latest;
  }

  private shuffled<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.prng.nextInt(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.prng.nextInt(items.length)]!;
  }

  private log(text: string): void {
    if (this.options.verbose) console.log(`[seed ${this.options.seed} step ${this.step}] ${text}`);
  }
}
