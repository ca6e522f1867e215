// Client tokens: how one is made (random id and 256-bit secret), what is stored of it (the secret's SHA-256), and how a presented one is checked in constant time.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * A token reads `cnc_<id>_<secret>`: `id` is 16 hex digits (64 random bits) naming the stored
 * record, `secret` 43 base64url characters (256 random bits). Only SHA-256(secret) is stored
 * and replicated; the token itself is shown once, when made. A check hashes the presented
 * secret and compares the hashes with timingSafeEqual.
 */

const TOKEN = /^cnc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface NewToken {
  /** The whole token: give it to the user, never store or log it. */
  readonly token: string;
  readonly id: string;
  /** SHA-256 of the secret, hex: what the cluster stores. */
  readonly hash: string;
}

export function newToken(): NewToken {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `cnc_${id}_${secret}`, id, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The id and secret of a well-formed token, or undefined. */
export function parseToken(text: string): { readonly id: string; readonly secret: string } | undefined {
  const match = TOKEN.exec(text);
  return match === null ? undefined : { id: match[1]!, secret: match[2]! };
}

/** Whether `secret` hashes to `hash` (hex), in time that does not depend on where they differ. */
export function secretMatches(hash: string, secret: string): boolean {
  const expected = Buffer.from(hash, 'hex');
  const actual = createHash('sha256').update(secret).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** The token of an `Authorization: Bearer TOKEN` header value, or undefined without one. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match === null ? header : match[1];
}
