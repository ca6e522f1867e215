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
