// Backups of raft groups this node does not run: asked of a member that runs the group, which streams its backup file back over the mesh's snapshot stream.

/*
 * The asking node sends the peer request `groupBackup { group, id }` to a member of the group;
 * that member writes a backup of its copy of the group (a snapshot file) and sends it back on
 * a snapshot stream whose header is `{ "backup": id }`, then answers the request with the
 * file's index, term and revision. The asking node takes an incoming backup stream only for an
 * id it is waiting for, from the member it asked, for the group it asked; anything else is
 * refused (INVALID_ARGUMENT) and nothing is written. Members are tried in turn until one
 * delivers.
 */

import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { IncomingSnapshot, Logger, Mesh } from '../net/index.js';
import { type SnapshotHeader, SnapshotReader } from '../storage/index.js';
import { forward } from './forwarding.js';
import type { PeerDirectory } from './peer-directory.js';
import { encodePeerMessage } from './peer-protocol.js';
import type { RaftGroup } from './raft-group.js';

/**
 * How long one member may take to write and send a group's backup: the mesh's longest request
 * (net/rpc.ts). At a few hundred MB/s of disk that is groups of tens of GB, past the mesh's
 * snapshot size limit anyway.
 */
const FETCH_TIMEOUT_MS = 120_000;

export interface GroupBackupFetchInit {
  readonly name: string;
  readonly mesh: Mesh;
  readonly peers: PeerDirectory;
  /** The groups this node runs, by id (what it serves). */
  readonly groups: ReadonlyMap<number, RaftGroup>;
  /** Who to ask for a group: its founders per group 1's catalog. */
  readonly membersOf: (group: number) => readonly string[];
  readonly logger: Logger;
}

/** What the member answers once the file was delivered. */
export interface GroupBackupAnswer {
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly bytes: number;
}

interface Pending {
  readonly group: number;
  readonly from: string;
  readonly dest: string;
  received: boolean;
}

export class GroupBackupFetcher {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly init: GroupBackupFetchInit) {}

  /**
   * Writes a backup of `group` from one of its members to `dest` (a new file) and resolves with
   * its header. Throws code UNAVAILABLE naming every member tried and why, if none delivered.
   */
  async fetch(group: number, dest: string): Promise<SnapshotHeader> {
    const { mesh, peers, name } = this.init;
    const failures: string[] = [];
    for (const member of this.init.membersOf(group).filter((m) => m !== name)) {
      const peer = peers.peerOf(member);
      if (peer === undefined) {
        failures.push(`${member}: not connected`);
        continue;
      }
      const id = randomUUID();
      const pending: Pending = { group, from: member, dest, received: false };
      this.pending.set(id, pending);
      try {
        await forward<GroupBackupAnswer>(
          mesh,
          peer,
          { type: 'groupBackup', group, id },
          { timeoutMs: FETCH_TIMEOUT_MS, target: member, mayApply: false },
        );
        if (!pending.received) throw new Error('it answered without sending the file');
        const reader = await SnapshotReader.open(dest);
        await reader.close();
        return reader.header;
      } catch (error) {
        failures.push(`${member}: ${(error as Error).message}`);
        await rm(dest, { force: true });
      } finally {
        this.pending.delete(id);
      }
    }
    throw Object.assign(
      new Error(
        `no member of raft group ${group} delivered its backup` +
          (failures.length === 0 ? ' (it has no member besides this node)' : `: ${failures.join('; ')}`),
      ),
      { code: 'UNAVAILABLE', reason: 'GROUP_BACKUP_FAILED' },
    );
  }

  /**
   * Whether `incoming` is a backup stream (its header `{ "backup": id }`); if it is, takes it
   * into the waiting fetch's file, or refuses it (INVALID_ARGUMENT) when no fetch of that group
   * from that member waits for it. Non-backup streams are left to raft (false).
   */
  async receive(fromName: string, incoming: IncomingSnapshot): Promise<boolean> {
    const id = backupIdOf(incoming.header);
    if (id === undefined) return false;
    const pending = this.pending.get(id);
    if (
      pending === undefined ||
      pending.from !== fromName ||
      pending.group !== incoming.groupId ||
      pending.received
    ) {
      throw Object.assign(new Error('a backup stream nobody asked for'), { code: 'INVALID_ARGUMENT' });
    }
    const file = await open(pending.dest, 'wx', 0o600);
    try {
      for await (const chunk of incoming.chunks) await file.write(chunk);
      await file.sync();
    } catch (error) {
      await file.close().catch(() => undefined);
      await rm(pending.dest, { force: true });
      throw error;
    }
    await file.close();
    pending.received = true;
    return true;
  }

  /**
   * Serves a `groupBackup` request from `peer`: writes a backup of this node's copy of `group`
   * and streams it back. Throws NOT_FOUND if this node does not run the group.
   */
  async serve(peer: string, group: number, id: string): Promise<GroupBackupAnswer> {
    const local = this.init.groups.get(group);
    if (local === undefined) {
      throw Object.assign(new Error(`${this.init.name} does not run raft group ${group}`), {
        code: 'NOT_FOUND',
      });
    }
    const path = local.storage.tempPath(`backup-for-peer-${group}`);
    try {
      const info = await local.storage.backup(path);
      await this.init.mesh.sendSnapshot(peer, {
        groupId: group,
        header: encodePeerMessage({ backup: id }),
        source: createReadStream(path),
      });
      this.init.logger.info('backup.group_sent', {
        group,
        to: this.init.peers.nameOf(peer) ?? peer,
        index: info.header.index,
        bytes: info.bytes,
      });
      return {
        index: info.header.index,
        term: info.header.term,
        revision: info.header.revision,
        bytes: info.bytes,
      };
    } finally {
      await rm(path, { force: true });
    }
  }
}

/** The id of a backup stream's header, or undefined for any other header (raft's snapshots). */
function backupIdOf(header: Uint8Array): string | undefined {
  try {
    const value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header)) as {
      backup?: unknown;
    };
    return typeof value === 'object' && value !== null && typeof value.backup === 'string'
      ? value.backup
      : undefined;
  } catch {
    return undefined;
  }
}
