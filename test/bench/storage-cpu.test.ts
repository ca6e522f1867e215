// bench:storage-cpu runs both stores and prints CPU per put; a bad flag is refused with exit code 2.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SCRIPT = fileURLToPath(new URL('../../scripts/storage-cpu.js', import.meta.url));

for (const [store, sessions] of [
  ['conclave', '0'],
  ['conclave', '2'],
  ['raw', '0'],
] as const) {
  t.test(
    `${store}, ${sessions} sessions: 200 puts in batches of 10 give a CPU and a wall time per put`,
    async (t) => {
      const run = spawnSync(
        process.execPath,
        [SCRIPT, '--store', store, '--sessions', sessions, '--batch', '10', '--puts', '200', '--warmup', '0'],
        {
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      t.equal(run.status, 0, run.stderr);
      t.match(
        run.stdout,
        new RegExp(
          `^storage-cpu ${store}, batches of 10, ${sessions} sessions: [0-9.]+ µs CPU per put \\(user [0-9.]+, system [0-9.]+\\), wall [0-9.]+ µs per put, 200 puts`,
        ),
      );
    },
  );
}

t.test('a bad flag or value is refused with the usage and exit code 2', async (t) => {
  for (const args of [
    ['--store', 'sqlite'],
    ['--batch', '0'],
    ['--puts'],
    ['--nope', '1'],
    ['--store', 'raw', '--sessions', '1'],
  ]) {
    const run = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.equal(run.status, 2, `${args.join(' ')}: exit 2`);
    t.match(run.stderr, /usage: npm run bench:storage-cpu/, `${args.join(' ')}: the usage`);
  }
});
