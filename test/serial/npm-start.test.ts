// The README's `npm start`: a single node from the build made at install, quick to start again on its data (issue 13).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from '../node/wait-serving.js';

t.test('npm start serves from the existing build', async (t) => {
  const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  t.equal(scripts.prestart, 'npm run --silent build:stale', 'prestart builds only when the build is stale');
  t.match(
    scripts['build:stale'],
    /^test -f dist\/src\/cli\.js && test -z .*-newer dist\/src\/cli\.js.* \|\| npm run build/,
    'build:stale compiles only when dist/ is missing or a source is newer',
  );
  t.notMatch(scripts.start ?? '', /tsc|build/, 'start itself does not compile');

  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-npm-start-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  // The same command as the README, pointed at a temporary directory and a free port.
  const npmStart = () => {
    const child = spawn(
      'npm',
      ['start', '--', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    children.push(child);
    return child;
  };
  t.teardown(() => {
    // npm runs the node in a child shell: stop the whole process group.
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  let started = performance.now();
  const first = npmStart();
  const startWatch = watchServing(first, 30_000);
  await startWatch.serving;
  t.comment(`npm start served after ${Math.round(performance.now() - started)} ms`);
  // It says where its dashboard is, and the page is there.
  const deadline = Date.now() + 5000;
  while (!/conclave: dashboard at /.test(startWatch.output()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const dashboard = /conclave: dashboard at (\S+)/.exec(startWatch.output())?.[1];
  t.equal(dashboard, `${url}/`, 'the start names the dashboard');
  const page = await fetch(dashboard ?? `${url}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(await page.text(), /<title>Conclave<\/title>/);
  const status = await fetch(`${url}/v1/status`);
  t.equal(status.status, 200);
  const put = await fetch(`${url}/v1/realms/default/kv/greeting`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '{"text":"hello"}',
  });
  t.equal(put.status, 200, 'a write');

  // "Stop it with Ctrl-C": SIGINT to the process group, as a terminal sends it.
  const firstExit = new Promise<void>((resolve) => first.on('close', () => resolve()));
  process.kill(-first.pid!, 'SIGINT');
  const stopped = await Promise.race([
    firstExit.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
  ]);
  t.ok(stopped, 'Ctrl-C stops it within 10 s');

  // "A second `npm start` reuses ./data": ready (/readyz 200) within 3 s of the spawn.
  started = performance.now();
  const second = npmStart();
  const watched = watchServing(second, 30_000);
  let readyMs: number | undefined;
  while (performance.now() - started < 30_000 && second.exitCode === null) {
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (ready === 200) {
      readyMs = Math.round(performance.now() - started);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.comment(`the second npm start answered 200 on /readyz after ${readyMs} ms`);
  t.ok(readyMs !== undefined && readyMs < 3000, 'the second npm start is ready within 3 s', {
    readyMs,
    output: watched.output(),
  });
  const doc = await fetch(`${url}/v1/realms/default/kv/greeting`);
  t.match(await doc.json(), { value: { text: 'hello' } }, 'the data of the first run is there');
});
