// RocksDB's synced writes on a worker thread: what lands, in order, atomically; a dead worker fails writes; close waits.

import { createRequire } from 'node:module';
import t from 'tap';
import { createEngine, type KvEngine, type WriteOp } from '../../storage/engine.js';
import { packOps, RocksWriter } from '../../storage/rocks-writer.js';
import { type Teardown, tempDir } from './helpers.js';

const require = createRequire(import.meta.url);

interface RawRocks {
  readonly handle: bigint;
  open(options: object): Promise<void>;
  close(): Promise<void>;
  getMany(keys: Uint8Array[], options: object): Promise<(Uint8Array | undefined)[]>;
  batch(ops: WriteOp[], options: object): Promise<void>;
}

const BUFFERS = { keyEncoding: 'buffer', valueEncoding: 'buffer' };
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : new TextDecoder().decode(value);

async function openRaw(t: Teardown): Promise<RawRocks> {
  const { RocksLevel } = require('@nxtedition/rocksdb') as {
    RocksLevel: new (l: string, o: object) => RawRocks;
  };
  const db = new RocksLevel(tempDir(t, 'rocks-writer'), BUFFERS);
  await db.open({ createIfMissing: true });
  return db;
}

async function started(writer: RocksWriter): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!writer.available) {
    if (Date.now() > deadline) throw new Error('the write worker did not start within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

t.test('packOps lays out puts and deletes as the worker reads them', async (t) => {
  const packed = packOps([
    { type: 'put', key: bytes('k'), value: bytes('vv') },
    { type: 'del', key: bytes('gone') },
  ]);
  t.same(
    [...packed],
    [0, 0, 0, 2, 1, 0, 0, 0, 1, 107, 0, 0, 0, 2, 118, 118, 2, 0, 0, 0, 4, 103, 111, 110, 101],
  );
  t.equal(packed.byteOffset, 0, 'its own buffer, so transferring it detaches nothing else');
  t.equal(packed.buffer.byteLength, packed.length);
});

t.test('writes on the worker land whole and in order, puts and deletes, synced or not', async (t) => {
  const db = await openRaw(t);
  const writer = new RocksWriter(db.handle);
  await started(writer);
  // Views into a larger buffer, as storage hands them over: only their own bytes may land.
  const shared = bytes('xxkey-axxvalue-1xx');
  await db.batch([{ type: 'put', key: bytes('old'), value: bytes('1') }], { sync: true });
  const writes = [
    writer.write(
      [
        { type: 'put', key: shared.subarray(2, 7), value: shared.subarray(9, 16) },
        { type: 'del', key: bytes('old') },
        { type: 'put', key: bytes('empty'), value: new Uint8Array(0) },
      ],
      true,
    ),
    writer.write([{ type: 'put', key: bytes('key-a'), value: bytes('value-2') }], false),
    writer.write([{ type: 'put', key: bytes('big'), value: new Uint8Array(3 << 20).fill(7) }], true),
  ];
  await Promise.all(writes);
  const [a, old, empty, big] = await db.getMany(
    [bytes('key-a'), bytes('old'), bytes('empty'), bytes('big')],
    BUFFERS,
  );
  t.equal(text(a), 'value-2', 'the later write of key-a wins: writes apply in the order given');
  t.equal(old, undefined, 'the delete landed');
  t.equal(empty?.length, 0, 'an empty value is a value');
  t.equal(big?.length, 3 << 20);
  t.ok(
    big?.every((b) => b === 7),
    'a 3 MiB value lands intact',
  );
  await writer.close();
  await db.close();
});

t.test('close waits for the writes in flight, so the database can be closed after it', async (t) => {
  const db = await openRaw(t);
  const writer = new RocksWriter(db.handle);
  await started(writer);
  const settled: number[] = [];
  const writes = Array.from({ length: 50 }, (_, i) =>
    writer.write([{ type: 'put', key: bytes(`k${i}`), value: bytes(String(i)) }], true).then(() => {
      settled.push(i);
    }),
  );
  await writer.close();
  t.equal(settled.length, 50, 'every write settled before close resolved');
  t.notOk(writer.available, 'a closed writer is not offered');
  await Promise.all(writes);
  await db.close();
});

t.test('a worker that dies fails the writes in flight and every later one with WRITER_GONE', async (t) => {
  const db = await openRaw(t);
  const writer = new RocksWriter(db.handle);
  await started(writer);
  // Stop the thread under the writer, as a crash of the worker would.
  const worker = (writer as unknown as { worker: { terminate(): Promise<number> } }).worker;
  const inFlight = writer.write([{ type: 'put', key: bytes('k'), value: bytes('v') }], true);
  await worker.terminate();
  await t.rejects(inFlight, { code: 'WRITER_GONE' }, 'a write whose fate is unknown is not reported done');
  t.notOk(writer.available, 'a dead writer is not offered');
  await t.rejects(writer.write([{ type: 'put', key: bytes('k2'), value: bytes('v') }], true), {
    code: 'WRITER_GONE',
  });
  await writer.close();
  await db.close();
});

t.test(
  "with 'worker', the rocksdb engine's synced writes move to the worker once it runs, and close stops it",
  async (t) => {
    const engine: KvEngine = createEngine({
      kind: 'rocksdb',
      location: tempDir(t, 'rocks-engine'),
      rocksdbSyncedWrites: 'worker',
    });
    await engine.open();
    const writer = (engine as unknown as { writer: RocksWriter | undefined }).writer;
    t.ok(writer, 'a writer is started at open');
    await engine.write([{ type: 'put', key: bytes('early'), value: bytes('1') }], true);
    await started(writer!);
    await engine.write([{ type: 'put', key: bytes('late'), value: bytes('2') }], true);
    await engine.write([{ type: 'del', key: bytes('early') }], false);
    t.same(
      (await engine.getMany([bytes('early'), bytes('late')])).map(text),
      [undefined, '2'],
      'inline and worker writes see one database',
    );
    await engine.close();
    t.notOk(writer!.available, 'closing the engine stopped the worker');

    const inline = createEngine({ kind: 'rocksdb', location: tempDir(t, 'rocks-inline') });
    await inline.open();
    t.equal(
      (inline as unknown as { writer: RocksWriter | undefined }).writer,
      undefined,
      "'inline', the default, starts none",
    );
    await inline.write([{ type: 'put', key: bytes('k'), value: bytes('v') }], true);
    t.same((await inline.getMany([bytes('k')])).map(text), ['v']);
    await inline.close();
  },
);
