// The node's identity: an Ed25519 key kept in its data directory, created once, and the peer id it gives.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { NetError } from './errors.js';

/** The key file's name inside the data directory. */
export const NODE_KEY_FILE = 'node.key';
/** A protobuf-encoded Ed25519 key is 68 bytes; anything far larger is not one. */
const MAX_NODE_KEY_FILE_BYTES = 4096;

export interface NodeIdentity {
  readonly privateKey: PrivateKey;
  /** The peer id in its string form (base58btc, 12D3Koo…), stable across restarts. */
  readonly peerId: string;
  /** True if this call created the key (first start). */
  readonly created: boolean;
  readonly path: string;
}

/**
 * Loads the node key from `<dataDir>/node.key`, creating it on first start with mode 0600.
 * Creation is atomic (a temporary file, fsync, then link(), which fails if another process
 * won the race; the winner's key is then loaded) and the written key is read back and checked
 * before use. Throws NetError INVALID_NODE_KEY if the file is open to group or others, too
 * large, not a libp2p key, or not Ed25519.
 */
export async function loadOrCreateNodeKey(dataDir: string): Promise<NodeIdentity> {
  const path = join(dataDir, NODE_KEY_FILE);
  const existing = await readKeyFileIfPresent(path);
  if (existing !== undefined) return { ...identityOf(existing), created: false, path };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = await generateKeyPair('Ed25519');
  const created = await createExclusively(path, privateKeyToProtobuf(key));
  const loaded = await readKeyFileIfPresent(path);
  if (loaded === undefined)
    throw new NetError('INVALID_NODE_KEY', `${path} vanished right after it was written`);
  const identity = identityOf(loaded);
  if (created && identity.peerId !== peerIdFromPrivateKey(key).toString()) {
    throw new NetError('INVALID_NODE_KEY', `${path} does not read back as the key just written`);
  }
  return { ...identity, created, path };
}

/** A fresh Ed25519 key kept only in memory: a stateless proxy without a data directory writes nothing. */
export async function ephemeralNodeKey(): Promise<Omit<NodeIdentity, 'path'>> {
  const key = await generateKeyPair('Ed25519');
  return { privateKey: key, peerId: peerIdFromPrivateKey(key).toString(), created: true };
}

async function readKeyFileIfPresent(path: string): Promise<PrivateKey | undefined> {
  let mode: number;
  let size: number;
  try {
    const info = await stat(path);
    mode = info.mode;
    size = info.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NetError('INVALID_NODE_KEY', `cannot stat ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new NetError(
      'INVALID_NODE_KEY',
      `${path} has mode 0${(mode & 0o777).toString(8)}, open to group or others; run chmod 600 ${path}`,
    );
  }
  if (size > MAX_NODE_KEY_FILE_BYTES) {
    throw new NetError('INVALID_NODE_KEY', `${path} is ${size} bytes, not a node key`);
  }
  const bytes = await readFile(path);
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (err) {
    throw new NetError('INVALID_NODE_KEY', `${path} is not a libp2p private key: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (key.type !== 'Ed25519')
    throw new NetError('INVALID_NODE_KEY', `${path} holds a ${key.type} key, not Ed25519`);
  return key;
}

/** Writes `bytes` to `path` only if absent; returns false if another writer got there first. */
async function createExclusively(path: string, bytes: Uint8Array): Promise<boolean> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const file = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temporary, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temporary).catch(() => {});
    await syncDirectory(path);
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(join(path, '..'), constants.O_RDONLY);
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function identityOf(key: PrivateKey): { privateKey: PrivateKey; peerId: string } {
  return { privateKey: key, peerId: peerIdFromPrivateKey(key).toString() };
}
