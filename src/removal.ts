// How a node learns it was removed from its cluster: the notice members send it, the rule that decides, the marker it leaves.

import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Membership } from '../raft/index.js';

/**
 * What a member tells a node that is not in its membership. `membershipIndex` is the index of
 * the sender's latest membership entry, sent only once that entry is committed (the sender's
 * commit index reached it), so the notice never rests on a change that may still be undone.
 */
export interface RemovalNotice {
  readonly type: 'removed';
  readonly membershipIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

/** Why a node believes it was removed: kept in the marker file and logged. */
export interface RemovedRecord {
  readonly name: string;
  readonly clusterId: string;
  /** Index of the committed membership entry without this node that it learned of. */
  readonly membershipIndex: number;
  /** Who said so: a member's name, or "self" when this node applied the change itself. */
  readonly by: string;
  readonly at: string;
}

/** The file in the data directory that keeps a removed node from starting again. */
export const REMOVED_FILE = 'removed.json';

/** Exit code of a removed node (EX_CONFIG: do not restart it as it is). */
export const EXIT_REMOVED = 78;

/** A node that was removed from its cluster refuses to serve or start; code REMOVED. */
export class NodeRemovedError extends Error {
  readonly code = 'REMOVED';
  readonly retryable = true;

  constructor(
    readonly record: RemovedRecord,
    message = `REMOVED: node ${record.name} was removed from cluster ${record.clusterId} ` +
      `(membership entry ${record.membershipIndex}, reported by ${record.by}); use another node`,
  ) {
    super(message);
    this.name = 'NodeRemovedError';
  }
}

/**
 * Whether `notice` proves that node `self` was removed. It must name a membership without
 * `self`; this node must have believed it was a member (a node that was never added, such as a
 * joiner whose addition is not yet in the sender's log, is not "removed"); and the notice's
 * entry must be at least as new as the latest membership entry in this node's own log: a
 * lagging member's older membership does not count against a node added after it.
 *
 * Limitation: a node removed and re-added (same name, same data) before it heard of the
 * removal may take a notice from a member that has not yet seen the re-addition; it then stops
 * and must be wiped and added again. Nothing is lost by that, only availability.
 */
export function provesRemoval(
  notice: RemovalNotice,
  self: string,
  own: { readonly membership: Membership; readonly membershipIndex: number },
): boolean {
  if (notice.voters.includes(self) || notice.learners.includes(self)) return false;
  const wasMember = own.membership.voters.includes(self) || own.membership.learners.includes(self);
  return wasMember && notice.membershipIndex >= own.membershipIndex;
}

/** Decodes a notice from a peer request's fields; undefined if malformed. */
export function parseRemovalNotice(request: Record<string, unknown>): RemovalNotice | undefined {
  const { membershipIndex, voters, learners } = request;
  const names = (value: unknown): value is string[] =>
    Array.isArray(value) && value.length <= 10_000 && value.every((name) => typeof name === 'string');
  if (!Number.isSafeInteger(membershipIndex) || (membershipIndex as number) < 0) return undefined;
  if (!names(voters) || !names(learners)) return undefined;
  return { type: 'removed', membershipIndex: membershipIndex as number, voters, learners };
}

/** The marker left by an earlier removal, if any; a malformed marker still counts as one. */
export async function readRemovedMarker(dataDir: string): Promise<RemovedRecord | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, REMOVED_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as RemovedRecord;
  } catch {
    return { name: '?', clusterId: '?', membershipIndex: 0, by: `unreadable ${REMOVED_FILE}`, at: '?' };
  }
}

/** Writes the marker (temporary file, then rename). */
export async function writeRemovedMarker(dataDir: string, record: RemovedRecord): Promise<void> {
  const path = join(dataDir, REMOVED_FILE);
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}
