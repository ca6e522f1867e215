// One seeded simulation run: a cluster under faults (safety phase), then healed (liveness phase), then the history checked.

import {
  type Entry,
  EntryType,
  type Membership,
  MembershipChangeType,
  type Message,
  MessageType,
  type NodeId,
  ProgressState,
  type ReadState,
  SeededPrng,
} from '../../raft/index.js';
import {
  checkOperations,
  formatCheckResult,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from '../lib/linearizability.js';
import { SafetyChecker } from './checkers.js';
import { Figure8Schedule } from './figure8.js';
import { decodeCommand, encodeCommand, type KvCommand } from './kv.js';
import { SimNetwork } from './network.js';
import { SimNode, type SimRaftOptions } from './node.js';
import { SpareSchedule } from './spare-schedule.js';

/** Steps per tick: messages and disk writes complete at a finer grain than the raft clock. */
const STEPS_PER_TICK = 10;

export interface SimulationOptions {
  seed: number;
  /** Steps of the safety phase (faults on). */
  steps: number;
  /** Ticks the healed cluster has to elect a leader and commit a proposal. */
  livenessTicks: number;
  /** Print a line per notable event. */
  verbose: boolean;
}

export const SIMULATION_DEFAULTS: Omit<SimulationOptions, 'seed'> = {
  steps: 10000,
  livenessTicks: 300,
  verbose: false,
};

export interface SimulationResult {
  readonly seed: number;
  readonly violations: string[];
  readonly stats: Record<string, number | string>;
}

interface PendingWrite {
  readonly kind: 'write';
  readonly historyId: number;
  readonly node: SimNode;
  readonly index: number;
  readonly term: number;
  readonly command: KvCommand;
  readonly deadline: number;
}

interface PendingRead {
  readonly kind: 'read';
  readonly historyId: number;
  readonly node: SimNode;
  readonly key: string;
  readonly context: string;
  readIndex: number | undefined;
  readonly deadline: number;
}

type PendingOp = PendingWrite | PendingRead;

const KEYS = ['a', 'b', 'c'];

export function runSimulation(input: Partial<SimulationOptions> & { seed: number }): SimulationResult {
  return new Simulation({ ...SIMULATION_DEFAULTS, ...input }).run();
}

class Simulation {
  private readonly prng: SeededPrng;
  private readonly network: SimNetwork;
  private readonly checker: SafetyChecker;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly raftOptions: SimRaftOptions;
  private readonly history = new HistoryRecorder<KvInput, KvOutput>();
  /** Client slots; each has at most one operation outstanding. */
  private readonly clients: (PendingOp | undefined)[];
  /**
   * Per slot: the undecided write its client gave up on. Like a real client retrying under its
   * session, it starts nothing new until that write is decided, which bounds how many
   * open-ended writes overlap (and so the linearizability search).
   */
  private readonly waitingFor: (number | undefined)[];
  private nextClientId = 0;
  private readonly clientIds: number[];
  private step = 0;
  private nextNodeNumber = 1;
  private nextOp = 1;
  private readonly restartAt = new Map<NodeId, number>();
  /** New leaders doomed to crash or be cut off (leader churn): when, how, and for how long. */
  private readonly crashAt = new Map<
    NodeId,
    { at: number; kind: 'crash' | 'flash' | 'isolate'; downSteps: number }
  >();
  /** Nodes cut off from everyone by leader churn, and when their links return. */
  private readonly isolatedUntil = new Map<NodeId, number>();
  /**
   * Nodes that crash and restart before anything else happens, having just sent a message that
   * rests on state they have not saved: a vote granted, or entries sent ahead of their own write.
   */
  private readonly crashAfterSend = new Map<NodeId, 'voteCrashes' | 'appendCrashes'>();
  /** After an append crash a node is spared them for a while, so that it gets to save what it sends again. */
  private readonly appendCrashSpareUntil = new Map<NodeId, number>();
  /** The Figure 8 schedule, in some seeds. */
  private readonly figure8: Figure8Schedule | undefined;
  /** The spare policy at work (spare-schedule.ts), in some seeds. */
  private readonly spares: SpareSchedule | undefined;
  /** Faults are injected only in the safety phase. */
  private faultsOn = true;
  private persistDelayMax: number;
  private readonly clientTimeoutSteps: number;
  /** Of ten client operations, how many are reads (the rest puts and compare-and-sets). */
  private readsInTen = 4;
  /**
   * Writes whose client gave up, by log index: still undecided until some node applies that
   * index. Then each either took effect (its own entry is there) and completes at that step,
   * within its real interval, or never can (another entry is there) and is dropped. Only those
   * still undecided at the end stay open-ended, which keeps the history checkable.
   */
  private readonly undecided = new Map<number, { historyId: number; term: number; op: number }[]>();
  /** What was applied at each index (the first node to apply it decides for all). */
  private readonly appliedAt = new Map<number, { term: number; op: number; output: KvOutput }>();
  private readonly stats: Record<string, number> = {
    writesOk: 0,
    writesFailed: 0,
    writesUnknown: 0,
    writesLate: 0,
    readsOk: 0,
    readsFailed: 0,
    crashes: 0,
    pauses: 0,
    flashCrashes: 0,
    partitions: 0,
    membershipChanges: 0,
    membershipRefused: 0,
    transfers: 0,
    snapshots: 0,
    clogs: 0,
    voteCrashes: 0,
    appendCrashes: 0,
    figure8Rounds: 0,
    leaderChurnCrashes: 0,
  };
  private readonly faultRates: {
    crash: number;
    flashCrash: number;
    pause: number;
    /** The chance that a pause hits a leader (a stop-the-world pause while clients still read from it). */
    pauseLeader: number;
    partition: number;
    asymmetric: number;
    heal: number;
    membership: number;
    transfer: number;
    snapshot: number;
    clientStart: number;
    /** Per tick: cut one more directed link (FoundationDB's clogging), and restore one. */
    clog: number;
    unclog: number;
    /** Per granted vote: the voter crashes and restarts at once, before anything else (§5.1). */
    voteCrash: number;
    /** Per Append carrying data sent before the sender saved all it has: it crashes and restarts at once. */
    appendCrash: number;
    /** Per tick and leader: a write to a key no client checks (a steady writer, beside the client slots). */
    backgroundWrite: number;
    /** Per new leader: it crashes within a few ticks and soon returns (the Figure 8 schedule). */
    leaderChurn: number;
    /**
     * Per acknowledgement from a follower the leader was still probing (one catching up): the
     * leader is cut off right after it, having replicated part of its log to one more node.
     */
    ackCut: number;
    /**
     * Per tick: the leader is cut off from every other node while clients still reach it.
     * Without CheckQuorum it stays leader while the others elect another and commit, so a read
     * it answers without a quorum round is stale (§6.4).
     */
    leaderIsolation: number;
  };

  constructor(private readonly options: SimulationOptions) {
    this.prng = new SeededPrng(options.seed);
    this.checker = new SafetyChecker(() => this.step);
    const delayMax = 2 + this.prng.nextInt(25);
    this.network = new SimNetwork(new SeededPrng(this.prng.nextUint32()), {
      dropRate: this.prng.nextFloat() * 0.15,
      duplicateRate: this.prng.nextFloat() * 0.05,
      delayStepsMin: 1,
      delayStepsMax: delayMax,
    });
    this.persistDelayMax = 1 + this.prng.nextInt(30);
    this.raftOptions = {
      preVote: this.prng.chance(0.75),
      checkQuorum: this.prng.chance(0.75),
      // Short timeouts against slow links and disks make contested elections common.
      electionTicks: 4 + this.prng.nextInt(9),
      heartbeatTicks: 1,
      // Often one entry per Append, so a new leader's old-term entries travel without its no-op.
      maxMessageBytes: this.prng.chance(0.4) ? 96 : 128 + this.prng.nextInt(4096),
      maxInflightMessages: 1 + this.prng.nextInt(16),
    };
    this.faultRates = {
      crash: this.prng.nextFloat() * 0.03,
      pause: this.prng.nextFloat() * 0.02,
      flashCrash: this.prng.nextFloat() * 0.05,
      partition: this.prng.nextFloat() * 0.02,
      asymmetric: this.prng.nextFloat() * 0.01,
      heal: 0.02 + this.prng.nextFloat() * 0.05,
      membership: this.prng.nextFloat() * 0.03,
      transfer: this.prng.nextFloat() * 0.01,
      snapshot: this.prng.nextFloat() * 0.05,
      clientStart: 0.2 + this.prng.nextFloat() * 0.6,
      pauseLeader: 0.5,
      clog: 0,
      unclog: 0,
      voteCrash: 0,
      appendCrash: 0,
      backgroundWrite: 0,
      leaderChurn: 0,
      ackCut: 0,
      leaderIsolation: 0,
    };
    // Schedules aimed at classic bugs, each on in some seeds only, so others keep the plain mix.
    const rates = this.faultRates;
    if (this.prng.chance(0.4)) {
      rates.clog = 0.02 + this.prng.nextFloat() * 0.1;
      rates.unclog = 0.02 + this.prng.nextFloat() * 0.1;
    }
    if (this.prng.chance(0.4)) rates.voteCrash = 0.2 + this.prng.nextFloat() * 0.8;
    if (this.prng.chance(0.5)) {
      rates.leaderChurn = 0.2 + this.prng.nextFloat() * 0.7;
      rates.ackCut = 0.2 + this.prng.nextFloat() * 0.8;
      // Mostly one entry per Append, so a catching-up follower gets a new leader's older
      // entries before its first entry of its own term.
      if (this.prng.chance(0.7)) this.raftOptions.maxMessageBytes = 96;
    }
    if (this.prng.chance(0.3)) rates.membership = 0.03 + this.prng.nextFloat() * 0.1;
    if (this.prng.chance(0.3)) {
      // Leaders stopped for a while: the rest elect another and commit, while clients keep
      // asking the stopped one, which reads its queue on waking (a lease read would be stale).
      rates.pause = 0.02 + this.prng.nextFloat() * 0.04;
      rates.pauseLeader = 0.9;
      // Mostly reads, so that a read the woken leader answers alone meets a newer write.
      this.readsInTen = 7;
    }
    if (this.prng.chance(0.4)) {
      rates.appendCrash = 0.05 + this.prng.nextFloat() * 0.35;
      rates.backgroundWrite = 0.3 + this.prng.nextFloat() * 0.7;
      // Mostly with a slow disk, so that much is sent before it is saved.
      if (this.prng.chance(0.75)) {
        this.persistDelayMax = 30 + this.prng.nextInt(60);
        // An election must be winnable: the timeout above a vote's round trip and two writes.
        const roundTrip = Math.ceil((2 * delayMax + 2 * this.persistDelayMax) / STEPS_PER_TICK);
        this.raftOptions.electionTicks = Math.max(this.raftOptions.electionTicks, roundTrip + 2);
      }
    }
    // A stale leader serving reads, and nothing else going on: a cut-off leader without
    // CheckQuorum, clients that mostly read and keep asking it, no crashes or other faults that
    // would depose it or make every operation fail before a newer write completes elsewhere.
    const staleLeader = this.prng.chance(0.15);
    if (staleLeader) {
      Object.assign(rates, {
        crash: 0,
        flashCrash: 0,
        pause: 0,
        partition: 0,
        asymmetric: 0,
        membership: 0,
        transfer: 0,
        clog: 0,
        voteCrash: 0,
        appendCrash: 0,
        leaderChurn: 0,
        ackCut: 0,
        heal: 0.01 + this.prng.nextFloat() * 0.02,
        leaderIsolation: 0.01 + this.prng.nextFloat() * 0.03,
      });
      this.raftOptions.checkQuorum = false;
      this.readsInTen = 7;
    }
    if (!staleLeader && this.prng.chance(0.25)) {
      // Figure 8 needs the new leader's old entries to travel one Append at a time; other
      // leader churn would only get in its way.
      rates.leaderChurn = 0;
      rates.ackCut = 0;
      // About one command per Append (an empty no-op may share one).
      this.raftOptions.maxMessageBytes = 96;
      this.figure8 = new Figure8Schedule(
        {
          isolate: (id) => this.network.isolate(id),
          reconnect: (id) => this.network.reconnect(id),
          campaign: (id) => this.nodes.get(id)?.raft?.campaign(),
          quorum: (id) => {
            const voters = this.nodes.get(id)?.raft?.status().membership.voters.length ?? 1;
            return Math.floor(voters / 2) + 1;
          },
          write: (id, count) => {
            for (let i = 0; i < count; i++) {
              const command: KvCommand = { kind: 'put', op: this.nextOp++, key: 'figure8', value: `f${i}` };
              this.nodes.get(id)?.raft?.propose(encodeCommand(command));
            }
          },
          log: (text) => this.log(text),
        },
        80 * STEPS_PER_TICK,
      );
    }
    // Cluster shapes: 3 voters, 5 voters, 3 voters and 2 learners, or a single voter and 2
    // learners (a laptop node growing into a cluster: the learners are promoted later).
    // With crashes after unsaved sends, often a lone voter and its learners: nothing but its
    // own disk stands between a lost term and a second leader of that term.
    // A stale leader needs voters enough to elect another: 3 or 5.
    const shape = staleLeader
      ? this.prng.nextInt(2)
      : rates.appendCrash > 0 && this.prng.chance(0.5)
        ? 3
        : this.prng.nextInt(4);
    // The spare policy (spare-schedule.ts): 3 or 5 voters and 1 or 2 spares, voters crashing,
    // no other membership changes. Drawn from its own generator, so that the other seeds' runs
    // stay what they were.
    const spareDraws = new SeededPrng(options.seed ^ 0x5a5e5a5e);
    const withSpares = !staleLeader && this.figure8 === undefined && spareDraws.chance(0.15);
    let voterCount = [3, 5, 3, 1][shape]!;
    let learnerCount = shape >= 2 ? 2 : 0;
    if (withSpares) {
      voterCount = spareDraws.chance(0.5) ? 3 : 5;
      learnerCount = 1 + spareDraws.nextInt(2);
      rates.membership = 0;
      rates.crash = Math.max(rates.crash, 0.01 + spareDraws.nextFloat() * 0.03);
      rates.backgroundWrite = Math.max(rates.backgroundWrite, 0.3 + spareDraws.nextFloat() * 0.5);
      // Half without CheckQuorum: a leader that lost its quorum stays leader and keeps deciding.
      if (spareDraws.chance(0.6)) this.raftOptions.checkQuorum = false;
    }
    const voters = Array.from({ length: voterCount }, () => this.newNodeId());
    const learners = Array.from({ length: learnerCount }, () => this.newNodeId());
    const membership: Membership = { voters: voters.slice().sort(), learners: learners.slice().sort() };
    for (const id of [...voters, ...learners]) this.addNode(id, true, membership);
    this.spares = withSpares
      ? new SpareSchedule(
          {
            initialMembership: membership,
            spares: learners,
            electionTicks: this.raftOptions.electionTicks,
            promoteAfterTicks: this.raftOptions.electionTicks * (2 + spareDraws.nextInt(4)),
            // Small, so that a spare still catching up after a restart is often one to pass over.
            maxSpareLag: 1 + spareDraws.nextInt(3),
            quorumCrashRate: 0.005 + spareDraws.nextFloat() * 0.015,
            stepsPerTick: STEPS_PER_TICK,
          },
          {
            nodes: () =>
              [...this.nodes.values()]
                .filter((n) => n.raft !== undefined && !n.isPaused(this.step))
                .map((n) => ({
                  id: n.id,
                  status: n.raft!.status(),
                  propose: (change) => {
                    const result = n.raft!.proposeMembershipChange(change);
                    return result.ok ? { ok: true } : { ok: false, code: result.error.code };
                  },
                })),
            up: (id) => {
              const n = this.nodes.get(id);
              return n?.raft !== undefined && !n.isPaused(this.step);
            },
            cut: (from, to) => this.network.isCut(from, to),
            durableLastIndex: (id) => this.nodes.get(id)?.storage.lastIndex() ?? 0,
            crash: (id, downSteps) => {
              const node = this.nodes.get(id);
              if (!node?.alive) return;
              node.crash();
              this.stats.crashes++;
              this.restartAt.set(id, this.step + downSteps);
            },
            random: () => spareDraws.nextFloat(),
            ids: () => [...this.nodes.keys()],
            violation: (text) => this.checker.violations.push(`step ${this.step}: ${text}`),
            log: (text) => this.log(text),
          },
        )
      : undefined;
    const clientCount = 3 + this.prng.nextInt(6);
    this.clientTimeoutSteps = (20 + this.prng.nextInt(40)) * STEPS_PER_TICK;
    this.clients = new Array(clientCount).fill(undefined);
    this.waitingFor = new Array(clientCount).fill(undefined);
    this.clientIds = this.clients.map(() => this.nextClientId++);
  }

  run(): SimulationResult {
    const { steps, livenessTicks } = this.options;
    try {
      for (; this.step < steps && this.checker.violations.length === 0; this.step++) this.safetyStep();
      if (this.checker.violations.length === 0) this.livenessPhase(livenessTicks);
      this.finishClients();
      if (this.checker.violations.length === 0) this.checkHistory();
    } catch (error) {
      // A broken invariant inside raft (or the driver) is a failure of this seed, not of the run.
      this.checker.violations.push(
        `step ${this.step}: exception: ${(error as Error).stack ?? String(error)}`,
      );
    }
    this.stats.figure8Rounds = this.figure8?.completed ?? 0;
    if (this.spares) Object.assign(this.stats, this.spares.counts);
    const membership = this.anyLive()?.raft?.membership();
    return {
      seed: this.options.seed,
      violations: this.checker.violations,
      stats: {
        ...this.stats,
        nodes: this.nodes.size,
        voters: membership?.voters.length ?? 0,
        applied: this.checker.appliedCount,
        terms: this.checker.termsWithLeader,
        preVote: String(this.raftOptions.preVote),
        checkQuorum: String(this.raftOptions.checkQuorum),
        messages: this.network.sent,
        dropped: this.network.dropped,
      },
    };
  }

  // ---- Phases ----------------------------------------------------------------------------

  private safetyStep(): void {
    // Faults strike at any step, so also between a Ready's send and its persistence.
    this.injectFaults();
    if (this.step % STEPS_PER_TICK === 0) {
      for (const node of this.nodes.values()) node.tick(this.step);
      this.clientTick();
      this.spares?.tick(this.step);
    }
    this.exchange();
  }

  /** Heals everything and checks that a leader is elected and a proposal commits within the bound. */
  private livenessPhase(ticks: number): void {
    this.faultsOn = false;
    this.figure8?.abandon('liveness phase');
    this.crashAt.clear();
    this.isolatedUntil.clear();
    this.crashAfterSend.clear();
    this.network.healAll();
    this.network.options = { ...this.network.options, dropRate: 0, duplicateRate: 0 };
    for (const node of this.nodes.values()) {
      node.restart();
      node.pausedUntil = 0;
    }
    this.restartAt.clear();
    const startStep = this.step;
    const deadline = this.step + ticks * STEPS_PER_TICK;
    let probe: { node: SimNode; index: number; term: number } | undefined;
    for (; this.step < deadline && this.checker.violations.length === 0; this.step++) {
      if (this.step % STEPS_PER_TICK === 0) {
        for (const node of this.nodes.values()) node.tick(this.step);
        // Propose again if the probe's leader lost its term since (it may have been re-elected in a later one).
        if (probe === undefined || !probe.node.isLeader() || probe.node.raft?.status().term !== probe.term) {
          // The leader of the latest term: a removed leader that never heard of its removal
          // (no CheckQuorum, no one to tell it) may still believe it leads an older one.
          const leader = this.latestLeader();
          const proposal = leader?.raft?.propose(
            encodeCommand({ kind: 'put', op: 0, key: 'liveness', value: `${this.step}` }),
          );
          if (leader && proposal?.ok) probe = { node: leader, ...proposal.value };
        }
      }
      this.exchange();
      if (
        probe &&
        probe.node.appliedIndex >= probe.index &&
        probe.node.raft?.logTerm(probe.index) === probe.term
      ) {
        this.stats.livenessTicks = Math.ceil((this.step - startStep) / STEPS_PER_TICK);
        return;
      }
    }
    if (this.checker.violations.length === 0) {
      const roles = [...this.nodes.values()].map((n) => {
        const st = n.raft?.status();
        if (!st) return `${n.id}: down`;
        const members = `${st.membership.voters}|${st.membership.learners}@${st.membershipIndex}`;
        return `${n.id}: ${st.role} term ${st.term} vote ${st.vote || '-'} lead ${st.leader || '-'} commit ${st.commitIndex} applied ${st.appliedIndex} last ${st.lastIndex}/t${n.raft?.logTerm(st.lastIndex)} voters|learners ${members}`;
      });
      this.checker.violations.push(
        `liveness: no proposal committed within ${ticks} ticks after healing:\n    ${roles.join('\n    ')}`,
      );
    }
  }

  /** Delivers due messages, collects Readies and completes due persistence, once. */
  private exchange(): void {
    for (const message of this.network.due(this.step)) this.deliver(message);
    const persistDelay = () => this.prng.nextInt(this.persistDelayMax + 1);
    // Half the Readies are applied as soon as they are durable, half some steps later.
    const applyDelay = () => (this.prng.chance(0.5) ? 0 : this.prng.nextInt(this.persistDelayMax + 1));
    for (const node of this.nodes.values()) {
      if (node.isPaused(this.step)) continue;
      if (node.inbox.length > 0) for (const message of node.inbox.splice(0)) this.deliver(message);
      node.collect(this.step, persistDelay);
      this.crashIfAsked(node);
      node.persistDue(this.step, applyDelay);
      this.crashIfAsked(node);
      node.collect(this.step, persistDelay);
      this.crashIfAsked(node);
    }
    this.serveReads();
  }

  private deliver(message: Message): void {
    const target = this.nodes.get(message.to);
    const sender = this.nodes.get(message.from);
    if (message.type === MessageType.Snapshot)
      sender?.raft?.reportSnapshot(message.to, target?.alive === true);
    if (!target?.raft) return;
    if (target.isPaused(this.step)) {
      target.inbox.push(message);
      return;
    }
    const catchingUp =
      (this.faultRates.ackCut > 0 || this.figure8 !== undefined) &&
      message.type === MessageType.AppendResponse &&
      !message.reject &&
      target.raft.status().progress?.get(message.from)?.state === ProgressState.Probe;
    const result = target.raft.step(message);
    this.spares?.onDelivered(message.from, message.to, this.step);
    if (!result.ok)
      this.checker.violations.push(
        `step ${this.step}: ${target.id} refused a message from raft: ${result.error.message}`,
      );
    if (this.faultsOn && catchingUp && target.isLeader())
      this.figure8?.onCatchUpAck(target.id, message.from, this.step);
    if (this.faultsOn && catchingUp && target.isLeader() && this.prng.chance(this.faultRates.ackCut)) {
      // A follower that was behind has just caught up with part of the leader's log: the leader
      // is cut off now, so what it sends next (the rest, or a commit) reaches nobody for a while.
      this.crashAt.set(target.id, {
        at: this.step,
        kind: 'isolate',
        downSteps: (1 + this.prng.nextInt(30)) * STEPS_PER_TICK,
      });
      this.leaderChurn(true);
    }
  }

  /** A node asked to crash by what it just sent crashes and restarts before it does anything else. */
  private crashIfAsked(node: SimNode): void {
    const kind = this.crashAfterSend.get(node.id);
    if (kind === undefined) return;
    this.crashAfterSend.delete(node.id);
    if (!node.alive) return;
    node.crash();
    node.restart();
    this.stats[kind]++;
    this.log(`${kind === 'voteCrashes' ? 'vote' : 'append'} crash ${node.id}`);
  }

  private send(message: Message): void {
    if (
      this.faultsOn &&
      message.type === MessageType.VoteResponse &&
      !message.reject &&
      message.from !== message.to &&
      this.prng.chance(this.faultRates.voteCrash)
    ) {
      this.crashAfterSend.set(message.from, 'voteCrashes');
    }
    if (
      this.faultsOn &&
      this.faultRates.appendCrash > 0 &&
      message.type === MessageType.Append &&
      message.entries.some((entry) => entry.data.length > 0) &&
      (this.nodes.get(message.from)?.persistQueueLength ?? 0) > 0 &&
      (this.appendCrashSpareUntil.get(message.from) ?? 0) <= this.step &&
      this.prng.chance(this.faultRates.appendCrash)
    ) {
      this.crashAfterSend.set(message.from, 'appendCrashes');
      this.appendCrashSpareUntil.set(
        message.from,
        this.step + 4 * this.raftOptions.electionTicks * STEPS_PER_TICK,
      );
    }
    this.network.send(message, this.step, (dropped) => {
      const sender = this.nodes.get(dropped.from);
      if (dropped.type === MessageType.Snapshot) sender?.raft?.reportSnapshot(dropped.to, false);
      if (this.network.isCut(dropped.from, dropped.to)) sender?.raft?.reportUnreachable(dropped.to);
    });
  }

  // ---- Faults ----------------------------------------------------------------------------

  private injectFaults(): void {
    // Rates are per tick; faults are drawn at every step.
    const chance = (perTick: number) => this.prng.chance(perTick / STEPS_PER_TICK);
    const rates = this.faultRates;
    this.leaderChurn();
    this.figure8?.tick(this.step);
    for (const [id, until] of this.isolatedUntil) {
      if (until > this.step) continue;
      this.isolatedUntil.delete(id);
      this.reconnect(id);
      this.log(`leader churn: reconnect ${id}`);
    }
    for (const [id, at] of this.restartAt) {
      if (at <= this.step) {
        this.restartAt.delete(id);
        this.nodes.get(id)?.restart();
        this.log(`restart ${id}`);
      }
    }
    if (chance(rates.crash)) {
      const live = this.liveNodes();
      if (live.length > 0) {
        // Leaders are the interesting victims: half the crashes hit one.
        const leaders = live.filter((node) => node.isLeader());
        const victim = leaders.length > 0 && this.prng.chance(0.5) ? this.pick(leaders) : this.pick(live);
        victim.crash();
        this.stats.crashes++;
        // Some restarts are immediate (a supervisor), so a node can come back within one election.
        const downSteps = this.prng.chance(0.3)
          ? this.prng.nextInt(3 * STEPS_PER_TICK)
          : (5 + this.prng.nextInt(60)) * STEPS_PER_TICK;
        this.restartAt.set(victim.id, this.step + downSteps);
        this.log(`crash ${victim.id}`);
      }
    }
    if (chance(rates.flashCrash)) {
      // Crash a node while it has Readies not yet durable, and bring it straight back:
      // what it sent before persisting must not outlive what it forgot.
      const writing = this.liveNodes().filter((node) => node.persistQueueLength > 0);
      if (writing.length > 0) {
        const victim = this.pick(writing);
        victim.crash();
        victim.restart();
        this.stats.flashCrashes++;
        this.log(`flash crash ${victim.id}`);
      }
    }
    if (chance(rates.pause)) {
      const live = this.liveNodes();
      if (live.length > 0) {
        const leaders = live.filter((node) => node.isLeader());
        const victim =
          leaders.length > 0 && this.prng.chance(rates.pauseLeader) ? this.pick(leaders) : this.pick(live);
        victim.pausedUntil = this.step + (5 + this.prng.nextInt(40)) * STEPS_PER_TICK;
        this.stats.pauses++;
        this.log(`pause ${victim.id} until step ${victim.pausedUntil}`);
      }
    }
    if (chance(rates.partition)) {
      const ids = [...this.nodes.keys()];
      const sideA = ids.filter(() => this.prng.chance(0.5));
      const sideB = ids.filter((id) => !sideA.includes(id));
      this.network.partition(sideA, sideB);
      this.stats.partitions++;
      this.log(`partition [${sideA}] | [${sideB}]`);
    }
    if (chance(rates.leaderIsolation)) {
      const leaders = this.liveNodes().filter((node) => node.isLeader());
      if (leaders.length > 0) {
        const victim = this.pick(leaders);
        this.network.isolate(victim.id);
        this.stats.partitions++;
        this.log(`isolate leader ${victim.id}`);
      }
    }
    if (chance(rates.asymmetric)) this.cutRandomLink('partitions', 'cut');
    if (chance(rates.clog)) this.cutRandomLink('clogs', 'clog');
    if (this.network.cutCount > 0 && chance(rates.unclog)) {
      const [from, to] = this.pick(this.network.cutLinks());
      this.network.uncutLink(from, to);
      this.log(`unclog ${from} -> ${to}`);
    }
    if (this.network.cutCount > 0 && chance(rates.heal)) {
      this.network.heal();
      this.log('heal');
    }
    if (chance(rates.membership)) this.changeMembership();
    if (chance(rates.transfer)) this.transferLeadership();
    if (chance(rates.snapshot)) {
      const live = this.liveNodes();
      if (live.length > 0) {
        this.pick(live).snapshotAndCompact(this.prng.nextInt(20));
        this.stats.snapshots++;
      }
    }
  }

  /** Restores every link to and from `id`. */
  private reconnect(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      this.network.uncutLink(id, other);
      this.network.uncutLink(other, id);
    }
  }

  /** Cuts one random directed link (an asymmetric fault), counted under `stat`. */
  private cutRandomLink(stat: 'partitions' | 'clogs', label: string): void {
    const ids = [...this.nodes.keys()];
    const from = this.pick(ids);
    const to = this.pick(ids);
    if (from === to) return;
    this.network.cutLink(from, to);
    this.stats[stat]++;
    this.log(`${label} ${from} -> ${to}`);
  }

  private changeMembership(): void {
    const leader = this.liveNodes().find((node) => node.isLeader());
    if (!leader?.raft) return;
    const membership = leader.raft.status().membership;
    const members = [...membership.voters, ...membership.learners];
    const choice = this.prng.nextInt(3);
    let change: { type: MembershipChangeType; nodeId: NodeId } | undefined;
    if (choice === 0 && members.length < 7) {
      const id = this.newNodeId();
      this.addNode(id, false, { voters: [], learners: [] });
      change = { type: MembershipChangeType.AddLearner, nodeId: id };
    } else if (choice === 1 && membership.learners.length > 0) {
      change = { type: MembershipChangeType.PromoteLearner, nodeId: this.pick(membership.learners) };
    } else if (choice === 2 && (membership.voters.length > 3 || membership.learners.length > 0)) {
      const candidates = membership.voters.length > 3 ? members : membership.learners;
      change = { type: MembershipChangeType.RemoveNode, nodeId: this.pick(candidates) };
    }
    if (!change) return;
    const result = leader.raft.proposeMembershipChange(change);
    if (result.ok) this.stats.membershipChanges++;
    else this.stats.membershipRefused++;
    this.log(
      `membership ${MembershipChangeType[change.type]} ${change.nodeId}: ${result.ok ? 'proposed' : result.error.code}`,
    );
  }

  private transferLeadership(): void {
    const leader = this.liveNodes().find((node) => node.isLeader());
    if (!leader?.raft) return;
    const voters = leader.raft.status().membership.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const target = this.pick(voters);
    const result = leader.raft.transferLeadership(target);
    if (result.ok) this.stats.transfers++;
    this.log(`transfer ${leader.id} -> ${target}: ${result.ok ? 'started' : result.error.code}`);
  }

  // ---- Clients ---------------------------------------------------------------------------

  private clientTick(): void {
    if (this.faultRates.backgroundWrite > 0) {
      for (const node of this.liveNodes()) {
        if (!node.isLeader() || !this.prng.chance(this.faultRates.backgroundWrite)) continue;
        // At most a few writes outstanding, like a client with a window: a leader cut off
        // must not pile up an unbounded log for the healed cluster to catch up with.
        const { lastIndex, commitIndex } = node.raft!.status();
        if (lastIndex - commitIndex >= 4) continue;
        const op = this.nextOp++;
        node.raft!.propose(encodeCommand({ kind: 'put', op, key: 'background', value: `b${op}` }));
      }
    }
    for (let slot = 0; slot < this.clients.length; slot++) {
      const pending = this.clients[slot];
      if (pending !== undefined) {
        if (this.step >= pending.deadline) this.settleUnknown(slot, pending);
        continue;
      }
      if (this.waitingFor[slot] !== undefined) continue;
      if (this.prng.chance(this.faultRates.clientStart)) this.startOperation(slot);
    }
  }

  private startOperation(slot: number): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    const leaders = live.filter((node) => node.isLeader());
    const node = leaders.length > 0 && this.prng.chance(0.8) ? this.pick(leaders) : this.pick(live);
    const raft = node.raft!;
    const key = this.pick(KEYS);
    const clientId = this.clientIds[slot]!;
    const deadline = this.step + this.clientTimeoutSteps;
    const kind = this.prng.nextInt(10);
    if (kind < this.readsInTen) {
      const context = `r${this.nextOp++}`;
      const historyId = this.history.invoke(clientId, { op: 'get', key });
      const result = raft.readIndex(new TextEncoder().encode(context));
      if (!result.ok) {
        this.history.discard(historyId);
        this.stats.readsFailed++;
        return;
      }
      this.clients[slot] = { kind: 'read', historyId, node, key, context, readIndex: undefined, deadline };
      return;
    }
    const op = this.nextOp++;
    const value = `v${op}`;
    const command: KvCommand =
      kind < 8
        ? { kind: 'put', op, key, value }
        : {
            kind: 'cas',
            op,
            key,
            expected: this.prng.chance(0.3) ? null : `v${this.prng.nextInt(op) + 1}`,
            value,
          };
    const input: KvInput =
      command.kind === 'put'
        ? { op: 'put', key, value }
        : { op: 'cas', key, expected: command.expected, value };
    const historyId = this.history.invoke(clientId, input);
    const result = raft.propose(encodeCommand(command));
    if (!result.ok) {
      // Refused before reaching the log: it never takes effect.
      this.history.discard(historyId);
      this.stats.writesFailed++;
      return;
    }
    this.clients[slot] = { kind: 'write', historyId, node, ...result.value, command, deadline };
  }

  private onApplied(node: SimNode, entry: Entry): void {
    this.spares?.onApplied(entry);
    if (entry.type !== EntryType.Normal || entry.data.length === 0) {
      this.decide(entry.index, entry.term, -1, null);
      return;
    }
    const command = decodeCommand(entry.data);
    const result = node.kv.apply(command);
    this.decide(entry.index, entry.term, command.op, result.kind === 'cas' ? result.swapped : true);
    for (let slot = 0; slot < this.clients.length; slot++) {
      const pending = this.clients[slot];
      if (pending?.kind !== 'write' || pending.node !== node || pending.index !== entry.index) continue;
      if (entry.term === pending.term && command.op === pending.command.op) {
        this.history.complete(pending.historyId, result.kind === 'cas' ? result.swapped : true);
        this.stats.writesOk++;
      } else {
        // Another entry was committed at our index: ours can never commit (it existed only there).
        this.history.discard(pending.historyId);
        this.stats.writesFailed++;
      }
      this.clients[slot] = undefined;
    }
  }

  private onReadState(node: SimNode, readState: ReadState): void {
    const context = new TextDecoder().decode(readState.context);
    for (const pending of this.clients) {
      if (pending?.kind === 'read' && pending.node === node && pending.context === context) {
        pending.readIndex = readState.index;
      }
    }
  }

  private serveReads(): void {
    for (let slot = 0; slot < this.clients.length; slot++) {
      const pending = this.clients[slot];
      if (pending?.kind !== 'read' || pending.readIndex === undefined) continue;
      if (!pending.node.alive || pending.node.appliedIndex < pending.readIndex) continue;
      this.history.complete(pending.historyId, pending.node.kv.get(pending.key));
      this.stats.readsOk++;
      this.clients[slot] = undefined;
    }
  }

  /**
   * Leader churn (the Figure 8 schedule): a new leader is cut off from everyone, or crashes
   * (for a while, or restarting at once), at once or within a few ticks, and returns later. Cut off at once, its first
   * entries reach nobody; a little later, some followers have part of them.
   */
  private onBecameLeader(node: SimNode): void {
    this.spares?.onBecameLeader(node.id, this.step);
    if (this.faultsOn) this.figure8?.onLeader(node.id, this.step);
    if (!this.faultsOn || !this.prng.chance(this.faultRates.leaderChurn)) return;
    this.crashAt.set(node.id, {
      at: this.prng.chance(0.5) ? this.step : this.step + 1 + this.prng.nextInt(4 * STEPS_PER_TICK),
      kind: this.pick(['isolate', 'isolate', 'isolate', 'crash', 'flash'] as const),
      downSteps: (1 + this.prng.nextInt(30)) * STEPS_PER_TICK,
    });
    // Cut off now, before this Ready's messages go; a crash waits for the next step (the node
    // is in the middle of handing out Readies).
    this.leaderChurn(true);
  }

  private leaderChurn(isolationsOnly = false): void {
    for (const [id, doom] of this.crashAt) {
      if (doom.at > this.step || (isolationsOnly && doom.kind !== 'isolate')) continue;
      this.crashAt.delete(id);
      const node = this.nodes.get(id);
      if (!node?.alive) continue;
      this.stats.leaderChurnCrashes++;
      if (doom.kind === 'crash') {
        node.crash();
        this.restartAt.set(id, this.step + doom.downSteps);
        this.log(`leader churn: crash ${id}`);
      } else if (doom.kind === 'flash') {
        // Back at once, having lost what it had not yet saved (perhaps its new term).
        node.crash();
        node.restart();
        this.log(`leader churn: flash crash ${id}`);
      } else {
        for (const other of this.nodes.keys()) if (other !== id) this.network.partition([id], [other]);
        this.isolatedUntil.set(id, this.step + doom.downSteps);
        this.log(`leader churn: isolate ${id}`);
      }
    }
  }

  private onCrashed(node: SimNode): void {
    for (let slot = 0; slot < this.clients.length; slot++) {
      const pending = this.clients[slot];
      if (pending?.node === node) this.settleUnknown(slot, pending);
    }
  }

  /** Index `index` was applied with (term, op): the undecided writes proposed there are decided. */
  private decide(index: number, term: number, op: number, output: KvOutput): void {
    if (!this.appliedAt.has(index)) this.appliedAt.set(index, { term, op, output });
    const waiting = this.undecided.get(index);
    if (waiting === undefined) return;
    this.undecided.delete(index);
    for (const write of waiting) this.settleWrite(write, { term, op, output });
  }

  private settleWrite(
    write: { historyId: number; term: number; op: number },
    applied: { term: number; op: number; output: KvOutput },
  ): void {
    const slot = this.waitingFor.indexOf(write.historyId);
    if (slot >= 0) this.waitingFor[slot] = undefined;
    if (applied.term === write.term && applied.op === write.op) {
      this.history.complete(write.historyId, applied.output);
      this.stats.writesLate++;
    } else {
      this.history.discard(write.historyId);
      this.stats.writesFailed++;
    }
  }

  /** The client gave up: a write may or may not take effect; a read constrains nothing. */
  private settleUnknown(slot: number, pending: PendingOp): void {
    if (pending.kind === 'write') {
      const write = { historyId: pending.historyId, term: pending.term, op: pending.command.op };
      const applied = this.appliedAt.get(pending.index);
      if (applied !== undefined) this.settleWrite(write, applied);
      else {
        this.undecided.set(pending.index, [...(this.undecided.get(pending.index) ?? []), write]);
        this.waitingFor[slot] = write.historyId;
      }
    } else {
      this.history.discard(pending.historyId);
      this.stats.readsFailed++;
    }
    this.clients[slot] = undefined;
    // A client with an indeterminate operation is retired; a fresh one takes its slot.
    this.clientIds[slot] = this.nextClientId++;
  }

  private finishClients(): void {
    for (let slot = 0; slot < this.clients.length; slot++) {
      const pending = this.clients[slot];
      if (pending) this.settleUnknown(slot, pending);
    }
    for (const waiting of this.undecided.values()) {
      for (const write of waiting) {
        this.history.completeUnknown(write.historyId);
        this.stats.writesUnknown++;
      }
    }
    this.undecided.clear();
  }

  private checkHistory(): void {
    const operations = this.history.operations();
    const result = checkOperations(kvModel, operations, { timeoutMs: 20_000 });
    this.stats.historyOperations = operations.length;
    if (result.result === 'illegal') {
      this.checker.violations.push(
        `linearizability: client history is not linearizable\n${formatCheckResult(kvModel, result)}`,
      );
    } else if (result.result === 'unknown') {
      this.checker.violations.push('linearizability: the checker timed out');
    }
  }

  // ---- Helpers ---------------------------------------------------------------------------

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`;
  }

  private addNode(id: NodeId, founder: boolean, membership: Membership): void {
    const node = new SimNode(
      id,
      founder,
      membership,
      this.raftOptions,
      new SeededPrng(this.prng.nextUint32()),
      this.checker,
      {
        send: (message) => this.send(message),
        applied: (n, entry) => this.onApplied(n, entry),
        readState: (n, readState) => this.onReadState(n, readState),
        crashed: (n) => this.onCrashed(n),
        becameLeader: (n) => this.onBecameLeader(n),
      },
    );
    this.nodes.set(id, node);
  }

  private latestLeader(): SimNode | undefined {
    let latest: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (!node.isLeader()) continue;
      if (!latest || node.raft!.status().term > latest.raft!.status().term) latest = node;
    }
    return latest;
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.alive);
  }

  private anyLive(): SimNode | undefined {
    return this.liveNodes()[0];
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.prng.nextInt(items.length)]!;
  }

  private log(text: string): void {
    if (this.options.verbose) console.log(`[seed ${this.options.seed} step ${this.step}] ${text}`);
  }
}
