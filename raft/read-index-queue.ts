// Pending ReadIndex requests at the leader, each waiting for a quorum to acknowledge a heartbeat round.

import type { NodeId } from './types.js';

/** One request: serve reads at `index` once a quorum has confirmed this node still leads. */
export interface PendingRead {
  readonly index: number;
  /** Who asked: this node (a local read) or a follower reading on a client's behalf. */
  readonly from: NodeId;
  readonly context: Uint8Array;
  readonly acks: Set<NodeId>;
}

/** Requests in arrival order; an ack for one confirms every request queued before it too. */
export class ReadIndexQueue {
  private readonly pending = new Map<string, PendingRead>();
  private order: string[] = [];

  get size(): number {
    return this.order.length;
  }

  has(context: Uint8Array): boolean {
    return this.pending.has(contextKey(context));
  }

  add(index: number, from: NodeId, context: Uint8Array): PendingRead | undefined {
    const key = contextKey(context);
    if (this.pending.has(key)) return undefined;
    const read: PendingRead = { index, from, context, acks: new Set() };
    this.pending.set(key, read);
    this.order.push(key);
    return read;
  }

  /** Records that `from` answered the heartbeat carrying `context`; returns the acks so far. */
  ack(from: NodeId, context: Uint8Array): Set<NodeId> | undefined {
    const read = this.pending.get(contextKey(context));
    if (read === undefined) return undefined;
    read.acks.add(from);
    return read.acks;
  }

  /** Removes and returns every request up to and including the one with `context`. */
  releaseThrough(context: Uint8Array): PendingRead[] {
    const key = contextKey(context);
    const position = this.order.indexOf(key);
    if (position < 0) return [];
    const released = this.order.slice(0, position + 1).map((k) => this.pending.get(k)!);
    for (const k of this.order.slice(0, position + 1)) this.pending.delete(k);
    this.order = this.order.slice(position + 1);
    return released;
  }

  /** Removes and returns every request up to the newest one whose acks satisfy `isQuorum`. */
  releaseConfirmed(isQuorum: (acks: ReadonlySet<NodeId>) => boolean): PendingRead[] {
    for (let i = this.order.length - 1; i >= 0; i--) {
      const read = this.pending.get(this.order[i]!)!;
      if (isQuorum(read.acks)) return this.releaseThrough(read.context);
    }
    return [];
  }

  /** The context of the newest request, to piggyback on the next heartbeat round. */
  lastContext(): Uint8Array | undefined {
    const key = this.order[this.order.length - 1];
    return key === undefined ? undefined : this.pending.get(key)!.context;
  }

  clear(): void {
    this.pending.clear();
    this.order = [];
  }
}

function contextKey(context: Uint8Array): string {
  let key = '';
  for (const byte of context) key += String.fromCharCode(byte);
  return key;
}
