// Test helper: a watch consumed in the background while writes go on, and the checks that it missed and repeated nothing.

import type { Test } from 'tap';
import type { Watch, WatchEvent } from '../../src/client/index.js';

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
