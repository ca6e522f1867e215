// The client API and admin operations on a stateless proxy: each call carried out by a member over the mesh.

import type {
  CommandResult,
  Document,
  LearnerRole,
  ListOptions,
  Operation,
  SessionRef,
} from '../storage/index.js';
import type { AdminService, BackupFile, MembersView } from './admin-api.js';
import type { Principal } from './auth.js';
import { errorOf, type PeerAnswer } from './forwarding.js';
import type {
  Consistency,
  DefinitionView,
  KvService,
  NodeStatus,
  ServedRead,
  WriteRoute,
} from './kv-service.js';
import type { AdminAction, ClientCall, PeerRequest } from './peer-protocol.js';
import type { ProxyMembers } from './proxy-members.js';
import { DriverError } from './raft-driver.js';

export interface ProxyKvInit {
  readonly name: string;
  /** This proxy's mesh peer id. */
  readonly peerId: string;
  readonly members: ProxyMembers;
  readonly requestTimeoutMs: number;
  /** Throws UNAVAILABLE once the proxy is stopping. */
  readonly refuseIfStopping: () => void;
  /** Why the proxy must not get new requests although it serves them (draining), or undefined. */
  readonly notReadyReason?: () => string | undefined;
}

/** Codes after which the same call may go to another member at once: it did not happen there. */
const ELSEWHERE_CODES: ReadonlySet<string> = new Set(['UNAVAILABLE', 'REMOVED', 'OVERLOADED']);

/**
 * KvService and AdminService on a proxy. A call goes to the member in use; if that member
 * cannot take it (unreachable, stopping, removed, or a read that got no answer), it goes to the
 * next reachable member until the request's deadline. A write whose fate is unknown (the
 * member went away after it was sent) is not sent again: it fails TIMEOUT, indeterminate, as
 * on a member, and a client with a session retries it safely.
 */
export class ProxyKv implements KvService, AdminService {
  constructor(private readonly init: ProxyKvInit) {}

  write(op: Operation, session?: SessionRef, route?: WriteRoute): Promise<CommandResult> {
    return this.call(
      { call: 'write', op, ...(session ? { session } : {}), ...(route ? { route } : {}) },
      true,
    );
  }

  get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>> {
    return this.call({ call: 'get', realm, key, consistency }, false);
  }

  list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    return this.call({ call: 'list', realm, options, consistency }, false);
  }

  /** Placed by a member (the placement is a write to group 1 there). */
  placeRealm(realm: string, group: number | 'auto'): Promise<{ group: number; result: CommandResult }> {
    return this.call({ call: 'placeRealm', realm, group }, true);
  }

  realms(consistency: Consistency): Promise<ServedRead<string[]>> {
    return this.call({ call: 'realms', consistency }, false);
  }

  definition(consistency: Consistency): Promise<ServedRead<DefinitionView>> {
    return this.call({ call: 'definition', consistency }, false);
  }

  /** Who `token` belongs to, as a member says; see ProxyGate. */
  principal(token: string | undefined, require: boolean): Promise<Principal> {
    return this.call({ call: 'principal', token: token ?? null, require }, false);
  }

  status(): NodeStatus {
    const { members, name, peerId } = this.init;
    const view = members.view;
    return {
      name,
      id: peerId,
      role: 'proxy',
      state: 'proxy',
      member: members.current,
      leader: view.leader,
      term: view.term,
      commitIndex: view.commitIndex,
      appliedIndex: 0,
      revision: 0,
      members: [
        ...view.voters.map((m) => ({ name: m, role: 'voter' as const })),
        ...view.learners.map((m) => ({ name: m, role: 'learner' as const })),
      ],
    };
  }

  ready(): { ready: boolean; reason?: string } {
    const { members } = this.init;
    const reason = this.init.notReadyReason?.();
    if (reason !== undefined) return { ready: false, reason };
    if (!members.reachable) return { ready: false, reason: 'no member of the cluster is reachable' };
    if (members.view.leader === '') return { ready: false, reason: 'no known leader' };
    return { ready: true };
  }

  // ---- AdminService: sent to the leader (the members refuse admin work elsewhere) ----------------

  members(): Promise<MembersView> {
    return this.onLeader({ type: 'members' }) as Promise<MembersView>;
  }

  async addLearner(name: string, address: string, role: LearnerRole): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'addLearner', name, address, role });
  }

  async promote(name: string): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'promote', name });
  }

  async remove(name: string): Promise<void> {
    await this.onLeader({ type: 'admin', action: 'remove', name });
  }

  async transferLeadership(to: string): Promise<{ leader: string; term: number }> {
    return (await this.onLeader({ type: 'admin', action: 'transfer', name: to })) as {
      leader: string;
      term: number;
    };
  }

  async backup(): Promise<BackupFile> {
    throw Object.assign(
      new Error("a stateless proxy holds no data: take the backup from a member's client endpoint"),
      { code: 'UNAVAILABLE' },
    );
  }

  /** Runs a client call on a member, moving to another while the failure says it did not happen. */
  private async call<T>(call: ClientCall, mayApply: boolean): Promise<T> {
    this.init.refuseIfStopping();
    const { members, requestTimeoutMs } = this.init;
    const deadline = Date.now() + requestTimeoutMs;
    let avoid: string | undefined;
    const realm = realmOfCall(call);
    for (;;) {
      const member = await members.pickFor(realm, call.call === 'write', deadline, avoid);
      try {
        const answer = await members.send<PeerAnswer<T>>(
          member.peer,
          member.name,
          { type: 'client', ...call },
          { timeoutMs: Math.max(1, deadline - Date.now()), mayApply },
        );
        if (answer.ok) return answer.value;
        throw errorOf(answer.error);
      } catch (error) {
        const { code, indeterminate } = error as { code?: string; indeterminate?: boolean };
        if (
          indeterminate === true ||
          code === undefined ||
          !ELSEWHERE_CODES.has(code) ||
          Date.now() >= deadline
        ) {
          throw error;
        }
        members.moveOff(member.peer);
        avoid = member.peer;
      }
    }
  }

  /** An admin request for the leader: sent to it if known and reachable, else to a member, which names it. */
  private async onLeader(request: PeerRequest & ({ type: 'members' } | ({ type: 'admin' } & AdminAction))) {
    this.init.refuseIfStopping();
    const { members, requestTimeoutMs } = this.init;
    // Finding a member takes at most one request timeout (as a member's wait for a leader does),
    // so that UNAVAILABLE comes before the edge's own deadline (two request timeouts).
    const pickBy = Date.now() + requestTimeoutMs;
    const deadline = Date.now() + requestTimeoutMs * 2;
    let leader = members.view.leader;
    for (let attempt = 0; ; attempt++) {
      const leaderPeer = leader === '' ? undefined : members.peerOf(leader);
      const target =
        leaderPeer === undefined ? await members.pick(pickBy) : { peer: leaderPeer, name: leader };
      try {
        const answer = await members.send<PeerAnswer<unknown>>(target.peer, target.name, request, {
          timeoutMs: Math.max(1, deadline - Date.now()),
          mayApply: true,
        });
        if (answer.ok) return answer.value;
        throw errorOf(answer.error);
      } catch (error) {
        const fields = error as { code?: string; leader?: string; indeterminate?: boolean };
        const named =
          fields.code === 'NOT_LEADER' && typeof fields.leader === 'string' && fields.leader !== '';
        if (!named || fields.leader === target.name || attempt >= 2 || Date.now() >= deadline) throw error;
        leader = fields.leader!;
        if (members.peerOf(leader) === undefined) {
          throw new DriverError(
            'NOT_LEADER',
            `the leader ${leader} is not reachable from this proxy`,
            leader,
          );
        }
      }
    }
  }
}

/** The realm a client call reads or writes, if it names one (definition edits and listings name none). */
function realmOfCall(call: ClientCall): string | undefined {
  if (call.call === 'get' || call.call === 'list') return call.realm;
  if (call.call !== 'write') return undefined;
  // A session's open and close name their realm in the route; a document write in its op.
  const realm = call.route?.realm ?? (call.op as { realm?: unknown } | null)?.realm;
  return typeof realm === 'string' ? realm : undefined;
}
