// The cluster secret: generated once, shared by every node in a file, proved by each connection's hello.

import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { NetError } from './errors.js';

/** The first line of a secret file; the version lets the format change without ambiguity. */
export const SECRET_FILE_HEADER = 'conclave-cluster-secret v1';
/** Bytes of key material. */
export const SECRET_KEY_BYTES = 32;
/** A secret file is two short lines; anything much longer is not one. */
const MAX_SECRET_FILE_BYTES = 1024;

/** A parsed cluster secret. `key` never leaves the process; `fingerprint` is safe to log. */
export interface ClusterSecret {
  readonly key: Uint8Array;
  /** The first 8 bytes of SHA-256("conclave fingerprint" ‖ key), hex: tells two files apart without revealing them. */
  readonly fingerprint: string;
}

/**
 * The text of a new secret file: the header line and 32 random bytes in base64url.
 * `conclave secret new > FILE` prints exactly this (then chmod 600 FILE, or set umask 077 first).
 */
export function generateClusterSecret(): string {
  return `${SECRET_FILE_HEADER}\n${randomBytes(SECRET_KEY_BYTES).toString('base64url')}\n`;
}

/**
 * Parses the text of a secret file; throws NetError INVALID_SECRET saying what is wrong
 * (prefixed by `source`, e.g. the file's path). Never echoes the key material.
 */
export function parseClusterSecret(text: string, source = 'cluster secret'): ClusterSecret {
  const invalid = (detail: string) => new NetError('INVALID_SECRET', `${source}: ${detail}`);
  if (text.length > MAX_SECRET_FILE_BYTES) {
    throw invalid(`a secret file is under ${MAX_SECRET_FILE_BYTES} bytes, got ${text.length}`);
  }
  const lines = text.split(/\r?\n/).filter((line) => line.trim().length > 0);
  if (lines.length !== 2 || lines[0]!.trim() !== SECRET_FILE_HEADER) {
    throw invalid(
      `expected two lines, "${SECRET_FILE_HEADER}" and the key (write one with: conclave secret new > FILE)`,
    );
  }
  const encoded = lines[1]!.trim();
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) throw invalid('the key line is not base64url');
  const key = new Uint8Array(Buffer.from(encoded, 'base64url'));
  if (key.length !== SECRET_KEY_BYTES)
    throw invalid(`the key is ${key.length} bytes, expected ${SECRET_KEY_BYTES}`);
  if (key.every((byte) => byte === 0)) throw invalid('the key is all zeros');
  return { key, fingerprint: fingerprintOf(key) };
}

/**
 * Reads and parses a secret file. Refuses a file that its group or others may read or write
 * (like ssh with a private key): a leaked secret lets anyone join the mesh.
 */
export async function readClusterSecretFile(path: string): Promise<ClusterSecret> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new NetError('INVALID_SECRET', `cannot read the secret file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new NetError(
      'INVALID_SECRET',
      `the secret file ${path} has mode 0${(mode & 0o777).toString(8)}, open to group or others; run chmod 600 ${path}`,
    );
  }
  return parseClusterSecret(text, path);
}

function fingerprintOf(key: Uint8Array): string {
  return createHash('sha256').update('conclave fingerprint').update(key).digest('hex').slice(0, 16);
}
