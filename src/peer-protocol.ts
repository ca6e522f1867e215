// Requests between nodes over the mesh's forwarding RPC: their JSON shapes, encoding and checks.

import {
  isLearnerRole,
  type LearnerRole,
  type ListOptions,
  MEMBER_ROLES,
  type MemberRole,
} from '../storage/index.js';
import type { Consistency, WriteRoute } from './kv-service.js';
import { parseRemovalNotice, type RemovalNotice } from './removal.js';
import type { SessionRef } from './ws-protocol.js';

/** A client operation a stateless proxy asks a member to carry out (its KvService call). */
export type ClientCall =
  | {
      readonly call: 'write';
      readonly op: unknown;
      readonly session?: SessionRef;
      readonly route?: WriteRoute;
    }
  | { readonly call: 'get'; readonly realm: string; readonly key: string; readonly consistency: Consistency }
  | {
      readonly call: 'list';
      readonly realm: string;
      readonly options: ListOptions;
      readonly consistency: Consistency;
    }
  | { readonly call: 'realms'; readonly consistency: Consistency }
  | { readonly call: 'definition'; readonly consistency: Consistency }
  /**
   * The records of `realms` in the groups the answering member runs (KvService.realmRecords),
   * for a node assembling the definition view; answered from local state, never carried on.
   */
  | { readonly call: 'realmRecords'; readonly realms: readonly string[]; readonly consistency: Consistency }
  /** Places a realm in a raft group (KvService.placeRealm), for a proxy's `realms create --group`. */
  | { readonly call: 'placeRealm'; readonly realm: string; readonly group: number | 'auto' }
  /** Who a token belongs to (auth.ts Gate); `require`: the proxy requires a token regardless. */
  | { readonly call: 'principal'; readonly token: string | null; readonly require: boolean };

/**
 * A proxy's watch, one long poll at a time: the member answers the events of `realm` under
 * `prefix` from revision `from` (default: the next change) as soon as it has some, or an empty
 * page after `waitMs`; the answer's `next` is where the following poll starts, so a proxy that
 * moves to another member resumes there without loss or repetition.
 */
export interface WatchPoll {
  readonly type: 'watch';
  readonly realm: string;
  readonly prefix: string;
  readonly from?: number;
  readonly waitMs: number;
}

/** A membership or leadership action, carried out by the leader. */
export type AdminAction =
  | {
      readonly action: 'addLearner';
      readonly name: string;
      readonly address: string;
      /** Absent from members of an older version: a plain learner. */
      readonly role?: LearnerRole;
    }
  | { readonly action: 'promote'; readonly name: string }
  | { readonly action: 'remove'; readonly name: string }
  | { readonly action: 'transfer'; readonly name: string };

/**
 * What one node asks another. `identify` is answered by any node (its name, commit index and
 * cluster id), and so is `removed` (a member telling a node it is no longer in the membership;
 * answered with `{ accepted }`); the others only by the leader, which proposes (one hop: never
 * forwarded again).
 */
export type PeerRequest =
  /** `founding`: a founder with an empty data directory asks for the record of its name (SeenMembers). */
  | { readonly type: 'identify'; readonly founding?: string }
  | RemovalNotice
  /** `group`: the raft group to propose in (absent: group 1). */
  | { readonly type: 'write'; readonly op: unknown; readonly session?: SessionRef; readonly group?: number }
  /** From a proxy: a client operation run by the member as its own client API would. */
  | ({ readonly type: 'client' } & ClientCall)
  | WatchPoll
  /** From a proxy: the member's view of the cluster (DirectoryAnswer). */
  | { readonly type: 'directory' }
  /** From any node with the secret: the answering node's dashboard panel (dashboard-panel.ts), its activity after `since` (ms). */
  | { readonly type: 'panel'; readonly since: number }
  | { readonly type: 'members' }
  /** From any member: the raft groups the answering node runs, as it sees them (LocalGroupStatus[]). */
  | { readonly type: 'groups' }
  /** From a member: a backup of `group`, streamed back on a snapshot stream with header `{ backup: id }` (group-backup-fetch.ts). */
  | { readonly type: 'groupBackup'; readonly group: number; readonly id: string }
  | ({ readonly type: 'admin' } & AdminAction)
  | JoinRequest;

/**
 * From a node started with --join and --role: add me (the peer the request came from, by the
 * name it identified with) in `role`, or promote me if I am a learner that asked to be a voter.
 * Served by any member, which takes it to the leader. Answered as a value (JoinAnswer).
 */
export interface JoinRequest {
  readonly type: 'join';
  readonly role: MemberRole;
  /** Where members dial it; '' for a satellite that dials them. */
  readonly address: string;
}

/** What a join request did: `added` as a learner (in `role`), `promoted`, or nothing to do. */
export interface JoinAnswer {
  readonly done: 'added' | 'promoted' | 'already';
}

/**
 * What this build can do that older ones cannot: sent in identify answers, required before
 * proposing what needs it. `groups`: createGroup and placeRealm; `groupMembers`: groupMember;
 * `placedRealms`: unplaceRealm, and grants on realms placed outside group 1.
 */
export const NODE_FEATURES = ['groups', 'groupMembers', 'placedRealms'] as const;
export type NodeFeature = (typeof NODE_FEATURES)[number];

export interface IdentifyAnswer {
  readonly name: string;
  readonly commitIndex: number;
  /** Absent from older builds: they have none of NODE_FEATURES. */
  readonly features?: readonly string[];
  readonly clusterId?: string;
  /** Set by a founder's temporary mesh (founding-check.ts): not a member yet, do not record it. */
  readonly founding?: true;
  /** Set by a stateless proxy: never a member, do not record it. */
  readonly proxy?: true;
  /** To an identify with `founding`: the peer id that name was last seen with, or null. */
  readonly seenPeer?: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodePeerMessage(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function refuse(message: string): never {
  throw Object.assign(new Error(message), { code: 'INVALID_ARGUMENT' });
}

const ADMIN_ACTIONS = new Set(['addLearner', 'promote', 'remove', 'transfer']);

/** Decodes a peer's request; throws an error with code INVALID_ARGUMENT for anything else. */
export function decodePeerRequest(payload: Uint8Array): PeerRequest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    refuse('peer request is not JSON');
  }
  if (typeof value !== 'object' || value === null) refuse('peer request is not an object');
  const request = value as Record<string, unknown>;
  const type = request.type;
  if (type === 'identify') {
    const founding = request.founding;
    if (founding === undefined) return { type };
    if (typeof founding !== 'string' || founding === '' || founding.length > 256)
      refuse('identify: founding must be a node name');
    return { type, founding };
  }
  if (type === 'members' || type === 'directory' || type === 'groups') return { type };
  if (type === 'groupBackup') {
    const { group, id } = request;
    if (!Number.isSafeInteger(group) || (group as number) < 1)
      refuse('a groupBackup request has a bad group');
    if (typeof id !== 'string' || id === '' || id.length > 64) refuse('a groupBackup request has a bad id');
    return { type, group: group as number, id };
  }
  if (type === 'panel') {
    const since = request.since;
    if (!Number.isSafeInteger(since) || (since as number) < -1) refuse('a panel request has a bad since');
    return { type, since: since as number };
  }
  if (type === 'join') {
    const { role, address } = request;
    if (typeof role !== 'string' || !(MEMBER_ROLES as readonly string[]).includes(role))
      refuse(`a join request has an unknown role ${JSON.stringify(role)}`);
    if (typeof address !== 'string' || address.length > 1024) refuse('a join request has a bad address');
    return { type, role: role as MemberRole, address };
  }
  if (type === 'client') return decodeClientCall(request);
  if (type === 'watch') {
    const { realm, prefix, from, waitMs } = request;
    if (typeof realm !== 'string' || typeof prefix !== 'string')
      refuse('a watch poll needs a realm and a prefix');
    if (from !== undefined && (!Number.isSafeInteger(from) || (from as number) < 1))
      refuse('a watch poll has a bad revision');
    if (!Number.isSafeInteger(waitMs) || (waitMs as number) < 0 || (waitMs as number) > 60_000)
      refuse('a watch poll has a bad waitMs');
    return {
      type,
      realm,
      prefix,
      waitMs: waitMs as number,
      ...(from === undefined ? {} : { from: from as number }),
    };
  }
  if (type === 'removed') return parseRemovalNotice(request) ?? refuse('a removal notice is malformed');
  if (type === 'write' && 'op' in request) {
    const session = request.session;
    if (session !== undefined && (typeof session !== 'object' || session === null)) {
      refuse('a forwarded write has a bad session');
    }
    const group = request.group;
    if (group !== undefined && (!Number.isSafeInteger(group) || (group as number) < 1))
      refuse('a forwarded write names a bad group');
    return {
      type,
      op: request.op,
      ...(session === undefined ? {} : { session: session as SessionRef }),
      ...(group === undefined ? {} : { group: group as number }),
    };
  }
  if (type === 'admin') {
    const { action, name, address, role } = request;
    if (typeof action !== 'string' || !ADMIN_ACTIONS.has(action))
      refuse(`unknown admin action ${String(action)}`);
    if (typeof name !== 'string' || name === '') refuse('an admin request needs a name');
    if (action === 'addLearner') {
      if (typeof address !== 'string') refuse('addLearner needs an address');
      if (role !== undefined && !isLearnerRole(role)) refuse(`unknown member role ${JSON.stringify(role)}`);
      return { type, action, name, address, ...(role === undefined ? {} : { role }) };
    }
    return { type, action: action as 'promote' | 'remove' | 'transfer', name };
  }
  refuse(`unknown peer request type ${JSON.stringify(type)}`);
}

const CONSISTENCIES: ReadonlySet<unknown> = new Set(['linearizable', 'stale']);

/** The fields of a proxy's client call; the member's client API validates realms, keys and options further. */
function decodeClientCall(request: Record<string, unknown>): { type: 'client' } & ClientCall {
  const { call, realm, key, consistency, options, op, session } = request;
  if (call === 'principal') {
    const { token, require } = request;
    if ((token !== null && typeof token !== 'string') || typeof require !== 'boolean')
      refuse('a principal call needs a token (or null) and require');
    return { type: 'client', call, token, require };
  }
  if (call === 'placeRealm') {
    const group = request.group;
    if (typeof realm !== 'string') refuse('a placeRealm call needs a realm');
    if (group !== 'auto' && (!Number.isSafeInteger(group) || (group as number) < 1))
      refuse('a placeRealm call needs a group id or auto');
    return { type: 'client', call, realm, group: group as number | 'auto' };
  }
  if (call === 'write') {
    if (op === undefined) refuse('a client write needs an op');
    if (session !== undefined && (typeof session !== 'object' || session === null))
      refuse('a client write has a bad session');
    const route = request.route as { realm?: unknown; group?: unknown } | undefined;
    if (
      route !== undefined &&
      (typeof route !== 'object' ||
        route === null ||
        (route.realm !== undefined && typeof route.realm !== 'string') ||
        (route.group !== undefined && (!Number.isSafeInteger(route.group) || (route.group as number) < 1)))
    )
      refuse('a client write has a bad route');
    return {
      type: 'client',
      call,
      op,
      ...(session === undefined ? {} : { session: session as SessionRef }),
      ...(route === undefined ? {} : { route: route as WriteRoute }),
    };
  }
  if (!CONSISTENCIES.has(consistency)) refuse('a client read needs a consistency');
  const level = consistency as Consistency;
  if (call === 'realms' || call === 'definition') return { type: 'client', call, consistency: level };
  if (call === 'realmRecords') {
    const realms = request.realms;
    if (
      !Array.isArray(realms) ||
      realms.length > 10_000 ||
      !realms.every((r) => typeof r === 'string' && r.length <= 64)
    )
      refuse('a realmRecords call needs a list of realm names');
    return { type: 'client', call, realms: realms as string[], consistency: level };
  }
  if (typeof realm !== 'string') refuse('a client read needs a realm');
  if (call === 'get') {
    if (typeof key !== 'string') refuse('a client get needs a key');
    return { type: 'client', call, realm, key, consistency: level };
  }
  if (call === 'list') {
    if (typeof options !== 'object' || options === null || Array.isArray(options))
      refuse('a client list needs options');
    const { prefix, after, limit } = options as Record<string, unknown>;
    if (prefix !== undefined && typeof prefix !== 'string') refuse('list: prefix must be a string');
    if (after !== undefined && typeof after !== 'string') refuse('list: after must be a string');
    if (limit !== undefined && !Number.isSafeInteger(limit)) refuse('list: limit must be an integer');
    return { type: 'client', call, realm, options: options as ListOptions, consistency: level };
  }
  refuse(`unknown client call ${JSON.stringify(call)}`);
}

export function decodePeerAnswer<T>(payload: Uint8Array): T {
  return JSON.parse(decoder.decode(payload)) as T;
}
