// The realm definition of realms placed in other raft groups (issue 20): settings, describe, grants, export and apply, delete; through a node that does not run the group.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { Client, ConclaveError } from '../../src/client/index.js';
import { cli } from './process-helpers.js';
import { runningCluster } from './running-cluster.js';

t.test('realms set, describe, grant, definition export/apply and delete of a placed realm', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [a, b] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  // Every command goes through a, which does not run group 2.
  const admin = (...args: string[]) => cli([...args, '--endpoints', a.url]);
  t.equal((await admin('groups', 'add', '--members', b.name)).code, 0, `group 2 on ${b.name} alone`);
  t.equal((await admin('realms', 'create', 'shop', '--group', '2')).code, 0);
  t.equal((await admin('realms', 'create', 'solo', '--group', '2')).code, 0);

  const set = await admin('realms', 'set', 'shop', '--max-value-bytes', '100');
  t.equal(set.code, 0, `realms set of a placed realm (${set.stderr.trim()})`);
  const client = new Client({ endpoints: [a.url] });
  t.teardown(() => client.close());
  await t.rejects(
    client.put('shop', 'big', { text: 'x'.repeat(200) }),
    { code: 'TOO_LARGE' },
    'the setting holds',
  );
  await client.put('shop', 'small', { n: 1 });
  const described = await admin('realms', 'describe', 'shop');
  t.equal(described.code, 0, described.stderr);
  t.match(described.stdout, /realm shop: 1 document/, 'describe counts its document');
  t.match(described.stdout, /max document size: 100 bytes/, 'and shows its setting');

  t.equal((await admin('users', 'add', 'alice')).code, 0);
  const granted = await admin('grant', 'alice', 'shop', 'write');
  t.equal(granted.code, 0, `a grant on a placed realm (${granted.stderr.trim()})`);
  t.match((await admin('realms', 'describe', 'shop')).stdout, /alice\s+write/, 'describe lists the grant');

  // The export holds the grant; applying it again changes nothing and is accepted.
  const exported = await admin('definition', 'export');
  t.equal(exported.code, 0, exported.stderr);
  t.match(exported.stdout, /shop: write/, 'the export holds the grant on shop');
  const file = join(t.testdir(), 'def.yaml');
  writeFileSync(file, exported.stdout);
  const applied = await admin('definition', 'apply', file);
  t.equal(applied.code, 0, `the export applies (${applied.stderr.trim()})`);
  // A file that changes the placed realm's setting changes it in its group.
  t.match(exported.stdout, /maxValueBytes: 100/, 'the export holds the setting of shop');
  writeFileSync(file, exported.stdout.replace('maxValueBytes: 100', 'maxValueBytes: 300'));
  const changed = await admin('definition', 'apply', file);
  t.equal(changed.code, 0, `a changed setting applies (${changed.stderr.trim()})`);
  t.match((await admin('realms', 'describe', 'shop')).stdout, /max document size: 300 bytes/, 'in group 2');
  await client.put('shop', 'mid', { text: 'x'.repeat(200) });
  await client.delete('shop', 'mid');
  // A file without the placed realm does not delete it: refused.
  const again = (await admin('definition', 'export')).stdout;
  t.match(again, /\n {2}solo:/, 'the export names solo');
  writeFileSync(file, again.replace(/\n {2}solo:[^\n]*(\n {4}[^\n]*)*/, ''));
  const lacking = await admin('definition', 'apply', file);
  t.equal(lacking.code, 1, 'a file without a placed realm is refused');
  t.match(lacking.stderr, /CONFLICT[\s\S]*solo lives in another raft group/, lacking.stderr.trim());

  const busy = await admin('realms', 'delete', 'shop');
  t.equal(busy.code, 1, 'a placed realm with documents is not deleted');
  t.match(busy.stderr, /CONFLICT[\s\S]*holds 1 document/, busy.stderr.trim());
  await client.delete('shop', 'small');
  const deleted = await admin('realms', 'delete', 'shop');
  t.equal(deleted.code, 0, `an empty placed realm is deleted (${deleted.stderr.trim()})`);
  t.notMatch((await admin('realms', 'list')).stdout, /shop/, 'realms list no longer shows it');
  t.match((await admin('realms', 'describe', 'shop')).stderr, /NOT_FOUND/, 'describe: NOT_FOUND');
  const users = await (await fetch(`${a.url}/v1/users`)).json();
  t.same(
    (users as { users: { alice: { grants: object } } }).users.alice.grants,
    {},
    "alice's grant went with it",
  );
  t.match((await admin('realms', 'delete', 'shop')).stderr, /NOT_FOUND/, 'deleting it again: NOT_FOUND');
  t.equal((await admin('realms', 'create', 'shop')).code, 0, 'the name can be used again (in group 1)');
  await client.put('shop', 'again', 1);

  // With group 2's only member gone, describing its other realm says so instead of NOT_FOUND.
  await cluster.kill(b, 'SIGKILL');
  const gone = await admin('realms', 'describe', 'solo', '--timeout', '4000');
  t.equal(gone.code, 1);
  t.match(gone.stderr, /UNAVAILABLE[\s\S]*raft group/, `an unreachable group (${gone.stderr.trim()})`);
  const quick = new Client({ endpoints: [a.url], requestTimeoutMs: 3000 });
  t.teardown(() => quick.close());
  const rejected = await quick.put('solo', 'k', 1).catch((error: unknown) => error);
  t.ok(rejected instanceof ConclaveError, 'and writes to it fail');
});
