// Before a node with an empty data directory joins a running cluster, it learns the cluster's id from a member.

import { type ClusterSecret, type Logger, loadOrCreateNodeKey, Mesh } from '../net/index.js';
import type { NodeConfig } from './config.js';
import { identifyPeer } from './identify.js';
import type { IdentifyAnswer } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';

/**
 * Dials the `--join` addresses (the mesh admits only holders of the cluster secret) and asks
 * the first member that answers for the cluster id, which the new node's storage is then
 * stamped with, so that it accepts that cluster's snapshots and no other's. Refuses when a
 * member already uses this node's name, and when nobody answers within `timeoutMs`.
 */
export async function discoverCluster(
  config: NodeConfig,
  secret: ClusterSecret,
  logger: Logger,
  timeoutMs: number,
): Promise<string> {
  const key = await loadOrCreateNodeKey(config.dataDir);
  let found: IdentifyAnswer | undefined;
  let mesh: Mesh | undefined;
  const ask = async (peer: string): Promise<void> => {
    if (!mesh) return;
    const answer = await identifyPeer(mesh, peer, {
      attempts: 20,
      timeoutMs: 1000,
      backoffMs: () => 50,
      keepGoing: () => mesh !== undefined && found === undefined,
    });
    if (answer !== undefined && typeof answer.clusterId === 'string' && found === undefined) {
      found = {
        name: answer.name,
        commitIndex: Number(answer.commitIndex ?? 0),
        clusterId: answer.clusterId,
      };
    }
  };
  mesh = new Mesh({
    privateKey: key.privateKey,
    listen: config.peerListen === '' ? [] : [config.peerListen],
    peers: [...config.join],
    secret,
    logger,
    handlers: {
      raft: () => undefined,
      request: async () => {
        throw Object.assign(new Error('this node is still joining'), { code: 'UNAVAILABLE' });
      },
      peerUp: (peer) => void ask(peer),
    },
  });
  try {
    await mesh.start();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && found === undefined)
      await new Promise((resolve) => setTimeout(resolve, 25));
  } finally {
    const stopping = mesh;
    mesh = undefined;
    await stopping.stop();
  }
  if (found === undefined) {
    throw new DriverError(
      'UNAVAILABLE',
      `no member of the cluster answered at --join ${config.join.join(',')} within ${timeoutMs} ms; ` +
        'check the addresses and that this node has the cluster secret',
    );
  }
  if (found.name === config.name) {
    throw new DriverError(
      'UNAVAILABLE',
      `the member at ${config.join.join(',')} is itself called ${config.name}: give this node another --name`,
    );
  }
  logger.info('node.join_discovered', { via: found.name, clusterId: found.clusterId });
  return found.clusterId as string;
}
