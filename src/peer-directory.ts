// Who is who on the mesh: raft speaks node names, the mesh speaks peer ids; this maps one to the other.

import type { Logger } from '../net/index.js';

/**
 * Learns each connected peer's node name (it asks with an `identify` request when the peer's
 * streams come up) and pins it: once a name is bound to a peer id, another peer id claiming
 * that name is refused and logged, so a cluster member cannot speak for another.
 */
export class PeerDirectory {
  private readonly nameByPeer = new Map<string, string>();
  private readonly peerByName = new Map<string, string>();

  constructor(private readonly logger: Logger) {}

  /** Records that `peer` says it is `name`; false (and a warning) if that contradicts a binding. */
  bind(peer: string, name: string): boolean {
    const boundPeer = this.peerByName.get(name);
    if (boundPeer !== undefined && boundPeer !== peer) {
      this.logger.warn('peer.name_conflict', { name, peer, boundPeer });
      return false;
    }
    const boundName = this.nameByPeer.get(peer);
    if (boundName !== undefined && boundName !== name) {
      this.logger.warn('peer.renamed', { peer, from: boundName, to: name });
      return false;
    }
    this.nameByPeer.set(peer, name);
    this.peerByName.set(name, peer);
    return true;
  }

  nameOf(peer: string): string | undefined {
    return this.nameByPeer.get(peer);
  }

  peerOf(name: string): string | undefined {
    return this.peerByName.get(name);
  }
}

/** Requests between nodes over the mesh's forwarding RPC, encoded as JSON. */
export type PeerRequest = { readonly type: 'identify' } | { readonly type: 'write'; readonly op: unknown };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodePeerMessage(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Decodes a peer's request; throws an error with code INVALID_ARGUMENT for anything else. */
export function decodePeerRequest(payload: Uint8Array): PeerRequest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    throw Object.assign(new Error('peer request is not JSON'), { code: 'INVALID_ARGUMENT' });
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (type === 'identify') return { type };
  if (type === 'write' && typeof value === 'object' && value !== null && 'op' in value) {
    return { type, op: (value as { op: unknown }).op };
  }
  throw Object.assign(new Error(`unknown peer request type ${JSON.stringify(type)}`), {
    code: 'INVALID_ARGUMENT',
  });
}

export function decodePeerAnswer<T>(payload: Uint8Array): T {
  return JSON.parse(decoder.decode(payload)) as T;
}
