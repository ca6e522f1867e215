// Before a founder with an empty data directory bootstraps, it asks its peers whether the cluster already exists.

import { type ClusterSecret, type Logger, loadOrCreateNodeKey, Mesh } from '../net/index.js';
import type { NodeConfig } from './config.js';
import { identifyPeer } from './identify.js';
import { encodePeerMessage } from './peer-protocol.js';
import { DriverError } from './raft-driver.js';

/** What a peer says of itself when identified by a founder. */
export interface PeerIdentity {
  readonly name: string;
  /** The peer's commit index: above 1 means the cluster has committed entries past its bootstrap. */
  readonly commitIndex: number;
  /**
   * The peer id the peer last saw this founder's name with (SeenMembers): null if never;
   * undefined from a node that keeps no such record (then commitIndex decides, as before).
   */
  readonly seenPeer: string | null | undefined;
}

/**
 * A founding member whose data directory is empty must not bootstrap if it took part in the
 * cluster before: its vote and its acknowledgements may have counted, and voting again with an
 * empty log could lose acknowledged writes. Every member records, on disk, each peer it has
 * identified before it processes anything from it (SeenMembers); so the founder asks the peers
 * it can reach within `graceMs` for their record of its name. A record means its data was lost:
 * start is refused with instructions. No record means a first start, even if the others started
 * earlier and already elected a leader and committed entries: it bootstraps and catches up.
 * (If no peer that saw it answers, it cannot tell and bootstraps.)
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
    if (asked.has(peer) || !mesh) return;
    asked.add(peer);
    const answer = await identifyPeer(mesh, peer, {
      founding: config.name,
      attempts: 20,
      timeoutMs: 1000,
      backoffMs: () => 50,
      keepGoing: () => mesh !== undefined,
    });
    // Another founder's temporary mesh answers `founding: true`: it has seen nobody.
    if (answer === undefined || answer.founding === true) return;
    const seenPeer =
      typeof answer.seenPeer === 'string' || answer.seenPeer === null ? answer.seenPeer : undefined;
    answers.set(answer.name, { name: answer.name, commitIndex: Number(answer.commitIndex ?? 0), seenPeer });
  };
  mesh = new Mesh({
    privateKey: key.privateKey,
    listen: config.peerListen === '' ? [] : [config.peerListen],
    peers: config.initialCluster.filter((m) => m.name !== config.name).map((m) => m.address),
    secret,
    logger,
    handlers: {
      raft: () => undefined,
      // Another fresh founder or a member asking us: we have committed nothing and are no member yet.
      request: async () => encodePeerMessage({ name: config.name, commitIndex: 0, founding: true }),
      peerUp: (peer) => void ask(peer),
    },
  });
  try {
    await mesh.start();
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && answers.size < expected) {
      if ([...answers.values()].some(tookPart)) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    const stopping = mesh;
    mesh = undefined;
    await stopping.stop();
  }
  const witnesses = [...answers.values()].filter(tookPart);
  logger.info('node.founding_check', {
    answered: [...answers.keys()],
    sawThisNode: witnesses.map((a) => a.name),
  });
  if (witnesses.length > 0) {
    throw new DriverError(
      'UNAVAILABLE',
      `the data directory ${config.dataDir} is empty, but ${config.name} took part in this cluster before (${witnesses
        .map((a) =>
          a.seenPeer
            ? `${a.name} saw it as peer ${a.seenPeer}`
            : `${a.name} has committed ${a.commitIndex} entries`,
        )
        .join(', ')}): its data was lost. Starting it empty could lose acknowledged writes. ` +
        'Remove this member from the cluster (conclave members remove) and add it back as a new node.',
    );
  }
}

/** Whether a peer's answer shows that this founder took part before. */
function tookPart(answer: PeerIdentity): boolean {
  if (answer.seenPeer === undefined) return answer.commitIndex > 1;
  return answer.seenPeer !== null;
}
