// What the client API needs from a node: writes through raft, reads at a chosen consistency, status.

import type {
  BackupLedger,
  CommandResult,
  DefinitionDoc,
  Document,
  ListOptions,
  MemberRole,
  Operation,
  ReadResult,
  RealmSettings,
  SessionRef,
} from '../storage/index.js';

/** `linearizable` (default) confirms leadership and waits to apply the read index; `stale` reads local state at once. */
export type Consistency = 'linearizable' | 'stale';

/** How far a stale read may lag: the local applied index and the leader's commit index as last known. */
export interface Staleness {
  readonly appliedIndex: number;
  /** The commit index this node knows of: when cut off, what it last heard. */
  readonly leaderCommitIndex: number;
  /** Set on a satellite that has not heard from the leader for over an election timeout. */
  readonly cutOff?: true;
  /** With cutOff: milliseconds since it last heard from the leader (null: never). */
  readonly leaderSilenceMs?: number | null;
}

/** A read's answer plus, for stale reads, how far behind it may be. */
export type ServedRead<T> = ReadResult<T> & { readonly stale?: Staleness };

export interface MemberStatus {
  readonly name: string;
  /** `voter`, or a learner's role (storage/member-context.ts). */
  readonly role: MemberRole;
  /** Only known on the leader. */
  readonly match?: number;
  readonly next?: number;
  readonly state?: string;
  readonly recentActive?: boolean;
}

export interface NodeStatus {
  readonly name: string;
  /** This node's mesh peer id. */
  readonly id: string;
  /** A stateless proxy holds no replica: its raft fields are the last it heard from `member`. */
  readonly role: MemberRole | 'none' | 'proxy';
  /** Raft state: leader, follower, candidate, pre-candidate; `proxy` on a proxy. */
  readonly state: string;
  /** On a proxy: the member it forwards to now ('' when none is reachable). */
  readonly member?: string;
  /** The leader's name, or '' when none is known. */
  readonly leader: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly revision: number;
  readonly members: readonly MemberStatus[];
  /** The scheduled backups' ledger, as this node has applied it. */
  readonly backups?: BackupLedger;
}

/** The realm definition as a node serves it (tokens without their hashes). */
export interface DefinitionView {
  readonly version: number;
  readonly definition: DefinitionDoc;
  readonly realms: readonly {
    readonly name: string;
    readonly createRevision: number;
    readonly documents: number;
    readonly settings: RealmSettings;
  }[];
  /**
   * Realms placed in raft groups none of whose members could be read (their records are not
   * in `realms`). Absent when every group answered.
   */
  readonly unreachableRealms?: readonly string[];
  readonly tokens: readonly {
    readonly id: string;
    readonly user: string;
    readonly createdAt: number;
    /** 0: never. */
    readonly expiresAt: number;
    readonly bootstrap?: string;
  }[];
}

/**
 * Where a write goes when its operation does not say (HA and scaled mode): `realm`, the realm
 * whose group it belongs to (openSession and closeSession, which name no realm: a session
 * lives in one group); `group`, the group itself (a realm's creation in the group it was just
 * placed in). Neither is written to the log.
 */
export interface WriteRoute {
  readonly realm?: string;
  readonly group?: number;
}

/**
 * The node as the client edge sees it. Errors are thrown as values with a string `code` among
 * the edge's stable codes (NOT_LEADER and NO_LEADER with a `leader` field where known,
 * TIMEOUT, UNAVAILABLE, TOO_LARGE); a command's own failure (CONFLICT, NOT_FOUND, …) is not
 * thrown but returned in its CommandResult / ReadResult.
 */
export interface KvService {
  /**
   * Proposes `op` through raft (forwarding to the leader if needed) and resolves once applied.
   * With `session`, the state machine applies it at most once per (session id, seq).
   */
  write(op: Operation, session?: SessionRef, route?: WriteRoute): Promise<CommandResult>;
  get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>>;
  list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>>;
  realms(consistency: Consistency): Promise<ServedRead<string[]>>;
  /**
   * Records in group 1 that `realm` lives in `group` ('auto': the group with the fewest placed
   * realms) and resolves with the group's id; a refusal (NOT_FOUND group, CONFLICT) is returned
   * as the CommandResult. Absent where placement is not served (a proxy).
   */
  placeRealm?(realm: string, group: number | 'auto'): Promise<{ group: number; result: CommandResult }>;
  /** The realm definition; a definition edit is a write() of a definition operation. */
  definition(consistency: Consistency): Promise<ServedRead<DefinitionView>>;
  /**
   * The records of those of `realms` that live in raft groups this node runs besides group 1
   * (read at `consistency`); the others are left out. Absent on a proxy.
   */
  realmRecords?(realms: readonly string[], consistency: Consistency): Promise<DefinitionView['realms']>;
  status(): NodeStatus;
  /**
   * The raft group holding `realm` (group 1 for one not placed elsewhere, or not existing) and
   * the name of the node leading it, as this node knows ('' when it knows none). Absent where
   * it cannot be told (a proxy: its clients do not know the members' names). Never throws for
   * an unknown realm.
   */
  route?(realm: string): Promise<{ group: number; leader: string }>;
  /** 200 only with a known leader and applied state close to it. */
  ready(): { ready: boolean; reason?: string };
}
