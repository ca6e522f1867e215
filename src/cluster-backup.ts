// A backup of every raft group of the cluster in one file: group 1 and each group its catalog lists, each at its own applied index.

import { rm } from 'node:fs/promises';
import { type GroupCatalog, type SnapshotHeader, writeBackupSet } from '../storage/index.js';
import type { RaftGroup } from './raft-group.js';

/** What a cluster backup holds. */
export interface ClusterBackupInfo {
  /** Group 1's header: its index, term and revision name the backup. */
  readonly header: SnapshotHeader;
  readonly bytes: number;
  /** Every group in the file (1 first), with the index and revision it is at. */
  readonly groups: readonly { readonly group: number; readonly index: number; readonly revision: number }[];
}

export interface ClusterBackupSource {
  readonly clusterId: string;
  /** Group 1 (holds the catalog). */
  readonly main: RaftGroup;
  /** The groups this node runs, by id. */
  readonly groups: ReadonlyMap<number, RaftGroup>;
  /**
   * Writes a backup of `group`, which this node does not run, to `dest` (a snapshot file, from
   * a member that runs it) and resolves with its header; absent: such a group fails the backup.
   */
  readonly fetchGroup?: (group: number, dest: string) => Promise<SnapshotHeader>;
}

/**
 * Writes a backup of every group to `path` (refused if it exists: StorageError FILE_EXISTS).
 * Group 1 is written first, then every group of its catalog as it stands after that (a group
 * created meanwhile is in the file too; restore skips a group its catalog does not list). With
 * no group besides group 1 the file is a plain snapshot file, as before groups existed; with
 * more it is a backup set (storage/backup-set.ts). Nothing is left at `path` on failure; a group
 * neither run here nor fetched fails the backup with code UNAVAILABLE naming it.
 */
export async function writeClusterBackup(
  path: string,
  source: ClusterBackupSource,
): Promise<ClusterBackupInfo> {
  const storage = source.main.storage;
  const catalog: GroupCatalog = storage.state.groups;
  if (catalog.groups.length === 0) {
    const info = await storage.backup(path);
    return {
      header: info.header,
      bytes: info.bytes,
      groups: [{ group: 1, index: info.header.index, revision: info.header.revision }],
    };
  }
  const temps: string[] = [];
  const temp = (label: string) => {
    const file = storage.tempPath(label);
    temps.push(file);
    return file;
  };
  try {
    const first = temp('backup-group-1');
    const info = await storage.backup(first);
    const parts = [{ group: 1, file: first }];
    const groups = [{ group: 1, index: info.header.index, revision: info.header.revision }];
    const ids = storage.state.groups.groups.map((g) => g.id).sort((a, b) => a - b);
    for (const id of ids) {
      const file = temp(`backup-group-${id}`);
      const local = source.groups.get(id);
      let header: SnapshotHeader;
      if (local !== undefined) {
        header = (await local.storage.backup(file)).header;
      } else if (source.fetchGroup !== undefined) {
        header = await source.fetchGroup(id, file);
      } else {
        throw Object.assign(
          new Error(`raft group ${id} is not run by this node, and no member of it was asked`),
          {
            code: 'UNAVAILABLE',
            reason: 'GROUP_NOT_HERE',
          },
        );
      }
      parts.push({ group: id, file });
      groups.push({ group: id, index: header.index, revision: header.revision });
    }
    const bytes = await writeBackupSet(path, source.clusterId, parts);
    return { header: info.header, bytes, groups };
  } finally {
    await Promise.all(temps.map((file) => rm(file, { force: true })));
  }
}
