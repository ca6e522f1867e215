// Requests between nodes over the mesh's forwarding RPC: their JSON shapes, encoding and checks.

import { parseRemovalNotice, type RemovalNotice } from './removal.js';
import type { SessionRef } from './ws-protocol.js';

/** A membership or leadership action, carried out by the leader. */
export type AdminAction =
  | { readonly action: 'addLearner'; readonly name: string; readonly address: string }
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
  | { readonly type: 'write'; readonly op: unknown; readonly session?: SessionRef }
  | { readonly type: 'members' }
  | ({ readonly type: 'admin' } & AdminAction);

export interface IdentifyAnswer {
  readonly name: string;
  readonly commitIndex: number;
  readonly clusterId?: string;
  /** Set by a founder's temporary mesh (founding-check.ts): not a member yet, do not record it. */
  readonly founding?: true;
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
  if (type === 'members') return { type };
  if (type === 'removed') return parseRemovalNotice(request) ?? refuse('a removal notice is malformed');
  if (type === 'write' && 'op' in request) {
    const session = request.session;
    if (session !== undefined && (typeof session !== 'object' || session === null)) {
      refuse('a forwarded write has a bad session');
    }
    return { type, op: request.op, ...(session === undefined ? {} : { session: session as SessionRef }) };
  }
  if (type === 'admin') {
    const { action, name, address } = request;
    if (typeof action !== 'string' || !ADMIN_ACTIONS.has(action))
      refuse(`unknown admin action ${String(action)}`);
    if (typeof name !== 'string' || name === '') refuse('an admin request needs a name');
    if (action === 'addLearner') {
      if (typeof address !== 'string') refuse('addLearner needs an address');
      return { type, action, name, address };
    }
    return { type, action: action as 'promote' | 'remove' | 'transfer', name };
  }
  refuse(`unknown peer request type ${JSON.stringify(type)}`);
}

export function decodePeerAnswer<T>(payload: Uint8Array): T {
  return JSON.parse(decoder.decode(payload)) as T;
}
