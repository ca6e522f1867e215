// A member's admin operations: membership changes, leadership transfer and the members' view, carried out by the leader.

import { rm } from 'node:fs/promises';
import type { Logger } from '../net/index.js';
import { MembershipChangeType, RaftError, Role } from '../raft/index.js';
import { currentMembers, encodeMemberContext, type LearnerRole, type MemberRole } from '../storage/index.js';
import type { AdminService, BackupFile, MembersView, MemberView } from './admin-api.js';
import { type ClusterBackupSource, writeClusterBackup } from './cluster-backup.js';
import type { ClusterMember } from './config.js';
import { answerOf, type LeaderForwarder, type PeerAnswer } from './forwarding.js';
import type { AdminAction, JoinAnswer } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';
import type { RaftGroup } from './raft-group.js';

export interface MemberAdminInit {
  /** This node's name. */
  readonly name: string;
  readonly group: RaftGroup;
  /** What a backup covers: every raft group (cluster-backup.ts). */
  readonly backupSource: ClusterBackupSource;
  readonly forwarder: LeaderForwarder;
  /** Whether the node runs a mesh (without one, no node can join it). */
  readonly hasMesh: boolean;
  /** This node's mesh peer id ('' without a mesh) and the others', by name. */
  readonly selfPeerId: string;
  readonly peerOf: (name: string) => string | undefined;
  /** When the leader last heard from each member (ms since epoch), by name. */
  readonly lastContact: ReadonlyMap<string, number>;
  /** Founding members, for addresses that predate the replicated address book. */
  readonly initialCluster: readonly ClusterMember[];
  readonly requestTimeoutMs: number;
  readonly electionTimeoutMs: number;
  /** Throws the node's refusal when it takes no requests (stopping, removed). */
  readonly refuseIfStopping: () => void;
  readonly logger: Logger;
}

/**
 * AdminService on a member: each call runs on the leader, here or forwarded over the mesh.
 * Raft's refusals are thrown as CONFLICT with the raft code as `reason`.
 */
export class MemberAdmin implements AdminService {
  private backupRunning = false;

  constructor(private readonly init: MemberAdminInit) {}

  async backup(): Promise<BackupFile> {
    this.init.refuseIfStopping();
    if (this.backupRunning) {
      throw Object.assign(
        new Error('a backup is being taken from this node already; retry when it is done'),
        {
          code: 'CONFLICT',
          reason: 'BACKUP_IN_PROGRESS',
        },
      );
    }
    this.backupRunning = true;
    const storage = this.init.group.storage;
    const path = storage.tempPath('backup');
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.backupRunning = false;
      void rm(path, { force: true });
    };
    const started = performance.now();
    try {
      const info = await writeClusterBackup(path, this.init.backupSource);
      const groups = info.groups.map((g) => g.group);
      // Once per backup taken through GET /v1/backup (scheduled ones log backup.done).
      this.init.logger.info('backup.taken', {
        groups,
        bytes: info.bytes,
        index: info.header.index,
        revision: info.header.revision,
        ms: Math.round(performance.now() - started),
      });
      return {
        path,
        bytes: info.bytes,
        clusterId: info.header.clusterId,
        index: info.header.index,
        term: info.header.term,
        revision: info.header.revision,
        groups,
        release,
      };
    } catch (error) {
      release();
      this.init.logger.error('backup.failed', { error: (error as Error).message, requested: true });
      if ((error as { code?: unknown }).code === 'ENOSPC') {
        throw Object.assign(
          new Error(`no space left on this node's disk to write the backup (${(error as Error).message})`),
          { code: 'UNAVAILABLE', reason: 'DISK_FULL' },
        );
      }
      throw error;
    }
  }

  async members(): Promise<MembersView> {
    this.init.refuseIfStopping();
    return this.init.forwarder.run({ type: 'members' }, async () => this.membersHere(), {
      timeoutMs: this.init.requestTimeoutMs * 2,
      answeredAsValue: true,
    });
  }

  async addLearner(name: string, address: string, role: LearnerRole): Promise<void> {
    await this.onLeader({ action: 'addLearner', name, address, role });
  }

  async promote(name: string): Promise<void> {
    await this.onLeader({ action: 'promote', name });
  }

  async remove(name: string): Promise<void> {
    await this.onLeader({ action: 'remove', name });
  }

  async transferLeadership(to: string): Promise<{ leader: string; term: number }> {
    return (await this.onLeader({ action: 'transfer', name: to })) as { leader: string; term: number };
  }

  /**
   * A node that started with --join and --role (`name`, as it identified itself) asks to be
   * added in `role`, or promoted if it is a plain learner that asked to vote. Carried out by
   * the leader. A member in another role is refused CONFLICT, reason ROLE_MISMATCH.
   */
  async join(name: string, role: MemberRole, address: string): Promise<JoinAnswer> {
    const { voters, learners } = this.init.group.driver.status().membership;
    const roles = this.init.group.storage.state.meta.roles ?? {};
    const current: MemberRole | undefined = voters.includes(name)
      ? 'voter'
      : learners.includes(name)
        ? (roles[name] ?? 'learner')
        : undefined;
    if (current === role) return { done: 'already' };
    if (current === 'learner' && role === 'voter') {
      await this.promote(name);
      return { done: 'promoted' };
    }
    if (current !== undefined) {
      throw Object.assign(new Error(`${name} is already a ${current}, not a ${role}`), {
        code: 'CONFLICT',
        reason: 'ROLE_MISMATCH',
      });
    }
    await this.addLearner(name, address, role === 'voter' ? 'learner' : role);
    return { done: 'added' };
  }

  /** Serves a peer's `members` or `admin` request: carried out here, which must lead. */
  serve(request: { type: 'members' } | ({ type: 'admin' } & AdminAction)): Promise<PeerAnswer<unknown>> {
    return request.type === 'members'
      ? answerOf(async () => this.membersHere())
      : answerOf(() => this.adminHere(request));
  }

  private onLeader(action: AdminAction): Promise<unknown> {
    this.init.refuseIfStopping();
    return this.init.forwarder.run({ type: 'admin', ...action }, () => this.adminHere(action), {
      timeoutMs: this.init.requestTimeoutMs * 2,
      answeredAsValue: true,
    });
  }

  private membersHere(): MembersView {
    const { group, name: selfName } = this.init;
    const raft = group.driver.status();
    if (raft.role !== Role.Leader || raft.progress === undefined) {
      throw new DriverError('NOT_LEADER', 'this node no longer leads', raft.leader);
    }
    // One applied snapshot: raft's own membership runs ahead of the state while a change is in
    // flight, and mixing the two showed a removed voter gone before it was listed as replaced.
    const {
      membership,
      addresses = {},
      roles = {},
      replacing,
      replaced = [],
      backups,
    } = group.storage.state.meta;
    const now = Date.now();
    const view = (name: string, voter: boolean): MemberView => {
      const progress = raft.progress?.get(name);
      const self = name === selfName;
      const heard = this.init.lastContact.get(name);
      const matchIndex = self ? raft.lastIndex : (progress?.match ?? 0);
      const lastContactMs = self ? 0 : heard === undefined ? null : now - heard;
      return {
        name,
        id: self ? this.init.selfPeerId : (this.init.peerOf(name) ?? ''),
        role: voter ? 'voter' : (roles[name] ?? 'learner'),
        address: addresses[name] ?? this.init.initialCluster.find((m) => m.name === name)?.address ?? '',
        state: self ? 'leader' : (progress?.state ?? 'unknown'),
        matchIndex,
        lag: Math.max(0, raft.commitIndex - matchIndex),
        lagMs:
          self || matchIndex >= raft.commitIndex
            ? 0
            : Math.round(group.driver.appends.lagMs(matchIndex, now)),
        lastContactMs,
        reachable: lastContactMs !== null && lastContactMs <= this.init.electionTimeoutMs,
      };
    };
    return {
      leader: selfName,
      term: raft.term,
      commitIndex: raft.commitIndex,
      members: [
        ...membership.voters.map((name) => view(name, true)),
        ...membership.learners.map((name) => view(name, false)),
      ],
      ...(replacing === undefined ? {} : { replacing }),
      ...(replaced.length === 0 ? {} : { replaced: replaced.map((r) => r.name) }),
      ...(backups === undefined ? {} : { backups }),
    };
  }

  /** Carries out an admin action on this node, which must lead. */
  private async adminHere(request: AdminAction): Promise<unknown> {
    const { driver } = this.init.group;
    const timeoutMs = this.init.requestTimeoutMs;
    try {
      switch (request.action) {
        case 'addLearner':
          if (!this.init.hasMesh) {
            throw Object.assign(
              new Error(
                'this cluster runs without a mesh (started without --cluster-secret-file), so no node can join it; ' +
                  'restart it with --cluster-secret-file FILE (conclave secret new > FILE) and try again',
              ),
              { code: 'CONFLICT', reason: 'NO_MESH' },
            );
          }
          await driver.proposeMembershipChange(
            {
              type: MembershipChangeType.AddLearner,
              nodeId: request.name,
              context: encodeMemberContext({ address: request.address, role: request.role ?? 'learner' }),
            },
            timeoutMs,
          );
          return {};
        case 'promote':
          await driver.proposeMembershipChange(
            { type: MembershipChangeType.PromoteLearner, nodeId: request.name },
            timeoutMs,
          );
          return {};
        case 'remove': {
          // A node removed from group 1 stops; the groups it is in would lose a member they
          // count on (a group of two could not even commit its removal). Move them first.
          const holding = this.init.group.storage.state.groups.groups
            .filter((g) => currentMembers(g).includes(request.name))
            .map((g) => g.id);
          if (holding.length > 0) {
            throw Object.assign(
              new Error(
                `${request.name} is a member of raft group${holding.length > 1 ? 's' : ''} ${holding.join(', ')}; ` +
                  `move ${holding.length > 1 ? 'them' : 'it'} first: conclave groups members add ${holding[0]} <another voter>, ` +
                  `then conclave groups members remove ${holding[0]} ${request.name}`,
              ),
              { code: 'CONFLICT', reason: 'GROUP_MEMBER' },
            );
          }
          await driver.proposeMembershipChange(
            { type: MembershipChangeType.RemoveNode, nodeId: request.name },
            timeoutMs,
          );
          return {};
        }
        case 'transfer': {
          const { voters, learners } = driver.status().membership;
          if (!voters.includes(request.name) && !learners.includes(request.name)) {
            throw Object.assign(new Error(`no member is named ${request.name}`), { code: 'NOT_FOUND' });
          }
          const refused = driver.transferLeadership(request.name);
          if (refused) throw refused;
          const deadline = Date.now() + Math.max(timeoutMs, this.init.electionTimeoutMs * 4);
          for (;;) {
            const raft = driver.status();
            if (raft.leader === request.name) return { leader: raft.leader, term: raft.term };
            if (Date.now() > deadline) {
              throw new DriverError(
                'TIMEOUT',
                `${request.name} did not take over leadership in time`,
                raft.leader,
              );
            }
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      }
    } catch (error) {
      if (error instanceof RaftError) {
        if (error.code === 'NOT_LEADER' || error.code === 'NO_LEADER') {
          throw new DriverError(error.code, error.message, error.leader);
        }
        throw Object.assign(new Error(error.message), { code: 'CONFLICT', reason: error.code });
      }
      throw error;
    }
  }
}
