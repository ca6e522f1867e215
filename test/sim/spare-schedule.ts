// The spare policy in the simulator: every leader runs raft/spare-policy.ts each tick, and its decisions are checked against what really happened.

import {
  applyMembershipChange,
  decideSpareChange,
  decodeMembershipChange,
  type Entry,
  EntryType,
  type Membership,
  MembershipChangeType,
  type NodeId,
  type RaftStatus,
  type Replacement,
  Role,
} from '../../raft/index.js';

/** What the schedule needs from the simulation. */
export interface SpareScheduleHooks {
  /** The live, unpaused nodes, with their raft status. */
  nodes(): readonly { id: NodeId; status: RaftStatus; propose: ProposeChange }[];
  /** Whether `id` is up (alive and not paused) now. */
  up(id: NodeId): boolean;
  /** Whether messages from `from` to `to` are cut now. */
  cut(from: NodeId, to: NodeId): boolean;
  /** Crashes `id` (if up) and restarts it `downSteps` later. */
  crash(id: NodeId, downSteps: number): void;
  /** A draw in [0, 1), from the schedule's own generator. */
  random(): number;
  /** The last index in `id`'s durable log (a crashed node's too). */
  durableLastIndex(id: NodeId): number;
  /** Every node id the simulation knows. */
  ids(): readonly NodeId[];
  violation(text: string): void;
  log(text: string): void;
}

type ProposeChange = (change: {
  type: MembershipChangeType;
  nodeId: NodeId;
  context?: Uint8Array;
}) => { ok: true } | { ok: false; code: string };

/** The replicated bookkeeping the real node keeps in its state machine, as of a log index. */
interface SpareState {
  readonly index: number;
  readonly membership: Membership;
  readonly spares: ReadonlySet<NodeId>;
  readonly replacing: Replacement | undefined;
  readonly replaced: readonly NodeId[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SPARE = 'spare';
const REPLACES = 'replaces:';

export interface SpareScheduleOptions {
  readonly initialMembership: Membership;
  readonly spares: readonly NodeId[];
  readonly electionTicks: number;
  readonly promoteAfterTicks: number;
  readonly maxSpareLag: number;
  readonly stepsPerTick: number;
  /**
   * Per tick: enough voters other than the leader crash together, and stay down past
   * promoteAfter, that a leader without CheckQuorum is left with no live quorum.
   */
  readonly quorumCrashRate: number;
}

/**
 * The schedule: 3 or 5 voters and one or two spares, crashes and partitions as the seed has
 * them, no other membership changes. Checked at every decision, from the simulation's own
 * record of who was up and connected (not from what the leader heard):
 * - a proposal is never refused for a change already pending;
 * - a promotion or removal leaves a majority of voters that were up and connected to the leader
 *   within the last election timeout;
 * - a promoted spare's own log is within maxSpareLag of the leader's commit index;
 * - a replaced voter was down or cut off from the leader at some time in the window it was
 *   judged silent over (a voter that answered throughout is never touched);
 * and at every membership entry applied: never fewer voters than the cluster started with.
 */
export class SpareSchedule {
  private readonly history: SpareState[];
  /** Per leader, when it last received a message from each node (in steps). */
  private readonly heard = new Map<NodeId, Map<NodeId, number>>();
  private readonly leaderSince = new Map<NodeId, number>();
  /** The last tick each node ran (was alive and unpaused). */
  private readonly lastRun = new Map<NodeId, number>();
  private readonly lastDown = new Map<NodeId, number>();
  private readonly lastUp = new Map<NodeId, number>();
  private readonly lastCut = new Map<string, number>();
  private readonly lastOpen = new Map<string, number>();
  readonly counts = { sparePromotions: 0, spareRemovals: 0, spareReadds: 0, spareRefusals: 0 };

  constructor(
    private readonly options: SpareScheduleOptions,
    private readonly hooks: SpareScheduleHooks,
  ) {
    this.history = [
      {
        index: 0,
        membership: options.initialMembership,
        spares: new Set(options.spares),
        replacing: undefined,
        replaced: [],
      },
    ];
  }

  /** A message was handed to `to`'s raft. */
  onDelivered(from: NodeId, to: NodeId, step: number): void {
    const heard = this.heard.get(to) ?? new Map<NodeId, number>();
    this.heard.set(to, heard);
    heard.set(from, step);
  }

  onBecameLeader(id: NodeId, step: number): void {
    this.leaderSince.set(id, step);
  }

  /**
   * An entry was applied on some node: the first application of a membership entry (entries
   * are first applied in index order) moves the bookkeeping on.
   */
  onApplied(entry: Entry): void {
    if (entry.type !== EntryType.MembershipChange) return;
    const last = this.history[this.history.length - 1]!;
    if (entry.index <= last.index) return;
    const change = decodeMembershipChange(entry.data);
    if (change === undefined) return;
    const membershipAfter = applyMembershipChange(last.membership, change);
    const context = change.context === undefined ? '' : decoder.decode(change.context);
    const spares = new Set(last.spares);
    let replacing = last.replacing;
    let replaced = [...last.replaced];
    if (change.type === MembershipChangeType.AddLearner) {
      if (context === SPARE) spares.add(change.nodeId);
      replaced = replaced.filter((id) => id !== change.nodeId);
    }
    if (change.type === MembershipChangeType.PromoteLearner) {
      spares.delete(change.nodeId);
      if (context.startsWith(REPLACES))
        replacing = { spare: change.nodeId, voter: context.slice(REPLACES.length) };
    }
    if (change.type === MembershipChangeType.RemoveNode) {
      spares.delete(change.nodeId);
      if (replacing?.voter === change.nodeId)
        replaced = [...replaced.filter((id) => id !== change.nodeId), change.nodeId];
    }
    if (
      replacing &&
      !(membershipAfter.voters.includes(replacing.spare) && membershipAfter.voters.includes(replacing.voter))
    )
      replacing = undefined;
    this.history.push({ index: entry.index, membership: membershipAfter, spares, replacing, replaced });
    const started = this.options.initialMembership.voters.length;
    if (membershipAfter.voters.length < started) {
      this.hooks.violation(
        `spare: ${membershipAfter.voters.length} voters after entry ${entry.index}, fewer than the ${started} the cluster started with`,
      );
    }
  }

  /** Once per tick: record who is up and connected, then let every leader decide. */
  tick(step: number): void {
    const ids = this.hooks.ids();
    for (const id of ids) {
      (this.hooks.up(id) ? this.lastUp : this.lastDown).set(id, step);
      for (const other of ids) {
        if (other === id) continue;
        (this.hooks.cut(id, other) ? this.lastCut : this.lastOpen).set(`${id}>${other}`, step);
      }
    }
    if (this.hooks.random() < this.options.quorumCrashRate) this.quorumCrash();
    for (const node of this.hooks.nodes()) {
      // A node that missed ticks was paused: what it read on waking is old news, so it starts
      // watching again (the real keeper does the same when its timer fires late).
      if (this.lastRun.get(node.id) !== step - this.options.stepsPerTick) this.leaderSince.set(node.id, step);
      this.lastRun.set(node.id, step);
      if (node.status.role === Role.Leader) this.decideOn(node, step);
    }
  }

  private decideOn(node: { id: NodeId; status: RaftStatus; propose: ProposeChange }, step: number): void {
    const { id, status } = node;
    const ticks = (steps: number) => steps / this.options.stepsPerTick;
    const since = this.leaderSince.get(id) ?? step;
    const state = this.stateAt(status.appliedIndex);
    const heard = this.heard.get(id) ?? new Map<NodeId, number>();
    const peers = new Map<NodeId, { match: number; silentFor: number | undefined }>();
    for (const other of [...status.membership.voters, ...status.membership.learners, ...state.replaced]) {
      if (other === id) continue;
      const at = heard.get(other);
      peers.set(other, {
        match: status.progress?.get(other)?.match ?? 0,
        silentFor: at === undefined || at < since ? undefined : ticks(step - at),
      });
    }
    const liveWithin = this.options.electionTicks;
    const decision = decideSpareChange({
      leader: id,
      membership: status.membership,
      spares: status.membership.learners.filter((l) => state.spares.has(l)),
      replacing: state.replacing,
      replaced: state.replaced,
      changePending:
        status.membershipChangeRefusal !== undefined || status.membershipIndex > status.appliedIndex,
      commitIndex: status.commitIndex,
      peers,
      watchedFor: ticks(step - since),
      liveWithin,
      promoteAfter: this.options.promoteAfterTicks,
      maxSpareLag: this.options.maxSpareLag,
    });
    if (decision.kind === 'none') return;
    const windowSteps = liveWithin * this.options.stepsPerTick;
    const liveTruth = (other: NodeId) =>
      other === id ||
      ((this.lastUp.get(other) ?? -1) >= step - windowSteps &&
        (this.lastOpen.get(`${other}>${id}`) ?? -1) >= step - windowSteps &&
        (this.lastOpen.get(`${id}>${other}`) ?? -1) >= step - windowSteps);
    const majority = (n: number) => Math.floor(n / 2) + 1;
    const voters = status.membership.voters;
    let change: { type: MembershipChangeType; nodeId: NodeId; context?: Uint8Array };
    if (decision.kind === 'promote') {
      const after = [...voters, decision.spare];
      if (after.filter(liveTruth).length < majority(after.length))
        this.hooks.violation(`spare: ${id} promoted ${decision.spare} without a live quorum of [${after}]`);
      const spareLog = this.hooks.durableLastIndex(decision.spare);
      if (status.commitIndex - spareLog >= this.options.maxSpareLag)
        this.hooks.violation(
          `spare: ${id} promoted ${decision.spare}, whose log ends at ${spareLog}, with the commit index at ${status.commitIndex}`,
        );
      const judged =
        Math.min(this.options.promoteAfterTicks, ticks(step - since)) * this.options.stepsPerTick;
      const v = decision.replaces;
      const answeredThroughout =
        (this.lastDown.get(v) ?? -1) < step - judged &&
        (this.lastCut.get(`${v}>${id}`) ?? -1) < step - judged &&
        (this.lastCut.get(`${id}>${v}`) ?? -1) < step - judged;
      if (answeredThroughout)
        this.hooks.violation(
          `spare: ${id} replaced ${v}, which was up and connected for the last ${judged} steps`,
        );
      change = {
        type: MembershipChangeType.PromoteLearner,
        nodeId: decision.spare,
        context: encoder.encode(`${REPLACES}${v}`),
      };
    } else if (decision.kind === 'remove') {
      const after = voters.filter((v) => v !== decision.voter);
      if (after.filter(liveTruth).length < majority(after.length))
        this.hooks.violation(`spare: ${id} removed ${decision.voter} without a live quorum of [${after}]`);
      change = { type: MembershipChangeType.RemoveNode, nodeId: decision.voter };
    } else {
      change = {
        type: MembershipChangeType.AddLearner,
        nodeId: decision.node,
        context: encoder.encode(SPARE),
      };
    }
    const result = node.propose(change);
    this.hooks.log(`spare: ${id} ${JSON.stringify(decision)}: ${result.ok ? 'proposed' : result.code}`);
    if (!result.ok) {
      this.counts.spareRefusals++;
      if (result.code === 'MEMBERSHIP_CHANGE_PENDING')
        this.hooks.violation(`spare: ${id} proposed ${decision.kind} while a change was pending`);
      return;
    }
    if (decision.kind === 'promote') this.counts.sparePromotions++;
    else if (decision.kind === 'remove') this.counts.spareRemovals++;
    else this.counts.spareReadds++;
  }

  /** Crashes enough voters other than the leader, together, that the leader is left without a live quorum. */
  private quorumCrash(): void {
    const leader = this.hooks.nodes().find((n) => n.status.role === Role.Leader);
    if (leader === undefined) return;
    const voters = leader.status.membership.voters;
    const count = voters.length - (Math.floor(voters.length / 2) + 1) + 1;
    const others = voters.filter((id) => id !== leader.id && this.hooks.up(id));
    if (others.length < count) return;
    const victims: NodeId[] = [];
    while (victims.length < count) {
      const rest = others.filter((id) => !victims.includes(id));
      victims.push(rest[Math.floor(this.hooks.random() * rest.length)]!);
    }
    const downSteps =
      (this.options.promoteAfterTicks + 5 + Math.floor(this.hooks.random() * 30)) * this.options.stepsPerTick;
    this.hooks.log(`spare: quorum crash ${victims.join(', ')} for ${downSteps} steps`);
    for (const id of victims) this.hooks.crash(id, downSteps);
  }

  /** The bookkeeping as of `index`: the latest first application at or below it. */
  private stateAt(index: number): SpareState {
    for (let i = this.history.length - 1; i >= 0; i--)
      if (this.history[i]!.index <= index) return this.history[i]!;
    return this.history[0]!;
  }
}
