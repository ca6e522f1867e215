// The simulator's command line as the README gives it: seeds in one process or several, a bad flag refused.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const sim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

t.test('npm run sim -- --seeds N --jobs J splits the seeds and sums the verdicts', async (t) => {
  const run = sim('--seeds', '6', '--steps', '800', '--jobs', '2');
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout.trim().split('\n').at(-1), /^sim: 6 seeds, 0 violations$/);
});

t.test('one seed prints its statistics', async (t) => {
  const run = sim('--seed', '3', '--steps', '800');
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /^seed 3: \{"writesOk":\d+/m);
  t.match(run.stdout, /sim: 1 seeds, 0 violations/);
});

t.test('--groups runs the simulator of several groups per node, in jobs too', async (t) => {
  const one = sim('--groups', '--seed', '5', '--steps', '800');
  t.equal(one.status, 0, one.stderr);
  t.match(one.stdout, /^seed 5: \{"crashes":\d+.*"groups":\d+/m);
  const jobs = sim('--groups', '--seeds', '4', '--steps', '800', '--jobs', '2');
  t.equal(jobs.status, 0, jobs.stderr);
  t.match(jobs.stdout.trim().split('\n').at(-1), /^sim: 4 seeds, 0 violations$/);
});

t.test('bad flags are refused with exit code 2 and a reason', async (t) => {
  for (const [args, reason] of [
    [['--jobs', '0'], /--jobs must be between 1 and 64/],
    [['--seeds', 'x'], /--seeds needs a non-negative integer, got "x"/],
    [['--bogus'], /unknown flag --bogus/],
    [['--jobs', '2', '--verbose'], /--verbose runs in one process/],
  ] as const) {
    const run = sim(...args);
    t.equal(run.status, 2, args.join(' '));
    t.match(run.stderr, reason);
  }
});
