// The conclave CLI as a user runs it: the compiled cli.js as a child process against a real node on 127.0.0.1.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort, LocalCluster, peerAddress } from '../../scripts/local-cluster.js';
import { collect, failsWith, RUN_TIMEOUT_MS, type Run } from './cli-run.js';
import { runningCluster } from './running-cluster.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

// The node-backed tests below are independent: run them side by side (each CLI run is a
// process start, so one after the other they take over a minute).
t.jobs = 3;

/** Every child this file starts, killed by pid in teardown if still running. */
const children: ChildProcess[] = [];
t.teardown(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  }
});

/** The environment without CONCLAVE_ENDPOINTS, so that only what a test passes counts. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('CONCLAVE_ENDPOINTS' in extra)) delete env.CONCLAVE_ENDPOINTS;
  return env;
}

function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.push(child);
  return child;
}

function run(
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return collect(spawnCli(args, options.env), args, options.input);
}

function usageError(t: Test, result: Run, what: string): void {
  t.equal(result.code, 2, `${what}: exit 2`);
  t.equal(result.stdout, '', `${what}: nothing on stdout`);
  const lines = result.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `${what}: one line on stderr (${result.stderr.trimEnd()})`);
  t.match(lines[0], /^conclave: USAGE: \S/, `${what}: conclave: USAGE: message`);
}

function json<T = Record<string, unknown>>(t: Test, result: Run, what: string): T {
  t.equal(result.code, 0, `${what}: exit 0 (${result.stderr.trimEnd()})`);
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    t.fail(`${what}: stdout is one JSON document: ${(error as Error).message}: ${result.stdout}`);
    return {} as T;
  }
}

t.test('--help of every command exits 0 and shows an example', async (t) => {
  const commands = [
    [],
    ['start'],
    ['secret'],
    ['status'],
    ['get'],
    ['put'],
    ['patch'],
    ['del'],
    ['list'],
    ['watch'],
    ['members'],
    ['members', 'list'],
    ['members', 'add'],
    ['members', 'remove'],
    ['members', 'promote'],
    ['leader'],
    ['leader', 'transfer'],
    ['realms'],
    ['realms', 'list'],
    ['realms', 'create'],
  ];
  const results = await Promise.all(commands.map((words) => run([...words, '--help'])));
  commands.forEach((words, i) => {
    const name = ['conclave', ...words].join(' ');
    const result = results[i]!;
    t.equal(result.code, 0, `${name} --help exits 0`);
    t.match(result.stdout, /\nExamples:\n/, `${name} --help has examples`);
    t.match(result.stdout, new RegExp(`\\n  ${name} \\S`), `${name} --help has an example of ${name}`);
    const examples = (result.stdout.split('\nExamples:\n')[1] ?? '').split('\n\n')[0]!;
    t.same(
      examples.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('  conclave')),
      [],
      `${name} --help: every example line starts with the command (none wrapped)`,
    );
  });
});

t.test('a wrong command line is one line on stderr and exit 2, before any request', async (t) => {
  // No node listens on this port: a usage error must be found without trying it.
  const nowhere = `http://127.0.0.1:${await freePort()}`;
  usageError(t, await run(['get', 'default', '--endpoints', nowhere]), 'a missing KEY');
  const startHelp = await run(['start', '--help']);
  t.match(startHelp.stdout, /CONCLAVE_DATA_DIR/, 'start --help lists the CONCLAVE_* variables');
  t.match(startHelp.stdout, /CONCLAVE_CLIENT_LISTEN/);
  const bare = await run(['start']);
  t.equal(bare.code, 2, 'start without a name or --single: exit 2');
  t.match(bare.stderr, /--name.*--single/, 'start without a name suggests --single');
  usageError(
    t,
    await run(['put', 'default', 'k', '{oops', '--endpoints', nowhere]),
    'a VALUE that is not JSON',
  );
  usageError(
    t,
    await run(['put', 'default', 'k', '1', '--if-revision', '1', '--if-absent', '--endpoints', nowhere]),
    '--if-revision with --if-absent',
  );
  usageError(t, await run(['list', 'default', '--limit', '0', '--endpoints', nowhere]), '--limit 0');
  usageError(t, await run(['status', '--endpoints', 'ftp://127.0.0.1:1']), 'an endpoint that is not http');
  usageError(t, await run(['members', 'frobnicate']), 'an unknown subcommand');
  usageError(t, await run([]), 'no command');
});

t.test('against a running node', async (t) => {
  const cluster = new LocalCluster();
  t.teardown(() => cluster.stop());
  await cluster.create(1);
  cluster.startAll();
  const node = await cluster.waitForLeader();
  const base = node.url;
  const conclave = (args: readonly string[], input?: string) =>
    run([...args, '--endpoints', base], input === undefined ? {} : { input });

  t.test('put, get, patch, del and list round trip', async (t) => {
    const put = json<{ revision: number }>(
      t,
      await conclave(['put', 'default', 'users/ada', '{"name":"Ada","langs":["en"]}', '--json']),
      'put --json',
    );
    t.ok(put.revision > 0, 'put answers its revision');

    const text = await conclave(['get', 'default', 'users/ada']);
    t.equal(text.code, 0);
    t.match(text.stdout, `modRevision ${put.revision}`, 'get shows the revision');
    t.same(JSON.parse(text.stdout.slice(text.stdout.indexOf('\n') + 1)), { name: 'Ada', langs: ['en'] });

    const patched = json<{ revision: number }>(
      t,
      await conclave([
        'patch',
        'default',
        'users/ada',
        '{"langs":null,"born":1815}',
        '--if-revision',
        String(put.revision),
        '--json',
      ]),
      'patch --json',
    );
    t.ok(patched.revision > put.revision, 'the patch is a later revision');
    const document = json<{ key: string; value: unknown; modRevision: number; version: number }>(
      t,
      await conclave(['get', 'default', 'users/ada', '--json']),
      'get --json',
    );
    t.same(document.value, { name: 'Ada', born: 1815 }, 'the merge patch applied');
    t.equal(document.modRevision, patched.revision);
    t.equal(document.version, 2);
    const stale = json<{ value: unknown }>(
      t,
      await conclave(['get', 'default', 'users/ada', '--stale', '--json']),
      'get --stale',
    );
    t.same(stale.value, document.value, 'a stale read of the only node sees the same');

    const fromStdin = await conclave(['put', 'default', 'users/bob', '-', '--if-absent'], '{"name":"Bob"}\n');
    t.equal(fromStdin.code, 0, `put - reads stdin (${fromStdin.stderr})`);
    t.match(fromStdin.stdout, /^put users\/bob at revision \d+\n$/);
    // Keys with '/', spaces and '%' survive the URL.
    const odd = 'users/c d%2F/e';
    t.equal((await conclave(['put', 'default', odd, '"odd"'])).code, 0);
    t.same(
      json<{ key: string }>(t, await conclave(['get', 'default', odd, '--json']), 'get of an odd key').key,
      odd,
    );

    const page = json<{ documents: { key: string }[]; more: boolean; next: string | null }>(
      t,
      await conclave(['list', 'default', 'users/', '--limit', '2', '--json']),
      'list --json',
    );
    t.same(
      page.documents.map((d) => d.key),
      ['users/ada', 'users/bob'],
      'the first page in key order',
    );
    t.equal(page.more, true);
    t.equal(page.next, 'users/bob');
    const all = json<{ documents: { key: string }[]; more: boolean }>(
      t,
      await conclave(['list', 'default', 'users/', '--limit', '1', '--all', '--json']),
      'list --all --json',
    );
    t.same(
      all.documents.map((d) => d.key),
      ['users/ada', 'users/bob', odd],
      'every page, followed through next',
    );
    t.equal(all.more, false);
    const table = await conclave(['list', 'default', 'users/', '--after', 'users/ada']);
    t.equal(table.code, 0);
    t.match(table.stdout, /^KEY +MOD REV +VERSION +VALUE\n/, 'a table with a header');
    t.match(table.stdout, /\nusers\/bob +\d+ +1 +\{"name":"Bob"\}\n/);
    t.notMatch(table.stdout, 'users/ada', '--after skips up to that key');

    failsWith(
      t,
      await conclave(['del', 'default', 'users/ada', '--if-revision', String(put.revision)]),
      'CONFLICT',
      'del at an old revision',
    );
    const deleted = json<{ revision: number }>(
      t,
      await conclave(['del', 'default', 'users/ada', '--if-revision', String(patched.revision), '--json']),
      'del --json',
    );
    t.ok(deleted.revision > patched.revision);
    failsWith(t, await conclave(['get', 'default', 'users/ada']), 'NOT_FOUND', 'get of a deleted key');
  });

  t.test('errors are one line with the API code, exit 1', async (t) => {
    failsWith(t, await conclave(['get', 'default', 'no-such-key']), 'NOT_FOUND', 'get of a missing key');
    failsWith(
      t,
      await conclave(['get', 'default', 'no-such-key', '--json']),
      'NOT_FOUND',
      'the same with --json',
    );
    failsWith(t, await conclave(['put', 'nowhere', 'k', '1']), 'NOT_FOUND', 'a put to an unknown realm');
    failsWith(
      t,
      await conclave(['patch', 'default', 'no-such-key', '{}']),
      'NOT_FOUND',
      'a patch of a missing key',
    );
    const dead = `http://127.0.0.1:${await freePort()}`;
    failsWith(t, await run(['status', '--endpoints', dead]), 'UNAVAILABLE', 'no endpoint answers');
  });

  t.test('endpoints: tried in order until one answers; CONCLAVE_ENDPOINTS is the default', async (t) => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    t.equal((await conclave(['put', 'default', 'failover', '"here"'])).code, 0);
    const viaSecond = json<{ value: unknown }>(
      t,
      await run(['get', 'default', 'failover', '--json', '--endpoints', `${dead},${base}`]),
      'a dead first endpoint',
    );
    t.equal(viaSecond.value, 'here');
    const viaEnv = json<{ value: unknown }>(
      t,
      await run(['get', 'default', 'failover', '--json'], { env: cleanEnv({ CONCLAVE_ENDPOINTS: base }) }),
      'endpoints from the environment',
    );
    t.equal(viaEnv.value, 'here');

    // A first endpoint that accepts connections and never answers (a stopped process).
    const hung = createServer(() => {});
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      hung.closeAllConnections?.();
      hung.close();
    });
    const hungUrl = `http://127.0.0.1:${(hung.address() as { port: number }).port}`;
    const started = Date.now();
    const pastHung = await run([
      'get',
      'default',
      'failover',
      '--json',
      '--timeout',
      '30000',
      '--endpoints',
      `${hungUrl},${base}`,
    ]);
    t.equal(
      json<{ value: unknown }>(t, pastHung, 'a hung first endpoint').value,
      'here',
      'a read moves on from a hung endpoint (before, it waited out --timeout and failed)',
    );
    t.comment(`answered past the hung endpoint after ${Date.now() - started} ms`);
  });

  t.test('status shows the members, the leader, the term and the commit index', async (t) => {
    const status = json<{
      source: string;
      leader: string;
      term: number;
      commitIndex: number;
      members: { name: string; role: string; state: string; matchIndex: number | null }[];
    }>(t, await conclave(['status', '--json']), 'status --json');
    t.equal(status.source, 'members', 'the admin view');
    t.equal(status.leader, node.name);
    t.ok(status.term > 0);
    t.ok(status.commitIndex > 0);
    t.same(
      status.members.map((m) => [m.name, m.role, m.state]),
      [[node.name, 'voter', 'leader']],
    );
    t.equal(status.members[0]!.matchIndex, status.commitIndex, 'the leader matches its own commit index');
    const text = await conclave(['status']);
    t.equal(text.code, 0);
    t.match(text.stdout, `leader ${node.name}  term ${status.term}`);
    t.match(text.stdout, /\nNAME +ID +ROLE +STATE +LEADER +MATCH +LAG +LAG MS +LAST CONTACT +REACHABLE\n/);
    t.match(
      text.stdout,
      new RegExp(`\\n${node.name} +\\S+ +voter +leader +\\* +\\d+ +0 +0 +- +yes\\n`),
      'the leader marked, not behind, reachable',
    );
  });

  t.test('members list --json', async (t) => {
    const view = json<{ leader: string; members: { name: string; role: string }[] }>(
      t,
      await conclave(['members', 'list', '--json']),
      'members list --json',
    );
    t.equal(view.leader, node.name);
    t.same(
      view.members.map((m) => [m.name, m.role]),
      [[node.name, 'voter']],
    );
    const text = await conclave(['members', 'list']);
    t.equal(text.code, 0);
    t.match(text.stdout, /\nNAME +ID +ROLE +ADDRESS +STATE/);
  });

  t.test('watch prints one JSON line per event', async (t) => {
    const first = json<{ revision: number }>(
      t,
      await conclave(['put', 'default', 'w/a', '1', '--json']),
      'put',
    );
    const second = json<{ revision: number }>(
      t,
      await conclave(['put', 'default', 'w/b', '{"x":2}', '--json']),
      'put',
    );
    const third = json<{ revision: number }>(t, await conclave(['del', 'default', 'w/a', '--json']), 'del');
    // From a revision already written, so the events are there whenever the watch starts.
    const watcher = spawnCli([
      'watch',
      'default',
      'w/',
      '--from-revision',
      String(first.revision),
      '--json',
      '--endpoints',
      base,
    ]);
    watcher.stdin!.end();
    const lines = await linesUntil(watcher, (line) => line.includes(`"modRevision":${third.revision}`));
    const events = lines.map(
      (line) => JSON.parse(line) as { type: string; key: string; value: unknown; modRevision: number },
    );
    t.same(
      events.filter((e) => e.modRevision >= second.revision),
      [
        { type: 'put', key: 'w/b', value: { x: 2 }, modRevision: second.revision },
        { type: 'delete', key: 'w/a', value: null, modRevision: third.revision },
      ],
      'the put and the delete, in order',
    );
    const exit = new Promise<number | null>((resolve) => watcher.on('close', (code) => resolve(code)));
    process.kill(watcher.pid!, 'SIGINT');
    t.equal(await exit, 0, 'Ctrl-C ends the watch cleanly');
  });
});

t.test('status falls back to the node status where the admin service does not run', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const peer = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const base = `http://127.0.0.1:${await freePort()}`;
  const node = spawnCli([
    'start',
    '--name',
    'solo',
    '--data-dir',
    dataDir,
    '--peer-listen',
    peer,
    '--client-listen',
    base.slice('http://'.length),
    '--initial-cluster',
    `solo=${peer}`,
    '--services',
    'raft,api',
  ]);
  node.stdin!.end();
  t.teardown(() => {
    if (node.exitCode === null && node.signalCode === null && node.pid) process.kill(node.pid, 'SIGKILL');
  });
  await linesUntil(node, (line) => line.includes('serving http://'));
  // Ready once it leads: the status of a node that has not elected itself yet names no leader.
  t.equal((await run(['put', 'default', 'k', '1', '--endpoints', base])).code, 0, 'the node serves writes');

  const status = json<{
    source: string;
    adminError: { code: string };
    node: { name: string; state: string };
    leader: string;
    members: { name: string; role: string; state: string; matchIndex: number | null }[];
  }>(t, await run(['status', '--json', '--endpoints', base]), 'status --json');
  t.equal(status.source, 'status', "the node's own status");
  t.equal(status.adminError.code, 'PERMISSION_DENIED', 'because the admin route refused');
  t.same(status.node, { ...status.node, name: 'solo', state: 'leader' });
  t.equal(status.leader, 'solo');
  t.same(
    status.members.map((m) => [m.name, m.role, m.state]),
    [['solo', 'voter', 'leader']],
  );
  const text = await run(['status', '--endpoints', base]);
  t.equal(text.code, 0);
  t.match(text.stdout, /\nsolo +\S+ +voter +leader +\* /, 'the table, from what the node knows');
  failsWith(t, await run(['members', 'list', '--endpoints', base]), 'PERMISSION_DENIED', 'members list');
});

/** Lines of the child's stdout until one satisfies `done` (or the child exits: then it fails). */
function linesUntil(child: ChildProcess, done: (line: string) => boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let buffered = '';
    let stderr = '';
    const timer = setTimeout(
      () => reject(new Error(`no matching line within ${RUN_TIMEOUT_MS} ms: ${lines}`)),
      RUN_TIMEOUT_MS,
    );
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        if (done(line)) {
          clearTimeout(timer);
          resolve(lines);
          return;
        }
        newline = buffered.indexOf('\n');
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`the watch exited (${code}) early: ${stderr}`));
    });
  });
}

/**
 * A cluster of two founders (a one-member cluster runs no mesh, so nothing can join it): a
 * third node joins, `members add` waits for it to catch up and promotes it, `members remove`
 * takes it out again, and `leader transfer` hands leadership to the other founder.
 */
async function membershipThroughTheCli(t: Test): Promise<void> {
  const cluster = await runningCluster(t, 2);
  const leader = await cluster.waitForLeader();
  const endpoints = ['--endpoints', cluster.nodes.map((n) => n.url).join(',')];
  const joiner = await cluster.addJoiner();
  cluster.start(joiner);

  const add = await run([
    'members',
    'add',
    joiner.name,
    '--peer',
    peerAddress(joiner),
    '--json',
    ...endpoints,
  ]);
  const added = json<{ leader: string; members: { name: string; role: string }[] }>(
    t,
    add,
    'members add --json',
  );
  t.same(
    added.members.map((m) => [m.name, m.role]).sort(),
    cluster.nodes.map((n) => [n.name, 'voter']).sort(),
    `${joiner.name} was added and promoted to voter`,
  );
  t.match(add.stderr, `${joiner.name}: added as a learner\n`, 'progress on stderr');

  const removed = json(
    t,
    await run(['members', 'remove', joiner.name, '--json', ...endpoints]),
    'members remove',
  );
  t.same(removed, { name: joiner.name, removed: true });
  const listed = json<{ members: { name: string }[] }>(
    t,
    await run(['members', 'list', '--json', ...endpoints]),
    'members list',
  );
  t.same(
    listed.members.map((m) => m.name).sort(),
    [cluster.nodes[0]!.name, cluster.nodes[1]!.name].sort(),
    `${joiner.name} is no longer a member`,
  );
  await cluster.kill(joiner);

  const nobody = await run(['leader', 'transfer', '--to', 'nx', ...endpoints]);
  t.not(nobody.code, 0, 'leader transfer to a name that is no member fails');
  t.match(nobody.stderr, /NOT_FOUND.*nx/, 'with NOT_FOUND naming it (not CONFLICT)');

  const other = cluster.nodes.find((n) => n !== leader && n !== joiner)!;
  const transferred = json<{ leader: string; term: number }>(
    t,
    await run(['leader', 'transfer', '--to', other.name, '--json', ...endpoints]),
    'leader transfer --json',
  );
  t.equal(transferred.leader, other.name, `${other.name} leads`);
}

t.test(
  'members add, remove and list, leader transfer: a node joins and leaves through the CLI',
  async (t) => {
    await membershipThroughTheCli(t);
  },
);
