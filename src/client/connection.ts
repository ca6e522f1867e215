// The connection state machine: at most one WebSocket at a time, failover over the endpoints, backoff between rounds.

/*
 * States:
 *   idle     no socket and none being dialed (nothing needed one, or the last one was lost)
 *   dialing  one attempt in progress, to urls[nextIndex]
 *   waiting  a full round of attempts failed; a backoff timer runs before the next round
 *   open     `link` is the connection every request uses
 *   closed   close() was called; final
 *
 * Dialing is driven by demand: open() registers a waiter and, from idle, starts dialing; when
 * an attempt fails the next endpoint is tried at once, and after every endpoint has failed in
 * turn (a full round) the next round waits backoffDelayMs(round). While no waiter remains the
 * machine rests in idle. The endpoint last reached is tried first; after losing it, the next
 * one in the list is. A link lost before the node ever sent a message counts as a failed
 * attempt, so a node that accepts and drops connections cannot make the client spin.
 *
 * A round in which every endpoint failed TLS (a certificate the client cannot verify, or no
 * TLS where it was expected) is not retried: every waiter rejects TLS_ERROR at once, naming
 * the problem, and the machine rests in idle. The next open() tries again from scratch.
 */

import { backoffDelayMs, type Random } from './backoff.js';
import { CLOSE_GRACE_MS } from './constants.js';
import { ConclaveError, closedError } from './errors.js';
import { dial, Link } from './link.js';
import { tlsHint } from './tls-trust.js';

export type ConnectionState = 'idle' | 'dialing' | 'waiting' | 'open' | 'closed';

export interface ConnectionConfig {
  readonly urls: readonly string[];
  readonly connectTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly random?: Random;
  /** CA certificates trusted for wss:// besides Node's bundled roots. */
  readonly ca?: readonly (string | Buffer)[] | undefined;
  /** Sent on every upgrade (link.ts DialSettings). */
  readonly token?: string | undefined;
}

export interface ConnectionEvents {
  /** A text message arrived on the current link. */
  onMessage(link: Link, text: string): void;
  /** The current link is gone (closed by the node, the network, the heartbeat or drop()). Not called after close(). */
  onLost(link: Link): void;
}

interface Waiter {
  readonly resolve: (link: Link) => void;
  readonly reject: (error: unknown) => void;
  readonly detach: () => void;
}

/** One logical connection to the cluster, re-established on demand. */
export class Connection {
  private state: ConnectionState = 'idle';
  private link: Link | undefined;
  private cancelDial: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<Waiter>();
  private nextIndex = 0;
  /** Set by moveTo(): the endpoint to dial after the current link is lost. */
  private movingTo: number | undefined;
  /** Failed attempts since a node last sent a message. */
  private failures = 0;
  /** Attempts of the current round that failed TLS. */
  private tlsFailures = 0;
  private linkCount = 0;
  private closing: Promise<void> | undefined;
  private readonly random: Random;
  /** Why the last connection attempt failed (reported when a call times out without ever connecting). */
  lastFailure: ConclaveError | undefined;

  constructor(
    private readonly config: ConnectionConfig,
    private readonly events: ConnectionEvents,
  ) {
    if (config.urls.length === 0) throw new Error('Connection needs at least one URL');
    this.random = config.random ?? Math.random;
  }

  get stateName(): ConnectionState {
    return this.state;
  }

  /** The open link, if any. */
  get current(): Link | undefined {
    return this.state === 'open' ? this.link : undefined;
  }

  /**
   * The open link, dialing one if needed. Rejects with the signal's reason if it aborts first,
   * and with ConclaveError CLOSED once the connection is closed.
   */
  open(signal: AbortSignal): Promise<Link> {
    if (this.state === 'closed') return Promise.reject(closedError());
    if (this.state === 'open' && this.link !== undefined) {
      if (this.link.isOpen) return Promise.resolve(this.link);
      // Closing (the node sent a close frame): do not hand it out while its close event is pending.
      this.drop(this.link);
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Link>((resolve, reject) => {
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        resolve,
        reject,
        detach: () => signal.removeEventListener('abort', onAbort),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      this.resume();
    });
  }

  /** Abandons `link` (if still current) to try another node: its requests see it as lost. */
  drop(link: Link): void {
    if (link !== this.link || this.state !== 'open') return;
    this.lose(link);
    link.terminate();
  }

  /**
   * Moves to another endpoint: `url` is dialed next, and `link` (if still current) is dropped;
   * its requests see it as lost and are resent on the new link.
   */
  moveTo(link: Link, url: string): void {
    const index = this.config.urls.indexOf(url);
    if (index < 0 || link !== this.link || this.state !== 'open') return;
    this.movingTo = index;
    this.drop(link);
  }

  /** Stops everything: pending open() calls reject CLOSED; the link is closed gracefully. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.cancelDial?.();
    this.cancelDial = undefined;
    for (const waiter of this.waiters) {
      waiter.detach();
      waiter.reject(closedError());
    }
    this.waiters.clear();
    const link = this.link;
    this.link = undefined;
    this.closing = link === undefined ? Promise.resolve() : link.close(CLOSE_GRACE_MS);
    return this.closing;
  }

  /** From idle with someone waiting: dial. */
  private resume(): void {
    if (this.state === 'idle' && this.waiters.size > 0) this.dialNext();
  }

  private dialNext(): void {
    const index = this.nextIndex;
    const url = this.config.urls[index]!;
    this.state = 'dialing';
    this.cancelDial = dial(
      url,
      this.config.connectTimeoutMs,
      (result) => {
        this.cancelDial = undefined;
        const socket = result.socket;
        if (this.state !== 'dialing') {
          socket?.terminate();
          return;
        }
        if (socket === undefined) {
          this.lastFailure =
            result.tlsCode === undefined
              ? new ConclaveError('UNAVAILABLE', `cannot connect to ${url}: ${result.reason}`)
              : new ConclaveError(
                  'TLS_ERROR',
                  `TLS with ${url} failed: ${result.tlsCode}: ${result.reason} (${tlsHint(result.tlsCode)})`,
                );
          if (result.tlsCode !== undefined) this.tlsFailures += 1;
          this.nextIndex = (index + 1) % this.config.urls.length;
          this.fail();
          return;
        }
        const link = new Link(++this.linkCount, url, socket, {
          onMessage: (from, text) => this.onMessage(from, text),
          onClose: (from) => this.onClose(from),
        });
        this.link = link;
        this.state = 'open';
        this.lastFailure = undefined;
        for (const waiter of this.waiters) {
          waiter.detach();
          waiter.resolve(link);
        }
        this.waiters.clear();
      },
      { ca: this.config.ca, token: this.config.token },
    );
  }

  /** After a failed attempt: the next endpoint at once, or a backoff after a full round. */
  private fail(): void {
    this.failures += 1;
    const endpoints = this.config.urls.length;
    if (this.failures % endpoints !== 0) {
      this.state = 'idle';
      this.resume();
      return;
    }
    const tlsOnly = this.tlsFailures === endpoints;
    this.tlsFailures = 0;
    if (tlsOnly && this.lastFailure !== undefined) {
      // Every endpoint refused TLS: waiting will not change that. Fail now; start afresh next time.
      this.failures = 0;
      this.state = 'idle';
      const error = this.lastFailure;
      for (const waiter of this.waiters) {
        waiter.detach();
        waiter.reject(error);
      }
      this.waiters.clear();
      return;
    }
    this.state = 'waiting';
    const round = this.failures / endpoints;
    const delay = backoffDelayMs(round, this.config.backoffBaseMs, this.config.backoffMaxMs, this.random);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state !== 'waiting') return;
      this.state = 'idle';
      this.resume();
    }, delay);
  }

  private onMessage(link: Link, text: string): void {
    if (link !== this.link) return;
    this.failures = 0;
    this.tlsFailures = 0;
    this.events.onMessage(link, text);
  }

  private onClose(link: Link): void {
    if (link === this.link && this.state === 'open') this.lose(link);
  }

  private lose(link: Link): void {
    this.link = undefined;
    const index = this.config.urls.indexOf(link.url);
    this.nextIndex = this.movingTo ?? (index + 1) % this.config.urls.length;
    this.movingTo = undefined;
    if (link.heardFrom) {
      this.state = 'idle';
    } else {
      this.fail();
    }
    this.events.onLost(link);
    this.resume();
  }
}
