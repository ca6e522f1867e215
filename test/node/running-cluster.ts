// Test helper: a LocalCluster of real node processes, started, with a leader, stopped when the test ends.

import type { Test } from 'tap';
import { LocalCluster } from '../../scripts/local-cluster.js';

/** Election and heartbeat timing that keeps tests quick (the defaults, spelled out for the tests that rely on them). */
export const FAST_TIMING = ['--election-timeout-ms', '300', '--heartbeat-interval-ms', '50'] as const;

/**
 * Creates and starts `size` voters with `args` (FAST_TIMING by default) and waits for an agreed
 * leader, up to `leaderWaitMs` (longer for slow election timeouts).
 */
export async function runningCluster(
  t: Test,
  size: number,
  args: readonly string[] = FAST_TIMING,
  leaderWaitMs = 15_000,
): Promise<LocalCluster> {
  const cluster = new LocalCluster(args);
  t.teardown(() => cluster.stop());
  await cluster.create(size);
  cluster.startAll();
  await cluster.waitForLeader(leaderWaitMs);
  // A leader needs only a majority: a node that could not start must fail the test here, plainly.
  cluster.assertRunning();
  return cluster;
}
