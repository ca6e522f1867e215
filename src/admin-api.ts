// The admin HTTP routes: membership changes and leadership transfer, served on nodes that run `admin`.

/*
 * Routes (JSON; any node answers, the work is done by the leader over the mesh):
 *
 *   GET    /v1/members            -> MembersView: the leader's view of every member
 *   POST   /v1/members            body {"name", "peer", "role"}: adds the node as a raft learner in
 *                                 `role` (learner, the default; spare, satellite or dr, see
 *                                 storage/member-context.ts); `peer` is its mesh multiaddr,
 *                                 replicated so every member can dial it; a satellite may have
 *                                 none (it dials the members) -> {"name", "role"}
 *   POST   /v1/members/{name}/promote  -> {"name", "role": "voter"} once it is a voter
 *   DELETE /v1/members/{name}     -> {"name", "removed": true}
 *   POST   /v1/leader/transfer    body {"to": name} -> {"leader", "term"} once `to` leads
 *   GET    /v1/backup             -> the state of THIS node as of now, in the snapshot file
 *                                 format (application/octet-stream), with its cluster id, index,
 *                                 term, revision and size in conclave-backup-* headers; a DR
 *                                 replica serves it too (src/cli/backup.ts picks the node)
 *
 * Errors are the client API's error bodies. A refusal by raft is CONFLICT with `reason`, the
 * raft code: MEMBERSHIP_CHANGE_PENDING (one change at a time: retry when it applied),
 * NO_COMMITTED_ENTRY_IN_TERM (a new leader must commit first: retry shortly),
 * LEARNER_NOT_CAUGHT_UP (promote again once the learner has caught up),
 * INVALID_MEMBERSHIP_CHANGE (already a member, not a learner, the last voter…),
 * TRANSFER_IN_PROGRESS, INVALID_TRANSFER_TARGET; and NO_MESH when the cluster was started without
 * a cluster secret, so no node can join it. A node that does not run the `admin` service
 * answers 403 PERMISSION_DENIED. Every route needs a cluster-admin caller where the node
 * requires tokens (UNAUTHENTICATED without a valid token, PERMISSION_DENIED without the role).
 */

import { EdgeError, type EdgeRequest, type EdgeResponse, type EdgeRoute } from '../net/index.js';
import type { BackupLedger } from '../storage/index.js';
import { isLearnerRole, LEARNER_ROLES, type LearnerRole, type MemberRole } from '../storage/index.js';
import { NEEDS_CLUSTER_ADMIN } from './auth.js';
import type { ClientApi } from './client-api.js';
import { NAME_PATTERN } from './config.js';
import { guardedRoute } from './http-api.js';
import { parseQuery } from './http-query.js';

/** One member as the leader sees it. */
export interface MemberView {
  readonly name: string;
  /** Its mesh peer id, or '' while unknown. */
  readonly id: string;
  /** `voter`, or the role it was added as a learner with. */
  readonly role: MemberRole;
  /** Its mesh address as replicated, or '' for members from before addresses were kept. */
  readonly address: string;
  /** 'leader' for the leader; the leader's replication state for the others (replicate, probe, snapshot). */
  readonly state: string;
  readonly matchIndex: number;
  /** Entries it is behind the leader's commit index. */
  readonly lag: number;
  /**
   * How long ago the leader appended the oldest entry it lacks, in ms (0 when it lacks none).
   * A lower bound when that entry is older than the leader's record of appends, or was appended
   * before this leader led.
   */
  readonly lagMs: number;
  /** Milliseconds since the leader last heard from it; 0 for the leader; null if never. */
  readonly lastContactMs: number | null;
  /** Whether the leader heard from it within an election timeout (always true for the leader). */
  readonly reachable: boolean;
}

export interface MembersView {
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly members: readonly MemberView[];
  /** A spare promoted in place of a dead voter whose removal is next (raft/spare-policy.ts). */
  readonly replacing?: { readonly spare: string; readonly voter: string };
  /** Nodes a spare replaced, re-added as spares when they come back. */
  readonly replaced?: readonly string[];
  /** The scheduled backups' ledger: the last claim, success and failure. */
  readonly backups?: BackupLedger;
}

/**
 * What the admin routes need from the node. Each call is carried out by the leader (forwarded
 * there if this node does not lead) and resolves once done; errors are thrown with a `code`
 * among the edge's codes and, for raft refusals, a `reason`.
 */
export interface AdminService {
  members(): Promise<MembersView>;
  /** Adds `name` as a raft learner with `role`; `address` is '' for a node nobody dials. */
  addLearner(name: string, address: string, role: LearnerRole): Promise<void>;
  promote(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  transferLeadership(to: string): Promise<{ leader: string; term: number }>;
  /**
   * Writes a backup of this node's state as of now (the snapshot format) into a temporary file
   * and hands it over; the caller streams it, then calls `release` (which deletes it). Taken
   * here, not on the leader. One at a time per node: CONFLICT, reason BACKUP_IN_PROGRESS.
   */
  backup(): Promise<BackupFile>;
}

/** A backup written for GET /v1/backup. */
export interface BackupFile {
  readonly path: string;
  readonly bytes: number;
  readonly clusterId: string;
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  /** The raft groups in the file (1 first); more than one makes it a backup set. */
  readonly groups: readonly number[];
  /** Deletes the file; called once the answer is sent or abandoned. */
  readonly release: () => void;
}

/** How long GET /v1/backup may take to write the file before it streams it. */
const BACKUP_WRITE_TIMEOUT_MS = 6 * 60 * 60 * 1000;

/**
 * The routes above; with `enabled` false each answers PERMISSION_DENIED. Errors answer as the
 * client API's do (`api` maps them).
 */
export function adminRoutes(api: ClientApi, admin: AdminService, enabled: boolean): EdgeRoute[] {
  const route = (
    method: EdgeRoute['method'],
    pattern: string,
    body: EdgeRoute['body'],
    handler: (request: EdgeRequest) => Promise<EdgeResponse>,
  ): EdgeRoute =>
    guardedRoute(api, method, pattern, body, NEEDS_CLUSTER_ADMIN, async (request) => {
      if (!enabled) {
        throw new EdgeError(
          'PERMISSION_DENIED',
          'this node does not run the admin service (start it with --services including admin)',
        );
      }
      return handler(request);
    });
  const nameParam = (request: EdgeRequest): string => checkNodeName(request.params.name, 'the member name');
  return [
    route('GET', '/v1/members', 'none', async (r) => {
      parseQuery(r.query, []);
      return { status: 200, body: await admin.members() };
    }),
    route('POST', '/v1/members', 'json', async (r) => {
      parseQuery(r.query, []);
      const body = objectBody(r.body, ['name', 'peer', 'role']);
      const name = checkNodeName(body.name, 'name');
      const role = body.role ?? 'learner';
      if (!isLearnerRole(role)) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `role must be one of ${LEARNER_ROLES.join(', ')} (a voter is added as a learner, then promoted), got ${JSON.stringify(role)}`,
        );
      }
      const peer = body.peer ?? (role === 'satellite' ? '' : undefined);
      if (
        typeof peer !== 'string' ||
        (peer !== '' && !MESH_ADDRESS.test(peer)) ||
        (peer === '' && role !== 'satellite')
      ) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `peer must be the node's mesh multiaddr such as /ip4/10.0.0.4/tcp/7001 (only a satellite may have none), got ${JSON.stringify(peer)}`,
        );
      }
      await admin.addLearner(name, peer, role);
      return { status: 200, body: { name, role } };
    }),
    route('POST', '/v1/members/:name/promote', 'none', async (r) => {
      parseQuery(r.query, []);
      const name = nameParam(r);
      await admin.promote(name);
      return { status: 200, body: { name, role: 'voter' } };
    }),
    route('DELETE', '/v1/members/:name', 'none', async (r) => {
      parseQuery(r.query, []);
      const name = nameParam(r);
      await admin.remove(name);
      return { status: 200, body: { name, removed: true } };
    }),
    {
      ...route('GET', '/v1/backup', 'none', async (r) => {
        parseQuery(r.query, []);
        const file = await admin.backup();
        if (r.signal.aborted) {
          file.release();
          throw new EdgeError('TIMEOUT', 'the client went away while the backup was written');
        }
        return {
          status: 200,
          headers: {
            'conclave-backup-cluster-id': file.clusterId,
            'conclave-backup-index': String(file.index),
            'conclave-backup-term': String(file.term),
            'conclave-backup-revision': String(file.revision),
            'conclave-backup-bytes': String(file.bytes),
            'conclave-backup-groups': file.groups.join(','),
          },
          file: { path: file.path, size: file.bytes, done: () => file.release() },
        };
      }),
      timeoutMs: BACKUP_WRITE_TIMEOUT_MS,
    },
    route('POST', '/v1/leader/transfer', 'json', async (r) => {
      parseQuery(r.query, []);
      const body = objectBody(r.body, ['to']);
      const to = checkNodeName(body.to, 'to');
      return { status: 200, body: await admin.transferLeadership(to) };
    }),
  ];
}

/** A member's mesh address as members dial it. */
const MESH_ADDRESS = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/[0-9]{1,5}(\/p2p\/[A-Za-z0-9]+)?$/;

/** A node name from a request, or INVALID_ARGUMENT naming `what`. */
export function checkNodeName(value: unknown, what: string): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new EdgeError(
      'INVALID_ARGUMENT',
      `${what} must be a node name (letters, digits, '_', '-', at most 64), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

export function objectBody(body: unknown, allowed: readonly string[]): Readonly<Record<string, unknown>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new EdgeError('INVALID_ARGUMENT', 'the body must be a JSON object');
  }
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) {
      throw new EdgeError(
        'INVALID_ARGUMENT',
        `unknown field ${JSON.stringify(field)}; expected ${allowed.join(', ')}`,
      );
    }
  }
  return body as Record<string, unknown>;
}
