// Loaded into a member with `node --import` by trace-put: stamps the steps of the write path (CLOCK_MONOTONIC, µs) into CONCLAVE_TRACE_DIR/PID.txt.

/*
 * Nothing here changes what a member does: each hook wraps a method on its class's prototype,
 * records one line and calls the original. The stamps are process.hrtime, CLOCK_MONOTONIC on
 * Linux, so the files of the members and of the client line up. Without CONCLAVE_TRACE_DIR the
 * module does nothing, and in a worker thread (RocksDB's write worker) too.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { Mesh } from '../net/mesh.js';
import { RaftLink } from '../net/raft-link.js';
import { type Message, RawNode, type Ready } from '../raft/index.js';
import { RaftDriver } from '../src/raft-driver.js';
import { WriteQueue } from '../storage/write-queue.js';

const dir = process.env.CONCLAVE_TRACE_DIR;
/** Lines kept at most: enough for a few thousand puts, bounded whatever runs. */
const MAX_LINES = 500_000;

type Method = (this: unknown, ...args: never[]) => unknown;

// Worker threads load this module too (they inherit --import) and share the process id: only
// the main thread stamps and saves, or a worker's empty file would replace the main thread's.
if (dir !== undefined && isMainThread) {
  const lines: string[] = [];
  const stamp = (label: string): void => {
    if (lines.length < MAX_LINES) lines.push(`${process.hrtime.bigint() / 1000n} ${process.pid} ${label}`);
  };
  const save = (): void =>
    writeFileSync(join(dir, `${process.pid}.txt`), lines.length === 0 ? '' : `${lines.join('\n')}\n`);
  setInterval(save, 500).unref();
  process.on('exit', save);

  /** Wraps `name` of `proto`: `before` stamps on entry; an async result is stamped again when it settles. */
  const wrap = (
    proto: object,
    name: string,
    before: (args: unknown[]) => string,
    after?: (result: unknown) => string,
  ): void => {
    const target = proto as Record<string, Method>;
    const original = target[name];
    if (typeof original !== 'function') throw new Error(`trace-hooks: no method ${name} to wrap`);
    target[name] = function (this: unknown, ...args: never[]) {
      stamp(before(args));
      const result = original.apply(this, args);
      if (after !== undefined) {
        if (result instanceof Promise)
          void result.then(
            (value) => stamp(after(value)),
            () => undefined,
          );
        else stamp(after(result));
      }
      return result;
    };
  };
  const kinds = (messages: readonly Message[]) => messages.map((m) => `${m.type}>${m.to}`).join(',');

  wrap(RaftDriver.prototype, 'propose', () => 'propose');
  wrap(RaftDriver.prototype, 'receive', ([m]) => `recv ${(m as Message).type} from ${(m as Message).from}`);
  wrap(
    RawNode.prototype,
    'ready',
    () => 'ready',
    (r) => {
      const ready = r as Ready;
      return `ready out e${ready.entries.length} c${ready.committedEntries.length} m${kinds(ready.messages)}`;
    },
  );
  wrap(RaftDriver.prototype, 'onDurable', () => 'durable');
  wrap(RaftDriver.prototype, 'settleProposal', () => 'settle');
  wrap(
    WriteQueue.prototype,
    'flush',
    () => 'write start',
    () => 'write end',
  );
  wrap(RaftLink.prototype, 'sendOneFrame', () => 'frame out');
  wrap(Mesh.prototype, 'onRaftFrame', () => 'frame in');
}
