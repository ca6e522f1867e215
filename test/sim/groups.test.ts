// The simulator of several raft groups per node (groups-simulation.ts): seeds 1–200 keep safety and liveness; a seed replays exactly.

import t from 'tap';
import { runGroupsSimulation } from './groups-simulation.js';

t.test('a groups seed replays exactly', async (t) => {
  const first = runGroupsSimulation({ seed: 11, steps: 1500 });
  t.same(runGroupsSimulation({ seed: 11, steps: 1500 }).stats, first.stats, 'same seed, same run');
  t.not(
    JSON.stringify(runGroupsSimulation({ seed: 12, steps: 1500 }).stats),
    JSON.stringify(first.stats),
    'another seed, another run',
  );
});

t.test(
  'groups seeds 1–200: process faults hit every group on a node; every group stays safe and live',
  async (t) => {
    const failures: string[] = [];
    let groups = 0;
    let changes = 0;
    let applied = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const result = runGroupsSimulation({ seed });
      groups += Number(result.stats.groups);
      changes += Number(result.stats.membershipChanges);
      applied += Number(result.stats.applied);
      if (result.violations.length > 0) {
        failures.push(
          `seed ${seed}: ${result.violations.join('; ')} (replay: npm run sim -- --groups --seed ${seed} --verbose)`,
        );
      }
    }
    t.same(failures, [], 'no seed breaks a group');
    // Runs that did nothing would prove nothing.
    t.ok(groups >= 2 * 200, `at least two groups per run (${groups} in all)`);
    t.ok(changes > 200, `membership changes proposed in many runs (${changes})`);
    t.ok(applied > 200 * 100, `entries applied (${applied})`);
  },
);
