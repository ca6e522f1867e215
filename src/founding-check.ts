// Before a founder with an empty data directory bootstraps, it asks its peers whether the cluster already exists.

import { type ClusterSecret, type Logger, loadOrCreateNodeKey, Mesh } from '../net/index.js';
import type { NodeConfig } from './config.js';
import { decodePeerAnswer, encodePeerMessage } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';

/** What a peer says of itself when identified. */
export interface PeerIdentity {
  readonly name: string;
  /** The peer's commit index: above 1 means the cluster has committed entries past its bootstrap. */
  readonly commitIndex: number;
}

/**
 * A founding member whose data directory is empty must not bootstrap if the cluster already
 * runs: its name is still a member, and voting with an empty log could lose acknowledged
 * writes. It asks the peers it can reach within `graceMs`; if any has committed past the
 * bootstrap, start is refused with instructions. (If none answers, it cannot tell and bootstraps.)
 */
export async function refuseIfClusterExists(
  config: NodeConfig,
  secret: ClusterSecret,
  logger: Logger,
  graceMs: number,
): Promise<void> {
  const key = await loadOrCreateNodeKey(config.dataDir);
  const answers = new Map<string, PeerIdentity>();
  const expected = config.initialCluster.length - 1;
  let mesh: Mesh | undefined;
  const asked = new Set<string>();
  const ask = async (peer: string): Promise<void> => {
    if (asked.has(peer)) return;
    asked.add(peer);
    for (let attempt = 0; attempt < 20 && mesh; attempt++) {
      try {
        const answer = decodePeerAnswer<Partial<PeerIdentity>>(
          await mesh.request(peer, encodePeerMessage({ type: 'identify' }), { timeoutMs: 1000 }),
        );
        if (typeof answer.name === 'string') {
          answers.set(answer.name, { name: answer.name, commitIndex: Number(answer.commitIndex ?? 0) });
        }
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  mesh = new Mesh({
    privateKey: key.privateKey,
    listen: [config.peerListen],
    peers: config.initialCluster.filter((m) => m.name !== config.name).map((m) => m.address),
    secret,
    logger,
    handlers: {
      raft: () => undefined,
      // Another fresh founder asking us: we have committed nothing.
      request: async () => encodePeerMessage({ name: config.name, commitIndex: 0 }),
      peerUp: (peer) => void ask(peer),
    },
  });
  try {
    await mesh.start();
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && answers.size < expected) {
      if ([...answers.values()].some((a) => a.commitIndex > 1)) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    const stopping = mesh;
    mesh = undefined;
    await stopping.stop();
  }
  const running = [...answers.values()].filter((a) => a.commitIndex > 1);
  logger.info('node.founding_check', { answered: [...answers.keys()], running: running.map((a) => a.name) });
  if (running.length > 0) {
    throw new DriverError(
      'UNAVAILABLE',
      `the data directory ${config.dataDir} is empty, but the cluster already runs (${running
        .map((a) => `${a.name} has committed ${a.commitIndex} entries`)
        .join(', ')}) and still lists ${config.name} as a member: its data was lost. ` +
        'Starting it empty could lose acknowledged writes. Remove this member from the cluster and add it back as a new node.',
    );
  }
}
