// Turning a stopped node's data into the only voter of a new cluster: `conclave dr promote` and `conclave recover --force-new-cluster`.

import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { NODE_KEY_FILE } from '../net/identity.js';
import {
  BackupSet,
  ENGINE_KINDS,
  type EngineKind,
  exists,
  NodeStorage,
  type SnapshotHeader,
  syncDir,
  writeBackupSet,
} from '../storage/index.js';
import { IDENTITY_FILE, type NodeIdentityRecord, writeIdentityRecord } from './bootstrap.js';
import { readRemovedMarker } from './removal.js';

/** The raft group every realm lives in (as in node.ts). */
const GROUP = 1;
const MARKER_FILE = 'conclave-storage.json';

/** Why a new cluster was not made; the data directory is then as it was. Codes are stable. */
export type NewClusterErrorCode =
  | 'NOT_A_DATA_DIR'
  | 'NODE_RUNNING'
  | 'WRONG_ROLE'
  | 'REMOVED'
  | 'PEERS_ANSWER'
  | 'TARGET_EXISTS'
  | 'DATA_DIR_NOT_EMPTY'
  | 'BACKUP_INCOMPLETE';

export class NewClusterError extends Error {
  constructor(
    readonly code: NewClusterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NewClusterError';
  }
}

/** What the node held before, read without changing anything. */
export interface NodeHoldings {
  readonly name: string;
  readonly clusterId: string;
  readonly engine: EngineKind;
  /** voter, or the learner's role (learner, spare, satellite, dr); 'none' if not a member. */
  readonly role: string;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** The other members' mesh addresses, by name. */
  readonly addresses: Readonly<Record<string, string>>;
}

/** What startNewCluster did. */
export interface NewClusterReport {
  readonly name: string;
  readonly previousClusterId: string;
  readonly clusterId: string;
  /** The last log index and revision the new cluster holds (everything the node knew committed). */
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  /** Committed entries the node had not applied yet; applied before the snapshot was taken. */
  readonly appliedFromLog: number;
  /** Entries in the node's log past its commit index: possibly never committed, so discarded. */
  readonly discarded: number;
  /** This node's mesh address in the new cluster ('' if the old membership had none). */
  readonly address: string;
  /** Where the data directory as it was is kept (delete it once the new cluster is verified). */
  readonly previousDataDir: string;
  /** The raft groups the new cluster holds (1 first): every group this node ran. */
  readonly groups: readonly number[];
  /** Groups of the catalog this node did not run: their realms are unavailable in the new cluster. */
  readonly missingGroups: readonly number[];
}

/**
 * Reads who the node in `dataDir` is, its role and its cluster's members. Throws
 * NewClusterError NOT_A_DATA_DIR, REMOVED, or NODE_RUNNING (its process holds the directory).
 */
export async function readHoldings(dataDir: string): Promise<NodeHoldings> {
  const { identity, engine } = await readDataDirFiles(dataDir);
  return withStorage(dataDir, identity.clusterId, engine, async (storage) => {
    const group = await storage.openGroup(GROUP);
    const { membership, meta } = { membership: group.state.membership, meta: group.state.meta };
    const role = membership.voters.includes(identity.name)
      ? 'voter'
      : membership.learners.includes(identity.name)
        ? (meta.roles?.[identity.name] ?? 'learner')
        : 'none';
    return {
      name: identity.name,
      clusterId: identity.clusterId,
      engine,
      role,
      voters: membership.voters,
      learners: membership.learners,
      addresses: meta.addresses ?? {},
    };
  });
}

/**
 * Makes the node in `dataDir` the only voter of a new cluster (a fresh cluster id) holding
 * everything it knew committed: committed entries it had not applied are applied first, entries
 * past its commit index are discarded (they may never have committed), and the state is written
 * as a snapshot into a new data directory beside the old one, under the new id, with the node's
 * key. Only then are the directories swapped, so a failure or a crash before that leaves the old
 * one as its next start would have made it (committed entries applied, nothing else changed);
 * the old one is kept under a name ending `.before-new-cluster-<time>`.
 * `progress` hears one line per step. The caller checks the role (readHoldings) beforehand.
 */
export async function startNewCluster(
  dataDirInput: string,
  progress: (line: string) => void = () => undefined,
): Promise<NewClusterReport> {
  const dataDir = resolve(dataDirInput);
  const { identity, engine } = await readDataDirFiles(dataDir);
  const staging = `${dataDir}.new-cluster-staging`;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const previousDataDir = `${dataDir}.before-new-cluster-${stamp}`;
  if (await exists(previousDataDir)) {
    throw new NewClusterError('TARGET_EXISTS', `${previousDataDir} exists; try again in a moment`);
  }
  // A staging directory is only ever this tool's, from an attempt that did not finish.
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  try {
    return await buildAndSwap(dataDir, identity, engine, staging, previousDataDir, progress);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

async function buildAndSwap(
  dataDir: string,
  identity: NodeIdentityRecord,
  engine: EngineKind,
  staging: string,
  previousDataDir: string,
  progress: (line: string) => void,
): Promise<NewClusterReport> {
  const backupFile = join(staging, 'import.snap');
  const before = await withStorage(dataDir, identity.clusterId, engine, async (storage) => {
    // Every group this node holds, each brought to its commit index and written as a snapshot.
    const ids = (await storage.groupIds()).sort((a, b) => a - b);
    const parts: { group: number; file: string }[] = [];
    let first:
      | { header: SnapshotHeader; appliedFromLog: number; discarded: number; address: string }
      | undefined;
    for (const id of [GROUP, ...ids.filter((g) => g !== GROUP)]) {
      const group = await storage.openGroup(id);
      const label = id === GROUP ? '' : ` of raft group ${id}`;
      const { commit } = group.log.initialState().hardState;
      const applied = group.state.appliedIndex;
      const last = group.log.lastIndex();
      let appliedFromLog = 0;
      if (commit > applied) {
        progress(
          `applying ${commit - applied} committed entries${label} not applied yet (${applied + 1}..${commit})`,
        );
        for (let low = applied + 1; low <= commit; ) {
          const entries = group.log.entries(low, commit + 1, 8 * 1024 * 1024);
          await group.apply(entries);
          appliedFromLog += entries.length;
          low += entries.length;
        }
      }
      const discarded = Math.max(0, last - Math.max(commit, group.state.appliedIndex));
      if (discarded > 0) progress(`discarding ${discarded} entries${label} past the commit index ${commit}`);
      progress(`writing the state${label} at index ${group.state.appliedIndex} as a snapshot`);
      const file = ids.length <= 1 ? backupFile : join(staging, `import-group-${id}.snap`);
      const info = await group.backup(file);
      progress(`wrote ${info.bytes} bytes (revision ${info.header.revision})`);
      parts.push({ group: id, file });
      if (id === GROUP) {
        first = {
          header: info.header,
          appliedFromLog,
          discarded,
          address: group.state.meta.addresses?.[identity.name] ?? '',
        };
      }
    }
    if (parts.length > 1) {
      await writeBackupSet(backupFile, identity.clusterId, parts);
      for (const part of parts) await rm(part.file, { force: true });
    }
    return first!;
  });
  const clusterId = randomUUID();
  progress(`building the data directory of cluster ${clusterId}`);
  const built = await buildDataDir(staging, {
    name: identity.name,
    clusterId,
    engine,
    file: backupFile,
    nodeKeyFrom: dataDir,
    allowMissingGroups: true,
    progress,
  });
  await rm(backupFile, { force: true });
  // The swap: two renames in the same parent directory.
  await rename(dataDir, previousDataDir);
  await rename(staging, dataDir);
  await syncDir(dirname(dataDir));
  return {
    name: identity.name,
    previousClusterId: identity.clusterId,
    clusterId,
    index: before.header.index,
    term: before.header.term,
    revision: before.header.revision,
    appliedFromLog: before.appliedFromLog,
    discarded: before.discarded,
    address: before.address,
    previousDataDir,
    groups: built.groups,
    missingGroups: built.missingGroups,
  };
}

/**
 * Builds in `dir` (which must hold no data) the data directory of `name`, the only voter of
 * cluster `clusterId`, from the snapshot or backup `file` (a backup set: every raft group in it):
 * its state, raft starting at the file's index and term, node.json, and the node key copied from
 * `nodeKeyFrom` if there is one there (else the node makes one at start). `address` becomes its
 * entry in the address book, if given. Every group of group 1's catalog that the file holds is
 * restored with `name` as its only voter and founder. A catalog group the file lacks is refused
 * (NewClusterError BACKUP_INCOMPLETE) unless `allowMissingGroups` (a node's own data, which holds
 * only the groups it ran): such a group keeps its founders and stays unavailable. Resolves with
 * group 1's index, term and revision, the groups restored and those missing, once fsynced.
 */
export async function buildDataDir(
  dir: string,
  options: {
    readonly name: string;
    readonly clusterId: string;
    readonly engine: EngineKind;
    readonly file: string;
    readonly nodeKeyFrom?: string;
    readonly address?: string;
    readonly allowMissingGroups?: boolean;
    readonly progress?: (line: string) => void;
  },
): Promise<{ index: number; term: number; revision: number; groups: number[]; missingGroups: number[] }> {
  const progress = options.progress ?? (() => undefined);
  const set = await BackupSet.open(options.file);
  const membership = { voters: [options.name], learners: [] };
  const addresses = options.address ? { addresses: { [options.name]: options.address } } : {};
  const others = new Set(set.sections.map((s) => s.group).filter((g) => g !== GROUP));
  const storage = await NodeStorage.open({
    dataDir: dir,
    clusterId: options.clusterId,
    storageEngine: options.engine,
  });
  let held: { index: number; term: number; revision: number; groups: number[]; missingGroups: number[] };
  // A section is copied out into a plain snapshot file, which restoreGroup takes (and consumes).
  const sectionFile = async (group: number): Promise<string> => {
    if (set.format === 1) return options.file;
    const path = join(dir, `restore-group-${group}.snap`);
    await rm(path, { force: true });
    await set.extract(group, path);
    return path;
  };
  try {
    const group = await storage.restoreGroup(GROUP, await sectionFile(GROUP), {
      membership,
      ...addresses,
      restoredGroups: others,
    });
    const meta = group.state.meta;
    const catalog = group.state.groups.groups.map((g) => g.id);
    const missingGroups = catalog.filter((id) => !others.has(id));
    if (missingGroups.length > 0 && !options.allowMissingGroups) {
      throw new NewClusterError(
        'BACKUP_INCOMPLETE',
        `${options.file} lacks raft groups ${missingGroups.join(', ')} of its catalog; the realms placed there would be lost`,
      );
    }
    const groups = [GROUP];
    for (const id of [...others].sort((a, b) => a - b)) {
      if (!catalog.includes(id)) {
        progress(`skipping raft group ${id}: created after group 1 was saved, so no realm is placed in it`);
        continue;
      }
      const header = set.section(id)!.header;
      progress(`restoring raft group ${id}: index ${header.index}, revision ${header.revision}`);
      await storage.restoreGroup(id, await sectionFile(id), { membership, ...addresses });
      groups.push(id);
    }
    for (const id of missingGroups) {
      progress(`raft group ${id} is not in ${options.file}: the realms placed in it stay unavailable`);
    }
    held = {
      index: meta.appliedIndex,
      term: meta.appliedTerm,
      revision: meta.revision,
      groups,
      missingGroups,
    };
  } finally {
    await storage.close();
    if (set.format !== 1) {
      for (const { group } of set.sections)
        await rm(join(dir, `restore-group-${group}.snap`), { force: true });
    }
  }
  if (options.nodeKeyFrom !== undefined && (await exists(join(options.nodeKeyFrom, NODE_KEY_FILE)))) {
    await copyFile(join(options.nodeKeyFrom, NODE_KEY_FILE), join(dir, NODE_KEY_FILE));
  }
  await writeIdentityRecord(dir, { name: options.name, clusterId: options.clusterId });
  await syncDir(dir);
  return held;
}

async function readDataDirFiles(
  dataDir: string,
): Promise<{ identity: NodeIdentityRecord; engine: EngineKind }> {
  let identity: NodeIdentityRecord;
  let marker: { engine?: unknown };
  try {
    identity = JSON.parse(await readFile(join(dataDir, IDENTITY_FILE), 'utf8')) as NodeIdentityRecord;
    marker = JSON.parse(await readFile(join(dataDir, MARKER_FILE), 'utf8')) as { engine?: unknown };
  } catch (error) {
    const files = await readdir(dataDir).catch(() => undefined);
    throw new NewClusterError(
      'NOT_A_DATA_DIR',
      files === undefined
        ? `${dataDir} does not exist`
        : `${dataDir} holds no node's data (${IDENTITY_FILE} or ${MARKER_FILE}: ${(error as Error).message})`,
    );
  }
  if (typeof identity.name !== 'string' || typeof identity.clusterId !== 'string') {
    throw new NewClusterError('NOT_A_DATA_DIR', `${join(dataDir, IDENTITY_FILE)} names no node and cluster`);
  }
  const engine = (marker.engine ?? 'rocksdb') as EngineKind;
  if (!(ENGINE_KINDS as readonly string[]).includes(engine)) {
    throw new NewClusterError('NOT_A_DATA_DIR', `${join(dataDir, MARKER_FILE)} names no known engine`);
  }
  const removed = await readRemovedMarker(dataDir);
  if (removed !== undefined) {
    throw new NewClusterError(
      'REMOVED',
      `${identity.name} was removed from cluster ${removed.clusterId} (membership entry ${removed.membershipIndex}); ` +
        'its data stopped following the cluster then and is not promoted',
    );
  }
  return { identity, engine };
}

async function withStorage<T>(
  dataDir: string,
  clusterId: string,
  engine: EngineKind,
  work: (storage: NodeStorage) => Promise<T>,
): Promise<T> {
  let storage: NodeStorage;
  try {
    storage = await NodeStorage.open({ dataDir, clusterId, storageEngine: engine });
  } catch (error) {
    if ((error as { code?: unknown }).code === 'DATA_DIR_LOCKED') {
      throw new NewClusterError(
        'NODE_RUNNING',
        `${dataDir} is in use by a running node: stop it first (${(error as Error).message})`,
      );
    }
    throw error;
  }
  try {
    return await work(storage);
  } finally {
    await storage.close();
  }
}
