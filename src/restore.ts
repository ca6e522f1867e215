// `conclave restore`: the data directory of the first member of a new cluster, built from a backup file or the newest good one in a directory.

import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type EngineKind, exists, syncDir } from '../storage/index.js';
import {
  type BackupSummary,
  newestGoodBackup,
  type RejectedBackup,
  verifyBackupFile,
} from './backup-file.js';
import { buildDataDir, NewClusterError } from './new-cluster.js';

export interface RestoreOptions {
  /** A backup file, or a directory whose newest file that verifies is taken. */
  readonly from: string;
  readonly dataDir: string;
  readonly name: string;
  readonly engine: EngineKind;
  /** Keep the backup's cluster id (restoring the same cluster) instead of drawing a new one. */
  readonly keepClusterId: boolean;
  /** This node's mesh address, recorded in the restored address book. */
  readonly address?: string;
}

export interface RestoreReport {
  readonly dataDir: string;
  readonly name: string;
  readonly clusterId: string;
  readonly backup: BackupSummary;
  /** Files of a directory passed over because they did not verify. */
  readonly rejected: readonly RejectedBackup[];
}

/**
 * Verifies the backup (every chunk), then builds the data directory in a staging directory
 * beside `dataDir` and renames it into place, so a failure leaves no data directory behind.
 * Refuses a `dataDir` that holds anything (NewClusterError DATA_DIR_NOT_EMPTY); a file that does
 * not verify throws its SnapshotFileError, a directory without a good file NO_BACKUP.
 */
export async function restoreDataDir(
  options: RestoreOptions,
  progress: (line: string) => void = () => undefined,
): Promise<RestoreReport> {
  const dataDir = resolve(options.dataDir);
  await refuseIfHoldsData(dataDir);
  const source = resolve(options.from);
  let backup: BackupSummary;
  let rejected: RejectedBackup[] = [];
  if ((await stat(source)).isDirectory()) {
    progress(`looking for the newest backup in ${source} that verifies`);
    ({ summary: backup, rejected } = await newestGoodBackup(source));
    for (const r of rejected) progress(`skipped ${r.file}: ${r.message}`);
  } else {
    progress(`verifying ${source}`);
    backup = await verifyBackupFile(source);
  }
  progress(
    `restoring ${backup.file}: revision ${backup.revision}, index ${backup.index}, ${backup.bytes} bytes, sha256 ${backup.sha256}`,
  );
  const clusterId = options.keepClusterId ? backup.clusterId : randomUUID();
  const staging = `${dataDir}.restore-staging`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(staging, { mode: 0o700 });
  try {
    await buildDataDir(staging, {
      name: options.name,
      clusterId,
      engine: options.engine,
      file: backup.file,
      ...(options.address ? { address: options.address } : {}),
      progress,
    });
    await refuseIfHoldsData(dataDir);
    if (await exists(dataDir)) await rmdir(dataDir);
    await rename(staging, dataDir);
    await syncDir(dirname(dataDir));
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  return { dataDir, name: options.name, clusterId, backup, rejected };
}

async function refuseIfHoldsData(dataDir: string): Promise<void> {
  const entries = await readdir(dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    if (error.code === 'ENOTDIR') return ['(a file)'];
    throw error;
  });
  if (entries.length > 0) {
    throw new NewClusterError(
      'DATA_DIR_NOT_EMPTY',
      `${dataDir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}): ` +
        'restore builds a new data directory and never writes over one; give an empty or new directory',
    );
  }
}
