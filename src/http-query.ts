// Strict parsing of the client API's query strings and key paths: every bad value is an INVALID_ARGUMENT naming it.

/*
 * Why strict: a misspelt condition (`?ifrevision=3`) that were ignored would turn a
 * conditional write into an unconditional one. So an unknown or repeated parameter, a value
 * that is not what the parameter takes, and malformed percent-encoding are all refused.
 *
 * Query values are decoded as application/x-www-form-urlencoded (what URLSearchParams
 * produces): '+' is a space, so a literal '+' in a prefix or key must be sent as %2B
 * (encodeURIComponent does this).
 */

import { consistencyOf, count, flag, invalid, nonEmptyString } from './api-ops.js';
import type { Consistency } from './kv-service.js';

/** The decoded parameters of one query string, each name at most once. */
export type QueryParams = ReadonlyMap<string, string>;

/**
 * Decodes `query` (without '?'). Throws EdgeError INVALID_ARGUMENT for a name not in
 * `allowed`, a name given twice, or malformed percent-encoding. Empty pieces (`a=1&&b=2`) are
 * skipped; a name without '=' has the value ''.
 */
export function parseQuery(query: string, allowed: readonly string[]): QueryParams {
  const params = new Map<string, string>();
  if (query === '') return params;
  for (const piece of query.split('&')) {
    if (piece === '') continue;
    const equals = piece.indexOf('=');
    const name = decodeFormComponent(
      equals === -1 ? piece : piece.slice(0, equals),
      'a query parameter name',
    );
    const value =
      equals === -1 ? '' : decodeFormComponent(piece.slice(equals + 1), `query parameter ${name}`);
    if (!allowed.includes(name)) {
      const expected = allowed.length === 0 ? 'this route takes none' : `expected ${allowed.join(', ')}`;
      throw invalid(`unknown query parameter ${JSON.stringify(name)}; ${expected}`);
    }
    if (params.has(name)) throw invalid(`query parameter ${name} is given more than once`);
    params.set(name, value);
  }
  return params;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

// A query value is text: the functions below read what it spells (a number, true or false) and
// leave the check of the value to api-ops.ts, which the WebSocket API shares.

/** `name` as a non-negative safe integer written in plain decimal, or undefined when absent. */
export function integerParam(params: QueryParams, name: string): number | undefined {
  return decimalCount(name, params.get(name));
}

/** `text` (a query value, a header) as a non-negative safe integer in plain decimal; undefined stays undefined. */
export function decimalCount(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return count(name, DECIMAL.test(text) ? Number(text) : text);
}

/** `name` as exactly `true` or `false`, or undefined when absent. */
export function booleanParam(params: QueryParams, name: string): boolean | undefined {
  const text = params.get(name);
  return flag(name, text === 'true' ? true : text === 'false' ? false : text);
}

/** `name` as a non-empty string, or undefined when absent. */
export function nonEmptyParam(params: QueryParams, name: string): string | undefined {
  return nonEmptyString(name, params.get(name));
}

/** The `consistency` parameter: `linearizable` (the default) or `stale`. */
export function consistencyParam(params: QueryParams): Consistency {
  return consistencyOf(params.get('consistency'));
}

const REALM_PATH = '/v1/realms/';
const KV_SEGMENT = '/kv/';

/**
 * The document key in a raw (still percent-encoded) path `/v1/realms/{realm}/kv/{key...}`:
 * everything after `/kv/`, slashes included, percent-decoded once. uWS hands routes the raw
 * path and does not capture a trailing `*`, so the key is cut out here. Throws EdgeError
 * INVALID_ARGUMENT for malformed percent-encoding or an empty key.
 */
export function keyFromPath(path: string): string {
  // The realm is one segment, so the first '/' after it starts `/kv/`.
  const realmEnd = path.startsWith(REALM_PATH) ? path.indexOf('/', REALM_PATH.length) : -1;
  if (realmEnd === -1 || !path.startsWith(KV_SEGMENT, realmEnd)) {
    throw new Error(`keyFromPath called on a path that is not a key path: ${path}`);
  }
  const key = decodePathComponent(path.slice(realmEnd + KV_SEGMENT.length), 'the key');
  if (key === '') {
    throw invalid('the key is empty; to list a realm use GET /v1/realms/{realm}/kv');
  }
  return key;
}

/** Query strings are form-encoded: '+' is a space. */
function decodeFormComponent(text: string, what: string): string {
  return decodePathComponent(text.replaceAll('+', ' '), what);
}

/** In a path '+' is itself. */
function decodePathComponent(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalid(`${what} is not valid percent-encoding (UTF-8): ${JSON.stringify(text)}`);
  }
}
