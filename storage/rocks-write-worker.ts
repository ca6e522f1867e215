// The worker thread that performs RocksDB's synced writes for rocks-writer.ts, so that the fsync does not block the event loop.

/*
 * It opens nothing: workerData.handle is the address of the database the main thread opened
 * (the binding's db_get_handle), and db_init(handle) wraps it without taking ownership. The main
 * thread never closes the database while a write is in flight here, and terminates this worker
 * before it closes it. Each message is one packed batch (see packOps in rocks-writer.ts); it is
 * written with one batch_write, and the answer is { id } or { id, error }. Its first message,
 * { id: 0 }, says it is ready.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { rocksBinding } from './rocks-binding.js';

export interface WriteRequest {
  readonly id: number;
  readonly packed: Uint8Array;
  readonly sync: boolean;
}

export interface WriteAnswer {
  readonly id: number;
  readonly error?: string;
}

const binding = rocksBinding();
const port = parentPort;
if (port === null) throw new Error('rocks-write-worker runs only as a worker thread');
const db = binding.db_init((workerData as { handle: bigint }).handle);
const batch = binding.batch_init();
const NO_OPTIONS = {};
const SYNCED = { sync: true };
const UNSYNCED = { sync: false };

port.on('message', (request: WriteRequest) => {
  let answer: WriteAnswer;
  try {
    fill(request.packed);
    binding.batch_write(db, batch, request.sync ? SYNCED : UNSYNCED);
    answer = { id: request.id };
  } catch (error) {
    answer = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  } finally {
    binding.batch_clear(batch);
  }
  port.postMessage(answer);
});
// Id 0: the worker is ready (the binding loaded, the listener installed).
port.postMessage({ id: 0 } satisfies WriteAnswer);

/** Adds the packed ops to the batch: [u32 count] then per op [u8 kind][u32 key length][key] and, for a put, [u32 value length][value]. */
function fill(packed: Uint8Array): void {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const count = view.getUint32(0);
  let at = 4;
  for (let i = 0; i < count; i++) {
    const kind = packed[at]!;
    const keyLength = view.getUint32(at + 1);
    // Buffers, not plain Uint8Arrays: see rocks-binding.ts on napi_is_buffer and the Slice type.
    const key = Buffer.from(packed.buffer, packed.byteOffset + at + 5, keyLength);
    at += 5 + keyLength;
    if (kind === 1) {
      const valueLength = view.getUint32(at);
      const value = Buffer.from(packed.buffer, packed.byteOffset + at + 4, valueLength);
      binding.batch_put(batch, key, value, NO_OPTIONS);
      at += 4 + valueLength;
    } else {
      binding.batch_del(batch, key, NO_OPTIONS);
    }
  }
  if (at !== packed.length) throw new Error(`packed batch has ${packed.length - at} stray bytes`);
}
