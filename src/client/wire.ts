// Reading what a node sends: every message and result is checked before use, since a node's bytes are untrusted.

import type {
  DocResult,
  Document,
  Json,
  ListResult,
  RequestId,
  TxnResult,
  WatchEvent,
  WsAnswer,
  WsError,
  WsPush,
  WsServerMessage,
} from '../ws-protocol.js';
import { ConclaveError } from './errors.js';

type Fields = { readonly [key: string]: unknown };

/** Thrown by the result readers below; the caller turns it into a ConclaveError. */
export class MalformedAnswer extends Error {
  override readonly name = 'MalformedAnswer';
}

/** The message in `text`, or undefined if it is not one the protocol defines (the caller ignores it). */
export function parseServerMessage(text: string): WsServerMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isFields(value)) return undefined;
  if (value.id !== undefined) return parseAnswer(value);
  return parsePush(value);
}

function parseAnswer(value: Fields): WsAnswer | undefined {
  const id = value.id;
  if (!isRequestId(id)) return undefined;
  if (value.ok === true) return { id, ok: true, result: value.result };
  if (value.ok === false) {
    const error = parseError(value.error);
    return error === undefined ? undefined : { id, ok: false, error };
  }
  return undefined;
}

function parsePush(value: Fields): WsPush | undefined {
  switch (value.type) {
    case 'events': {
      if (!isCount(value.watch) || !Array.isArray(value.events)) return undefined;
      const events: WatchEvent[] = [];
      for (const event of value.events) {
        const parsed = parseWatchEvent(event);
        if (parsed === undefined) return undefined;
        events.push(parsed);
      }
      return { type: 'events', watch: value.watch, events };
    }
    case 'watchEnded': {
      const error = parseError(value.error);
      if (!isCount(value.watch) || error === undefined) return undefined;
      return { type: 'watchEnded', watch: value.watch, error };
    }
    case 'error': {
      const error = parseError(value.error);
      return error === undefined ? undefined : { type: 'error', error };
    }
    default:
      return undefined;
  }
}

function parseError(value: unknown): WsError | undefined {
  if (!isFields(value) || typeof value.code !== 'string' || value.code === '') return undefined;
  return {
    code: value.code,
    message: typeof value.message === 'string' ? value.message : value.code,
    retryable: value.retryable === true,
    ...(typeof value.leader === 'string' ? { leader: value.leader } : {}),
    ...(typeof value.indeterminate === 'boolean' ? { indeterminate: value.indeterminate } : {}),
    ...(isCount(value.revision) ? { revision: value.revision } : {}),
  };
}

function parseWatchEvent(value: unknown): WatchEvent | undefined {
  if (!isFields(value) || typeof value.key !== 'string' || !isCount(value.modRevision)) return undefined;
  if (value.type === 'delete')
    return { type: 'delete', key: value.key, value: null, modRevision: value.modRevision };
  if (
    value.type !== 'put' ||
    !('value' in value) ||
    !isCount(value.createRevision) ||
    !isCount(value.version)
  ) {
    return undefined;
  }
  return {
    type: 'put',
    key: value.key,
    value: value.value as Json,
    modRevision: value.modRevision,
    createRevision: value.createRevision,
    version: value.version,
  };
}

/**
 * An ok answer's result read by `reader`; a malformed one throws ConclaveError INTERNAL,
 * indeterminate for a write (it applied, but what it answered is unknown).
 */
export function readResult<T>(result: unknown, reader: (result: unknown) => T, isWrite: boolean): T {
  try {
    return reader(result);
  } catch (error) {
    if (!(error instanceof MalformedAnswer)) throw error;
    throw new ConclaveError('INTERNAL', `the node answered a malformed result: ${error.message}`, {
      indeterminate: isWrite,
    });
  }
}

// Result readers: each returns the typed result or throws MalformedAnswer.

export function readDocument(value: unknown): Document {
  const doc = fields(value, 'document');
  if (typeof doc.key !== 'string' || !('value' in doc))
    throw new MalformedAnswer('a document needs key and value');
  return {
    key: doc.key,
    value: doc.value as Json,
    createRevision: count(doc.createRevision, 'createRevision'),
    modRevision: count(doc.modRevision, 'modRevision'),
    version: count(doc.version, 'version'),
  };
}

export function readRevision(value: unknown): { revision: number } {
  return { revision: count(fields(value, 'result').revision, 'revision') };
}

export function readList(value: unknown): ListResult {
  const list = fields(value, 'list');
  if (!Array.isArray(list.documents) || typeof list.more !== 'boolean') {
    throw new MalformedAnswer('a list needs documents and more');
  }
  const next = list.next ?? null;
  if (next !== null && typeof next !== 'string')
    throw new MalformedAnswer('list.next must be a string or null');
  return {
    documents: list.documents.map(readDocument),
    more: list.more,
    next,
    revision: count(list.revision, 'revision'),
  };
}

export function readTxn(value: unknown): TxnResult {
  const txn = fields(value, 'txn');
  if (typeof txn.succeeded !== 'boolean' || !Array.isArray(txn.results)) {
    throw new MalformedAnswer('a txn result needs succeeded and results');
  }
  return {
    succeeded: txn.succeeded,
    revision: count(txn.revision, 'revision'),
    results: txn.results.map(readDocResult),
  };
}

function readDocResult(value: unknown): DocResult {
  const result = fields(value, 'txn result');
  if (typeof result.key !== 'string') throw new MalformedAnswer('a txn result needs a key');
  if (result.type === 'delete') {
    return {
      type: 'delete',
      key: result.key,
      prevModRevision: count(result.prevModRevision, 'prevModRevision'),
    };
  }
  if (result.type !== 'put') throw new MalformedAnswer('a txn result is a put or a delete');
  return {
    type: 'put',
    key: result.key,
    createRevision: count(result.createRevision, 'createRevision'),
    modRevision: count(result.modRevision, 'modRevision'),
    version: count(result.version, 'version'),
  };
}

export function readRealm(value: unknown): { name: string; revision: number } {
  const realm = fields(value, 'realm');
  if (typeof realm.name !== 'string') throw new MalformedAnswer('a realm result needs a name');
  return { name: realm.name, revision: count(realm.revision, 'revision') };
}

export function readSession(value: unknown): number {
  const session = count(fields(value, 'session').session, 'session');
  if (session < 1) throw new MalformedAnswer('a session id is at least 1');
  return session;
}

export function readWatchStart(value: unknown): { watch: number; revision: number } {
  const start = fields(value, 'watch');
  return { watch: count(start.watch, 'watch'), revision: count(start.revision, 'revision') };
}

export function readObject(value: unknown): Fields {
  return fields(value, 'result');
}

function fields(value: unknown, what: string): Fields {
  if (!isFields(value)) throw new MalformedAnswer(`${what} is not an object`);
  return value;
}

function count(value: unknown, what: string): number {
  if (!isCount(value)) throw new MalformedAnswer(`${what} is not a non-negative integer`);
  return value;
}

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isRequestId(value: unknown): value is RequestId {
  return (
    (typeof value === 'string' && value.length <= 64) ||
    (typeof value === 'number' && Number.isSafeInteger(value))
  );
}
