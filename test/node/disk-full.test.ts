// A full disk on a single node: writes fail, /readyz says why, the node exits 75 for its supervisor; with space back, a restart serves its data (issue 13).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from './wait-serving.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');
const MIB = 1024 * 1024;

function startNode(
  dataDir: string,
  port: number,
): { child: ChildProcess; serving: Promise<void>; output: () => string } {
  const child = spawn(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return { child, ...watchServing(child, 20_000) };
}

/** `started`, once it serves; its process is killed when the test ends (`children`). */
async function serving<T extends { child: ChildProcess; serving: Promise<void> }>(
  started: T,
  children: ChildProcess[],
): Promise<T> {
  children.push(started.child);
  await started.serving;
  return started;
}

function exitCode(child: ChildProcess, timeoutMs: number): Promise<number | null | 'running'> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => resolve('running'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * A 48 MiB tmpfs with a data directory in it, unmounted (and its node processes killed) when
 * the test ends; undefined (the test skipped) if it cannot be mounted.
 */
function smallDisk(t: Test): { mountPoint: string; dataDir: string; children: ChildProcess[] } | undefined {
  const mountPoint = mkdtempSync(join(tmpdir(), 'conclave-diskfull-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mountPoint]);
  if (mounted.status !== 0) {
    t.skip(`cannot mount a tmpfs: ${mounted.stderr}`, () => {});
    return undefined;
  }
  const children: ChildProcess[] = [];
  t.teardown(() => {
    for (const child of children)
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    spawnSync('umount', ['-l', mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });
  const dataDir = join(mountPoint, 'data');
  mkdirSync(dataDir);
  return { mountPoint, dataDir, children };
}

/** Fills the disk at `mountPoint` with a file, leaving 3 MiB free. */
function fillBut3MiB(mountPoint: string): void {
  const free = Number(
    spawnSync('df', ['-B1', '--output=avail', mountPoint], { encoding: 'utf8' }).stdout.trim().split('\n')[1],
  );
  writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(Math.max(0, free - 3 * MIB)));
}

const root = process.getuid?.() === 0;
t.test(
  'a node whose disk fills stops serving and exits 75; with space back it restarts with its data',
  { skip: root ? false : 'needs root to mount a small tmpfs' },
  async (t) => {
    const disk = smallDisk(t);
    if (disk === undefined) return;
    const { mountPoint, dataDir, children } = disk;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const first = await serving(startNode(dataDir, port), children);
    const put = (key: string, value: unknown) =>
      fetch(`${base}/v1/realms/default/kv/${key}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(value),
      });
    t.equal((await put('kept', { n: 1 })).status, 200, 'a write before the disk fills');

    // Leave a few MiB free, then write until the node refuses.
    fillBut3MiB(mountPoint);
    const big = { blob: 'x'.repeat(200 * 1024) };
    let refused: { status: number; body: { code?: string; message?: string } } | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const answer = await put(`big-${i}`, big).catch(() => undefined);
      if (answer === undefined) break; // the node is gone already
      if (answer.status !== 200)
        refused = { status: answer.status, body: (await answer.json()) as { code?: string } };
    }
    t.ok(refused, 'a write is refused once the disk is full');
    if (refused) {
      t.equal(refused.status, 503);
      t.equal(refused.body.code, 'UNAVAILABLE');
    }
    const ready = await fetch(`${base}/readyz`).catch(() => undefined);
    if (ready !== undefined) {
      t.equal(ready.status, 503, '/readyz is not ready');
      t.match(await ready.text(), /raft group failed/, 'and says why');
    }
    t.equal(await exitCode(first.child, 10_000), 75, 'the node exits 75 for its supervisor');
    t.match(first.output(), /raft group failed.*exiting with code 75/s, 'and says so');

    // Space comes back; the restarted node serves what it acknowledged.
    rmSync(join(mountPoint, 'filler'));
    await serving(startNode(dataDir, port), children);
    const kept = await fetch(`${base}/v1/realms/default/kv/kept`);
    t.equal(kept.status, 200, 'the acknowledged write survived');
    t.same(((await kept.json()) as { value: unknown }).value, { n: 1 });
    t.equal((await put('after', { n: 2 })).status, 200, 'and it takes writes again');
  },
);

t.test(
  'a raft group besides group 1 that fails on a full disk takes the node down with 75 too',
  { skip: root ? false : 'needs root to mount a small tmpfs' },
  async (t) => {
    const disk = smallDisk(t);
    if (disk === undefined) return;
    const { mountPoint, dataDir, children } = disk;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const node = await serving(startNode(dataDir, port), children);
    const post = (path: string, body: unknown) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    t.equal((await post('/v1/groups', {})).status, 201, 'group 2 on the node');
    let placed = 0;
    for (let i = 0; i < 50 && placed !== 201; i++) {
      placed = (await post('/v1/realms', { name: 'shop', group: 2 })).status;
      if (placed !== 201) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.equal(placed, 201, 'shop placed in group 2');
    fillBut3MiB(mountPoint);
    const big = { blob: 'x'.repeat(200 * 1024) };
    for (let i = 0; i < 200; i++) {
      const answer = await fetch(`${base}/v1/realms/shop/kv/big-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(big),
      }).catch(() => undefined);
      if (answer === undefined || answer.status !== 200) break;
    }
    t.equal(
      await exitCode(node.child, 10_000),
      75,
      'the node exits 75, not a group that never applies again',
    );
    t.match(node.output(), /raft group failed.*exiting with code 75/s, 'and says so');
  },
);
