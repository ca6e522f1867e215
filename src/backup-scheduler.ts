// The backup service: one verified backup file per interval for the whole cluster, claimed through raft, written by whichever node claims it, old ones pruned.

import { link, mkdir, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../net/index.js';
import { Role } from '../raft/index.js';
import { type CommandResult, type Operation, syncDir } from '../storage/index.js';
import { verifyBackupFile } from './backup-file.js';
import { type ClusterBackupSource, writeClusterBackup } from './cluster-backup.js';
import type { RaftGroup } from './raft-group.js';

export interface BackupSchedulerInit {
  readonly name: string;
  readonly clusterId: string;
  readonly group: RaftGroup;
  /** What a backup covers: every raft group (cluster-backup.ts). */
  readonly source: ClusterBackupSource;
  /** Proposes an operation through the leader (MemberKv.write). */
  readonly write: (op: Operation) => Promise<CommandResult>;
  readonly logger: Logger;
  readonly dir: string;
  readonly intervalMs: number;
  readonly keep: number;
  /** Test hook: pause this long after the file is written, before it is verified and named. */
  readonly stallMs?: number;
}

/** The file name of a backup: the cluster id, the UTC time and the revision. */
export function backupFileName(clusterId: string, at: Date, revision: number): string {
  const time = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `conclave-${clusterId}-${time}-r${revision}.snap`;
}

/**
 * Every node running the backup service looks once a tick at the current interval (slot =
 * floor(now / interval)). The first node whose claim of a slot above the last claimed one
 * applies takes that slot's backup (BackupClaim in storage/commands.ts): one per interval for
 * the cluster. The leader leaves the first part of each interval to the followers, so that a
 * follower takes it when one can. The backup is written as `.partial`, fsynced, verified,
 * linked to its final name and the directory fsynced; only then are this cluster's oldest
 * files beyond `keep` deleted. The outcome is reported through raft (status shows it); a
 * failure is logged and the next interval tries again, on whichever node claims it.
 */
export class BackupScheduler {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  /** This node's random wait into each interval before it claims (so no node always wins). */
  private jitter = { slot: -1, ms: 0 };

  constructor(private readonly init: BackupSchedulerInit) {}

  /** Checks that the directory takes files (refused at start otherwise), then starts the ticks. */
  async start(): Promise<void> {
    const probe = join(this.init.dir, `.conclave-write-check-${this.init.name}`);
    try {
      await mkdir(this.init.dir, { recursive: true });
      await writeFile(probe, 'ok');
      await unlink(probe);
    } catch (error) {
      throw Object.assign(
        new Error(`the backup directory ${this.init.dir} does not take files: ${(error as Error).message}`),
        { code: 'UNAVAILABLE' },
      );
    }
    this.timer = setInterval(() => void this.tick(), Math.min(250, Math.max(50, this.init.intervalMs / 16)));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    while (this.busy) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  private async tick(now = Date.now()): Promise<void> {
    if (this.busy || this.stopped) return;
    const { group, intervalMs } = this.init;
    const slot = Math.floor(now / intervalMs);
    const ledger = group.storage.state.meta.backups;
    if (ledger !== undefined && ledger.slot >= slot) return;
    const raft = group.driver.status();
    if (raft.leader === '') return;
    const into = now - slot * intervalMs;
    // The leader waits out the first quarter of the interval (at most 5 s): a follower's turn.
    if (raft.role === Role.Leader && into < Math.min(intervalMs / 4, 5000)) return;
    if (this.jitter.slot !== slot) this.jitter = { slot, ms: Math.random() * Math.min(intervalMs / 8, 1000) };
    if (into < this.jitter.ms) return;
    this.busy = true;
    try {
      const claim = await this.init.write({ type: 'backupClaim', slot, node: this.init.name });
      if (!claim.ok) return; // Another node claimed it first.
      await this.run(slot);
    } catch (error) {
      this.init.logger.info('backup.claim_failed', { slot, error: (error as Error).message });
    } finally {
      this.busy = false;
    }
  }

  private async run(slot: number): Promise<void> {
    const { dir, clusterId, logger, group } = this.init;
    const started = Date.now();
    const name = backupFileName(clusterId, new Date(started), group.storage.state.meta.revision);
    const file = join(dir, name);
    const partial = `${file}.partial`;
    logger.info('backup.started', { slot, file });
    try {
      const info = await writeClusterBackup(partial, this.init.source);
      if (this.init.stallMs) await new Promise((resolve) => setTimeout(resolve, this.init.stallMs));
      const summary = await verifyBackupFile(partial);
      await link(partial, file);
      await unlink(partial);
      await syncDir(dir);
      const pruned = await this.prune(name);
      logger.info('backup.done', {
        slot,
        file,
        groups: info.groups.map((g) => g.group),
        revision: info.header.revision,
        bytes: summary.bytes,
        ms: Date.now() - started,
        pruned,
      });
      await this.report({
        slot,
        ok: true,
        file,
        revision: info.header.revision,
        bytes: summary.bytes,
        error: '',
      });
    } catch (error) {
      await rm(partial, { force: true });
      const code = (error as { code?: unknown }).code;
      const text = (error as Error).message ?? String(error);
      const message = typeof code === 'string' && !text.startsWith(code) ? `${code}: ${text}` : text;
      logger.error('backup.failed', { slot, file, error: message });
      await this.report({ slot, ok: false, file: '', revision: 0, bytes: 0, error: message.slice(0, 1000) });
    }
  }

  /** Deletes this cluster's oldest complete backups beyond `keep` (names sort by time); never `newest`. */
  private async prune(newest: string): Promise<string[]> {
    const prefix = `conclave-${this.init.clusterId}-`;
    const names = (await readdir(this.init.dir))
      .filter((n) => n.startsWith(prefix) && n.endsWith('.snap'))
      .sort();
    const doomed = names.slice(0, Math.max(0, names.length - this.init.keep)).filter((n) => n !== newest);
    for (const name of doomed) await rm(join(this.init.dir, name), { force: true });
    return doomed;
  }

  private async report(outcome: {
    slot: number;
    ok: boolean;
    file: string;
    revision: number;
    bytes: number;
    error: string;
  }): Promise<void> {
    try {
      await this.init.write({ type: 'backupReport', node: this.init.name, ...outcome });
    } catch (error) {
      this.init.logger.warn('backup.report_failed', { slot: outcome.slot, error: (error as Error).message });
    }
  }
}
