// Who a request comes from (its token's user and grants) and what each operation needs: the checks every node's edge makes, member or proxy.

import { EdgeError } from '../net/index.js';
import type { Level, RealmRecord, TokenRecord, UserRecord } from '../storage/index.js';
import { parseToken, secretMatches } from './tokens.js';

/**
 * The caller of one request. `user` null: a node that requires no token (auth off, loopback
 * only), where every caller may do everything.
 */
export interface Principal {
  readonly user: string | null;
  readonly clusterAdmin: boolean;
  readonly grants: Readonly<Record<string, Level>>;
}

/** Everything allowed: the caller on a node that requires no token. */
export const OPEN: Principal = Object.freeze({ user: null, clusterAdmin: true, grants: Object.freeze({}) });

/** What an operation needs of its caller. */
export type Need =
  /** /healthz and /readyz: answered to anyone. */
  | { readonly kind: 'none' }
  /** Any valid token: status, the realm list (filtered), sessions. */
  | { readonly kind: 'user' }
  | { readonly kind: 'realm'; readonly realm: string; readonly level: Level }
  /** Membership, backups, users, tokens, the whole definition. */
  | { readonly kind: 'cluster' };

export const NEEDS_NOTHING: Need = Object.freeze({ kind: 'none' });
export const NEEDS_USER: Need = Object.freeze({ kind: 'user' });
export const NEEDS_CLUSTER_ADMIN: Need = Object.freeze({ kind: 'cluster' });

const RANK: Readonly<Record<Level, number>> = { read: 1, write: 2, admin: 3 };

/** Whether `principal` may do what `need` asks. */
export function allows(principal: Principal, need: Need): boolean {
  switch (need.kind) {
    case 'none':
    case 'user':
      return true;
    case 'cluster':
      return principal.clusterAdmin;
    case 'realm': {
      if (principal.clusterAdmin) return true;
      const level = principal.grants[need.realm];
      return level !== undefined && RANK[level] >= RANK[need.level];
    }
  }
}

/** Whether the caller sees the realm in lists: any grant on it, or cluster admin. */
export function seesRealm(principal: Principal, realm: string): boolean {
  return principal.clusterAdmin || principal.grants[realm] !== undefined;
}

/**
 * Throws PERMISSION_DENIED unless `principal` may do what `need` asks. The message names what
 * was asked (which the caller knows), never whether the realm exists.
 */
export function authorize(principal: Principal, need: Need): void {
  if (allows(principal, need)) return;
  const who = principal.user ?? 'this caller';
  const what =
    need.kind === 'realm' ? `${need.level} realm ${need.realm}` : 'do this (it needs cluster-admin)';
  throw new EdgeError('PERMISSION_DENIED', `user ${who} may not ${what}`);
}

export const MISSING_TOKEN =
  'this node requires a token: send Authorization: Bearer TOKEN (CLI: --token or $CONCLAVE_TOKEN)';
export const BAD_TOKEN = 'the token is not valid: unknown, revoked, expired or malformed';

export function unauthenticated(message: string): EdgeError {
  return new EdgeError('UNAUTHENTICATED', message);
}

/** Turns a presented token (or none) into the caller; throws UNAUTHENTICATED. */
export interface Gate {
  /**
   * The caller of a request carrying `token`. `require`: the asking node requires a token even
   * if this one would not (a proxy listening beyond loopback). Members answer at once; proxies
   * ask a member and keep the answer briefly.
   */
  principal(token: string | undefined, require?: boolean): Principal | Promise<Principal>;
}

/** What a member's state says about tokens and users. */
export interface AccessView {
  readonly auth: boolean;
  user(name: string): UserRecord | undefined;
  token(id: string): TokenRecord | undefined;
  realm(name: string): RealmRecord | undefined;
}

/** The AccessView of a state store. */
export function accessViewOf(state: {
  readonly access: { readonly auth: boolean; readonly users: Readonly<Record<string, UserRecord>> };
  token(id: string): TokenRecord | undefined;
  realm(name: string): RealmRecord | undefined;
}): AccessView {
  return {
    auth: state.access.auth,
    user: (name) => (Object.hasOwn(state.access.users, name) ? state.access.users[name] : undefined),
    token: (id) => state.token(id),
    realm: (name) => state.realm(name),
  };
}

/**
 * The gate of a node holding the state. A token is required when this node requires one
 * (`nodeRequires`: --auth, or a client address beyond loopback without --insecure-no-auth), when
 * the cluster's definition turned auth on, or when the asking proxy requires one.
 */
export class StateGate implements Gate {
  constructor(
    private readonly view: () => AccessView | undefined,
    private readonly nodeRequires: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  principal(token: string | undefined, require = false): Principal {
    const view = this.view();
    const required = require || this.nodeRequires || view?.auth === true;
    if (!required) return OPEN;
    if (token === undefined || token === '') throw unauthenticated(MISSING_TOKEN);
    const parsed = parseToken(token);
    const record = parsed === undefined ? undefined : view?.token(parsed.id);
    if (parsed === undefined || record === undefined || !secretMatches(record.hash, parsed.secret)) {
      throw unauthenticated(BAD_TOKEN);
    }
    if (record.expiresAt !== 0 && record.expiresAt <= this.now()) throw unauthenticated(BAD_TOKEN);
    const user = view?.user(record.user);
    if (user === undefined) throw unauthenticated(BAD_TOKEN);
    return { user: record.user, clusterAdmin: user.clusterAdmin, grants: user.grants };
  }
}
