// `conclave realms list|create` against a real node, as a user types it (issue 13).

import t from 'tap';
import { failsWith, jsonOf, runCli, usageError } from './cli-run.js';
import { startSingleNode } from './start-single.js';

t.test('realms list and create', async (t) => {
  const node = await startSingleNode(t);
  const realms = (...args: string[]) => runCli(t, ['realms', ...args, '--endpoints', node.url]);

  const before = jsonOf<{ realms: string[]; revision: number }>(
    t,
    await realms('list', '--json'),
    'list --json',
  );
  t.same(before.realms, ['default'], 'a new cluster has the default realm');
  t.ok(before.revision >= 0);

  const created = await realms('create', 'shop');
  t.equal(created.code, 0, `create exits 0 (${created.stderr})`);
  t.match(created.stdout, /^created realm shop at revision \d+\n$/);
  const json = jsonOf<{ name: string; revision: number }>(
    t,
    await realms('create', 'orders', '--json'),
    'create --json',
  );
  t.equal(json.name, 'orders');
  t.ok(json.revision > 0);

  const text = await realms('list');
  t.equal(text.code, 0);
  t.equal(text.stdout, 'default\norders\nshop\n', 'one name per line, in order');
  const stale = jsonOf<{ realms: string[] }>(t, await realms('list', '--stale', '--json'), 'list --stale');
  t.same(stale.realms, ['default', 'orders', 'shop']);

  const put = await runCli(t, ['put', 'shop', 'cart/1', '{"items":2}', '--endpoints', node.url]);
  t.equal(put.code, 0, `the new realm takes documents (${put.stderr})`);

  failsWith(t, await realms('create', 'shop'), 'CONFLICT', 'creating a realm that exists');
  failsWith(t, await realms('create', 'Bad Name'), 'INVALID_ARGUMENT', 'a name the realm rules refuse');
  usageError(t, await realms('create'), 'create without a name');
  usageError(t, await realms('rename', 'a'), 'an unknown subcommand');
  usageError(t, await runCli(t, ['realms']), 'no subcommand');
});

t.test('realms --help: examples, and each starts with the command', async (t) => {
  for (const words of [['realms'], ['realms', 'list'], ['realms', 'create']]) {
    const name = ['conclave', ...words].join(' ');
    const help = await runCli(t, [...words, '--help']);
    t.equal(help.code, 0, `${name} --help exits 0`);
    const examples = (help.stdout.split('\nExamples:\n')[1] ?? '').split('\n\n')[0]!.split('\n');
    t.ok(
      examples.some((line) => line.startsWith(`  ${name} `)),
      `${name} --help has an example of ${name}`,
    );
    t.same(
      examples.filter((line) => line.trim() !== '' && !line.startsWith('  conclave')),
      [],
      `${name} --help: every example line starts with the command`,
    );
  }
});
