// Reading a backup directory while it changes: files renamed or pruned between the directory read and their stat are skipped, not reported.

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { listBackups, newestGoodBackup } from '../../src/backup-file.js';
import { writeSnapshotFile } from '../../storage/snapshot-file.js';

async function* noRecords(): AsyncIterable<readonly [Uint8Array, Uint8Array]> {}

async function backupAt(dir: string, name: string, revision: number): Promise<void> {
  await writeSnapshotFile(
    join(dir, name),
    {
      clusterId: 'c1',
      group: 1,
      index: revision,
      term: 1,
      membership: { voters: ['n1'], learners: [] },
      revision,
      createdAtMs: 0,
    },
    noRecords(),
    4096,
  );
}

t.test(
  'a file gone between readdir and stat is skipped; partial and bad files are still shown',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'conclave-backup-dir-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    await backupAt(dir, 'a-r5.snap', 5);
    writeFileSync(join(dir, 'b-r9.snap.partial'), 'half written');
    writeFileSync(join(dir, 'c-r7.snap'), 'not a snapshot');
    // A dangling link stats as ENOENT: exactly what a file renamed or pruned after the readdir gives.
    symlinkSync(join(dir, 'renamed-away.snap'), join(dir, 'd-r8.snap'));
    symlinkSync(join(dir, 'pruned.snap.partial'), join(dir, 'e-r10.snap.partial'));

    for (const verify of [false, true]) {
      const entries = await listBackups(dir, { verify });
      t.same(
        entries.map((e) => [e.name, e.state]),
        [
          ['a-r5.snap', verify ? 'verified' : 'ok'],
          ['b-r9.snap.partial', 'incomplete'],
          ['c-r7.snap', 'bad'],
        ],
        `verify=${verify}: the vanished files are not listed`,
      );
    }
    const { summary, rejected } = await newestGoodBackup(dir);
    t.equal(summary.revision, 5);
    t.same(
      rejected.map((r) => r.file),
      [join(dir, 'c-r7.snap')],
      'only the bad file is rejected; the vanished one is not named',
    );
  },
);

t.test('a directory of vanished files only holds no backup', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-backup-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(join(dir, 'gone.snap'), join(dir, 'x.snap'));
  await t.rejects(newestGoodBackup(dir), { code: 'NO_BACKUP', message: /holds no backup file/ });
  t.same(await listBackups(dir, { verify: false }), []);
});
