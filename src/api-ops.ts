// The client API's operations, whatever the transport: what a request decodes to, what it is answered, and the field checks HTTP and WebSocket share.

/*
 * A request reaches ClientApi (client-api.ts) as one ApiOp, decoded by its transport:
 * http-api.ts from a route, its path, query string, headers and body; ws-api.ts from a
 * message's fields. Each answer is an ApiAnswer, which the transport encodes: HTTP as a status
 * (from error-codes.ts), headers and a body; WebSocket as {id, ok, result | error}. The error
 * object is the same on both (errorBody below).
 *
 * Checks happen once each:
 *   - the transport's own: an unknown query parameter or message field, a query value or
 *     header that does not spell a number or a boolean, a message field of the wrong JSON
 *     type, a malformed path.
 *   - what a field of the API may hold: the functions below (counts, flags, consistency, a
 *     non-empty `after`, how a session's parts go together), called by both decoders, so a
 *     field is refused alike, with the same message, on both transports.
 *   - what a value means to the state machine: realm names, keys, documents, transactions and
 *     session numbers are storage's to check, by validateCommand for every write (ClientApi
 *     runs it before proposing, as every replica does before applying) and by the state store
 *     for reads. ClientApi adds what storage does not know: ifRevision together with ifAbsent.
 */

import { EdgeError } from '../net/index.js';
import type { Compare, DocOp, Json, SessionRef } from '../storage/index.js';
import { isRetryable } from './error-codes.js';
import type { Consistency, NodeStatus, Staleness } from './kv-service.js';
import type { Document, ListResult, RealmResult, TxnResult, WriteResult, WsError } from './ws-protocol.js';

/**
 * One operation of the client API. Optional fields may also be present as undefined. The
 * data of a write (value, patch, compares, success, failure) and its session are as the client
 * sent them: ClientApi checks them with storage's validateCommand before anything is proposed.
 */
export type ApiOp =
  | {
      readonly op: 'get';
      readonly realm: string;
      readonly key: string;
      readonly consistency: Consistency;
    }
  | {
      readonly op: 'list';
      readonly realm: string;
      /** '' or absent: every key. */
      readonly prefix?: string | undefined;
      readonly after?: string | undefined;
      readonly limit?: number | undefined;
      readonly consistency: Consistency;
    }
  | {
      readonly op: 'put';
      readonly realm: string;
      readonly key: string;
      readonly value: Json;
      readonly ifRevision?: number | undefined;
      /** false is the same as absent. */
      readonly ifAbsent?: boolean | undefined;
      readonly session?: SessionRef | undefined;
    }
  | {
      readonly op: 'patch';
      readonly realm: string;
      readonly key: string;
      readonly patch: Json;
      readonly ifRevision?: number | undefined;
      readonly session?: SessionRef | undefined;
    }
  | {
      readonly op: 'delete';
      readonly realm: string;
      readonly key: string;
      readonly ifRevision?: number | undefined;
      readonly session?: SessionRef | undefined;
    }
  | {
      readonly op: 'txn';
      readonly realm: string;
      readonly compares: readonly Compare[];
      readonly success: readonly DocOp[];
      readonly failure?: readonly DocOp[] | undefined;
      readonly session?: SessionRef | undefined;
    }
  | {
      readonly op: 'createRealm';
      readonly realm: string;
      /** As the client sent them: validateCommand checks them. */
      readonly settings?: unknown;
      /** The raft group to place it in (a group id, or 'auto': the group with the fewest placed realms); default group 1. */
      readonly group?: number | 'auto';
      readonly session?: SessionRef | undefined;
    }
  | { readonly op: 'realms'; readonly consistency: Consistency }
  /** `realm`: the realm the session's writes go to (a session lives in that realm's raft group); default group 1. */
  | { readonly op: 'openSession'; readonly realm?: string }
  | { readonly op: 'closeSession'; readonly session: SessionRef; readonly realm?: string }
  | { readonly op: 'status' }
  /** Where `realm`'s writes go: its raft group and that group's leader (KvService.route). */
  | { readonly op: 'route'; readonly realm: string }
  /** The process answers (HTTP /healthz). */
  | { readonly op: 'health' }
  /** The node is ready to serve (HTTP /readyz). */
  | { readonly op: 'ready' };

export type ApiOpName = ApiOp['op'];

/** The operations without fields, one object each (decoding them allocates nothing). */
export const OPEN_SESSION: ApiOp = Object.freeze({ op: 'openSession' });
export const STATUS: ApiOp = Object.freeze({ op: 'status' });
export const HEALTH: ApiOp = Object.freeze({ op: 'health' });
export const READY: ApiOp = Object.freeze({ op: 'ready' });

/** The result of each operation, as both transports send it. */
export interface ApiResults {
  readonly get: Document;
  readonly list: ListResult;
  readonly put: WriteResult;
  readonly patch: WriteResult;
  readonly delete: WriteResult;
  readonly txn: TxnResult;
  readonly createRealm: RealmResult;
  readonly realms: { readonly realms: readonly string[]; readonly revision: number };
  readonly openSession: { readonly session: number };
  readonly closeSession: Readonly<Record<string, never>>;
  readonly status: NodeStatus;
  readonly route: { readonly realm: string; readonly group: number; readonly leader: string };
  readonly health: { readonly status: 'ok' };
  readonly ready: { readonly ready: true };
}

/** A failure: a stable code of error-codes.ts, a message for people, and extra fields of the error object. */
export interface ApiError {
  readonly code: string;
  readonly message: string;
  /** `leader`, `indeterminate`, `revision` (COMPACTED), `reason`, … as the code documents. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** Where a read was served (a ServedRead is one): HTTP answers it in headers. */
export interface ReadPoint {
  readonly revision: number;
  readonly stale?: Staleness;
}

/**
 * The answer to one operation. `read` comes with the answers of get, list and realms.
 * `unexpected` is what was thrown when the answer is INTERNAL because of a bug or an unknown
 * failure: the transport logs it with what it knows of the request, and never sends it.
 */
export type ApiAnswer =
  | { readonly ok: true; readonly result: ApiResults[ApiOpName]; readonly read?: ReadPoint }
  | { readonly ok: false; readonly error: ApiError; readonly unexpected?: unknown };

const NO_DETAILS: Readonly<Record<string, unknown>> = Object.freeze({});

export function apiError(
  code: string,
  message: string,
  details: Readonly<Record<string, unknown>> = NO_DETAILS,
): ApiError {
  return { code, message, details };
}

/** The error object both transports send: `{code, message, retryable, ...details}`. */
export function errorBody(error: ApiError): WsError {
  return { code: error.code, message: error.message, retryable: isRetryable(error.code), ...error.details };
}

// ---- Field checks shared by the decoders ----
// Each takes the value as the transport delivered it (a message field, or a query value that
// the HTTP decoder has turned into a number or boolean where it spells one) and throws
// EdgeError INVALID_ARGUMENT naming the field.

/** The INVALID_ARGUMENT error for a refused request. */
export function invalid(message: string): EdgeError {
  return new EdgeError('INVALID_ARGUMENT', message);
}

/** `value` as JSON for a message; undefined shows as `nothing`. */
function shown(value: unknown): string {
  return JSON.stringify(value) ?? 'nothing';
}

/** A string field that must be there. */
export function requiredString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalid(`"${name}" must be a string, got ${shown(value)}`);
  return value;
}

/** A string field, or undefined when absent. */
export function optionalString(name: string, value: unknown): string | undefined {
  return value === undefined ? undefined : requiredString(name, value);
}

/** A string field that must not be empty when given (a key to continue after). */
export function nonEmptyString(name: string, value: unknown): string | undefined {
  const text = optionalString(name, value);
  if (text === '') throw invalid(`${name} must not be empty when given`);
  return text;
}

/** A non-negative safe integer (a revision, a limit, a session number), or undefined when absent. */
export function count(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${name} must be a non-negative integer, got ${shown(value)}`);
  }
  return value;
}

/** true or false, or undefined when absent. */
export function flag(name: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalid(`${name} must be true or false, got ${shown(value)}`);
}

const CONSISTENCIES: readonly Consistency[] = ['linearizable', 'stale'];

/** A read's consistency: `linearizable` (the default) or `stale`. */
export function consistencyOf(value: unknown): Consistency {
  if (value === undefined) return 'linearizable';
  if ((CONSISTENCIES as readonly unknown[]).includes(value)) return value as Consistency;
  throw invalid(`consistency must be ${CONSISTENCIES.join(' or ')}, got ${shown(value)}`);
}

/** What each transport calls the parts of a session (headers, or message fields). */
export interface SessionNames {
  readonly id: string;
  readonly seq: string;
  readonly ack: string;
}

/**
 * A write's session from its parts (each already a count): none without an id; with an id, a
 * seq is needed. Their ranges (id and seq at least 1) are validateCommand's to check.
 */
export function sessionRef(
  id: number | undefined,
  seq: number | undefined,
  ack: number | undefined,
  names: SessionNames,
): SessionRef | undefined {
  if (id === undefined) {
    if (seq !== undefined || ack !== undefined)
      throw invalid(`${names.seq} and ${names.ack} need ${names.id}`);
    return undefined;
  }
  if (seq === undefined) throw invalid(`a request in a session needs ${names.seq} of at least 1`);
  return ack === undefined ? { id, seq } : { id, seq, ack };
}
