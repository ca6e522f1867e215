// Backup files at rest: verifying one end to end, and finding the newest good one in a directory.

import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupSet, SnapshotFileError } from '../storage/index.js';

/** One raft group in a verified backup file. */
export interface BackupGroupSummary {
  readonly group: number;
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly records: number;
}

/** What a verified backup file holds. index, term and revision are group 1's (they name the backup). */
export interface BackupSummary {
  readonly file: string;
  readonly clusterId: string;
  readonly group: number;
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly createdAt: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly chunks: number;
  readonly records: number;
  /** Every raft group in the file, group 1 first, each at its own index. */
  readonly groups: readonly BackupGroupSummary[];
}

/**
 * Reads every chunk of every group in `file` (a snapshot file or a backup set), checking each
 * checksum, the sequence and the end records, and hashes it. Throws SnapshotFileError naming
 * the problem: NOT_A_SNAPSHOT, SNAPSHOT_NEWER_FORMAT, SNAPSHOT_TRUNCATED, SNAPSHOT_CORRUPT
 * ("chunk N checksum mismatch"…); or the fs error (ENOENT).
 */
export async function verifyBackupFile(file: string): Promise<BackupSummary> {
  const set = await BackupSet.open(file);
  const count = await set.verify();
  const header = set.first.header;
  return {
    file,
    clusterId: set.clusterId,
    group: header.group,
    index: header.index,
    term: header.term,
    revision: header.revision,
    createdAt: new Date(set.createdAtMs).toISOString(),
    bytes: set.size,
    sha256: await sha256Of(file),
    chunks: count.chunks,
    records: count.records,
    groups: set.sections.map((s) => ({
      group: s.group,
      index: s.header.index,
      term: s.header.term,
      revision: s.header.revision,
      records: count.recordsByGroup.get(s.group) ?? 0,
    })),
  };
}

/** A file of a backup directory that did not verify, and why. */
export interface RejectedBackup {
  readonly file: string;
  readonly code: string;
  readonly message: string;
}

/**
 * The newest backup in `dir` that verifies: files are ordered by the revision in their header
 * (then by time written), newest first, and verified in that order until one passes. Files
 * whose header does not read are rejected too. Throws SnapshotFileError NO_BACKUP when none
 * verifies, listing why each was rejected.
 */
export async function newestGoodBackup(
  dir: string,
): Promise<{ summary: BackupSummary; rejected: RejectedBackup[] }> {
  const names = (await readdir(dir)).filter((name) => !name.endsWith('.partial') && !name.startsWith('.'));
  const candidates: { file: string; revision: number; createdAtMs: number }[] = [];
  const rejected: RejectedBackup[] = [];
  for (const name of names) {
    const file = join(dir, name);
    if (!(await statIfPresent(file))?.isFile()) continue;
    try {
      const set = await BackupSet.open(file);
      candidates.push({ file, revision: set.first.header.revision, createdAtMs: set.createdAtMs });
    } catch (error) {
      if (!isGone(error)) rejected.push(rejection(file, error));
    }
  }
  candidates.sort((a, b) => b.revision - a.revision || b.createdAtMs - a.createdAtMs);
  for (const candidate of candidates) {
    try {
      return { summary: await verifyBackupFile(candidate.file), rejected };
    } catch (error) {
      if (!isGone(error)) rejected.push(rejection(candidate.file, error));
    }
  }
  throw new SnapshotFileError(
    'NO_BACKUP',
    dir,
    rejected.length === 0
      ? 'it holds no backup file'
      : `no file verifies: ${rejected.map((r) => `${r.file}: ${r.message}`).join('; ')}`,
  );
}

/**
 * A file's stat, or undefined when it is gone. A directory being read may be written at the
 * same time: a backup renames its .partial file when done, and the keep policy prunes old ones.
 */
async function statIfPresent(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (error) {
    if (isGone(error)) return undefined;
    throw error;
  }
}

/** Whether an error says the file was removed (or renamed) after the directory was read. */
function isGone(error: unknown): boolean {
  return (error as { code?: unknown }).code === 'ENOENT';
}

function rejection(file: string, error: unknown): RejectedBackup {
  const code = (error as { code?: unknown }).code;
  return {
    file,
    code: typeof code === 'string' ? code : 'ERROR',
    message: (error as Error).message ?? String(error),
  };
}

function sha256Of(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** One file of a backup directory as `backup list` shows it. */
export interface BackupListEntry {
  readonly name: string;
  /** ok (header read, or fully verified with `verify`), incomplete (.partial: being written or abandoned), bad. */
  readonly state: 'ok' | 'verified' | 'incomplete' | 'bad';
  readonly bytes: number;
  readonly clusterId?: string;
  readonly index?: number;
  readonly revision?: number;
  readonly createdAt?: string;
  readonly sha256?: string;
  /** How many raft groups the file holds. */
  readonly groups?: number;
  readonly problem?: string;
}

/** The regular files of `dir`, by name, with what their headers say (every chunk checked with `verify`). */
export async function listBackups(dir: string, options: { verify: boolean }): Promise<BackupListEntry[]> {
  const entries: BackupListEntry[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (name.startsWith('.')) continue;
    const file = join(dir, name);
    const info = await statIfPresent(file);
    if (!info?.isFile()) continue;
    if (name.endsWith('.partial')) {
      entries.push({ name, state: 'incomplete', bytes: info.size });
      continue;
    }
    try {
      if (options.verify) {
        const summary = await verifyBackupFile(file);
        entries.push({
          name,
          state: 'verified',
          bytes: summary.bytes,
          clusterId: summary.clusterId,
          index: summary.index,
          revision: summary.revision,
          createdAt: summary.createdAt,
          sha256: summary.sha256,
          groups: summary.groups.length,
        });
      } else {
        const set = await BackupSet.open(file);
        const { header } = set.first;
        entries.push({
          name,
          state: 'ok',
          bytes: info.size,
          clusterId: set.clusterId,
          index: header.index,
          revision: header.revision,
          createdAt: new Date(set.createdAtMs).toISOString(),
          groups: set.sections.length,
        });
      }
    } catch (error) {
      if (!isGone(error))
        entries.push({ name, state: 'bad', bytes: info.size, problem: (error as Error).message });
    }
  }
  return entries;
}
