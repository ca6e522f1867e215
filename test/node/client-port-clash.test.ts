// A second node told to serve on a client port already in use refuses to start, naming the port (issue 13).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from './wait-serving.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

t.test('a client port in use is refused, not shared', async (t) => {
  const first = mkdtempSync(join(tmpdir(), 'conclave-clash-a-'));
  const second = mkdtempSync(join(tmpdir(), 'conclave-clash-b-'));
  const port = await freePort();
  const node = spawn(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', first, '--client-listen', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.teardown(() => {
    if (node.exitCode === null && node.pid) process.kill(node.pid, 'SIGKILL');
    rmSync(first, { recursive: true, force: true });
    rmSync(second, { recursive: true, force: true });
  });
  await watchServing(node, 15_000).serving;

  const clash = spawnSync(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', second, '--client-listen', `127.0.0.1:${port}`],
    { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' },
  );
  t.not(clash.status, 0, 'the second node exits with an error');
  t.notMatch(clash.stdout, /serving http:/, 'it never says it serves');
  t.match(
    clash.stderr + clash.stdout,
    new RegExp(`127\\.0\\.0\\.1:${port}.*in use`),
    'the message names the port in use',
  );

  const status = await fetch(`http://127.0.0.1:${port}/v1/status`);
  t.equal(status.status, 200, 'the first node still serves its port');
});
