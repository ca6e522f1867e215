// Concurrent clients doing get / put / compare-and-set on a few keys with unique values, recorded as a history for the linearizability checker.

import { HistoryRecorder, type KvInput, type KvOutput } from '../lib/linearizability.js';
import type { KvClient, Outcome } from './kv-client.js';
import { Prng } from './prng.js';

export type OpKind = 'get' | 'put' | 'del' | 'cas';

export interface OpCounts {
  ok: number;
  fail: number;
  indeterminate: number;
}

export interface WorkloadOptions {
  readonly keys: readonly string[];
  /** Pause between one client's operations, uniform in [min, max] ms. */
  readonly thinkMs: readonly [number, number];
  readonly seed: number;
}

/**
 * Each client runs one operation at a time: 40 % linearizable gets, 30 % puts, 8 % deletes
 * (a put of null in the model), 22 % compare-and-set from the value it last read. Values are unique (`c<client>-<n>`). A write
 * that definitely failed is left out of the history; one whose fate is unknown stays open to
 * the end (return at infinity).
 */
export class Workload {
  readonly history = new HistoryRecorder<KvInput, KvOutput>();
  readonly counts: Record<OpKind, OpCounts> = {
    get: { ok: 0, fail: 0, indeterminate: 0 },
    put: { ok: 0, fail: 0, indeterminate: 0 },
    del: { ok: 0, fail: 0, indeterminate: 0 },
    cas: { ok: 0, fail: 0, indeterminate: 0 },
  };
  /** Failure reasons (error codes) and how often each came. */
  readonly reasons = new Map<string, number>();
  /** When (Date.now()) each write was answered successfully, in order. */
  readonly writeSuccesses: number[] = [];
  private stopping = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly clients: readonly KvClient[],
    private readonly options: WorkloadOptions,
  ) {}

  start(): void {
    this.clients.forEach((client, id) => {
      this.loops.push(this.loop(client, id));
    });
  }

  /** Stops issuing operations, waits for those in flight, closes the clients. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c.close()));
  }

  get total(): OpCounts {
    const all = Object.values(this.counts);
    return {
      ok: all.reduce((n, c) => n + c.ok, 0),
      fail: all.reduce((n, c) => n + c.fail, 0),
      indeterminate: all.reduce((n, c) => n + c.indeterminate, 0),
    };
  }

  /** One linearizable read of `key` through `client`, recorded under client id `clientId`. */
  async readOnce(client: KvClient, clientId: number, key: string): Promise<Outcome<string | null>> {
    const id = this.history.invoke(clientId, { op: 'get', key });
    const outcome = await client.get(key);
    this.record('get', id, outcome);
    return outcome;
  }

  private async loop(client: KvClient, clientId: number): Promise<void> {
    const prng = new Prng(this.options.seed * 7919 + clientId);
    const lastRead = new Map<string, string | null>();
    let sequence = 0;
    const [minThink, maxThink] = this.options.thinkMs;
    while (!this.stopping) {
      const key = prng.pick(this.options.keys);
      const roll = prng.next();
      let outcome: Outcome<KvOutput>;
      if (roll < 0.4) {
        outcome = await this.readOnce(client, clientId, key);
        if (outcome.kind === 'ok') lastRead.set(key, outcome.value as string | null);
      } else {
        const value = `c${clientId}-${++sequence}`;
        if (roll < 0.7) {
          const id = this.history.invoke(clientId, { op: 'put', key, value });
          outcome = await client.put(key, value);
          this.record('put', id, outcome);
        } else if (roll < 0.78) {
          const id = this.history.invoke(clientId, { op: 'put', key, value: null });
          outcome = await client.del(key);
          this.record('del', id, outcome);
        } else {
          const expected = lastRead.get(key) ?? null;
          const id = this.history.invoke(clientId, { op: 'cas', key, expected, value });
          outcome = await client.cas(key, expected, value);
          this.record('cas', id, outcome);
        }
      }
      // A node that is not running refuses at once: do not spin on it.
      const refused = outcome.kind === 'fail' && outcome.reason === 'ECONNREFUSED';
      await new Promise((resolve) =>
        setTimeout(resolve, prng.between(minThink, maxThink) + (refused ? 250 : 0)),
      );
    }
  }

  private record(kind: OpKind, id: number, outcome: Outcome<KvOutput>): void {
    const counts = this.counts[kind];
    switch (outcome.kind) {
      case 'ok':
        counts.ok++;
        this.history.complete(id, outcome.value);
        if (kind !== 'get') this.writeSuccesses.push(Date.now());
        return;
      case 'fail':
        counts.fail++;
        this.countReason(kind, outcome.reason);
        // A read that failed constrains nothing; a write that definitely failed never happened.
        if (kind === 'get') this.history.completeUnknown(id);
        else this.history.discard(id);
        return;
      case 'unknown':
        counts.indeterminate++;
        this.countReason(kind, outcome.reason);
        this.history.completeUnknown(id);
        return;
    }
  }

  private countReason(kind: OpKind, reason: string): void {
    const key = `${kind}:${reason}`;
    this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
  }
}
