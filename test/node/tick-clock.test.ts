// The node's shared tick clock: every registered group ticks in the same callback, a failing one does not stop the others, and the timer stops with the last removal.

import t from 'tap';
import { TickClock } from '../../src/tick-clock.js';

t.test('all ticks run in one callback, each interval; errors are reported, not thrown', async (t) => {
  const errors: unknown[] = [];
  const clock = new TickClock(10, (error) => errors.push(error));
  // a marks the synchronous run it is in; c records whether it runs in that same run (before
  // any microtask, hence in the same task).
  let inRunOfA = false;
  const sameRun: boolean[] = [];
  const removeA = clock.add(() => {
    inRunOfA = true;
    queueMicrotask(() => {
      inRunOfA = false;
    });
  });
  const removeB = clock.add(() => {
    throw new Error('boom');
  });
  const removeC = clock.add(() => sameRun.push(inRunOfA));
  while (sameRun.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
  t.same(
    sameRun.slice(0, 3),
    [true, true, true],
    'c ticked in the same task as a, every interval, past b throwing',
  );
  t.ok(errors.length >= 3, 'the throwing tick was reported each time');
  t.match(errors[0], { message: 'boom' });
  removeA();
  removeB();
  t.equal(clock.size, 1);
  removeC();
  t.equal(clock.size, 0, 'nothing registered');
  const count = sameRun.length;
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.equal(sameRun.length, count, 'no tick after removal');
});
