// Asking a newly connected peer who it is: the one retry loop the node, the founding check and the join use.

import type { Mesh } from '../net/index.js';
import { decodePeerAnswer, encodePeerMessage, type IdentifyAnswer } from './peer-protocol.js';

export interface IdentifyOptions {
  /** Sent with the request: a founder with an empty data directory asks for the record of this name. */
  readonly founding?: string;
  /** Attempts before giving up (the peer's request stream may come up a moment after it connects). */
  readonly attempts: number;
  /** Per-attempt timeout. */
  readonly timeoutMs: number;
  /** Pause before attempt `n` (from 1). */
  readonly backoffMs: (attempt: number) => number;
  /** Checked before each attempt: false stops (the caller is stopping, or already has its answer). */
  readonly keepGoing: () => boolean;
}

/**
 * Asks `peer` for its identity until it answers, the attempts run out, `keepGoing` says stop
 * or the peer disconnects. Resolves with the answer if it names the peer (a string `name`),
 * undefined otherwise; never rejects. The caller judges the other fields.
 */
export async function identifyPeer(
  mesh: Mesh,
  peer: string,
  options: IdentifyOptions,
): Promise<(Partial<IdentifyAnswer> & { readonly name: string }) | undefined> {
  const request = encodePeerMessage(
    options.founding === undefined ? { type: 'identify' } : { type: 'identify', founding: options.founding },
  );
  for (let attempt = 0; attempt < options.attempts && options.keepGoing(); attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, options.backoffMs(attempt)));
    try {
      const answer = decodePeerAnswer<Partial<IdentifyAnswer>>(
        await mesh.request(peer, request, { timeoutMs: options.timeoutMs }),
      );
      return typeof answer.name === 'string'
        ? (answer as Partial<IdentifyAnswer> & { name: string })
        : undefined;
    } catch {
      if (!mesh.isConnected(peer)) return undefined;
    }
  }
  return undefined;
}
