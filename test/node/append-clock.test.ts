// AppendClock: a member's lag in milliseconds from the leader's record of its appends.

import t from 'tap';
import { AppendClock } from '../../src/append-clock.js';

t.test('the age of the oldest entry a member lacks', async (t) => {
  const clock = new AppendClock(8);
  t.equal(clock.lagMs(0, 100), 0, 'nothing appended: no lag');
  clock.record(5, 1000); // entries 1..5
  clock.record(9, 1010); // 6..9
  clock.record(10, 1030);
  t.equal(clock.lagMs(10, 2000), 0, 'holds everything');
  t.equal(clock.lagMs(9, 1100), 70, 'lacks 10, appended at 1030');
  t.equal(clock.lagMs(7, 1100), 90, 'lacks 8, appended with 6..9 at 1010');
  t.equal(clock.lagMs(5, 1100), 90, 'lacks 6, appended at 1010');
  t.equal(clock.lagMs(0, 1100), 100, 'lacks all, the first append at 1000');
  t.equal(clock.lagMs(0, 900), 0, 'a clock that went back answers 0, never negative');
});

t.test(
  'bounded: the oldest samples go, and an older gap answers the oldest kept (a lower bound)',
  async (t) => {
    const clock = new AppendClock(3);
    for (let i = 1; i <= 10; i++) clock.record(i * 10, i * 100);
    // Kept: (80, 800), (90, 900), (100, 1000).
    t.equal(clock.lagMs(85, 1500), 600, 'lacks 86..90, appended at 900');
    t.equal(clock.lagMs(3, 1500), 700, 'lacks entries older than the record: at least the oldest kept');
  },
);

t.test('a truncated log: samples at or above the new last index are replaced', async (t) => {
  const clock = new AppendClock(8);
  clock.record(10, 100);
  clock.record(20, 200);
  clock.record(15, 300); // a new leader overwrote 11..20 with 11..15
  t.equal(clock.lagMs(10, 400), 100, 'lacks 11, now appended at 300');
  t.equal(clock.lagMs(15, 400), 0, 'holds everything there is');
  clock.record(16, 350);
  t.equal(clock.lagMs(15, 400), 50);
});

t.test('a bad capacity is refused', async (t) => {
  t.throws(() => new AppendClock(0), RangeError);
  t.throws(() => new AppendClock(1.5), RangeError);
});
