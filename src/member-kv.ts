// The client API on a member: writes proposed on the leader, reads served from this member's replica, its status.

import {
  COMMAND_VERSION,
  type CommandResult,
  DEFINITION_OP_TYPES,
  type Document,
  encodeCommand,
  FIRST_GROUP,
  type ListOptions,
  type MemberRole,
  type Operation,
  type RealmRecord,
  type SessionRef,
} from '../storage/index.js';
import type { LeaderForwarder } from './forwarding.js';
import type {
  Consistency,
  DefinitionView,
  KvService,
  MemberStatus,
  NodeStatus,
  ServedRead,
  Staleness,
  WriteRoute,
} from './kv-service.js';
import type { ClientCall } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';
import type { RaftGroup } from './raft-group.js';

/**
 * Fault injection for tests only: a node started with this variable set to a key is killed
 * (SIGKILL) after a client write of that key has applied and before the node answers it.
 */
const FAULT_KILL_BEFORE_ANSWER = process.env.CONCLAVE_FAULT_KILL_BEFORE_ANSWER;

export interface MemberKvInit {
  readonly name: string;
  /** Throws unless every member can apply what needs `feature` (checked on the leader before proposing it). */
  readonly requireFeature?: (feature: string) => void;
  /** Group 1: the definition, sessions without a realm, status and readiness. */
  readonly group: RaftGroup;
  readonly forwarder: LeaderForwarder;
  /** The group holding `realm` (group 1's catalog); group 1 when there is no catalog. */
  readonly groupOfRealm?: (realm: string) => number;
  /** Group `id` if this node runs it. */
  readonly groupById?: (id: number) => RaftGroup | undefined;
  /** Runs requests on group `id`'s leader (that group's LeaderForwarder). */
  readonly forwarderFor?: (id: number) => LeaderForwarder;
  /** The realms placed outside group 1 (group 1's catalog). */
  readonly placedRealms?: () => readonly string[];
  /**
   * Carries a read-only call (realmRecords) for group `id` to one of its members, which answers
   * it from its own state. Kept by withoutRemote(): the answer is never carried further.
   */
  readonly carryRead?: (id: number, call: ClientCall) => Promise<unknown>;
  /** The leader of group `id`, which this node does not run, as its members say ('' if none does). */
  readonly remoteLeader?: (id: number) => Promise<string>;
  /** The members of group `id` (the catalog's), named in the error for a group this node does not run. */
  readonly membersOf?: (id: number) => readonly string[];
  /**
   * Carries a client call for group `id`, which this node does not run, to a member that runs
   * it (one more hop; that member never sends it on). Absent: such calls answer UNAVAILABLE.
   */
  readonly remote?: (id: number, call: ClientCall, mayApply: boolean) => Promise<unknown>;
  readonly requestTimeoutMs: number;
  /** Throws the node's refusal when it takes no requests (stopping: UNAVAILABLE; removed: REMOVED). */
  readonly refuseIfStopping: () => void;
  /** Why the node is not ready regardless of raft (removed, stopping), or undefined. */
  readonly notReadyReason: () => string | undefined;
  readonly onFaultInjected: (key: string) => void;
  /** Milliseconds since this node last heard from a leader (an Append, heartbeat or snapshot); undefined if never. */
  readonly leaderSilenceMs: () => number | undefined;
  /** A satellite silent from the leader this long is cut off (the election timeout). */
  readonly cutOffAfterMs: number;
}

/** KvService on a member of one raft group. */
export class MemberKv implements KvService {
  constructor(private readonly init: MemberKvInit) {}

  /** The same service without the remote hop: what this node runs for calls other nodes carried here. */
  withoutRemote(): MemberKv {
    const { remote: _remote, ...rest } = this.init;
    return new MemberKv(rest);
  }

  /**
   * Proposes on the leader of the group the operation belongs to (its realm's, or `route`'s):
   * here if this node leads it, otherwise forwarded over the mesh. A group this node does not
   * run: carried to one of its members (`remote`), or UNAVAILABLE naming them without one.
   */
  async write(op: Operation, session?: SessionRef, route?: WriteRoute): Promise<CommandResult> {
    this.init.refuseIfStopping();
    this.refuseIfCutOff('writes');
    if (DEFINITION_OP_TYPES.has(op.type)) this.refuseIfReadOnly();
    if (
      op.type === 'applyDefinition' &&
      route === undefined &&
      (this.init.placedRealms?.() ?? []).length > 0
    ) {
      return this.applyWithPlacedRealms(op, session);
    }
    if (op.type === 'deleteRealm' && route === undefined) {
      const placed = this.init.groupOfRealm?.(op.realm) ?? FIRST_GROUP;
      if (placed !== FIRST_GROUP) {
        // Its group deletes it (refusing while it holds documents), then group 1 forgets the
        // placement and the grants. Gone from its group already (a retry after a lost
        // answer, or a failure between the two): group 1's step alone.
        const deleted = await this.write(op, undefined, { group: placed });
        if (!deleted.ok && deleted.error.code !== 'NOT_FOUND') return deleted;
        return this.write({ type: 'unplaceRealm', realm: op.realm }, undefined, { group: FIRST_GROUP });
      }
    }
    const id = this.groupOfWrite(op, route);
    await this.groupStarting(id);
    const remote = this.remoteFor(id);
    if (remote !== undefined) {
      return (await remote(
        { call: 'write', op, ...(session ? { session } : {}), ...(route ? { route } : {}) },
        true,
      )) as CommandResult;
    }
    const forwarder = id === FIRST_GROUP ? this.init.forwarder : this.forwarderOf(id, op);
    const result = await forwarder.run(
      {
        type: 'write',
        op,
        ...(session ? { session } : {}),
        ...(id === FIRST_GROUP ? {} : { group: id }),
      },
      () => this.proposeHere(op, session, id),
    );
    if (FAULT_KILL_BEFORE_ANSWER !== undefined && 'key' in op && op.key === FAULT_KILL_BEFORE_ANSWER) {
      this.init.onFaultInjected(op.key);
    }
    return result;
  }

  /**
   * Applies a definition while realms live in other raft groups: those must all be in it (a
   * definition does not delete them: `realms delete` does), their settings go to their groups
   * first (one realmSettings each where they change), then group 1 applies the rest at once.
   * Not atomic across groups: a failure after some settings changed leaves those changed, and
   * applying the file again finishes the work.
   */
  private async applyWithPlacedRealms(
    op: Extract<Operation, { type: 'applyDefinition' }>,
    session: SessionRef | undefined,
  ): Promise<CommandResult> {
    const placed = this.init.placedRealms?.() ?? [];
    const target = op.definition.realms;
    const missing = placed.filter((realm) => !Object.hasOwn(target, realm));
    if (missing.length > 0) {
      throw Object.assign(
        new Error(
          `realm${missing.length > 1 ? 's' : ''} ${missing.join(', ')} live${missing.length > 1 ? '' : 's'} in another raft group: ` +
            'a definition does not delete such realms; keep them in the file, or delete them first with conclave realms delete',
        ),
        { code: 'CONFLICT' },
      );
    }
    if (op.ifVersion !== undefined && op.ifVersion !== this.state.access.version) {
      throw Object.assign(
        new Error(`the definition is at version ${this.state.access.version}, not ${op.ifVersion}`),
        { code: 'CONFLICT' },
      );
    }
    const current = await this.placedRealmRecords('linearizable');
    if (current.unreachableRealms !== undefined) {
      throw new DriverError(
        'UNAVAILABLE',
        `the raft groups of ${current.unreachableRealms.join(', ')} did not answer; retry later (conclave groups list)`,
      );
    }
    for (const record of current.realms) {
      const wanted = target[record.name] ?? {};
      if (JSON.stringify(wanted) === JSON.stringify(record.settings)) continue;
      const changed = await this.write({ type: 'realmSettings', realm: record.name, settings: wanted });
      if (!changed.ok) return changed;
    }
    const rest = Object.fromEntries(Object.entries(target).filter(([realm]) => !placed.includes(realm)));
    return this.write({ ...op, definition: { ...op.definition, realms: rest } }, session, {
      group: FIRST_GROUP,
    });
  }

  /** Whether `op` gives a grant on a realm placed outside group 1 (older nodes refuse those). */
  private grantsOnPlacedRealms(op: Operation): boolean {
    const placed = this.init.placedRealms?.() ?? [];
    if (placed.length === 0) return false;
    if (op.type === 'grant') return placed.includes(op.realm);
    if (op.type !== 'applyDefinition') return false;
    return Object.values(op.definition.users).some((user) =>
      Object.keys(user.grants).some((realm) => placed.includes(realm)),
    );
  }

  /** Proposes on this node's copy of group `groupId`, which should lead (raft refuses with NOT_LEADER otherwise). */
  async proposeHere(op: Operation, session?: SessionRef, groupId = FIRST_GROUP): Promise<CommandResult> {
    this.init.refuseIfStopping();
    // Group 1's catalog entries: an older member would refuse them and its state would differ.
    if (op.type === 'createGroup' || op.type === 'placeRealm') this.init.requireFeature?.('groups');
    if (op.type === 'groupMember') this.init.requireFeature?.('groupMembers');
    if (op.type === 'unplaceRealm' || this.grantsOnPlacedRealms(op))
      this.init.requireFeature?.('placedRealms');
    const group = this.groupHere(groupId, 'realm' in op ? op.realm : undefined);
    const command = encodeCommand({
      v: COMMAND_VERSION,
      time: Date.now(),
      ...(session ? { session } : {}),
      op,
    });
    const result = await group.driver.propose(command, this.init.requestTimeoutMs);
    if (result === undefined) throw new DriverError('UNAVAILABLE', 'the entry applied without a result');
    return result;
  }

  async get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>> {
    const groupId = this.init.groupOfRealm?.(realm) ?? FIRST_GROUP;
    await this.groupStarting(groupId);
    const remote = this.remoteFor(groupId);
    if (remote !== undefined) {
      return (await remote({ call: 'get', realm, key, consistency }, false)) as ServedRead<Document>;
    }
    const group = this.groupOfRead(realm);
    await this.readBarrier(consistency, group);
    return this.withStaleness(await group.storage.state.get(realm, key), consistency, group);
  }

  async list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    const groupId = this.init.groupOfRealm?.(realm) ?? FIRST_GROUP;
    await this.groupStarting(groupId);
    const remote = this.remoteFor(groupId);
    if (remote !== undefined) {
      return (await remote({ call: 'list', realm, options, consistency }, false)) as ServedRead<{
        documents: Document[];
        more: boolean;
      }>;
    }
    const group = this.groupOfRead(realm);
    await this.readBarrier(consistency, group);
    return this.withStaleness(await group.storage.state.list(realm, options), consistency, group);
  }

  /** Group 1's realms and the realms placed in other groups, in name order. */
  async realms(consistency: Consistency): Promise<ServedRead<string[]>> {
    await this.readBarrier(consistency);
    const names = [...new Set([...this.state.realms(), ...(this.init.placedRealms?.() ?? [])])].sort();
    return this.withStaleness({ ok: true, revision: this.state.revision, value: names }, consistency);
  }

  async placeRealm(realm: string, group: number | 'auto'): Promise<{ group: number; result: CommandResult }> {
    const target = group === 'auto' ? this.leastPlacedGroup() : group;
    const result = await this.write({ type: 'placeRealm', realm, group: target });
    return { group: target, result };
  }

  /** The group of the catalog with the fewest realms placed in it (the lowest id on a tie); NOT_FOUND without one. */
  private leastPlacedGroup(): number {
    const catalog = this.init.group.storage.state.groups;
    if (catalog.groups.length === 0) {
      throw Object.assign(
        new Error(
          'there is no raft group besides group 1 to place a realm in; add one with conclave groups add',
        ),
        {
          code: 'NOT_FOUND',
        },
      );
    }
    const counts = new Map<number, number>(catalog.groups.map((g) => [g.id, 0]));
    for (const id of Object.values(catalog.placements ?? {})) counts.set(id, (counts.get(id) ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]![0];
  }

  /** How to reach group `id` if this node does not run it and may carry calls on; undefined otherwise. */
  /**
   * Waits (up to the request timeout, at most 5 s) while group `id` names this node a member
   * but is not started here yet: right after a group is created, or a realm placed in it, its
   * members start it as they apply group 1's catalog, a moment after the call that made it.
   */
  private async groupStarting(id: number): Promise<void> {
    if (id === FIRST_GROUP || this.init.groupById === undefined || this.init.groupById(id) !== undefined)
      return;
    if (!(this.init.membersOf?.(id) ?? []).includes(this.init.name)) return;
    const deadline = Date.now() + Math.min(this.init.requestTimeoutMs, 5000);
    while (this.init.groupById(id) === undefined && Date.now() < deadline) {
      this.init.refuseIfStopping();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private remoteFor(id: number): ((call: ClientCall, mayApply: boolean) => Promise<unknown>) | undefined {
    const remote = this.init.remote;
    if (remote === undefined || id === FIRST_GROUP || this.init.groupById?.(id) !== undefined)
      return undefined;
    this.init.refuseIfStopping();
    return (call, mayApply) => remote(id, call, mayApply);
  }

  /** The group a write goes to: its realm's (or its route's), group 1 for the rest. */
  private groupOfWrite(op: Operation, route: WriteRoute | undefined): number {
    if (route?.group !== undefined) return route.group;
    switch (op.type) {
      case 'put':
      case 'patch':
      case 'delete':
      case 'txn':
      case 'createRealm':
      // A placed realm's record, settings included, lives in its group (its grants in group 1).
      case 'realmSettings':
        return this.init.groupOfRealm?.(op.realm) ?? FIRST_GROUP;
      case 'openSession':
      case 'closeSession':
        return route?.realm === undefined
          ? FIRST_GROUP
          : (this.init.groupOfRealm?.(route.realm) ?? FIRST_GROUP);
      default:
        return FIRST_GROUP;
    }
  }

  private groupOfRead(realm: string): RaftGroup {
    return this.groupHere(this.init.groupOfRealm?.(realm) ?? FIRST_GROUP, realm);
  }

  /** Group `id` on this node; UNAVAILABLE (retry on a member of it) if this node does not run it. */
  private groupHere(id: number, realm: string | undefined): RaftGroup {
    if (id === FIRST_GROUP) return this.init.group;
    const group = this.init.groupById?.(id);
    if (group !== undefined) return group;
    const members = this.init.membersOf?.(id) ?? [];
    throw new DriverError(
      'UNAVAILABLE',
      `${realm === undefined ? 'the request' : `realm ${realm}`} lives in raft group ${id}, which this node does not run; ` +
        `send it to one of its members${members.length === 0 ? '' : ` (${members.join(', ')})`}`,
    );
  }

  private forwarderOf(id: number, op: Operation): LeaderForwarder {
    this.groupHere(id, 'realm' in op ? op.realm : undefined);
    return this.init.forwarderFor?.(id) ?? this.init.forwarder;
  }

  async definition(consistency: Consistency): Promise<ServedRead<DefinitionView>> {
    await this.readBarrier(consistency);
    const placed = await this.placedRealmRecords(consistency);
    const state = this.state;
    const own = state.definition();
    // The placed realms' settings, from their groups: an export names every realm.
    const definition = {
      ...own,
      realms: { ...own.realms, ...Object.fromEntries(placed.realms.map((r) => [r.name, r.settings])) },
    };
    const view: DefinitionView = {
      version: state.access.version,
      definition,
      realms: [...state.realms().map((name) => realmEntry(name, state.realm(name)!)), ...placed.realms].sort(
        (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
      ),
      ...(placed.unreachableRealms === undefined ? {} : { unreachableRealms: placed.unreachableRealms }),
      tokens: state
        .tokens()
        .map(({ hash: _hash, ...token }) => token)
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)),
    };
    return this.withStaleness({ ok: true, revision: state.revision, value: view }, consistency);
  }

  /**
   * The records of the realms placed outside group 1, from their groups: this node's copy of a
   * group it runs, a member's for the others (asked with realmRecords, which a member answers
   * from its own groups only, so nothing is carried further). Realms whose group could not be
   * read are named in `unreachableRealms`.
   */
  private async placedRealmRecords(
    consistency: Consistency,
  ): Promise<{ realms: DefinitionView['realms']; unreachableRealms?: string[] }> {
    const byGroup = this.placedByGroup(this.init.placedRealms?.() ?? []);
    const realms: DefinitionView['realms'][number][] = [];
    const unreachable: string[] = [];
    await Promise.all(
      [...byGroup].map(async ([id, names]) => {
        try {
          const records =
            this.init.groupById?.(id) !== undefined
              ? await this.realmRecords(names, consistency)
              : this.init.carryRead === undefined
                ? undefined
                : ((await this.init.carryRead(id, {
                    call: 'realmRecords',
                    realms: names,
                    consistency,
                  })) as DefinitionView['realms']);
          if (records === undefined || !Array.isArray(records)) unreachable.push(...names);
          else realms.push(...records.filter((r) => names.includes(r.name)));
        } catch {
          unreachable.push(...names);
        }
      }),
    );
    return unreachable.length === 0 ? { realms } : { realms, unreachableRealms: unreachable.sort() };
  }

  async realmRecords(names: readonly string[], consistency: Consistency): Promise<DefinitionView['realms']> {
    this.init.refuseIfStopping();
    const out: DefinitionView['realms'][number][] = [];
    for (const [id, list] of this.placedByGroup(names)) {
      const group = this.init.groupById?.(id);
      if (group === undefined) continue; // Not run here: left out.
      await this.readBarrier(consistency, group);
      for (const name of list) {
        const record = group.storage.state.realm(name);
        if (record !== undefined) out.push(realmEntry(name, record));
      }
    }
    return out;
  }

  /** `names` by the raft group holding each, those of group 1 left out. */
  private placedByGroup(names: readonly string[]): Map<number, string[]> {
    const byGroup = new Map<number, string[]>();
    for (const name of names) {
      const id = this.init.groupOfRealm?.(name) ?? FIRST_GROUP;
      if (id !== FIRST_GROUP) byGroup.set(id, [...(byGroup.get(id) ?? []), name]);
    }
    return byGroup;
  }

  async route(realm: string): Promise<{ group: number; leader: string }> {
    this.init.refuseIfStopping();
    const id = this.init.groupOfRealm?.(realm) ?? FIRST_GROUP;
    const group = id === FIRST_GROUP ? this.init.group : this.init.groupById?.(id);
    if (group !== undefined) return { group: id, leader: group.driver.status().leader };
    return { group: id, leader: (await this.init.remoteLeader?.(id)) ?? '' };
  }

  /**
   * A satellite or DR replica shows the definition but never edits it, not even by forwarding:
   * READ_ONLY, naming the leader, where an administrator edits it.
   */
  private refuseIfReadOnly(): void {
    const role = this.ownRole();
    if (role !== 'satellite' && role !== 'dr') return;
    const leader = this.init.group.driver.status().leader;
    throw new DriverError(
      'READ_ONLY',
      `this node is a ${role === 'dr' ? 'disaster-recovery replica' : 'satellite'}: it shows the realm definition read-only; ` +
        `edit it through a voter${leader === '' ? '' : ` (the leader is ${leader})`}`,
      leader,
    );
  }

  status(): NodeStatus {
    const name = this.init.name;
    const raft = this.init.group.driver.status();
    const { voters, learners } = raft.membership;
    const roles = this.init.group.storage.state.meta.roles ?? {};
    const member = (m: string, role: MemberRole): MemberStatus => {
      const progress = raft.progress?.get(m);
      return progress
        ? {
            name: m,
            role,
            match: progress.match,
            next: progress.next,
            state: progress.state,
            recentActive: progress.recentActive,
          }
        : { name: m, role };
    };
    return {
      name,
      id: name,
      role: voters.includes(name) ? 'voter' : learners.includes(name) ? (roles[name] ?? 'learner') : 'none',
      state: raft.role,
      leader: raft.leader,
      term: raft.term,
      commitIndex: raft.commitIndex,
      appliedIndex: this.state.appliedIndex,
      revision: this.state.revision,
      members: [
        ...voters.map((m) => member(m, 'voter')),
        ...learners.map((m) => member(m, roles[m] ?? 'learner')),
      ],
      ...(this.init.group.storage.state.meta.backups === undefined
        ? {}
        : { backups: this.init.group.storage.state.meta.backups }),
    };
  }

  ready(): { ready: boolean; reason?: string } {
    const reason = this.init.notReadyReason();
    if (reason !== undefined) return { ready: false, reason };
    const driver = this.init.group.driver;
    const failure = driver.failure;
    if (failure !== undefined) return { ready: false, reason: `raft group failed: ${failure.message}` };
    const raft = driver.status();
    if (raft.leader === '') return { ready: false, reason: 'no known leader' };
    const lag = raft.commitIndex - this.state.appliedIndex;
    if (lag > 1000)
      return { ready: false, reason: `applied state is ${lag} entries behind the commit index` };
    return { ready: true };
  }

  private get state() {
    return this.init.group.storage.state;
  }

  /** Linearizable reads wait for a confirmed read index to be applied (dissertation §6.4). */
  /**
   * How long a satellite has not heard from the leader, once that is longer than an election
   * timeout; undefined for any other member, and for a satellite in touch. Learners cannot elect
   * a leader, so a satellite cut off from the voters has nothing to wait for.
   */
  private cutOffMs(): number | undefined {
    if (this.ownRole() !== 'satellite') return undefined;
    const silence = this.init.leaderSilenceMs();
    if (silence !== undefined && silence <= this.init.cutOffAfterMs) return undefined;
    return silence ?? Number.POSITIVE_INFINITY;
  }

  private ownRole(): MemberRole | 'none' {
    const { membership, meta } = this.init.group.storage.state;
    if (membership.voters.includes(this.init.name)) return 'voter';
    if (!membership.learners.includes(this.init.name)) return 'none';
    return meta.roles?.[this.init.name] ?? 'learner';
  }

  /** A cut-off satellite refuses at once what needs the leader: UNAVAILABLE, retry elsewhere or later. */
  private refuseIfCutOff(what: string): void {
    const silence = this.cutOffMs();
    if (silence === undefined) return;
    throw new DriverError(
      'UNAVAILABLE',
      `this satellite has not heard from the leader for ${Number.isFinite(silence) ? `${Math.round(silence)} ms` : 'ever'}: ` +
        `${what} need the leader; stale reads are served here`,
    );
  }

  private async readBarrier(consistency: Consistency, group: RaftGroup = this.init.group): Promise<void> {
    this.init.refuseIfStopping();
    if (consistency !== 'linearizable') return;
    this.refuseIfCutOff('linearizable reads');
    const driver = group.driver;
    await driver.waitForLeader(this.init.requestTimeoutMs);
    await driver.readIndex(this.init.requestTimeoutMs);
  }

  private withStaleness<T extends object>(
    result: T,
    consistency: Consistency,
    group: RaftGroup = this.init.group,
  ): T & { stale?: Staleness } {
    if (consistency !== 'stale') return result;
    const raft = group.driver.status();
    const cutOff = this.cutOffMs();
    return {
      ...result,
      stale: {
        appliedIndex: group.storage.state.appliedIndex,
        leaderCommitIndex: raft.commitIndex,
        ...(cutOff === undefined
          ? {}
          : { cutOff: true, leaderSilenceMs: Number.isFinite(cutOff) ? Math.round(cutOff) : null }),
      },
    };
  }
}

/** A realm's entry in the definition view. */
function realmEntry(name: string, record: RealmRecord): DefinitionView['realms'][number] {
  return {
    name,
    createRevision: record.createRevision,
    documents: record.documents ?? 0,
    settings: record.settings ?? {},
  };
}
