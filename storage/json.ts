// JSON values for documents: depth limits, deep equality, and RFC 7386 merge patch, all deterministic.

/** A JSON value as JSON.parse produces it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type JsonObject = { [key: string]: Json };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether `value` nests no deeper than `maxDepth` (a scalar has depth 0, `{}` and `[]` depth 1).
 * Stops descending at the limit, so it is safe on any input.
 */
export function withinDepth(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (maxDepth <= 0) return false;
  const children = Array.isArray(value) ? value : Object.values(value);
  for (const child of children) if (!withinDepth(child, maxDepth - 1)) return false;
  return true;
}

/** Whether `value` is made only of what JSON can carry (finite numbers, plain objects, arrays). */
export function isJson(value: unknown, maxDepth: number): value is Json {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value !== 'object' || maxDepth <= 0) return false;
  if (Array.isArray(value)) return value.every((child) => isJson(child, maxDepth - 1));
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  return Object.values(value).every((child) => isJson(child, maxDepth - 1));
}

/** Structural equality; object member order does not matter. */
export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]!));
  }
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  return keysA.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key]!, b[key]!));
}

/**
 * RFC 7386 JSON merge patch: an object patch merges member by member (null removes a member),
 * anything else replaces the target. Deterministic: members keep the target's order, new
 * members follow in the patch's order (ECMAScript's own-key order, the same on every node).
 * Never mutates its arguments. Members named "__proto__" are ordinary data here.
 */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isJsonObject(patch)) return patch;
  const result: JsonObject = {};
  if (isJsonObject(target)) for (const key of Object.keys(target)) setMember(result, key, target[key]!);
  for (const key of Object.keys(patch)) {
    const value = patch[key]!;
    if (value === null) {
      delete result[key];
    } else {
      setMember(result, key, mergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value));
    }
  }
  return result;
}

function setMember(object: JsonObject, key: string, value: Json): void {
  // Plain assignment to "__proto__" would replace the prototype instead of adding a member.
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}
