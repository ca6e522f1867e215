// The realm definition's records (realm settings, users and their grants, tokens as hashes, the auth switch) and how its operations change them.

/*
 * The definition lives in the replicated state beside the documents:
 *   - each realm's record (state-store's REALM kind) carries its settings and document count;
 *   - one ACCESS record holds the users with their grants, whether the cluster requires tokens,
 *     the nodes that made their first admin token, and the definition version;
 *   - one TOKEN record per token: its user, expiry and the SHA-256 of its secret (never the secret).
 * Every definition operation increases `version` by one (applyDefinition too: it is one change);
 * it changes no document and no revision, except the realm creations it carries.
 * Operations are all-or-nothing: each checks everything before it changes anything.
 */

import type { CommandError } from './commands.js';

/** The realm every cluster has from its bootstrap; it is never deleted. */
export const DEFAULT_REALM = 'default';

/** What a grant allows in a realm: read (get, list, watch), write (also put, patch, delete, txn), admin (also its settings and grants). */
export type Level = 'read' | 'write' | 'admin';
export const LEVELS: readonly Level[] = ['read', 'write', 'admin'];

/** User names: lower-case letters, digits and _ . @ -; starts with a letter or digit; at most 64. */
export const USER_NAME = /^[a-z0-9][a-z0-9_.@-]{0,63}$/;
/** Token ids: 16 lower-case hex digits. */
export const TOKEN_ID = /^[0-9a-f]{16}$/;
/** A token's stored hash: SHA-256, hex. */
export const TOKEN_HASH = /^[0-9a-f]{64}$/;

/** Most users a cluster holds. */
export const USERS_MAX = 10_000;
/** Most tokens a cluster holds (expired ones count until revoked or their user is removed). */
export const TOKENS_MAX = 100_000;

export interface RealmSettings {
  /** The largest document (JSON bytes) the realm takes; the node's limit when absent. */
  readonly maxValueBytes?: number;
}

/** A realm's stored record. */
export interface RealmRecord {
  readonly createRevision: number;
  /** Documents in the realm; absent in data written before it was kept (counted at load). */
  readonly documents?: number;
  readonly settings?: RealmSettings;
}

export interface UserRecord {
  /** Membership, backups and the whole definition. */
  readonly clusterAdmin: boolean;
  readonly grants: Readonly<Record<string, Level>>;
}

export interface TokenRecord {
  readonly id: string;
  readonly user: string;
  /** SHA-256 of the secret part, hex. */
  readonly hash: string;
  /** Command time (ms since the epoch) of its creation. */
  readonly createdAt: number;
  /** Wall-clock ms since the epoch after which it is refused; 0: never. */
  readonly expiresAt: number;
  /** The node whose bootstrap made it, for a node's first admin token. */
  readonly bootstrap?: string;
}

export interface AccessRecord {
  /** Increases with every change of the definition. */
  readonly version: number;
  /** Whether every node requires a token. */
  readonly auth: boolean;
  readonly users: Readonly<Record<string, UserRecord>>;
  /** Nodes that made their first admin token: a node makes one once, even if it is revoked. */
  readonly bootstrapped: readonly string[];
}

export const EMPTY_ACCESS: AccessRecord = Object.freeze({
  version: 0,
  auth: false,
  users: Object.freeze({}),
  bootstrapped: Object.freeze([]) as readonly string[],
});

/** The definition as one document: what `definition export` shows and `definition apply` takes. */
export interface DefinitionDoc {
  readonly auth: boolean;
  readonly realms: Readonly<Record<string, RealmSettings>>;
  readonly users: Readonly<Record<string, UserRecord>>;
}

/** The operations that change the definition (storage/commands.ts checks their fields). */
export type DefinitionOp =
  | { readonly type: 'deleteRealm'; readonly realm: string }
  | { readonly type: 'realmSettings'; readonly realm: string; readonly settings: RealmSettings }
  | { readonly type: 'addUser'; readonly user: string; readonly clusterAdmin: boolean }
  | { readonly type: 'removeUser'; readonly user: string }
  /** level null takes the user's grant on the realm away. */
  | { readonly type: 'grant'; readonly user: string; readonly realm: string; readonly level: Level | null }
  | { readonly type: 'clusterAdmin'; readonly user: string; readonly on: boolean }
  | {
      readonly type: 'createToken';
      readonly id: string;
      readonly user: string;
      readonly hash: string;
      readonly expiresAt: number;
    }
  | { readonly type: 'revokeToken'; readonly id: string }
  | { readonly type: 'applyDefinition'; readonly definition: DefinitionDoc; readonly ifVersion?: number }
  /**
   * A node's first admin token: creates user `admin` (cluster admin) if missing, the token, and
   * turns auth on. Once per node: again (a restart that lost its answer) with the same token
   * changes nothing; after the node made one, refused.
   */
  | { readonly type: 'bootstrapAdmin'; readonly node: string; readonly id: string; readonly hash: string };

export const DEFINITION_OP_TYPES: ReadonlySet<string> = new Set([
  'createRealm',
  'deleteRealm',
  'realmSettings',
  'addUser',
  'removeUser',
  'grant',
  'clusterAdmin',
  'createToken',
  'revokeToken',
  'applyDefinition',
  'bootstrapAdmin',
]);

/** The user the first admin tokens belong to. */
export const BOOTSTRAP_USER = 'admin';

/** What an operation changed, for the apply batch to write. */
export interface DefinitionWork {
  access: AccessRecord;
  /** Copied before the first change (the batch's own map). */
  readonly tokens: Map<string, TokenRecord>;
  readonly realms: Map<string, RealmRecord>;
  readonly dirtyTokens: Set<string>;
  readonly dirtyRealms: Set<string>;
  accessDirty: boolean;
  /**
   * Group 1 only: the realms placed in other raft groups (group-catalog.ts). Users may hold
   * grants on them, though their records live in those groups.
   */
  readonly placed?: ReadonlySet<string>;
}

/** What the apply batch provides: creating a realm takes a revision and a history event. */
export interface DefinitionHost {
  readonly realmsMax: number;
  createRealm(realm: string, settings: RealmSettings | undefined): void;
}

export type DefinitionOutcome =
  | { readonly ok: true; readonly version: number; readonly created?: readonly string[] }
  | { readonly ok: false; readonly error: CommandError };

const conflict = (message: string): DefinitionOutcome => ({
  ok: false,
  error: { code: 'CONFLICT', message },
});
const notFound = (message: string): DefinitionOutcome => ({
  ok: false,
  error: { code: 'NOT_FOUND', message },
});
const tooLarge = (message: string): DefinitionOutcome => ({
  ok: false,
  error: { code: 'TOO_LARGE', message },
});

/** The definition document of a state: realms with their settings, users with their grants, auth. */
export function definitionOf(access: AccessRecord, realms: ReadonlyMap<string, RealmRecord>): DefinitionDoc {
  const realmEntries = [...realms.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, record]) => [name, { ...(record.settings ?? {}) }] as const);
  const users = Object.keys(access.users)
    .sort()
    .map((name) => {
      const user = access.users[name]!;
      const grants = Object.fromEntries(Object.entries(user.grants).sort(([a], [b]) => (a < b ? -1 : 1)));
      return [name, { clusterAdmin: user.clusterAdmin, grants }] as const;
    });
  return { auth: access.auth, realms: Object.fromEntries(realmEntries), users: Object.fromEntries(users) };
}

/** Whether some cluster admin holds a token that is not expired at `time`. */
function adminCanSignIn(
  users: Readonly<Record<string, UserRecord>>,
  tokens: ReadonlyMap<string, TokenRecord>,
  time: number,
): boolean {
  for (const token of tokens.values()) {
    if (users[token.user]?.clusterAdmin && (token.expiresAt === 0 || token.expiresAt > time)) return true;
  }
  return false;
}

/**
 * Applies one definition operation to `work` (createRealm is the batch's own). `time` is the
 * command's log time. Changes nothing when it refuses.
 */
export function applyDefinitionOp(
  work: DefinitionWork,
  host: DefinitionHost,
  op: DefinitionOp,
  time: number,
): DefinitionOutcome {
  const access = work.access;
  const user = (name: string): UserRecord | undefined => access.users[name];
  const bump = (
    users: Readonly<Record<string, UserRecord>> = access.users,
    extra?: Partial<AccessRecord>,
  ) => {
    work.access = { ...access, ...extra, users, version: access.version + 1 };
    work.accessDirty = true;
    return { ok: true as const, version: work.access.version };
  };
  switch (op.type) {
    case 'deleteRealm': {
      const realm = work.realms.get(op.realm);
      if (realm === undefined) return notFound(`no realm ${op.realm}`);
      if (op.realm === DEFAULT_REALM)
        return conflict(`the ${DEFAULT_REALM} realm is always there: it cannot be deleted`);
      if ((realm.documents ?? 0) > 0) {
        return conflict(`realm ${op.realm} holds ${documents(realm.documents)}: delete them first`);
      }
      work.realms.delete(op.realm);
      work.dirtyRealms.add(op.realm);
      return bump(withoutRealm(access.users, op.realm));
    }
    case 'realmSettings': {
      const realm = work.realms.get(op.realm);
      if (realm === undefined) return notFound(`no realm ${op.realm}`);
      work.realms.set(op.realm, withSettings(realm, op.settings));
      work.dirtyRealms.add(op.realm);
      return bump();
    }
    case 'addUser': {
      if (user(op.user) !== undefined) return conflict(`user ${op.user} exists`);
      if (Object.keys(access.users).length >= USERS_MAX)
        return tooLarge(`the cluster holds ${USERS_MAX} users, the limit`);
      return bump({ ...access.users, [op.user]: { clusterAdmin: op.clusterAdmin, grants: {} } });
    }
    case 'removeUser': {
      if (user(op.user) === undefined) return notFound(`no user ${op.user}`);
      const { [op.user]: _removed, ...users } = access.users;
      dropTokensOf(work, (token) => token.user === op.user);
      return bump(users);
    }
    case 'grant': {
      const record = user(op.user);
      if (record === undefined) return notFound(`no user ${op.user}`);
      if (!work.realms.has(op.realm) && !work.placed?.has(op.realm)) return notFound(`no realm ${op.realm}`);
      const { [op.realm]: _old, ...grants } = record.grants;
      const next = op.level === null ? grants : { ...grants, [op.realm]: op.level };
      return bump({ ...access.users, [op.user]: { ...record, grants: next } });
    }
    case 'clusterAdmin': {
      const record = user(op.user);
      if (record === undefined) return notFound(`no user ${op.user}`);
      const users = { ...access.users, [op.user]: { ...record, clusterAdmin: op.on } };
      if (!op.on && access.auth && !adminCanSignIn(users, work.tokens, time)) {
        return conflict(
          'no cluster admin could sign in afterwards: give another user cluster-admin and a token first',
        );
      }
      return bump(users);
    }
    case 'createToken': {
      if (user(op.user) === undefined) return notFound(`no user ${op.user}`);
      if (work.tokens.has(op.id)) return conflict(`token ${op.id} exists`);
      if (work.tokens.size >= TOKENS_MAX)
        return tooLarge(`the cluster holds ${TOKENS_MAX} tokens, the limit`);
      const token: TokenRecord = {
        id: op.id,
        user: op.user,
        hash: op.hash,
        createdAt: time,
        expiresAt: op.expiresAt,
      };
      work.tokens.set(op.id, token);
      work.dirtyTokens.add(op.id);
      return bump();
    }
    case 'revokeToken': {
      if (!work.tokens.has(op.id)) return notFound(`no token ${op.id}`);
      work.tokens.delete(op.id);
      work.dirtyTokens.add(op.id);
      return bump();
    }
    case 'bootstrapAdmin': {
      const existing = work.tokens.get(op.id);
      if (existing !== undefined) {
        return existing.bootstrap === op.node && existing.hash === op.hash
          ? { ok: true, version: access.version }
          : conflict(`token ${op.id} exists`);
      }
      if (access.bootstrapped.includes(op.node)) {
        return conflict(`node ${op.node} made its first admin token already`);
      }
      if (work.tokens.size >= TOKENS_MAX)
        return tooLarge(`the cluster holds ${TOKENS_MAX} tokens, the limit`);
      const admin = user(BOOTSTRAP_USER);
      const token: TokenRecord = {
        id: op.id,
        user: BOOTSTRAP_USER,
        hash: op.hash,
        createdAt: time,
        expiresAt: 0,
        bootstrap: op.node,
      };
      work.tokens.set(op.id, token);
      work.dirtyTokens.add(op.id);
      return bump(
        { ...access.users, [BOOTSTRAP_USER]: { clusterAdmin: true, grants: admin?.grants ?? {} } },
        { auth: true, bootstrapped: [...access.bootstrapped, op.node] },
      );
    }
    case 'applyDefinition':
      return applyWhole(work, host, op.definition, op.ifVersion, time);
  }
}

/** Replaces realms, users and the auth switch at once; tokens of removed users go. */
function applyWhole(
  work: DefinitionWork,
  host: DefinitionHost,
  target: DefinitionDoc,
  ifVersion: number | undefined,
  time: number,
): DefinitionOutcome {
  const access = work.access;
  if (ifVersion !== undefined && ifVersion !== access.version) {
    return conflict(`the definition is at version ${access.version}, not ${ifVersion}`);
  }
  const targetRealms = new Set(Object.keys(target.realms));
  if (!targetRealms.has(DEFAULT_REALM)) {
    return {
      ok: false,
      error: { code: 'INVALID_ARGUMENT', message: `the definition must keep the ${DEFAULT_REALM} realm` },
    };
  }
  for (const [name, record] of work.realms) {
    if (!targetRealms.has(name) && (record.documents ?? 0) > 0) {
      return conflict(
        `realm ${name} holds ${documents(record.documents)}: delete them before removing the realm`,
      );
    }
  }
  const created = [...targetRealms].filter((name) => !work.realms.has(name)).sort();
  const remaining = [...work.realms.keys()].filter((name) => targetRealms.has(name)).length;
  if (remaining + created.length > host.realmsMax) {
    return tooLarge(`the definition has ${targetRealms.size} realms; the limit is ${host.realmsMax}`);
  }
  if (Object.keys(target.users).length > USERS_MAX) return tooLarge(`more than ${USERS_MAX} users`);
  for (const [name, record] of Object.entries(target.users)) {
    for (const realm of Object.keys(record.grants)) {
      if (!targetRealms.has(realm) && !work.placed?.has(realm)) {
        return {
          ok: false,
          error: {
            code: 'INVALID_ARGUMENT',
            message: `user ${name} has a grant on ${realm}, which is no realm of the definition`,
          },
        };
      }
    }
  }
  const keptTokens = new Map([...work.tokens].filter(([, token]) => target.users[token.user] !== undefined));
  if (target.auth && !adminCanSignIn(target.users, keptTokens, time)) {
    return conflict('with auth on, no cluster admin could sign in: give a cluster admin a token first');
  }
  // Checked: now change.
  for (const name of [...work.realms.keys()]) {
    if (!targetRealms.has(name)) {
      work.realms.delete(name);
      work.dirtyRealms.add(name);
    }
  }
  for (const name of created) host.createRealm(name, target.realms[name]);
  for (const [name, settings] of Object.entries(target.realms)) {
    const record = work.realms.get(name)!;
    if (JSON.stringify(record.settings ?? {}) !== JSON.stringify(settings)) {
      work.realms.set(name, withSettings(record, settings));
      work.dirtyRealms.add(name);
    }
  }
  dropTokensOf(work, (token) => target.users[token.user] === undefined);
  work.access = { ...access, auth: target.auth, users: target.users, version: access.version + 1 };
  work.accessDirty = true;
  return { ok: true, version: work.access.version, created };
}

function documents(count: number | undefined): string {
  return count === 1 ? '1 document' : `${count ?? 0} documents`;
}

function withSettings(record: RealmRecord, settings: RealmSettings): RealmRecord {
  const { settings: _old, ...rest } = record;
  return Object.keys(settings).length === 0 ? rest : { ...rest, settings };
}

/** The users with every grant on `realm` taken away (a new object; the old one is left as it was). */
export function withoutRealm(
  users: Readonly<Record<string, UserRecord>>,
  realm: string,
): Record<string, UserRecord> {
  return Object.fromEntries(
    Object.entries(users).map(([name, record]) => {
      const { [realm]: _gone, ...grants } = record.grants;
      return [name, { ...record, grants }];
    }),
  );
}

function dropTokensOf(work: DefinitionWork, doomed: (token: TokenRecord) => boolean): void {
  for (const token of [...work.tokens.values()]) {
    if (doomed(token)) {
      work.tokens.delete(token.id);
      work.dirtyTokens.add(token.id);
    }
  }
}
