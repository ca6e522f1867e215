// bench:groups grows three node processes to N raft groups and prints each process's idle CPU; a bad flag is refused with exit code 2.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SCRIPT = fileURLToPath(new URL('../../scripts/bench-groups.js', import.meta.url));

t.test('1 and 3 groups, idle for a second each: a row per count, a share per node', async (t) => {
  const run = spawnSync(process.execPath, [SCRIPT, '--groups', '3,1', '--seconds', '1'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(run.status, 0, run.stderr);
  const rows = run.stdout.split('\n').filter((line) => /^\| \d/.test(line));
  t.equal(rows.length, 2, `one row per count, in order (${run.stdout})`);
  t.match(rows[0], /^\| 1 \| [0-9.]+ % \| [0-9.]+ % \| [0-9.]+ % \| [0-9.]+ % \|$/);
  t.match(rows[1], /^\| 3 \| [0-9.]+ % \| [0-9.]+ % \| [0-9.]+ % \| [0-9.]+ % \|$/);
  t.match(run.stderr, /3 groups led after \d+ ms/, 'the groups were created and elected');
});

/**
 * The stated budget (README, "Many raft groups"): a node process holding 100 idle raft groups
 * uses under 10 % of one core. Measured on these 2-core machines with idle groups quiescent:
 * 2.7-3.5 % (bench:groups); without quiescence it was 11-14 %, which this budget refuses.
 */
const IDLE_BUDGET_PERCENT_AT_100 = 10;

t.test(
  `100 idle groups: each node process stays under ${IDLE_BUDGET_PERCENT_AT_100} % of a core`,
  async (t) => {
    const run = spawnSync(process.execPath, [SCRIPT, '--groups', '100', '--seconds', '5'], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    t.equal(run.status, 0, run.stderr);
    const row = run.stdout.split('\n').find((line) => line.startsWith('| 100 |'));
    const shares = [...(row ?? '').matchAll(/([0-9.]+) %/g)].slice(0, 3).map((m) => Number(m[1]));
    t.equal(shares.length, 3, `a share per node process (${run.stdout})`);
    for (const [i, share] of shares.entries()) {
      t.ok(share < IDLE_BUDGET_PERCENT_AT_100, `n${i + 1}: ${share} % of a core with 100 idle groups`);
    }
    t.ok(
      shares.every((share) => share > 0),
      'and the measure is real: each process used some CPU',
    );
  },
);

t.test('a bad flag or value is refused with the usage and exit code 2', async (t) => {
  for (const args of [
    ['--groups', '0'],
    ['--groups', '1,x'],
    ['--groups', '1001'],
    ['--seconds', '0'],
    ['--fast', '1'],
  ]) {
    const run = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.equal(run.status, 2, `${args.join(' ')}: exit 2`);
    t.match(
      run.stderr,
      /^bench:groups: .*usage: npm run bench:groups/,
      `${args.join(' ')}: names the problem and the usage`,
    );
  }
});
