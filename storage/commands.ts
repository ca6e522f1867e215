// The realm state machine's command format (what a log entry carries), its results and error codes.

/*
 * A command is UTF-8 JSON in a Normal log entry's payload:
 *
 *   { "v": 1, "time": <leader's clock, ms>, "session"?: { "id", "seq", "ack"? }, "op": <operation> }
 *
 * operations (realm names match REALM_NAME; keys are non-empty UTF-8 strings):
 *   { "type": "put",    "realm", "key", "value": <JSON>, "ifRevision"?: n, "ifAbsent"?: true }
 *   { "type": "patch",  "realm", "key", "patch": <JSON merge patch>, "ifRevision"?: n }
 *   { "type": "delete", "realm", "key", "ifRevision"?: n }
 *   { "type": "txn",    "realm", "compares": [compare...], "success": [docOp...], "failure"?: [docOp...] }
 *   { "type": "createRealm", "realm", "settings"?: {"maxValueBytes"?: n} }
 *   the definition's: deleteRealm, realmSettings, addUser, removeUser, grant, clusterAdmin,
 *   createToken, revokeToken, applyDefinition, bootstrapAdmin (storage/access.ts)
 *   { "type": "openSession" }            (answers the new session id: the entry's log index)
 *   { "type": "closeSession" }           (needs "session")
 *
 *   docOp   := put / patch / delete as above without "realm" (the transaction's realm applies)
 *   compare := { "key", "target": "exists" | "version" | "createRevision" | "modRevision" | "value",
 *                "op": "eq" | "ne" | "lt" | "gt", "value": <JSON> }
 *              (an absent key has version, createRevision and modRevision 0 and value null;
 *               "exists" and "value" take eq/ne only)
 *
 * `ifRevision` n: the document's modRevision must be n (0: the key must be absent).
 * `time` is the log time: the leader stamps it when proposing, so every replica sees the same
 * clock and session expiry is a deterministic function of the log (dissertation §6.3).
 * Validation is strict (an unknown field or type is INVALID_ARGUMENT), so a command means the
 * same on every node or is refused by every node.
 */

import {
  type DefinitionDoc,
  type DefinitionOp,
  LEVELS,
  type Level,
  type RealmSettings,
  TOKEN_HASH,
  TOKEN_ID,
  USER_NAME,
  type UserRecord,
} from './access.js';
import type { StorageConfig } from './config.js';
import { isJson, type Json, withinDepth } from './json.js';

export const COMMAND_VERSION = 1;

/** Realm names: lower-case letters, digits, '_', '.', '-'; starts with a letter or digit; at most 64. */
export const REALM_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

// Defined with the rest of the definition (access.ts), which imports only types from here.
export { DEFAULT_REALM } from './access.js';

/**
 * Stable codes of a command's or a read's error; a promise to clients, never renamed
 * (see ARCHITECTURE.md, "Data model and client API"). SESSION_EXPIRED is the §6.3 answer
 * to a retried write whose session (or cached response) is gone: the client must not
 * assume the write did or did not apply.
 */
export type CommandErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOO_LARGE'
  | 'COMPACTED'
  | 'SESSION_EXPIRED';

export interface CommandError {
  readonly code: CommandErrorCode;
  readonly message: string;
}

/** A write's place in a client session (Raft dissertation §6.3); the same on every wire. */
export interface SessionRef {
  readonly id: number;
  readonly seq: number;
  /** Every seq at or below this has its response received by the client: drop them. */
  readonly ack?: number;
}

export interface PutOp {
  readonly type: 'put';
  readonly key: string;
  readonly value: Json;
  readonly ifRevision?: number;
  readonly ifAbsent?: boolean;
}

export interface PatchOp {
  readonly type: 'patch';
  readonly key: string;
  readonly patch: Json;
  readonly ifRevision?: number;
}

export interface DeleteOp {
  readonly type: 'delete';
  readonly key: string;
  readonly ifRevision?: number;
}

/** One operation of a transaction branch (the client's TxnOp). */
export type DocOp = PutOp | PatchOp | DeleteOp;

export type CompareTarget = 'exists' | 'version' | 'createRevision' | 'modRevision' | 'value';
export type CompareOp = 'eq' | 'ne' | 'lt' | 'gt';

/** A transaction's condition on one key; which ops and values a target takes is part of the type. */
export type Compare =
  | {
      readonly key: string;
      readonly target: 'modRevision' | 'createRevision' | 'version';
      readonly op: CompareOp;
      readonly value: number;
    }
  | { readonly key: string; readonly target: 'value'; readonly op: 'eq' | 'ne'; readonly value: Json }
  | { readonly key: string; readonly target: 'exists'; readonly op: 'eq' | 'ne'; readonly value: boolean };

export type Operation =
  | (DocOp & { readonly realm: string })
  | {
      readonly type: 'txn';
      readonly realm: string;
      readonly compares: readonly Compare[];
      readonly success: readonly DocOp[];
      readonly failure?: readonly DocOp[];
    }
  | { readonly type: 'createRealm'; readonly realm: string; readonly settings?: RealmSettings }
  | CreateGroup
  /** Group 1 records that `realm` lives in `group` (group-catalog.ts placeRealm); the realm is then created there. */
  | { readonly type: 'placeRealm'; readonly realm: string; readonly group: number }
  /**
   * Group 1 forgets where `realm` was placed and every grant on it, once its group deleted it
   * (`realms delete` of a placed realm; group-catalog.ts unplaceRealm).
   */
  | { readonly type: 'unplaceRealm'; readonly realm: string }
  /** Group 1 records that `node` should (add) or should no longer (remove) run group `group` (group-catalog.ts changeGroupMember). */
  | {
      readonly type: 'groupMember';
      readonly group: number;
      readonly node: string;
      readonly change: 'add' | 'remove';
    }
  | DefinitionOp
  | { readonly type: 'openSession' }
  | { readonly type: 'closeSession' }
  | BackupClaim
  | BackupReport;

/** The most voters a group created by createGroup may have. */
export const GROUP_MEMBERS_MAX = 7;

/**
 * Creates a raft group (HA and scaled mode): recorded in group 1's catalog with the next free
 * id; each node named in `members` creates the group's storage and starts it. `members` must
 * be voters of group 1, distinct, 1..GROUP_MEMBERS_MAX; without it the state machine picks
 * three (or every voter, if fewer), those in the fewest groups first. Only group 1 takes it.
 */
export interface CreateGroup {
  readonly type: 'createGroup';
  readonly members?: readonly string[];
}

/**
 * A node running the backup service claims the backup of interval `slot` (a number that grows
 * with time); the first claim of a slot above every earlier one wins, so the cluster takes one
 * backup per interval. Changes no document and no revision.
 */
export interface BackupClaim {
  readonly type: 'backupClaim';
  readonly slot: number;
  readonly node: string;
}

/** How a claimed backup ended, for `conclave status`: `file` when it succeeded, `error` when not. */
export interface BackupReport {
  readonly type: 'backupReport';
  readonly slot: number;
  readonly node: string;
  readonly ok: boolean;
  readonly file: string;
  readonly revision: number;
  readonly bytes: number;
  readonly error: string;
}

/** The longest file name or error text a backup report keeps. */
export const BACKUP_TEXT_MAX_CHARS = 1024;

export interface Command {
  readonly v: typeof COMMAND_VERSION;
  readonly time: number;
  readonly session?: SessionRef;
  readonly op: Operation;
}

/** What one document operation did. */
export type DocResult =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly createRevision: number;
      readonly modRevision: number;
      readonly version: number;
    }
  | { readonly type: 'delete'; readonly key: string; readonly prevModRevision: number };

export type OpResult =
  | DocResult
  | { readonly type: 'txn'; readonly succeeded: boolean; readonly results: readonly DocResult[] }
  | { readonly type: 'createRealm'; readonly realm: string }
  | { readonly type: 'createGroup'; readonly group: number; readonly members: readonly string[] }
  | { readonly type: 'placeRealm'; readonly realm: string; readonly group: number }
  | { readonly type: 'groupMember'; readonly group: number; readonly members: readonly string[] }
  /** A definition operation: the definition's version after it. */
  | { readonly type: 'definition'; readonly version: number; readonly created?: readonly string[] }
  | { readonly type: 'openSession'; readonly session: number }
  | { readonly type: 'closeSession' }
  | { readonly type: 'backupClaim'; readonly slot: number }
  | { readonly type: 'backupReport' };

/**
 * The answer to one command. `revision` is the cluster revision after it applied (unchanged
 * by a failed command or one that changed nothing).
 */
export type CommandResult =
  | { readonly ok: true; readonly revision: number; readonly result: OpResult }
  | { readonly ok: false; readonly revision: number; readonly error: CommandError };

export function commandError(code: CommandErrorCode, message: string): CommandError {
  return { code, message };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a command as a log entry payload. Does not validate: the state machine does, on every node. */
export function encodeCommand(command: Command): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/** The storage limits a command is checked against (pass the node's StorageConfig). */
export type CommandLimits = Pick<
  StorageConfig,
  'keyMaxBytes' | 'valueMaxBytes' | 'commandMaxBytes' | 'txnMaxOps' | 'jsonMaxDepth'
>;

/** A checked value, or the error that names what is wrong with it. */
export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: CommandError };

/** Decodes and validates a payload; every problem is an INVALID_ARGUMENT or TOO_LARGE error naming it. */
export function decodeCommand(data: Uint8Array, limits: CommandLimits): Checked<Command> {
  if (data.length > limits.commandMaxBytes) {
    return {
      ok: false,
      error: commandError(
        'TOO_LARGE',
        `command is ${data.length} bytes; the limit is ${limits.commandMaxBytes}`,
      ),
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch {
    return { ok: false, error: commandError('INVALID_ARGUMENT', 'command is not UTF-8 JSON') };
  }
  return validateCommand(parsed, limits);
}

/** Checks a parsed command against the format above and the limits. */
export function validateCommand(value: unknown, limits: CommandLimits): Checked<Command> {
  return checked(() => checkCommand(value, limits));
}

class Invalid extends Error {
  constructor(readonly error: CommandError) {
    super(error.message);
  }
}

function invalid(message: string): never {
  throw new Invalid(commandError('INVALID_ARGUMENT', message));
}

/** Throws INVALID_ARGUMENT with `message`, for use inside checked(). */
export function invalidArgument(message: string): never {
  return invalid(message);
}

function tooLarge(message: string): never {
  throw new Invalid(commandError('TOO_LARGE', message));
}

function checkObject(value: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid(`${what} must be an object`);
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) invalid(`${what} has an unknown field ${JSON.stringify(key)}`);
  }
  return value as Record<string, unknown>;
}

/** An object of any keys (a map by name). */
function checkMap(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function checkText(value: unknown, what: string, maxChars: number): string {
  if (typeof value !== 'string') invalid(`${what} must be a string`);
  if (value.length > maxChars) invalid(`${what} is longer than ${maxChars} characters`);
  return value;
}

function checkCount(value: unknown, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    invalid(`${what} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkCommand(value: unknown, limits: CommandLimits): Command {
  const command = checkObject(value, 'command', ['v', 'time', 'session', 'op']);
  if (command.v !== COMMAND_VERSION) {
    invalid(`command version must be ${COMMAND_VERSION}, got ${JSON.stringify(command.v)}`);
  }
  const time = checkCount(command.time, 'time', 0);
  let session: SessionRef | undefined;
  if (command.session !== undefined) {
    const s = checkObject(command.session, 'session', ['id', 'seq', 'ack']);
    session = {
      id: checkCount(s.id, 'session.id', 1),
      seq: checkCount(s.seq, 'session.seq', 1),
      ...(s.ack === undefined ? {} : { ack: checkCount(s.ack, 'session.ack', 0) }),
    };
  }
  const op = checkOperation(command.op, limits);
  if (op.type === 'closeSession' && session === undefined) invalid('closeSession needs a session');
  if (op.type === 'openSession' && session !== undefined) invalid('openSession cannot run inside a session');
  return { v: COMMAND_VERSION, time, ...(session ? { session } : {}), op };
}

function checkOperation(value: unknown, limits: CommandLimits): Operation {
  if (typeof value !== 'object' || value === null) invalid('op must be an object');
  const type = (value as { type?: unknown }).type;
  switch (type) {
    case 'put':
    case 'patch':
    case 'delete': {
      const fields = checkObject(value, `${type}`, [...DOC_OP_FIELDS[type], 'realm']);
      return { ...checkDocOp(fields, type, limits), realm: checkRealm(fields.realm) };
    }
    case 'txn': {
      const txn = checkObject(value, 'txn', ['type', 'realm', 'compares', 'success', 'failure']);
      const realm = checkRealm(txn.realm);
      const compares = checkList(txn.compares, 'txn.compares', limits).map((c, i) =>
        checkCompare(c, `txn.compares[${i}]`, limits),
      );
      const success = checkBranch(txn.success, 'txn.success', limits);
      const failure = txn.failure === undefined ? undefined : checkBranch(txn.failure, 'txn.failure', limits);
      return { type: 'txn', realm, compares, success, ...(failure ? { failure } : {}) };
    }
    case 'placeRealm': {
      const fields = checkObject(value, 'placeRealm', ['type', 'realm', 'group']);
      return {
        type: 'placeRealm',
        realm: checkRealm(fields.realm),
        group: checkCount(fields.group, 'placeRealm.group', 2),
      };
    }
    case 'unplaceRealm': {
      const fields = checkObject(value, 'unplaceRealm', ['type', 'realm']);
      return { type: 'unplaceRealm', realm: checkRealm(fields.realm) };
    }
    case 'groupMember': {
      const fields = checkObject(value, 'groupMember', ['type', 'group', 'node', 'change']);
      if (fields.change !== 'add' && fields.change !== 'remove')
        invalid('groupMember.change must be "add" or "remove"');
      return {
        type: 'groupMember',
        group: checkCount(fields.group, 'groupMember.group', 2),
        node: checkText(fields.node, 'groupMember.node', 64),
        change: fields.change,
      };
    }
    case 'createGroup': {
      const fields = checkObject(value, 'createGroup', ['type', 'members']);
      if (fields.members === undefined) return { type: 'createGroup' };
      if (!Array.isArray(fields.members)) invalid('createGroup.members must be an array of member names');
      if (fields.members.length === 0 || fields.members.length > GROUP_MEMBERS_MAX) {
        invalid(
          `createGroup.members must name 1 to ${GROUP_MEMBERS_MAX} members, got ${fields.members.length}`,
        );
      }
      const members = fields.members.map((m, i) => checkText(m, `createGroup.members[${i}]`, 64));
      if (new Set(members).size !== members.length) invalid('createGroup.members names a member twice');
      return { type: 'createGroup', members };
    }
    case 'createRealm': {
      const fields = checkObject(value, 'createRealm', ['type', 'realm', 'settings']);
      const realm = checkRealm(fields.realm);
      return fields.settings === undefined
        ? { type: 'createRealm', realm }
        : {
            type: 'createRealm',
            realm,
            settings: checkSettings(fields.settings, 'createRealm.settings', limits),
          };
    }
    case 'deleteRealm': {
      const fields = checkObject(value, type, ['type', 'realm']);
      return { type, realm: checkRealm(fields.realm) };
    }
    case 'realmSettings': {
      const fields = checkObject(value, type, ['type', 'realm', 'settings']);
      return {
        type,
        realm: checkRealm(fields.realm),
        settings: checkSettings(fields.settings, 'realmSettings.settings', limits),
      };
    }
    case 'addUser': {
      const fields = checkObject(value, type, ['type', 'user', 'clusterAdmin']);
      return {
        type,
        user: checkUser(fields.user),
        clusterAdmin: checkBoolean(fields.clusterAdmin, 'addUser.clusterAdmin'),
      };
    }
    case 'removeUser': {
      const fields = checkObject(value, type, ['type', 'user']);
      return { type, user: checkUser(fields.user) };
    }
    case 'grant': {
      const fields = checkObject(value, type, ['type', 'user', 'realm', 'level']);
      return {
        type,
        user: checkUser(fields.user),
        realm: checkRealm(fields.realm),
        level: fields.level === null ? null : checkLevel(fields.level, 'grant.level'),
      };
    }
    case 'clusterAdmin': {
      const fields = checkObject(value, type, ['type', 'user', 'on']);
      return { type, user: checkUser(fields.user), on: checkBoolean(fields.on, 'clusterAdmin.on') };
    }
    case 'createToken': {
      const fields = checkObject(value, type, ['type', 'id', 'user', 'hash', 'expiresAt']);
      return {
        type,
        id: checkPattern(fields.id, 'createToken.id', TOKEN_ID),
        user: checkUser(fields.user),
        hash: checkPattern(fields.hash, 'createToken.hash', TOKEN_HASH),
        expiresAt: checkCount(fields.expiresAt, 'createToken.expiresAt', 0),
      };
    }
    case 'revokeToken': {
      const fields = checkObject(value, type, ['type', 'id']);
      return { type, id: checkPattern(fields.id, 'revokeToken.id', TOKEN_ID) };
    }
    case 'bootstrapAdmin': {
      const fields = checkObject(value, type, ['type', 'node', 'id', 'hash']);
      return {
        type,
        node: checkText(fields.node, 'bootstrapAdmin.node', 64),
        id: checkPattern(fields.id, 'bootstrapAdmin.id', TOKEN_ID),
        hash: checkPattern(fields.hash, 'bootstrapAdmin.hash', TOKEN_HASH),
      };
    }
    case 'applyDefinition': {
      const fields = checkObject(value, type, ['type', 'definition', 'ifVersion']);
      const definition = checkDefinition(fields.definition, limits);
      return fields.ifVersion === undefined
        ? { type, definition }
        : { type, definition, ifVersion: checkCount(fields.ifVersion, 'ifVersion', 0) };
    }
    case 'openSession':
    case 'closeSession':
      checkObject(value, type, ['type']);
      return { type };
    case 'backupClaim': {
      const fields = checkObject(value, type, ['type', 'slot', 'node']);
      return {
        type,
        slot: checkCount(fields.slot, 'backupClaim.slot', 0),
        node: checkText(fields.node, 'backupClaim.node', 64),
      };
    }
    case 'backupReport': {
      const fields = checkObject(value, type, [
        'type',
        'slot',
        'node',
        'ok',
        'file',
        'revision',
        'bytes',
        'error',
      ]);
      if (typeof fields.ok !== 'boolean') invalid('backupReport.ok must be true or false');
      return {
        type,
        slot: checkCount(fields.slot, 'backupReport.slot', 0),
        node: checkText(fields.node, 'backupReport.node', 64),
        ok: fields.ok,
        file: checkText(fields.file, 'backupReport.file', BACKUP_TEXT_MAX_CHARS),
        revision: checkCount(fields.revision, 'backupReport.revision', 0),
        bytes: checkCount(fields.bytes, 'backupReport.bytes', 0),
        error: checkText(fields.error, 'backupReport.error', BACKUP_TEXT_MAX_CHARS),
      };
    }
    default:
      return invalid(`unknown operation type ${JSON.stringify(type)}`);
  }
}

const DOC_OP_FIELDS = {
  put: ['type', 'key', 'value', 'ifRevision', 'ifAbsent'],
  patch: ['type', 'key', 'patch', 'ifRevision'],
  delete: ['type', 'key', 'ifRevision'],
} as const;

function checkDocOp(fields: Record<string, unknown>, type: DocOp['type'], limits: CommandLimits): DocOp {
  const key = checkKey(fields.key, `${type}.key`, limits);
  const ifRevision =
    fields.ifRevision === undefined ? undefined : checkCount(fields.ifRevision, 'ifRevision', 0);
  const condition = ifRevision === undefined ? {} : { ifRevision };
  switch (type) {
    case 'put': {
      if (!('value' in fields)) invalid('put needs a value');
      const value = checkJsonValue(fields.value, 'put.value', limits);
      if (fields.ifAbsent !== undefined && fields.ifAbsent !== true)
        invalid('put.ifAbsent must be true when given');
      return { type, key, value, ...condition, ...(fields.ifAbsent === true ? { ifAbsent: true } : {}) };
    }
    case 'patch': {
      if (!('patch' in fields)) invalid('patch needs a patch');
      return { type, key, patch: checkJsonValue(fields.patch, 'patch.patch', limits), ...condition };
    }
    case 'delete':
      return { type, key, ...condition };
  }
}

function checkBranch(value: unknown, what: string, limits: CommandLimits): DocOp[] {
  const ops = checkList(value, what, limits).map((item, i) => {
    const type = (item as { type?: unknown } | null)?.type;
    if (type !== 'put' && type !== 'patch' && type !== 'delete') {
      invalid(`${what}[${i}].type must be put, patch or delete`);
    }
    return checkDocOp(checkObject(item, `${what}[${i}]`, DOC_OP_FIELDS[type]), type, limits);
  });
  const seen = new Set<string>();
  for (const op of ops) {
    if (seen.has(op.key)) invalid(`${what} touches key ${JSON.stringify(op.key)} more than once`);
    seen.add(op.key);
  }
  return ops;
}

function checkList(value: unknown, what: string, limits: CommandLimits): unknown[] {
  if (!Array.isArray(value)) invalid(`${what} must be an array`);
  if (value.length > limits.txnMaxOps)
    tooLarge(`${what} has ${value.length} items; the limit is ${limits.txnMaxOps}`);
  return value;
}

const COMPARE_TARGETS: readonly CompareTarget[] = [
  'exists',
  'version',
  'createRevision',
  'modRevision',
  'value',
];
const COMPARE_OPS: readonly CompareOp[] = ['eq', 'ne', 'lt', 'gt'];

function checkCompare(value: unknown, what: string, limits: CommandLimits): Compare {
  const fields = checkObject(value, what, ['key', 'target', 'op', 'value']);
  const key = checkKey(fields.key, `${what}.key`, limits);
  const target = fields.target as CompareTarget;
  if (!COMPARE_TARGETS.includes(target))
    invalid(`${what}.target must be one of ${COMPARE_TARGETS.join(', ')}`);
  const op = fields.op as CompareOp;
  if (!COMPARE_OPS.includes(op)) invalid(`${what}.op must be one of ${COMPARE_OPS.join(', ')}`);
  if ((target === 'exists' || target === 'value') && op !== 'eq' && op !== 'ne') {
    invalid(`${what}: target ${target} takes op eq or ne`);
  }
  if (!('value' in fields)) invalid(`${what} needs a value`);
  if (target === 'exists' && typeof fields.value !== 'boolean') invalid(`${what}.value must be a boolean`);
  if (target !== 'exists' && target !== 'value') checkCount(fields.value, `${what}.value`, 0);
  const compareValue = checkJsonValue(fields.value, `${what}.value`, limits);
  // The checks above are what the union says of target, op and value.
  return { key, target, op, value: compareValue } as Compare;
}

function checkBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') invalid(`${what} must be true or false`);
  return value;
}

function checkPattern(value: unknown, what: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) invalid(`${what} must match ${pattern}`);
  return value;
}

/** User names match USER_NAME (storage/access.ts). */
export function checkUser(value: unknown): string {
  if (typeof value !== 'string' || !USER_NAME.test(value)) {
    invalid(`user must match ${USER_NAME}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkLevel(value: unknown, what: string): Level {
  if (!(LEVELS as readonly unknown[]).includes(value)) invalid(`${what} must be one of ${LEVELS.join(', ')}`);
  return value as Level;
}

/** A realm's settings: maxValueBytes, within the node's value limit. */
export function checkSettings(
  value: unknown,
  what: string,
  limits: Pick<CommandLimits, 'valueMaxBytes'>,
): RealmSettings {
  const fields = checkObject(value, what, ['maxValueBytes']);
  if (fields.maxValueBytes === undefined) return {};
  const max = checkCount(fields.maxValueBytes, `${what}.maxValueBytes`, 1);
  if (max > limits.valueMaxBytes) {
    invalid(`${what}.maxValueBytes is ${max}; the node's limit is ${limits.valueMaxBytes}`);
  }
  return { maxValueBytes: max };
}

/** The whole definition (storage/access.ts DefinitionDoc), every field checked. */
export function checkDefinition(value: unknown, limits: Pick<CommandLimits, 'valueMaxBytes'>): DefinitionDoc {
  const fields = checkObject(value, 'definition', ['auth', 'realms', 'users']);
  const auth = fields.auth === undefined ? false : checkBoolean(fields.auth, 'definition.auth');
  const realmsIn = fields.realms === undefined ? {} : checkMap(fields.realms, 'definition.realms');
  const realms: Record<string, RealmSettings> = {};
  for (const [name, settings] of Object.entries(realmsIn)) {
    checkRealm(name);
    realms[name] = settings === null ? {} : checkSettings(settings, `definition.realms.${name}`, limits);
  }
  const usersIn = fields.users === undefined ? {} : checkMap(fields.users, 'definition.users');
  const users: Record<string, UserRecord> = {};
  for (const [name, record] of Object.entries(usersIn)) {
    checkUser(name);
    const user =
      record === null ? {} : checkObject(record, `definition.users.${name}`, ['clusterAdmin', 'grants']);
    const grantsIn =
      user.grants === undefined || user.grants === null
        ? {}
        : checkMap(user.grants, `definition.users.${name}.grants`);
    const grants: Record<string, Level> = {};
    for (const [realm, level] of Object.entries(grantsIn)) {
      checkRealm(realm);
      grants[realm] = checkLevel(level, `definition.users.${name}.grants.${realm}`);
    }
    users[name] = {
      clusterAdmin:
        user.clusterAdmin === undefined
          ? false
          : checkBoolean(user.clusterAdmin, `definition.users.${name}.clusterAdmin`),
      grants,
    };
  }
  return { auth, realms, users };
}

export function checkRealm(value: unknown): string {
  if (typeof value !== 'string' || !REALM_NAME.test(value)) {
    invalid(`realm must match ${REALM_NAME}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Keys are non-empty, well-formed (no lone surrogate: it would not survive UTF-8) and bounded. */
export function checkKey(value: unknown, what: string, limits: Pick<CommandLimits, 'keyMaxBytes'>): string {
  if (typeof value !== 'string' || value.length === 0) invalid(`${what} must be a non-empty string`);
  if (LONE_SURROGATE.test(value)) invalid(`${what} is not well-formed Unicode (a lone surrogate)`);
  const bytes = encoder.encode(value).length;
  if (bytes > limits.keyMaxBytes) tooLarge(`${what} is ${bytes} bytes; the limit is ${limits.keyMaxBytes}`);
  return value;
}

function checkJsonValue(value: unknown, what: string, limits: CommandLimits): Json {
  if (!withinDepth(value, limits.jsonMaxDepth)) {
    tooLarge(`${what} nests deeper than ${limits.jsonMaxDepth}`);
  }
  if (!isJson(value, limits.jsonMaxDepth)) invalid(`${what} is not JSON`);
  return value;
}

/** Runs checks that throw on bad input and returns their error as a value instead. */
export function checked<T>(check: () => T): Checked<T> {
  try {
    return { ok: true, value: check() };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, error: error.error };
    throw error;
  }
}
