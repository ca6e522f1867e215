// The stack-floor skeleton of bench:floor runs: member processes replicate sequential puts (raw writes, or Conclave's storage/) and stop cleanly.

import t from 'tap';
import { startSkeleton } from '../../scripts/floor-skeleton.js';

t.test('three skeleton members answer 50 sequential puts, then exit', async (t) => {
  const skeleton = await startSkeleton(3);
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await skeleton.stop();
  });
  t.equal(skeleton.pids.length, 3);
  for (let i = 0; i < 50; i++) await skeleton.put(`k${i}`, { i, payload: 'x'.repeat(200) });
  await skeleton.stop();
  stopped = true;
  for (const pid of skeleton.pids) {
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `member ${pid} has exited`);
  }
});

t.test("three skeleton members on Conclave's storage/ answer 20 sequential puts", async (t) => {
  const skeleton = await startSkeleton(3, 'libp2p', [], 'conclave');
  t.teardown(() => skeleton.stop());
  const revisions: number[] = [];
  for (let i = 0; i < 20; i++) revisions.push(await skeleton.put(`k${i}`, { i }));
  // The group is bootstrapped at index 1; each put is the next entry, answered after it applied.
  t.same(
    revisions,
    Array.from({ length: 20 }, (_, i) => i + 2),
    'each put answered at the next log index',
  );
});

t.test(
  'three skeleton members answer 200 concurrent puts over 4 connections, each at its own index',
  async (t) => {
    const skeleton = await startSkeleton(3, 'libp2p', [], 'raw', 4);
    t.teardown(() => skeleton.stop());
    const revisions = await Promise.all(
      Array.from({ length: 200 }, (_, i) => skeleton.put(`k${i}`, { i, payload: 'x'.repeat(200) })),
    );
    t.same(
      [...revisions].sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 2),
      'the 200 puts took indexes 2..201, one each',
    );
  },
);
