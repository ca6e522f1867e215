// The stack-floor skeleton of bench:floor runs: three member processes replicate sequential puts and stop cleanly.

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
