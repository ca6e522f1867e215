// The simulator's network: seeded delays, drops, duplicates, reordering and (asymmetric) partitions.

import type { Message, NodeId, SeededPrng } from '../../raft/index.js';

export interface NetworkOptions {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice. */
  duplicateRate: number;
  /** Delivery delay in steps, uniform in [min, max]; different delays reorder messages. */
  delayStepsMin: number;
  delayStepsMax: number;
}

interface InFlight {
  readonly deliverAt: number;
  readonly sequence: number;
  readonly message: Message;
}

export class SimNetwork {
  private queue: InFlight[] = [];
  private sequence = 0;
  /** Directed links that drop everything: "from->to". */
  private readonly cut = new Set<string>();
  /** Nodes a fault schedule has cut off from everyone; heal() leaves them to the schedule. */
  private readonly isolated = new Set<NodeId>();
  options: NetworkOptions;
  sent = 0;
  dropped = 0;

  constructor(
    private readonly prng: SeededPrng,
    options: NetworkOptions,
  ) {
    this.options = { ...options };
  }

  send(message: Message, now: number, onDrop?: (message: Message) => void): void {
    this.sent++;
    if (this.isCut(message.from, message.to) || this.prng.chance(this.options.dropRate)) {
      this.dropped++;
      onDrop?.(message);
      return;
    }
    const copies = this.prng.chance(this.options.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const { delayStepsMin: min, delayStepsMax: max } = this.options;
      this.queue.push({
        deliverAt: now + min + this.prng.nextInt(max - min + 1),
        sequence: this.sequence++,
        message,
      });
    }
  }

  /** Messages due at `now`, in delivery order; a link cut since sending also drops them. */
  due(now: number): Message[] {
    const ready: InFlight[] = [];
    const later: InFlight[] = [];
    for (const item of this.queue) (item.deliverAt <= now ? ready : later).push(item);
    this.queue = later;
    ready.sort((a, b) => a.deliverAt - b.deliverAt || a.sequence - b.sequence);
    return ready
      .filter((item) => !this.isCut(item.message.from, item.message.to))
      .map((item) => item.message);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.isolated.has(from) || this.isolated.has(to) || this.cut.has(`${from}->${to}`);
  }

  /** Cuts `id` off from everyone until reconnect(id), whatever heal() does meanwhile. */
  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  reconnect(id: NodeId): void {
    this.isolated.delete(id);
  }

  /** Restores every link, including the isolations. */
  healAll(): void {
    this.cut.clear();
    this.isolated.clear();
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  /** Restores one directed link. */
  uncutLink(from: NodeId, to: NodeId): void {
    this.cut.delete(`${from}->${to}`);
  }

  /** The cut directed links, as [from, to] pairs, in the order they were cut. */
  cutLinks(): [NodeId, NodeId][] {
    return [...this.cut].map((link) => link.split('->') as [NodeId, NodeId]);
  }

  /** Splits nodes into two sides that cannot talk to each other in either direction. */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.cutLink(a, b);
        this.cutLink(b, a);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  get cutCount(): number {
    return this.cut.size;
  }

  get inFlight(): number {
    return this.queue.length;
  }
}
