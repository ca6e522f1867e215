// The simulator replays exactly, and its checkers can fail (the seed ranges run in seeds-*.test.ts).

import t from 'tap';
import type { Entry } from '../../raft/index.js';
import { SafetyChecker } from './checkers.js';
import { runSimulation } from './simulation.js';

t.test('a seed replays exactly', async (t) => {
  const first = runSimulation({ seed: 7, steps: 1500 });
  const second = runSimulation({ seed: 7, steps: 1500 });
  t.same(second.stats, first.stats, 'same seed, same run');
  const other = runSimulation({ seed: 8, steps: 1500 });
  t.not(JSON.stringify(other.stats), JSON.stringify(first.stats), 'another seed, another run');
});

function entry(index: number, term: number, text: string): Entry {
  return { index, term, type: 0, data: new TextEncoder().encode(text) };
}

t.test('the safety checker reports each broken property', async (t) => {
  const log = { firstIndex: 1, lastIndex: 5, termAt: () => 1 };

  const twoLeaders = new SafetyChecker(() => 0);
  twoLeaders.leaderElected('a', 3, log);
  twoLeaders.leaderElected('b', 3, log);
  t.match(twoLeaders.violations, [/election safety/], 'two leaders in one term');

  const again = new SafetyChecker(() => 0);
  again.leaderElected('a', 3, log, 0);
  again.leaderElected('a', 3, log, 0);
  t.same(again.violations, [], 'one leader seen twice in one life is one leader');
  again.leaderElected('a', 3, log, 1);
  t.match(
    again.violations,
    [/election safety: a leads term 3 again after a restart/],
    'but not after a restart',
  );

  const diverged = new SafetyChecker(() => 0);
  diverged.entryPersisted('a', entry(4, 2, 'x'), 2);
  diverged.entryPersisted('b', entry(4, 2, 'y'), 2);
  t.match(diverged.violations, [/log matching/], 'same index and term, different data');

  const prefix = new SafetyChecker(() => 0);
  prefix.entryPersisted('a', entry(4, 3, 'x'), 2);
  prefix.entryPersisted('b', entry(4, 3, 'x'), 1);
  t.match(prefix.violations, [/log matching/], 'same entry, different predecessor term');

  const applied = new SafetyChecker(() => 0);
  applied.entryApplied('a', entry(1, 1, 'x'), 0);
  applied.entryApplied('b', entry(1, 2, 'y'), 0);
  t.match(applied.violations, [/state machine safety/], 'different entries applied at one index');

  const gap = new SafetyChecker(() => 0);
  gap.entryApplied('a', entry(3, 1, 'x'), 1);
  t.match(gap.violations, [/apply order/], 'an index skipped');

  const incomplete = new SafetyChecker(() => 0);
  incomplete.commitObserved('a', 0, 2, 2, 2);
  incomplete.leaderElected('b', 3, { firstIndex: 1, lastIndex: 1, termAt: () => 1 });
  t.match(incomplete.violations, [/leader completeness/], 'a leader missing a committed entry');

  const wrongTerm = new SafetyChecker(() => 0);
  wrongTerm.commitObserved('a', 0, 1, 2, 2);
  wrongTerm.leaderElected('b', 3, { firstIndex: 1, lastIndex: 4, termAt: () => 1 });
  t.match(wrongTerm.violations, [/leader completeness/], 'a leader with another term at a committed index');

  // Seed 1562: a candidate paused in term 25 reads its votes on resuming, after term 28 has
  // committed more. Leader completeness covers entries committed in earlier terms only.
  const late = new SafetyChecker(() => 0);
  late.commitObserved('a', 0, 214, 28, 28);
  late.leaderElected('b', 25, { firstIndex: 1, lastIndex: 214, termAt: () => 25 });
  t.same(late.violations, [], 'a leader of an older term need not hold what a later term committed');
  late.leaderElected('c', 29, { firstIndex: 1, lastIndex: 214, termAt: () => 25 });
  t.match(late.violations, [/leader completeness: c leads term 29/], 'but every later leader must');

  const regressed = new SafetyChecker(() => 0);
  regressed.commitObserved('a', 5, 4, 2, 2);
  t.match(regressed.violations, [/commit regressed/], 'commit moving backwards without a crash');

  const fine = new SafetyChecker(() => 0);
  fine.entryPersisted('a', entry(1, 1, 'x'), 1);
  fine.entryPersisted('b', entry(1, 1, 'x'), 1);
  fine.entryApplied('a', entry(1, 1, 'x'), 0);
  fine.entryApplied('b', entry(1, 1, 'x'), 0);
  fine.leaderElected('a', 2, { firstIndex: 1, lastIndex: 1, termAt: () => 1 });
  t.same(fine.violations, [], 'a consistent history raises nothing');
});
