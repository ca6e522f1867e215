// The CLI on a node started with --auth: the first admin token, --token and $CONCLAVE_TOKEN, users, grants, tokens, realms, and the definition as YAML (round trip, diff, line numbers); TLS with a token; the open laptop node says it is open.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeTestCerts } from '../lib/certs.js';
import { collect, failsWith, jsonOf, runCli, spawnCli, usageError } from './cli-run.js';
import { waitFor } from './process-helpers.js';
import { startSingleNode } from './start-single.js';

const TOKEN_LINE = /the first cluster-admin token is in (\S+) \(mode 0600\)/;

async function adminTokenOf(node: { output(): string }): Promise<{ path: string; token: string }> {
  const path = await waitFor('the admin token line', () => TOKEN_LINE.exec(node.output())?.[1]);
  return { path, token: readFileSync(path, 'utf8').trim() };
}

t.test('a node started without --auth on loopback says it is open', async (t) => {
  const node = await startSingleNode(t);
  await waitFor('the auth line', () => (node.output().includes('OPEN') ? true : undefined));
  t.match(
    node.output(),
    /conclave: OPEN: clients need no token \(loopback only; start with --auth to require tokens\)/,
  );
  t.notMatch(node.output(), TOKEN_LINE, 'no admin token is made');
  const put = await runCli(t, ['put', 'default', 'k', '1', '--endpoints', node.url]);
  t.equal(put.code, 0, 'no token needed');
});

t.test('--auth and --insecure-no-auth together are refused at start', async (t) => {
  const result = await collect(
    spawnCli(t, ['start', '--single', '--auth', '--insecure-no-auth', '--data-dir', join(tmpdir(), 'never')]),
    [],
  );
  t.equal(result.code, 2);
  t.match(result.stderr, /insecure-no-auth.*contradicts --auth/);
});

t.test('the CLI against a --auth node', async (t) => {
  const node = await startSingleNode(t, ['--auth']);
  const { path, token } = await adminTokenOf(node);
  t.equal(path, join(node.dataDir, 'admin.token'), 'in the data directory');
  t.equal(statSync(path).mode & 0o777, 0o600, 'mode 0600');
  t.match(node.output(), /clients need a token/);
  const at = ['--endpoints', node.url];
  const as = [...at, '--token', token];

  t.test('without a token: UNAUTHENTICATED, saying how to send one', async (t) => {
    const line = failsWith(t, await runCli(t, ['get', 'default', 'k', ...at]), 'UNAUTHENTICATED', 'no token');
    t.match(line, /--token or \$CONCLAVE_TOKEN/);
    failsWith(
      t,
      await runCli(t, ['status', ...at, '--token', 'cnc_nonsense']),
      'UNAUTHENTICATED',
      'a bad token',
    );
    usageError(t, await runCli(t, ['status', ...at, '--token', ' ']), 'an empty token');
  });

  t.test('$CONCLAVE_TOKEN is the default token', async (t) => {
    process.env.CONCLAVE_TOKEN = token;
    try {
      t.equal((await runCli(t, ['status', ...at])).code, 0);
    } finally {
      delete process.env.CONCLAVE_TOKEN;
    }
  });

  t.test('users, grants, tokens and realms', async (t) => {
    t.equal((await runCli(t, ['realms', 'create', 'shop', '--max-value-bytes', '64', ...as])).code, 0);
    t.equal((await runCli(t, ['users', 'add', 'alice', ...as])).code, 0);
    t.equal((await runCli(t, ['grant', 'alice', 'shop', 'write', ...as])).code, 0);
    usageError(t, await runCli(t, ['grant', 'alice', ...as]), 'grant without a realm');
    const made = await runCli(t, ['tokens', 'create', 'alice', '--ttl', '1h', ...as]);
    t.equal(made.code, 0);
    const alice = made.stdout.trim();
    t.match(alice, /^cnc_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/, 'the token alone on stdout');
    t.match(made.stderr, /for alice, expires .*not shown again/);
    usageError(t, await runCli(t, ['tokens', 'create', 'alice', '--ttl', 'soon', ...as]), 'a bad --ttl');

    const aliceAs = [...at, '--token', alice];
    t.equal((await runCli(t, ['put', 'shop', 'a', '"small"', ...aliceAs])).code, 0, 'alice writes shop');
    failsWith(
      t,
      await runCli(t, ['put', 'default', 'a', '1', ...aliceAs]),
      'PERMISSION_DENIED',
      'but not default',
    );
    failsWith(
      t,
      await runCli(t, ['put', 'shop', 'b', `"${'x'.repeat(100)}"`, ...aliceAs]),
      'TOO_LARGE',
      'over the realm limit',
    );
    t.same(
      jsonOf<{ realms: string[] }>(t, await runCli(t, ['realms', 'list', '--json', ...aliceAs]), 'list')
        .realms,
      ['shop'],
    );
    failsWith(
      t,
      await runCli(t, ['users', 'list', ...aliceAs]),
      'PERMISSION_DENIED',
      'alice is no cluster admin',
    );

    const described = jsonOf<{ documents: number; settings: object; grants: object }>(
      t,
      await runCli(t, ['realms', 'describe', 'shop', '--json', ...as]),
      'describe',
    );
    t.match(described, {
      name: 'shop',
      documents: 1,
      settings: { maxValueBytes: 64 },
      grants: { alice: 'write' },
    });
    failsWith(t, await runCli(t, ['realms', 'delete', 'shop', ...as]), 'CONFLICT', 'a realm with documents');
    t.equal((await runCli(t, ['realms', 'set', 'shop', '--max-value-bytes', '0', ...as])).code, 0);
    t.equal(
      (await runCli(t, ['put', 'shop', 'b', `"${'x'.repeat(100)}"`, ...aliceAs])).code,
      0,
      'the node limit again',
    );

    const listed = jsonOf<{ tokens: { id: string; user: string }[] }>(
      t,
      await runCli(t, ['tokens', 'list', '--json', ...as]),
      'tokens',
    );
    t.notMatch(JSON.stringify(listed), /hash|cnc_/, 'no secret and no hash is listed');
    const id = listed.tokens.find((entry) => entry.user === 'alice')!.id;
    t.equal((await runCli(t, ['tokens', 'revoke', id, ...as])).code, 0);
    failsWith(t, await runCli(t, ['get', 'shop', 'a', ...aliceAs]), 'UNAUTHENTICATED', 'a revoked token');
    t.equal((await runCli(t, ['revoke', 'alice', 'shop', ...as])).code, 0);
    t.equal((await runCli(t, ['users', 'remove', 'alice', ...as])).code, 0);
  });

  t.test('definition export, apply: round trip, diff, version check, errors at their line', async (t) => {
    const dir = t.testdir({});
    const file = join(dir, 'def.yaml');
    const exported = await runCli(t, ['definition', 'export', ...as]);
    t.equal(exported.code, 0);
    writeFileSync(file, exported.stdout);
    t.match(exported.stdout, /^# Conclave realm definition, version \d+/);
    t.match(exported.stdout, /\nauth: true\n/);
    t.notMatch(exported.stdout, /cnc_|hash/, 'no token in it');
    const version = Number(/\nversion: (\d+)\n/.exec(exported.stdout)?.[1]);

    const same = await runCli(t, ['definition', 'apply', file, ...as]);
    t.equal(same.code, 0);
    t.match(same.stdout, /^no changes/);
    const after = await runCli(t, ['definition', 'export', ...as]);
    t.match(
      after.stdout,
      new RegExp(`\\nversion: ${version}\\n`),
      'a round trip changes nothing, not even the version',
    );

    writeFileSync(
      file,
      `${exported.stdout}  carol:\n    grants:\n      shop: read\n`.replace(
        'realms:\n',
        'realms:\n  reports:\n    maxValueBytes: 1000\n',
      ),
    );
    const dry = await runCli(t, ['definition', 'apply', file, '--dry-run', ...as]);
    t.equal(dry.code, 0);
    t.match(dry.stdout, /\+ realm reports \(maxValueBytes 1000\)\n\+ user carol \(shop read\)\n/);
    t.equal(
      jsonOf<{ version: number }>(t, await runCli(t, ['definition', 'export', '--json', ...as]), 'v').version,
      version,
      'a dry run applies nothing',
    );
    const applied = await runCli(t, ['definition', 'apply', file, ...as]);
    t.equal(applied.code, 0, applied.stderr);
    t.match(applied.stdout, new RegExp(`applied 2 changes: definition version ${version + 1}`));
    const stale = await runCli(t, [
      'definition',
      'apply',
      file.replace('def', 'def'),
      '--if-version',
      String(version),
      ...as,
    ]);
    t.equal(stale.code, 0, 'nothing to change: not refused');
    writeFileSync(file, exported.stdout.replace('auth: true', 'auth: true\nrealms_typo: {}'));
    const typo = usageError(t, await runCli(t, ['definition', 'apply', file, ...as]), 'an unknown field');
    t.match(typo, new RegExp(`${file.replaceAll('/', '\\/')}:6: unknown field "realms_typo"`));
    writeFileSync(
      file,
      'auth: true\nrealms:\n  default: {}\nusers:\n  dave:\n    grants:\n      nowhere: read\n',
    );
    t.match(
      usageError(t, await runCli(t, ['definition', 'apply', file, ...as]), 'a grant on no realm'),
      /:7: user dave has a grant on nowhere/,
    );
    writeFileSync(file, 'auth: true\nrealms: [\n');
    t.match(
      usageError(t, await runCli(t, ['definition', 'apply', file, ...as]), 'bad YAML'),
      /def\.yaml:3: not YAML/,
    );
    writeFileSync(file, 'auth: true\nusers:\n  eve:\n    grants:\n      default: owner\n');
    t.match(
      usageError(t, await runCli(t, ['definition', 'apply', file, ...as]), 'a bad level'),
      /:5: user eve: the grant on default must be one of read, write, admin/,
    );
    const moved = exported.stdout
      .replace(`version: ${version}`, `version: ${version - 1}`)
      .replace('realms:\n', 'realms:\n  late: {}\n');
    writeFileSync(file, moved);
    const conflict = await runCli(t, ['definition', 'apply', file, ...as]);
    t.equal(conflict.code, 1, 'a file exported at an older version is refused');
    t.match(conflict.stderr, /CONFLICT: the definition is at version \d+, not \d+/);
  });
});

t.test('TLS with a token: the CLI takes --ca and --token together', async (t) => {
  const certs = makeTestCerts(t);
  const node = await startSingleNode(
    t,
    ['--auth', '--tls-key-file', certs.node.keyFile, '--tls-cert-file', certs.node.certFile],
    true,
  );
  const { token } = await adminTokenOf(node);
  const ok = await runCli(t, [
    'users',
    'list',
    '--endpoints',
    node.url,
    '--ca',
    certs.caFile,
    '--token',
    token,
  ]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /admin\s+yes/);
  failsWith(
    t,
    await runCli(t, ['users', 'list', '--endpoints', node.url, '--ca', certs.caFile]),
    'UNAUTHENTICATED',
    'TLS without a token',
  );
});
