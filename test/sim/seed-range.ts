// Runs one range of simulator seeds as a tap test; CI splits its seeds over several files so they run in parallel.

import t from 'tap';
import { runSimulation } from './simulation.js';

/** Seeds from `first` through `last`: every one must keep safety, liveness and linearizability. */
export function testSeedRange(first: number, last: number): void {
  t.test(`seeds ${first}–${last}: faults, then liveness, then linearizability: no violations`, async (t) => {
    const failures: string[] = [];
    let operations = 0;
    for (let seed = first; seed <= last; seed++) {
      const result = runSimulation({ seed });
      operations += Number(result.stats.historyOperations ?? 0);
      if (result.violations.length > 0) {
        failures.push(
          `seed ${seed}: ${result.violations.join('; ')} (replay: npm run sim -- --seed ${seed} --verbose)`,
        );
      }
    }
    t.same(failures, [], 'every seed keeps the safety, liveness and linearizability properties');
    // A run whose clients did nothing would prove nothing.
    const count = last - first + 1;
    t.ok(operations > count * 30, `the clients completed enough operations to check (${operations})`);
  });
}
