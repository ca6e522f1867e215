// Backups on real node processes: `backup save` while clients write, `backup verify` on good and damaged files, `restore` from a file and from a directory.

import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { type ClusterNode, freePort } from '../../scripts/local-cluster.js';
import { cli, listAll, waitFor } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';

const _CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const _run = promisify(execFile);

interface Doc {
  key: string;
  modRevision: number;
  value: { writer: number; i: number };
}

interface Summary {
  file: string;
  clusterId: string;
  index: number;
  revision: number;
  bytes: number;
  sha256: string;
  node: string;
}

/** Flips one byte of `file` at `offset` (a copy is made first when `copyTo` is given). */
function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file);
  bytes[offset] = bytes[offset]! ^ 0xff;
  writeFileSync(file, bytes);
}

t.test('backup save while 4 clients write; verify; restore from a file and from a directory', async (t) => {
  const cluster = await runningCluster(t, 3);
  const endpoints = cluster.nodes.map((n) => n.url).join(',');
  const leader = await cluster.waitForLeader();
  const dir = join(cluster.nodes[0]!.dataDir, '..', 'backups');
  mkdirSync(dir);

  // Four writers, each over its own keys, recording every acknowledged write.
  const history = new Map<string, { revision: number; value: { writer: number; i: number } }[]>();
  let writing = true;
  t.teardown(() => {
    writing = false;
  });
  const writer = async (w: number) => {
    const node = cluster.nodes[w % 3]!;
    for (let i = 0; writing; i++) {
      const key = `w${w}-${i % 300}`;
      const value = { writer: w, i };
      const response = await fetch(`${node.url}/v1/realms/default/kv/${key}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(value),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await response.json()) as { revision?: number };
      if (response.status !== 200 || body.revision === undefined) throw new Error(JSON.stringify(body));
      const writes = history.get(key) ?? [];
      writes.push({ revision: body.revision, value });
      history.set(key, writes);
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await waitFor('a first 1,000 writes', async () =>
    [...history.values()].reduce((n, w) => n + w.length, 0) >= 1000 ? true : undefined,
  );

  const file = join(dir, 'first.snap');
  const saved = await cli(['backup', 'save', file, '--endpoints', endpoints, '--json']);
  t.equal(saved.code, 0, `backup save: ${saved.stderr}`);
  const summary = JSON.parse(saved.stdout) as Summary;
  t.not(summary.node, leader.name, 'taken from a follower, not the leader');
  t.match(saved.stderr, /bytes \(100\.0%\), [\d.]+ MB\/s in/, 'a progress line with bytes, percent and rate');
  const during = [...history.values()].reduce((n, w) => n + w.length, 0);
  await waitFor('writes go on after the backup', async () =>
    [...history.values()].reduce((n, w) => n + w.length, 0) > during + 100 ? true : undefined,
  );
  const again = await cli(['backup', 'save', file, '--endpoints', endpoints]);
  t.equal(again.code, 1, 'an existing file is never written over');
  t.match(again.stderr, /FILE_EXISTS/);
  t.same(readdirSync(dir), ['first.snap'], 'and no partial file is left');
  const nowhere = await cli(['backup', 'save', join(dir, 'missing', 'x.snap'), '--endpoints', endpoints]);
  t.equal(nowhere.code, 1, 'a directory that does not exist is refused before the node writes anything');
  t.match(nowhere.stderr, /INVALID_ARGUMENT: cannot write into .*missing \(ENOENT\)/);

  const verified = await cli(['backup', 'verify', file, '--json']);
  t.equal(verified.code, 0);
  const check = JSON.parse(verified.stdout) as Summary;
  t.equal(check.sha256, summary.sha256, 'verify hashes the same bytes');
  t.equal(check.revision, summary.revision);

  // Damaged copies: one flipped byte, cut short, a newer format.
  const flipped = join(dir, '..', 'flipped.snap');
  copyFileSync(file, flipped);
  flipByte(flipped, Math.floor(summary.bytes / 2));
  const badChunk = await cli(['backup', 'verify', flipped]);
  t.equal(badChunk.code, 1);
  t.match(badChunk.stderr, /SNAPSHOT_CORRUPT: .*chunk \d+/, 'names the chunk');
  const truncated = join(dir, '..', 'truncated.snap');
  copyFileSync(file, truncated);
  truncateSync(truncated, summary.bytes - 10);
  t.match((await cli(['backup', 'verify', truncated])).stderr, /SNAPSHOT_TRUNCATED/);
  const newer = join(dir, '..', 'newer.snap');
  copyFileSync(file, newer);
  const bytes = readFileSync(newer);
  bytes.writeUInt32BE(99, 8);
  writeFileSync(newer, bytes);
  t.match((await cli(['backup', 'verify', newer])).stderr, /SNAPSHOT_NEWER_FORMAT/);

  // A second and a third backup; the third (the newest) is damaged.
  const second = join(dir, 'second.snap');
  t.equal((await cli(['backup', 'save', second, '--endpoints', endpoints])).code, 0);
  const third = join(dir, 'third.snap');
  t.equal((await cli(['backup', 'save', third, '--endpoints', endpoints])).code, 0);
  writing = false;
  await Promise.all(writers);
  const thirdSummary = JSON.parse((await cli(['backup', 'verify', third, '--json'])).stdout) as Summary;
  const secondSummary = JSON.parse((await cli(['backup', 'verify', second, '--json'])).stdout) as Summary;
  t.ok(thirdSummary.revision > secondSummary.revision, 'the third is the newest');
  flipByte(third, Math.floor(thirdSummary.bytes / 2));

  // Restore the first into a new data directory, start it, and compare with the write history.
  const restoredNode = async (name: string): Promise<ClusterNode> => {
    const node: ClusterNode = {
      name,
      peerPort: await freePort(),
      clientPort: await freePort(),
      dataDir: join(dir, '..', name),
      url: '',
      child: undefined,
    };
    return Object.assign(node, { url: `http://127.0.0.1:${node.clientPort}` });
  };
  const r1 = await restoredNode('r1');
  const notEmpty = await cli(['restore', file, '--data-dir', dir, '--name', 'r1']);
  t.equal(notEmpty.code, 1);
  t.match(notEmpty.stderr, /DATA_DIR_NOT_EMPTY/);
  t.same(readdirSync(dir).sort(), ['first.snap', 'second.snap', 'third.snap'], 'the directory is untouched');
  const restored = await cli([
    'restore',
    file,
    '--data-dir',
    r1.dataDir,
    '--name',
    r1.name,
    '--peer-listen',
    `/ip4/127.0.0.1/tcp/${r1.peerPort}`,
    '--json',
  ]);
  t.equal(restored.code, 0, `restore: ${restored.stderr}`);
  const restoreReport = JSON.parse(restored.stdout) as { clusterId: string };
  t.not(restoreReport.clusterId, summary.clusterId, 'a new cluster id');
  r1.initialCluster = `${r1.name}=/ip4/127.0.0.1/tcp/${r1.peerPort}`;
  cluster.nodes.push(r1);
  cluster.start(r1);
  const docs = await waitFor('the restored node serves', () => listAll<Doc>(r1.url));
  let expectedCount = 0;
  let matching = 0;
  for (const [key, writes] of history) {
    const last = writes.filter((w) => w.revision <= summary.revision).at(-1);
    if (last === undefined) continue;
    expectedCount++;
    const doc = docs.get(key);
    if (doc?.modRevision === last.revision && doc.value.i === last.value.i) matching++;
  }
  t.ok(expectedCount > 100, `the backup holds many keys (${expectedCount})`);
  t.equal(docs.size, expectedCount, 'exactly the keys written at or below its revision');
  t.equal(matching, expectedCount, 'each with the value and revision of its last write at or below it');

  // From the directory: the newest file that verifies (the second; the third is damaged).
  const r2 = await restoredNode('r2');
  const fromDir = await cli(['restore', dir, '--data-dir', r2.dataDir, '--name', r2.name, '--json']);
  t.equal(fromDir.code, 0, `restore from a directory: ${fromDir.stderr}`);
  const dirReport = JSON.parse(fromDir.stdout) as {
    backup: { file: string; revision: number };
    rejected: { file: string; code: string }[];
  };
  t.equal(dirReport.backup.file, second, 'the newest good file');
  t.same(
    dirReport.rejected.map((r) => [r.file, r.code]),
    [[third, 'SNAPSHOT_CORRUPT']],
    'the damaged newer one is skipped, and named',
  );
});
