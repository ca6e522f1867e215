// The membership as `status` and `members` show it: the admin route's view, or what one node's status knows.

/** One member as GET /v1/members (admin) answers it; null where the source does not know. */
import type { BackupLedger } from '../../storage/index.js';
import type { ApiClient } from './http.js';
import { formatAgo, orDash, renderTable, shortId } from './output.js';

export interface MemberView {
  readonly name: string;
  readonly id: string;
  readonly role: string;
  readonly address: string;
  /** The leader's replication state for it: leader, replicate, probe, snapshot or unknown. */
  readonly state: string;
  readonly matchIndex: number | null;
  readonly lag: number | null;
  /** How old the oldest entry it lacks is, in ms (admin view only). */
  readonly lagMs: number | null;
  readonly lastContactMs: number | null;
  /** Whether the leader heard from it within an election timeout (admin view only). */
  readonly reachable: boolean | null;
}

export interface MembersView {
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly members: readonly MemberView[];
  /** A spare promoted in place of a dead voter whose removal is next (admin view only). */
  readonly replacing?: { readonly spare: string; readonly voter: string };
  /** Nodes a spare replaced, to be re-added as spares when they come back (admin view only). */
  readonly replaced?: readonly string[];
  /** The scheduled backups' ledger, when backups were ever scheduled. */
  readonly backups?: BackupLedger;
}

/** NodeStatus (src/kv-service.ts) as GET /v1/status answers it. */
export interface NodeStatusBody {
  readonly name: string;
  readonly id: string;
  readonly role: string;
  readonly state: string;
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly revision: number;
  readonly members: readonly { name: string; role: string; match?: number; state?: string }[];
  /** On a stateless proxy (role `proxy`): the member it forwards to. */
  readonly member?: string;
  readonly backups?: BackupLedger;
}

/** Admin calls move on from a node that does not run the admin service. */
export const ADMIN_ELSEWHERE = ['PERMISSION_DENIED'] as const;

/**
 * Raft's refusals of a membership change or transfer that pass by themselves (admin-api.ts):
 * one change at a time, a new leader's first commit, a transfer under way.
 */
export const ADMIN_RETRY_REASONS = [
  'MEMBERSHIP_CHANGE_PENDING',
  'NO_COMMITTED_ENTRY_IN_TERM',
  'TRANSFER_IN_PROGRESS',
] as const;

/** How admin writes are sent: never twice after they may have arrived; moved on and retried as above. */
export const ADMIN_WRITE = {
  idempotent: false,
  elsewhereCodes: ADMIN_ELSEWHERE,
  retryReasons: ADMIN_RETRY_REASONS,
} as const;

/** GET /v1/members, with every field checked so a table never prints `undefined`. */
export async function fetchMembers(
  client: ApiClient,
  options: { timeoutMs?: number; elsewhereCodes?: readonly string[] } = {},
): Promise<MembersView> {
  const body = await client.call<Partial<MembersView>>('GET', '/v1/members', {
    idempotent: true,
    elsewhereCodes: options.elsewhereCodes ?? ADMIN_ELSEWHERE,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return normalizeMembers(body);
}

export function normalizeMembers(body: Partial<MembersView>): MembersView {
  const members = Array.isArray(body.members) ? body.members : [];
  const replacing = body.replacing;
  const replaced = Array.isArray(body.replaced) ? body.replaced.filter((n) => typeof n === 'string') : [];
  return {
    ...(replacing && typeof replacing.spare === 'string' && typeof replacing.voter === 'string'
      ? { replacing: { spare: replacing.spare, voter: replacing.voter } }
      : {}),
    ...(replaced.length > 0 ? { replaced } : {}),
    ...(body.backups !== null && typeof body.backups === 'object' && typeof body.backups.slot === 'number'
      ? { backups: body.backups }
      : {}),
    leader: text(body.leader),
    term: numberOr(body.term, 0),
    commitIndex: numberOr(body.commitIndex, 0),
    members: members.map((m: Partial<MemberView>) => ({
      name: text(m.name),
      id: text(m.id),
      role: text(m.role),
      address: text(m.address),
      state: text(m.state) || 'unknown',
      matchIndex: numberOr(m.matchIndex, null),
      lag: numberOr(m.lag, null),
      lagMs: numberOr(m.lagMs, null),
      lastContactMs: numberOr(m.lastContactMs, null),
      reachable: typeof m.reachable === 'boolean' ? m.reachable : null,
    })),
  };
}

/**
 * What one node's status knows of the membership: match indexes and replication states only
 * if it leads, its own peer id, no addresses and no contact times.
 */
export function membersFromStatus(status: NodeStatusBody): MembersView {
  const leads = status.state === 'leader';
  return {
    leader: status.leader,
    term: status.term,
    commitIndex: status.commitIndex,
    members: status.members.map((member) => {
      const matchIndex = leads ? numberOr(member.match, null) : null;
      return {
        name: member.name,
        id: member.name === status.name ? status.id : '',
        role: member.role,
        address: '',
        state: member.name === status.leader ? 'leader' : leads ? (member.state ?? 'unknown') : 'unknown',
        matchIndex,
        lag: matchIndex === null ? null : Math.max(0, status.commitIndex - matchIndex),
        lagMs: null,
        lastContactMs: null,
        reachable: null,
      };
    }),
    ...(status.backups === undefined ? {} : { backups: status.backups }),
  };
}

/** The backups line of `status`: the last success and the last failure, with when and where. */
export function renderBackups(ledger: BackupLedger | undefined, now = Date.now()): string | undefined {
  if (ledger === undefined) return undefined;
  const ago = (at: number) => `${Math.max(0, Math.round((now - at) / 1000))} s ago`;
  const success = ledger.lastSuccess;
  const failure = ledger.lastFailure;
  return [
    `backups: last claimed by ${ledger.claimedBy} ${ago(ledger.claimedAt)}`,
    success === undefined
      ? 'no success yet'
      : `last success ${ago(success.at)} by ${success.node}: ${success.file} (revision ${success.revision}, ${success.bytes} bytes)`,
    ...(failure === undefined
      ? []
      : [`last failure ${ago(failure.at)} by ${failure.node}: ${failure.error}`]),
  ].join('; ');
}

export function renderMembers(view: MembersView, options: { address: boolean }): string {
  const headers = ['NAME', 'ID', 'ROLE', ...(options.address ? ['ADDRESS'] : []), 'STATE', 'LEADER'];
  headers.push('MATCH', 'LAG', 'LAG MS', 'LAST CONTACT', 'REACHABLE');
  const rows = view.members.map((m) => [
    m.name,
    shortId(m.id),
    m.role,
    ...(options.address ? [orDash(m.address)] : []),
    m.state,
    m.name === view.leader ? '*' : '',
    orDash(m.matchIndex),
    orDash(m.lag),
    orDash(m.lagMs),
    // The leader's own contact time is always 0: nothing to tell.
    m.name === view.leader ? '-' : formatAgo(m.lastContactMs),
    m.reachable === null ? '-' : m.reachable ? 'yes' : 'no',
  ]);
  return renderTable(headers, rows);
}

export function renderClusterLine(view: MembersView): string {
  const line = `leader ${view.leader === '' ? '(none)' : view.leader}  term ${view.term}  commit index ${view.commitIndex}`;
  const notes = [
    ...(view.replacing
      ? [
          `spare ${view.replacing.spare} replaces ${view.replacing.voter}: promoted, ${view.replacing.voter}'s removal is next`,
        ]
      : []),
    ...(view.replaced && view.replaced.length > 0
      ? [`replaced by spares, re-added as spares when they come back: ${view.replaced.join(', ')}`]
      : []),
  ];
  return [line, ...notes].join('\n');
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function numberOr<T>(value: unknown, otherwise: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : otherwise;
}
