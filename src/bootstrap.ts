// Who this node is before anything runs: its data directory, cluster secret, cluster id and the checks a start must pass.

import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ClusterSecret, type Logger, readClusterSecretFile } from '../net/index.js';
import type { NodeConfig } from './config.js';
import { refuseIfClusterExists } from './founding-check.js';
import { discoverCluster } from './join.js';
import { DriverError } from './raft-driver.js';
import { NodeRemovedError, readRemovedMarker } from './removal.js';
import { SeenMembers } from './seen-members.js';

/** The file in the data directory that names the node and its cluster. */
export const IDENTITY_FILE = 'node.json';

/** What node.json holds. */
export interface NodeIdentityRecord {
  readonly name: string;
  readonly clusterId: string;
}

/** What a node knows of itself once the checks passed. */
export interface NodeIdentity {
  /** Undefined for a lone node without a mesh. */
  readonly secret: ClusterSecret | undefined;
  readonly clusterId: string;
  /** Which node key each member was seen with (SeenMembers). */
  readonly seen: SeenMembers;
  /** Started with --join: its raft group starts empty and waits to be added. */
  readonly joining: boolean;
}

/**
 * Makes the data directory, reads the cluster secret, and refuses a start that would be
 * unsafe or wrong, each with a message saying what to do: a founder with an empty data
 * directory that took part before (founding-check.ts), a joiner no member answers
 * (join.ts), a node that was removed (removed.json), a data directory of another node or
 * cluster (node.json). Writes node.json on a first start. Throws DriverError or
 * NodeRemovedError; nothing is written before the checks pass but the node key and node.json.
 */
export async function bootstrapIdentity(config: NodeConfig, log: Logger): Promise<NodeIdentity> {
  await mkdir(config.dataDir, { recursive: true });
  const secret = config.clusterSecretFile ? await readClusterSecretFile(config.clusterSecretFile) : undefined;
  if (secret && config.initialCluster.length > 1 && !(await hasIdentity(config))) {
    await refuseIfClusterExists(config, secret, log, Math.max(2000, config.electionTimeoutMs * 4));
  }
  const joining = config.join.length > 0;
  const joinedClusterId =
    joining && secret && !(await hasIdentity(config))
      ? await discoverCluster(config, secret, log, Math.max(10_000, config.electionTimeoutMs * 20))
      : undefined;
  const removed = await readRemovedMarker(config.dataDir);
  if (removed !== undefined) {
    throw new NodeRemovedError(
      removed,
      `REMOVED: node ${removed.name} was removed from cluster ${removed.clusterId} ` +
        `(membership entry ${removed.membershipIndex}, reported by ${removed.by} at ${removed.at}); ` +
        `it will not start with this data directory (${config.dataDir}). To bring it back, empty the data ` +
        'directory and add it again with `conclave members add`.',
    );
  }
  const identity = await loadOrCreateIdentity(config, secret?.key, joinedClusterId);
  const seen = await SeenMembers.load(config.dataDir);
  return { secret, clusterId: identity.clusterId, seen, joining };
}

async function hasIdentity(config: NodeConfig): Promise<boolean> {
  try {
    await readFile(join(config.dataDir, IDENTITY_FILE));
    return true;
  } catch {
    return false;
  }
}

async function loadOrCreateIdentity(
  config: NodeConfig,
  secretKey: Uint8Array | undefined,
  joinedClusterId: string | undefined,
): Promise<NodeIdentityRecord> {
  const path = join(config.dataDir, IDENTITY_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // Founders of a cluster derive the same id from what they share: the secret and the founding
  // membership. A single node draws a random one.
  const derivedId =
    config.initialCluster.length > 1 && secretKey
      ? createHash('sha256')
          .update(secretKey)
          .update(
            config.initialCluster
              .map((m) => `${m.name}=${m.address}`)
              .sort()
              .join(','),
          )
          .digest('hex')
          .slice(0, 32)
      : undefined;
  if (text !== undefined) {
    const record = JSON.parse(text) as NodeIdentityRecord;
    if (record.name !== config.name) {
      throw new DriverError(
        'UNAVAILABLE',
        `the data directory ${config.dataDir} belongs to node ${JSON.stringify(record.name)}, not ${JSON.stringify(config.name)}`,
      );
    }
    if (derivedId !== undefined && record.clusterId !== derivedId) {
      throw new DriverError(
        'UNAVAILABLE',
        `the data directory ${config.dataDir} belongs to another cluster (id ${record.clusterId}); this configuration's ` +
          `secret and --initial-cluster describe cluster ${derivedId}. Use that cluster's data directory, or an empty one.`,
      );
    }
    return record;
  }
  const clusterId = derivedId ?? joinedClusterId ?? randomUUID();
  const record: NodeIdentityRecord = { name: config.name, clusterId };
  await writeIdentityRecord(config.dataDir, record);
  return record;
}

/** Writes node.json (a temporary file renamed into place). */
export async function writeIdentityRecord(dataDir: string, record: NodeIdentityRecord): Promise<void> {
  const path = join(dataDir, IDENTITY_FILE);
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}
