// Realm routing: a client sends each realm's writes straight to the leader of the raft group holding it, over a connection of its own per node.

/*
 * With realms spread over raft groups, no single node leads every write: the leader affinity of
 * one connection (leader-affinity.ts) can only sit at one of them. So a writing client keeps a
 * map realm -> (group, leader), learned from the `route` op of the node it talks to, and a map
 * leader name -> endpoint URL, learned from each endpoint's `status`. A write of a realm whose
 * leader is one of its endpoints goes over a connection to that endpoint (one per endpoint,
 * dialed on first use; it fails over to the other endpoints like the main one); any other
 * write uses the main connection, and the node it reaches forwards it, as before.
 *
 * The map is a hint, never needed for correctness: any node accepts any write. A route is
 * looked up in the background when a write finds none, and again once it is older than the
 * check interval; a routed connection that loses its link or answers retryable errors drops the
 * realm's route, so the next write asks again (a node that stopped leading forwards meanwhile).
 * Writes keep their session and seq wherever they go, so a resend on another connection never
 * applies twice. A node that does not know the `route` op (an older version) turns routing off.
 */

import type { Connection } from './connection.js';

/** Where a realm's writes go, as a node said. */
export interface RealmRoute {
  readonly group: number;
  /** The name of the group's leader; '' if the node knew none. */
  readonly leader: string;
}

export interface RouterHost {
  /** The `route` answer for `realm` over the main connection; undefined on failure; 'unsupported' from an older node. */
  route(realm: string): Promise<RealmRoute | undefined | 'unsupported'>;
  /** The name of the node at `url` (its `status`, over a connection of its own), or undefined. */
  nameAt(url: string): Promise<string | undefined>;
  /** A new Connection that dials `url` first (and the other endpoints after it). */
  connect(url: string): Connection;
  now(): number;
}

/** Realms whose route the client remembers; past it, the oldest are forgotten. */
export const ROUTES_MAX = 10_000;

export class RealmRouter {
  private readonly routes = new Map<string, RealmRoute & { readonly at: number }>();
  private readonly looking = new Set<string>();
  private readonly urlOf = new Map<string, string>();
  private lastNaming = Number.NEGATIVE_INFINITY;
  private naming: Promise<void> | undefined;
  private readonly pool = new Map<string, Connection>();
  private off = false;
  /** Writes sent over a routed connection, and route lookups made (diagnostics, tests). */
  routedWrites = 0;
  lookups = 0;

  constructor(
    private readonly host: RouterHost,
    private readonly urls: readonly string[],
    private readonly intervalMs: number,
  ) {}

  /**
   * The connection a write of `realm` should go over, or undefined for the main one (no route
   * yet, a leader that is none of the endpoints, routing off). Looks the route up in the
   * background when it is missing or older than the interval.
   */
  connectionFor(realm: string): Connection | undefined {
    if (this.off || this.urls.length < 2) return undefined;
    const route = this.routes.get(realm);
    if (route === undefined || this.host.now() - route.at >= this.intervalMs) this.lookUp(realm);
    if (route === undefined || route.leader === '') return undefined;
    const url = this.urlOf.get(route.leader);
    if (url === undefined) {
      this.learnNames();
      return undefined;
    }
    let connection = this.pool.get(url);
    if (connection === undefined) {
      connection = this.host.connect(url);
      this.pool.set(url, connection);
    }
    this.routedWrites += 1;
    return connection;
  }

  /** A routed write lost its link or met retryable errors: the next write of `realm` asks again. */
  forget(realm: string): void {
    this.routes.delete(realm);
  }

  /** The realm's route as known now (tests, diagnostics). */
  routeOf(realm: string): RealmRoute | undefined {
    const route = this.routes.get(realm);
    return route === undefined ? undefined : { group: route.group, leader: route.leader };
  }

  /** Closes every routed connection. */
  async close(): Promise<void> {
    this.off = true;
    const connections = [...this.pool.values()];
    this.pool.clear();
    await Promise.all(connections.map((c) => c.close()));
  }

  private lookUp(realm: string): void {
    if (this.looking.has(realm)) return;
    this.looking.add(realm);
    this.lookups += 1;
    void this.host
      .route(realm)
      .then((route) => {
        if (route === 'unsupported') {
          this.off = true;
          return;
        }
        if (route === undefined || this.off) return;
        if (this.routes.size >= ROUTES_MAX && !this.routes.has(realm)) {
          this.routes.delete(this.routes.keys().next().value as string);
        }
        this.routes.delete(realm); // Re-inserted last: the map's order is the age order.
        this.routes.set(realm, { group: route.group, leader: route.leader, at: this.host.now() });
        if (route.leader !== '' && !this.urlOf.has(route.leader)) this.learnNames();
      })
      .catch(() => undefined)
      .finally(() => this.looking.delete(realm));
  }

  /** Asks every endpoint its name (at most once per interval), in the background. */
  private learnNames(): void {
    const now = this.host.now();
    if (this.naming !== undefined || now - this.lastNaming < this.intervalMs) return;
    this.lastNaming = now;
    this.naming = Promise.all(
      this.urls.map(async (url) => {
        const name = await this.host.nameAt(url).catch(() => undefined);
        if (name !== undefined) this.urlOf.set(name, url);
      }),
    )
      .then(() => undefined)
      .finally(() => {
        this.naming = undefined;
      });
  }
}
