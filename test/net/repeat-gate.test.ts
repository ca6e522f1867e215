// The repeat gate: a repeating event is logged once, then once a window with the count of the repeats between; keys are bounded.

import t from 'tap';
import { RepeatGate } from '../../net/repeat-gate.js';

t.test('once, then once a window with the repeats counted', async (t) => {
  let now = 0;
  const gate = new RepeatGate(1000, 16, () => now);
  t.same(gate.check('a'), { log: true, suppressed: 0 }, 'first: logged');
  now = 10;
  t.same(gate.check('a'), { log: false, suppressed: 1 });
  t.same(gate.check('b'), { log: true, suppressed: 0 }, 'another key is its own');
  now = 999;
  t.same(gate.check('a'), { log: false, suppressed: 2 });
  now = 1000;
  t.same(
    gate.check('a'),
    { log: true, suppressed: 2 },
    'a window later: logged, with the two repeats between',
  );
  now = 1001;
  t.same(gate.check('a'), { log: false, suppressed: 1 }, 'and counting starts again');
});

t.test(
  'at most maxKeys remembered: the least recently logged is forgotten and logged again as new',
  async (t) => {
    let now = 0;
    const gate = new RepeatGate(1000, 3, () => now);
    for (const key of ['a', 'b', 'c']) gate.check(key);
    now = 1;
    t.equal(gate.check('a').log, false, 'a remembered');
    gate.check('d');
    t.equal(gate.check('a').log, true, 'a, the oldest logged, was forgotten for d');
    t.equal(gate.check('c').log, false, 'c still remembered');
  },
);
