// Test helper: a watch consumed in the background while writes go on, and the checks that it missed and repeated nothing.

import type { Test } from 'tap';
import type { Client, Watch, WatchEvent } from '../../src/client/index.js';

/** Polls `check` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A watch read in the background until `total` events arrived or it failed. */
export interface Collected {
  readonly events: WatchEvent[];
  /** The watch's failure, if it failed. */
  error(): unknown;
  /** Waits (up to `timeoutMs`) for every event or the failure, then closes the watch; throws on timeout. */
  finish(timeoutMs?: number): Promise<void>;
}

export function collect(watch: Watch, total: number): Collected {
  const events: WatchEvent[] = [];
  let failure: unknown;
  const consuming = (async () => {
    try {
      for await (const event of watch) {
        events.push(event);
        if (events.length >= total) break;
      }
    } catch (error) {
      failure = error;
    }
  })();
  return {
    events,
    error: () => failure,
    async finish(timeoutMs = 60_000) {
      try {
        await waitFor(
          `every event (${events.length} of ${total} arrived)`,
          () => events.length >= total || failure !== undefined,
          timeoutMs,
        );
      } finally {
        watch.close();
        await consuming;
      }
    },
  };
}

/**
 * Asserts that `events` are exactly `total`, in strictly increasing revisions (none repeated),
 * one per key, and hold every acknowledged write (key → revision) with its revision.
 */
export function checkDelivery(
  t: Test,
  events: readonly WatchEvent[],
  acked: ReadonlyMap<string, number>,
  total: number,
): void {
  const revisions = events.map((e) => e.modRevision);
  const increasing = revisions.every((r, i) => i === 0 || r > revisions[i - 1]!);
  t.ok(increasing, 'events arrive in strictly increasing revision order (none repeated)');
  t.equal(events.length, total, `exactly ${total} events`);
  t.equal(new Set(events.map((e) => e.key)).size, total, 'one event per key: every write seen once');
  const missing = [...acked].filter(
    ([key, revision]) => !events.some((e) => e.key === key && e.modRevision === revision),
  );
  t.same(missing, [], 'every acknowledged write arrived with its revision');
}

/**
 * Puts keys w/0000 … w/(total-1) (value {i}) through `client`, `concurrency` at a time, and
 * returns every acknowledged key with its revision. `afterEach(i, acked)` runs after write i
 * was acknowledged (to inject a fault mid-stream).
 */
export async function writeKeys(
  client: Client,
  total: number,
  concurrency: number,
  afterEach: (i: number, acked: ReadonlyMap<string, number>) => Promise<void> = async () => {},
): Promise<Map<string, number>> {
  const acked = new Map<string, number>();
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const key = `w/${String(i).padStart(4, '0')}`;
      const { revision } = await client.put('default', key, { i });
      acked.set(key, revision);
      await afterEach(i, acked);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return acked;
}
