// Backups onto a full disk: `backup save` and the backup service fail with a clear error and leave every existing file as it was.

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from './wait-serving.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');
const run = promisify(execFile);
const root = process.getuid?.() === 0;

t.test(
  'a backup onto a full disk fails with DISK_FULL (save) or a reported failure (service); nothing existing changes',
  { skip: root ? false : 'needs root to mount a small tmpfs' },
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'conclave-backup-full-'));
    const mountPoint = join(work, 'small');
    spawnSync('mkdir', [mountPoint]);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    if (mounted.status !== 0) {
      t.skip(`cannot mount a tmpfs: ${mounted.stderr}`, () => {});
      return;
    }
    let child: ChildProcess | undefined;
    t.teardown(() => {
      if (child?.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      spawnSync('umount', ['-l', mountPoint]);
      rmSync(work, { recursive: true, force: true });
    });
    writeFileSync(join(mountPoint, 'existing.snap'), 'an older backup');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const peerListen = `/ip4/127.0.0.1/tcp/${await freePort()}`;
    const start = (extra: readonly string[]): ChildProcess =>
      spawn(
        process.execPath,
        [
          CLI,
          'start',
          '--single',
          '--data-dir',
          join(work, 'data'),
          '--client-listen',
          `127.0.0.1:${port}`,
          '--peer-listen',
          peerListen,
          ...extra,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
    // About 3 MB of documents, more than the 1 MiB disk holds, written before backups start.
    child = start([]);
    await watchServing(child, 20_000).serving;
    for (let i = 0; i < 30; i++) {
      const response = await fetch(`${base}/v1/realms/default/kv/big-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ blob: `${i}`.repeat(100_000) }),
      });
      if (response.status !== 200) t.fail(`put ${i}: ${response.status}`);
    }
    const stopped = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await stopped;
    child = start(['--backup-dir', mountPoint, '--backup-interval', '1s']);
    await watchServing(child, 20_000).serving;

    const saved = await run(process.execPath, [
      CLI,
      'backup',
      'save',
      join(mountPoint, 'b.snap'),
      '--endpoints',
      base,
    ]).catch((error) => error as { code: number; stderr: string });
    t.equal((saved as { code: number }).code, 1, 'backup save fails');
    t.match(
      (saved as { stderr: string }).stderr,
      /DISK_FULL: no space left on the device of .*b\.snap\.partial/,
    );

    const failure = await (async () => {
      for (let i = 0; i < 100; i++) {
        const status = (await (await fetch(`${base}/v1/status`)).json()) as {
          backups?: { lastFailure?: { error: string } };
        };
        if (status.backups?.lastFailure) return status.backups.lastFailure;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return undefined;
    })();
    t.match(failure?.error, /ENOSPC/, 'the service reports its failure in the status');
    const text = await run(process.execPath, [CLI, 'status', '--endpoints', base]);
    t.match(text.stdout, /backups: .*no success yet; last failure \d+ s ago by node1: .*ENOSPC/);
    // A backup runs every second: stop the node so that none is being written when the directory is read.
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    t.same(readdirSync(mountPoint), ['existing.snap'], 'no partial or damaged file is left');
    t.equal(
      readFileSync(join(mountPoint, 'existing.snap'), 'utf8'),
      'an older backup',
      'and the old one is intact',
    );
  },
);
