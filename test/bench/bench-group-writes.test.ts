// bench:group-writes puts over N realms in one group and on N groups (with and without routing clients) and prints them side by side; a bad flag is refused with exit code 2.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SCRIPT = fileURLToPath(new URL('../../scripts/bench-group-writes.js', import.meta.url));

t.test('1 and 2 realms, 8 loops, a second each: a row per count with the four layouts', async (t) => {
  const run = spawnSync(process.execPath, [SCRIPT, '--realms', '2,1', '--clients', '8', '--seconds', '1'], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  t.equal(run.status, 0, run.stderr);
  const rows = run.stdout.split('\n').filter((line) => /^\| \d/.test(line));
  t.equal(rows.length, 2, `one row per count, in order (${run.stdout})`);
  const cell = '\\d+/s, [0-9.]+/[0-9.]+ ms, \\d+ µs';
  for (const [i, n] of [1, 2].entries()) {
    t.match(
      rows[i],
      new RegExp(
        `^\\| ${n} \\| ${cell} \\| ${cell} \\| [0-9.]+ \\| ${cell} \\| ${cell} \\| [0-9.]+ \\| (n\\d \\d+(, )?)+ \\|$`,
      ),
    );
  }
});

t.test('a bad flag or value is refused with the usage and exit code 2', async (t) => {
  for (const args of [
    ['--realms', '0'],
    ['--realms', 'a'],
    ['--clients', '0'],
    ['--seconds', 'x'],
    ['--fast', '1'],
  ]) {
    const run = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.equal(run.status, 2, `${args.join(' ')}: exit 2`);
    t.match(
      run.stderr,
      /^bench:group-writes: .*usage: npm run bench:group-writes/,
      `${args.join(' ')}: the usage`,
    );
  }
});
