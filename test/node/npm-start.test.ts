// The README's `npm start`: a single node from the build made at install, without compiling again at every start (issue 13).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from './wait-serving.js';

t.test('npm start serves from the existing build', async (t) => {
  const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  t.match(
    scripts.prestart,
    /^test -f dist\/src\/cli\.js \|\| /,
    'prestart builds only when there is no build',
  );
  t.notMatch(scripts.start ?? '', /tsc|build/, 'start itself does not compile');

  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-npm-start-'));
  const port = await freePort();
  const started = performance.now();
  // The same command as the README, pointed at a temporary directory and a free port.
  const child = spawn('npm', ['start', '--', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  t.teardown(() => {
    // npm runs the node in a child shell: stop the whole process group.
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
    rmSync(dataDir, { recursive: true, force: true });
  });
  await watchServing(child, 30_000).serving;
  t.comment(`npm start served after ${Math.round(performance.now() - started)} ms`);
  const status = await fetch(`http://127.0.0.1:${port}/v1/status`);
  t.equal(status.status, 200);
});
