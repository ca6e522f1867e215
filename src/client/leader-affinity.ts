// Leader affinity: a client that writes moves its one connection to the leader, so no write pays the forward hop.

/*
 * Any node accepts a write and forwards it to the leader over the mesh. That costs the
 * answering follower a decode, a forward and a relayed answer, and every write one more
 * round trip. So a client that writes checks, at most once per interval and in the
 * background, whom its node names as leader (the `status` op on its own connection). When
 * that is another node, it asks its other endpoints for their status over short-lived
 * connections, and once one of them is the named leader it makes that endpoint the next to
 * dial and drops its connection. Requests in flight on the dropped connection are resent on
 * the new one, as after any connection loss: writes keep their session and seq, so none
 * applies twice; watches resume from their last revision.
 *
 * Only writes trigger a check: a client that only reads or watches stays where it is, which
 * spreads readers and watchers over the cluster. A failed or inconclusive check changes
 * nothing; the next write after the interval tries again.
 */

import type { WebSocket } from 'ws';
import { type DialSettings, dial, type Link } from './link.js';

/** What a node says of itself and its leader (part of the `status` op's result). */
export interface LeaderView {
  readonly name: string;
  /** '' when the node knows no leader. */
  readonly leader: string;
}

export interface AffinityHost {
  /** The open connection, if any. */
  current(): Link | undefined;
  /** The `status` of the node behind `link`, or undefined if it could not be had. */
  statusOver(link: Link): Promise<LeaderView | undefined>;
  /** The `status` of the node at `url` over a connection of its own, or undefined. */
  probe(url: string): Promise<LeaderView | undefined>;
  /** Makes `url` the next endpoint dialed and drops `link` (if it is still the current one). */
  moveTo(link: Link, url: string): void;
  now(): number;
}

export class LeaderAffinity {
  private checking = false;
  private lastCheck = Number.NEGATIVE_INFINITY;
  /** Completed checks, and those that moved the connection (for tests and diagnostics). */
  checks = 0;
  moves = 0;

  constructor(
    private readonly host: AffinityHost,
    private readonly urls: readonly string[],
    private readonly intervalMs: number,
  ) {}

  /**
   * A write is starting: checks in the background if the last check is older than the
   * interval (and a connection is open: the first write of a client opens it, so its check
   * comes with the next write).
   */
  noteWrite(): void {
    if (this.urls.length < 2 || this.checking || this.host.current() === undefined) return;
    const now = this.host.now();
    if (now - this.lastCheck < this.intervalMs) return;
    this.lastCheck = now;
    this.checking = true;
    void this.check()
      .catch(() => undefined)
      .finally(() => {
        this.checking = false;
        this.checks += 1;
      });
  }

  private async check(): Promise<void> {
    const link = this.host.current();
    if (link === undefined) return;
    const here = await this.host.statusOver(link);
    if (here === undefined || here.leader === '' || here.leader === here.name) return;
    const others = this.urls.filter((url) => url !== link.url);
    const views = await Promise.all(others.map((url) => this.host.probe(url)));
    const index = views.findIndex(
      (view) => view !== undefined && view.name === here.leader && view.leader === view.name,
    );
    if (index < 0 || this.host.current() !== link) return;
    this.moves += 1;
    this.host.moveTo(link, others[index]!);
  }
}

/** Reads a LeaderView out of a status result; undefined if it does not hold one. */
export function leaderView(result: unknown): LeaderView | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const { name, leader } = result as Record<string, unknown>;
  return typeof name === 'string' && typeof leader === 'string' ? { name, leader } : undefined;
}

/**
 * The `status` of the node at `url` over a WebSocket of its own, closed afterwards; undefined
 * if no answer came within `timeoutMs` or `signal` aborted first.
 */
export function probeStatus(
  url: string,
  timeoutMs: number,
  signal: AbortSignal,
  settings: DialSettings = {},
): Promise<LeaderView | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let socket: WebSocket | undefined;
    let done = false;
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const onAbort = (): void => finish(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    const finish = (view: LeaderView | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      cancel();
      socket?.terminate();
      resolve(view);
    };
    const cancel = dial(
      url,
      timeoutMs,
      (result) => {
        if (result.socket === undefined) return finish(undefined);
        socket = result.socket;
        socket.on('message', (data, binary) => {
          if (binary) return;
          let answer: unknown;
          try {
            answer = JSON.parse(String(data));
          } catch {
            return finish(undefined);
          }
          const { id, ok, result: status } = (answer ?? {}) as Record<string, unknown>;
          if (id === 1) finish(ok === true ? leaderView(status) : undefined);
        });
        socket.once('close', () => finish(undefined));
        socket.send(JSON.stringify({ id: 1, op: 'status' }));
      },
      settings,
    );
  });
}
