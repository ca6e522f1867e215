// RocksDB writes straight into a native batch on the calling thread: what lands, views of larger buffers, a bad op, the engine once closed.

import t from 'tap';
import { createEngine } from '../../storage/engine.js';
import { StorageError } from '../../storage/errors.js';
import { tempDir } from './helpers.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : new TextDecoder().decode(value);

t.test(
  'writes land whole and in order: puts, deletes, views into larger buffers, empty and large values',
  async (t) => {
    const engine = createEngine({ kind: 'rocksdb', location: tempDir(t, 'rocks-binding') });
    await engine.open();
    t.teardown(() => engine.close());
    const shared = bytes('xxkey-axxvalue-1xx');
    await engine.write([{ type: 'put', key: bytes('old'), value: bytes('1') }], true);
    await engine.write(
      [
        { type: 'put', key: shared.subarray(2, 7), value: shared.subarray(9, 16) },
        { type: 'del', key: bytes('old') },
        { type: 'put', key: bytes('empty'), value: new Uint8Array(0) },
        { type: 'put', key: bytes('big'), value: new Uint8Array(3 << 20).fill(7) },
      ],
      true,
    );
    await engine.write([{ type: 'put', key: bytes('key-a'), value: bytes('value-2') }], false);
    const [a, old, empty, big] = engine.getManySync([
      bytes('key-a'),
      bytes('old'),
      bytes('empty'),
      bytes('big'),
    ]);
    t.equal(text(a), 'value-2', 'the later write of key-a wins');
    t.equal(old, undefined, 'the delete landed');
    t.equal(empty?.length, 0, 'an empty value is a value');
    t.ok(big?.length === 3 << 20 && big.every((b) => b === 7), 'a 3 MiB value lands intact');
    t.equal(
      text(engine.getManySync([bytes('xxkey-a')])[0]),
      undefined,
      "only the view's own bytes were the key",
    );
  },
);

t.test('a batch the engine refuses lands not at all, and the next write is not polluted by it', async (t) => {
  const engine = createEngine({ kind: 'rocksdb', location: tempDir(t, 'rocks-binding') });
  await engine.open();
  t.teardown(() => engine.close());
  const bad = [
    { type: 'put', key: bytes('first'), value: bytes('1') },
    { type: 'put', key: 'not bytes' as unknown as Uint8Array, value: bytes('2') },
  ] as const;
  await t.rejects(engine.write(bad, true), 'a key that is not bytes is refused');
  await engine.write([{ type: 'put', key: bytes('second'), value: bytes('2') }], true);
  const [first, second] = engine.getManySync([bytes('first'), bytes('second')]);
  t.equal(first, undefined, 'nothing of the refused batch landed, not even the ops before the bad one');
  t.equal(text(second), '2');
});

t.test('a write after close is refused with STORAGE_CLOSED, not sent to a closed database', async (t) => {
  const engine = createEngine({ kind: 'rocksdb', location: tempDir(t, 'rocks-binding') });
  await engine.open();
  await engine.close();
  await t.rejects(engine.write([{ type: 'put', key: bytes('k'), value: bytes('v') }], true), {
    name: StorageError.name,
    code: 'STORAGE_CLOSED',
  });
});

t.test(
  'a close that begins while the database opens leaves no writer behind: later writes and reads are refused, not sent to it',
  async (t) => {
    const engine = createEngine({ kind: 'rocksdb', location: tempDir(t, 'rocks-binding') });
    // The database's own 'open' event fires before engine.open() resumes to install its writers.
    const db = (engine as unknown as { db: { once(event: 'open', listener: () => void): void } }).db;
    let closed: Promise<void> | undefined;
    db.once('open', () => queueMicrotask(() => (closed = engine.close())));
    await engine.open();
    await closed;
    t.ok(closed, 'the close ran while the open was finishing');
    await t.rejects(engine.write([{ type: 'put', key: bytes('k'), value: bytes('v') }], true), {
      code: 'STORAGE_CLOSED',
    });
    t.throws(() => engine.getManySync([bytes('k')]), { code: 'STORAGE_CLOSED' });
  },
);
