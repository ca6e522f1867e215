// Group 1's catalog of the other raft groups (HA and scaled mode): which groups exist and who their founding members are.

/*
 * The catalog is part of group 1's state, so every node learns of a new group by applying the
 * same entry, and decides the same things from it: the id (the next after the largest), and,
 * when the operator named no members, which voters found it. A node named in a group's
 * members creates that group's storage (bootstrapped with these members as voters, at index
 * 1 and term 1, the same on each of them) and runs it; raft then elects the group's leader.
 * Members added or removed later (`groups members add|remove`) are recorded here too, as
 * `joined` and `left`: the catalog says who should run a group; the group's own log says who
 * is in its raft membership, and the group's leader brings the latter to the former
 * (group-members.ts in src/). A joiner starts with empty storage and takes a snapshot; a node
 * that left deletes its copy once the group has removed it.
 */

import { type CommandError, type CreateGroup, commandError } from './commands.js';

/** The first group: the cluster definition and the `default` realm. Never in the catalog. */
export const FIRST_GROUP = 1;

/** The most groups a cluster may hold besides group 1. */
export const GROUPS_MAX = 1000;

/** How many voters a group gets when the operator names none. */
export const DEFAULT_GROUP_SIZE = 3;

export interface GroupRecord {
  readonly id: number;
  /** The founding voters, in the order given (or picked). */
  readonly members: readonly string[];
  /** The cluster revision (group 1's) when it was created. */
  readonly createRevision: number;
  /** Members added after the group was founded (they start with empty storage and take a snapshot). */
  readonly joined?: readonly string[];
  /** Members removed since (founders or joiners); never added back under the same name. */
  readonly left?: readonly string[];
}

/** A group's members now: its founders and joiners, less those that left. */
export function currentMembers(record: GroupRecord): string[] {
  const left = new Set(record.left ?? []);
  return [...record.members, ...(record.joined ?? [])].filter((m) => !left.has(m));
}

/**
 * The catalog with `node` added to or removed from group `group`'s members, or the refusal:
 * NOT_FOUND for an unknown group; INVALID_ARGUMENT for a node that is not a voter of group 1
 * (adding), that was removed from the group before (adding again), or that is not a member
 * (removing); CONFLICT when the group would exceed `max` members or lose its last one. The
 * catalog only records who should run the group: the raft membership change itself goes
 * through the group's own leader.
 */
export function changeGroupMember(
  catalog: GroupCatalog,
  voters: readonly string[],
  op: { readonly group: number; readonly node: string; readonly change: 'add' | 'remove' },
  max: number,
): GroupCatalog | CommandError {
  const record = catalog.groups.find((g) => g.id === op.group);
  if (record === undefined)
    return commandError('NOT_FOUND', `no group ${op.group} (conclave groups list shows them)`);
  const current = currentMembers(record);
  let next: GroupRecord;
  if (op.change === 'add') {
    if (!voters.includes(op.node))
      return commandError('INVALID_ARGUMENT', `${op.node} is not a voter of group 1`);
    if (current.includes(op.node)) return catalog; // Added already: a retried call.
    if ((record.left ?? []).includes(op.node)) {
      return commandError(
        'INVALID_ARGUMENT',
        `${op.node} left group ${op.group} before; a node does not rejoin a group`,
      );
    }
    if (current.length >= max)
      return commandError('CONFLICT', `group ${op.group} has ${current.length} members, the limit`);
    next = { ...record, joined: [...(record.joined ?? []), op.node] };
  } else {
    if (!current.includes(op.node)) {
      if ((record.left ?? []).includes(op.node)) return catalog; // Removed already: a retried call.
      return commandError('INVALID_ARGUMENT', `${op.node} is not a member of group ${op.group}`);
    }
    if (current.length === 1)
      return commandError('CONFLICT', `${op.node} is the last member of group ${op.group}`);
    next = { ...record, left: [...(record.left ?? []), op.node] };
  }
  return { ...catalog, groups: catalog.groups.map((g) => (g.id === op.group ? next : g)) };
}

/** The catalog as stored: groups in id order, and where realms outside group 1 live. */
export interface GroupCatalog {
  readonly groups: readonly GroupRecord[];
  /** Realm name -> the group holding it, for realms not in group 1 (absent: none placed yet). */
  readonly placements?: Readonly<Record<string, number>>;
}

export const EMPTY_CATALOG: GroupCatalog = { groups: [] };

/** The members group `id` has now per the catalog ([] for a group it does not list, and for group 1). */
export function groupMembers(catalog: GroupCatalog, id: number): string[] {
  const record = catalog.groups.find((g) => g.id === id);
  return record === undefined ? [] : currentMembers(record);
}

/** The group holding `realm` per the catalog: its placement, or group 1. */
export function groupOfRealm(catalog: GroupCatalog, realm: string): number {
  const placed = catalog.placements;
  return placed !== undefined && Object.hasOwn(placed, realm) ? placed[realm]! : FIRST_GROUP;
}

/**
 * The catalog with `realm` placed in `group`, or the refusal: NOT_FOUND for a group not in the
 * catalog, CONFLICT for a realm in group 1 or placed in another group. Placing a realm again
 * in the same group changes nothing and succeeds (a retried `realms create --group`).
 */
export function placeRealm(
  catalog: GroupCatalog,
  firstGroupRealms: ReadonlySet<string>,
  realm: string,
  group: number,
): GroupCatalog | CommandError {
  if (!catalog.groups.some((g) => g.id === group)) {
    return commandError('NOT_FOUND', `no group ${group} (conclave groups list shows them)`);
  }
  if (firstGroupRealms.has(realm)) return commandError('CONFLICT', `realm ${realm} exists in group 1`);
  const placed = groupOfRealm(catalog, realm);
  if (placed === group) return catalog;
  if (placed !== FIRST_GROUP) return commandError('CONFLICT', `realm ${realm} is placed in group ${placed}`);
  return { ...catalog, placements: { ...catalog.placements, [realm]: group } };
}

/**
 * The record `op` creates in `catalog` at `revision`, with group 1's current `voters`; or the
 * error that refuses it (INVALID_ARGUMENT for a member that is not a voter, TOO_LARGE past
 * GROUPS_MAX). Pure and deterministic: every node computes the same from the same state.
 */
export function createGroupRecord(
  catalog: GroupCatalog,
  voters: readonly string[],
  op: CreateGroup,
  revision: number,
): GroupRecord | CommandError {
  if (catalog.groups.length >= GROUPS_MAX) {
    return commandError(
      'TOO_LARGE',
      `the cluster holds ${catalog.groups.length} groups besides group 1, the limit`,
    );
  }
  let members: readonly string[];
  if (op.members === undefined) {
    members = pickMembers(catalog, voters, DEFAULT_GROUP_SIZE);
  } else {
    const voterSet = new Set(voters);
    const strangers = op.members.filter((m) => !voterSet.has(m));
    if (strangers.length > 0) {
      return commandError(
        'INVALID_ARGUMENT',
        `not a voter of group 1: ${strangers.join(', ')} (voters: ${[...voters].sort().join(', ')})`,
      );
    }
    members = op.members;
  }
  if (members.length === 0) return commandError('INVALID_ARGUMENT', 'group 1 has no voters to found a group');
  const id = catalog.groups.reduce((max, g) => Math.max(max, g.id), FIRST_GROUP) + 1;
  return { id, members, createRevision: revision };
}

/**
 * `count` voters (or all, if fewer), those in the fewest groups first, ties by name:
 * spreads groups, and so their leaders, over the nodes.
 */
export function pickMembers(catalog: GroupCatalog, voters: readonly string[], count: number): string[] {
  const load = new Map<string, number>(voters.map((v) => [v, 0]));
  for (const group of catalog.groups) {
    for (const member of currentMembers(group)) {
      const n = load.get(member);
      if (n !== undefined) load.set(member, n + 1);
    }
  }
  return [...load.entries()]
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, count)
    .map(([name]) => name);
}

/**
 * The catalog without `realm`'s placement (its group deleted it: `realms delete`), or NOT_FOUND
 * when it is placed nowhere.
 */
export function unplaceRealm(catalog: GroupCatalog, realm: string): GroupCatalog | CommandError {
  const placed = catalog.placements;
  if (placed === undefined || !Object.hasOwn(placed, realm)) {
    return commandError('NOT_FOUND', `no realm ${realm}`);
  }
  const { [realm]: _gone, ...rest } = placed;
  return { ...catalog, placements: rest };
}

/** The catalog with `record` added (a new object; the old one is left as it was). */
export function withGroup(catalog: GroupCatalog, record: GroupRecord): GroupCatalog {
  return { ...catalog, groups: [...catalog.groups, record] };
}

/**
 * The catalog with the founding members of the groups in `groups` replaced by `members` (a
 * restore into new nodes: the groups restored with them are founded by them now, and no
 * earlier joiner or leaver counts). Other groups keep theirs.
 */
export function withFounders(
  catalog: GroupCatalog,
  groups: ReadonlySet<number>,
  members: readonly string[],
): GroupCatalog {
  return {
    ...catalog,
    groups: catalog.groups.map((g) =>
      groups.has(g.id) ? { id: g.id, members: [...members], createRevision: g.createRevision } : g,
    ),
  };
}

/** Checks a decoded catalog's shape; throws an Error naming what is wrong (the caller maps it to DATA_CORRUPT). */
export function checkCatalog(value: unknown): GroupCatalog {
  const groups = (value as { groups?: unknown } | null)?.groups;
  if (!Array.isArray(groups)) throw new Error('the group catalog has no groups list');
  for (const g of groups as unknown[]) {
    const r = g as Partial<GroupRecord> | null;
    if (
      r === null ||
      !Number.isSafeInteger(r.id) ||
      (r.id as number) <= FIRST_GROUP ||
      !Array.isArray(r.members) ||
      !r.members.every((m) => typeof m === 'string') ||
      !Number.isSafeInteger(r.createRevision) ||
      !(
        r.joined === undefined ||
        (Array.isArray(r.joined) && r.joined.every((m) => typeof m === 'string'))
      ) ||
      !(r.left === undefined || (Array.isArray(r.left) && r.left.every((m) => typeof m === 'string')))
    ) {
      throw new Error(`a group record does not decode: ${JSON.stringify(g)}`);
    }
  }
  const placements = (value as { placements?: unknown }).placements;
  if (placements === undefined) return { groups: groups as GroupRecord[] };
  if (
    typeof placements !== 'object' ||
    placements === null ||
    !Object.values(placements).every((g) => Number.isSafeInteger(g) && (g as number) > FIRST_GROUP)
  ) {
    throw new Error('the realm placements do not decode');
  }
  return { groups: groups as GroupRecord[], placements: placements as Record<string, number> };
}
