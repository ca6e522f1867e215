// The backup ledger in the state machine: claims of later intervals win, reports record the last success and failure, bad ops are refused.

import t from 'tap';
import type { Operation } from '../../storage/commands.js';
import { applyOps, Disk, ONE } from './helpers.js';

t.test('one claim per interval, in order; reports land in the ledger', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const revision = group.state.meta.revision;
  const [first, again, older, next] = await applyOps(group, [
    { type: 'backupClaim', slot: 10, node: 'n1' },
    { type: 'backupClaim', slot: 10, node: 'n2' },
    { type: 'backupClaim', slot: 9, node: 'n3' },
    { type: 'backupClaim', slot: 11, node: 'n2' },
  ] as Operation[]);
  t.equal(first!.ok, true);
  t.match(again, { ok: false, error: { code: 'CONFLICT' } }, 'the same interval twice: the second loses');
  t.match(older, { ok: false, error: { code: 'CONFLICT' } }, 'an older interval loses');
  t.equal(next!.ok, true);
  t.match(group.state.meta.backups, { slot: 11, claimedBy: 'n2' });
  await applyOps(group, [
    {
      type: 'backupReport',
      slot: 11,
      node: 'n2',
      ok: true,
      file: '/b/f.snap',
      revision: 5,
      bytes: 100,
      error: '',
    },
    {
      type: 'backupReport',
      slot: 12,
      node: 'n3',
      ok: false,
      file: '',
      revision: 0,
      bytes: 0,
      error: 'ENOSPC',
    },
  ] as Operation[]);
  t.match(group.state.meta.backups, {
    slot: 11,
    lastSuccess: { slot: 11, node: 'n2', file: '/b/f.snap', revision: 5, bytes: 100 },
    lastFailure: { slot: 12, node: 'n3', error: 'ENOSPC' },
  });
  t.equal(group.state.meta.revision, revision, 'no revision is used: no document changed');
});

t.test('malformed backup operations are refused and change nothing', async (t) => {
  const node = await new Disk(t, 'memory').open();
  const group = await node.bootstrapGroup(1, ONE);
  const results = await applyOps(group, [
    { type: 'backupClaim', slot: -1, node: 'n1' },
    { type: 'backupClaim', slot: 1, node: 'x'.repeat(65) },
    { type: 'backupReport', slot: 1, node: 'n1', ok: 'yes', file: '', revision: 0, bytes: 0, error: '' },
    {
      type: 'backupReport',
      slot: 1,
      node: 'n1',
      ok: true,
      file: 'f'.repeat(2000),
      revision: 0,
      bytes: 0,
      error: '',
    },
    { type: 'backupReport', slot: 1, node: 'n1', ok: true, file: '', revision: 0, bytes: 0, error: '' },
  ] as unknown as Operation[]);
  for (const result of results.slice(0, 4))
    t.match(result, { ok: false, error: { code: 'INVALID_ARGUMENT' } });
  t.match(results[4], { ok: false, error: { code: 'NOT_FOUND' } }, 'a report without a claim');
  t.equal(group.state.meta.backups, undefined);
});
