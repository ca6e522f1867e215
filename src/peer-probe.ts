// Asking a stopped node's old peers whether they are alive: what `conclave recover --force-new-cluster` checks first.

import { type ClusterSecret, type Logger, loadOrCreateNodeKey, Mesh } from '../net/index.js';
import { identifyPeer } from './identify.js';
import { encodePeerMessage } from './peer-protocol.js';

/** A peer that answered, with what it said of itself. */
export interface ProbeAnswer {
  readonly name: string;
  readonly clusterId: string | undefined;
  readonly commitIndex: number;
}

/**
 * Dials `addresses` with the node's own key from `dataDir` (listening nowhere) and asks each
 * peer that connects who it is, for up to `timeoutMs`. Resolves with the answers, by the name
 * the peer gave; a peer that does not connect or answer in time is absent. Never rejects for a
 * peer's failure.
 */
export async function probePeers(init: {
  readonly dataDir: string;
  readonly name: string;
  readonly secret: ClusterSecret;
  readonly addresses: readonly string[];
  readonly timeoutMs: number;
  readonly logger: Logger;
}): Promise<ProbeAnswer[]> {
  if (init.addresses.length === 0) return [];
  const key = await loadOrCreateNodeKey(init.dataDir);
  const answers = new Map<string, ProbeAnswer>();
  let mesh: Mesh | undefined;
  const ask = async (peer: string): Promise<void> => {
    if (!mesh) return;
    const answer = await identifyPeer(mesh, peer, {
      attempts: 10,
      timeoutMs: 1000,
      backoffMs: () => 50,
      keepGoing: () => mesh !== undefined,
    });
    if (answer === undefined || answer.founding === true || answer.proxy === true) return;
    answers.set(answer.name, {
      name: answer.name,
      clusterId: typeof answer.clusterId === 'string' ? answer.clusterId : undefined,
      commitIndex: Number(answer.commitIndex ?? 0),
    });
  };
  mesh = new Mesh({
    privateKey: key.privateKey,
    listen: [],
    peers: [...init.addresses],
    secret: init.secret,
    logger: init.logger,
    handlers: {
      raft: () => undefined,
      // Asked who we are: a node that is not running (it serves nothing; `founding` keeps it unrecorded).
      request: async () => encodePeerMessage({ name: init.name, commitIndex: 0, founding: true }),
      peerUp: (peer) => void ask(peer),
    },
  });
  try {
    await mesh.start();
    const deadline = Date.now() + init.timeoutMs;
    while (Date.now() < deadline && answers.size < init.addresses.length) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    const stopping = mesh;
    mesh = undefined;
    await stopping.stop();
  }
  return [...answers.values()];
}
