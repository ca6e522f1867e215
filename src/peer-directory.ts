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
  private readonly featuresByName = new Map<string, ReadonlySet<string>>();

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

  /** Records the features `name` said it has (its identify answer; [] from an older build). */
  setFeatures(name: string, features: readonly string[]): void {
    this.featuresByName.set(name, new Set(features));
  }

  /** Forgets what `name` said it has (a new connection: perhaps another process). */
  forgetFeatures(name: string): void {
    this.featuresByName.delete(name);
  }

  /** The features `name` said it has, or undefined if it has not answered since this process started. */
  featuresOf(name: string): ReadonlySet<string> | undefined {
    return this.featuresByName.get(name);
  }

  /** Forgets `name` (a removed member): the name may come back later with another peer id. */
  unbindName(name: string): void {
    const peer = this.peerByName.get(name);
    if (peer === undefined) return;
    this.peerByName.delete(name);
    this.nameByPeer.delete(peer);
  }

  nameOf(peer: string): string | undefined {
    return this.nameByPeer.get(peer);
  }

  peerOf(name: string): string | undefined {
    return this.peerByName.get(name);
  }

  /** Every bound (name, peer id) pair. */
  bound(): [name: string, peer: string][] {
    return [...this.peerByName.entries()];
  }
}
