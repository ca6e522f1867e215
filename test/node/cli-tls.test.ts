// The CLI against a TLS node: --ca trusts its CA for every command; without it a clear TLS_ERROR at once, for reads and writes (issue 13).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeTestCerts } from '../lib/certs.js';
import { failsWith, jsonOf, runCli, spawnCli, usageError } from './cli-run.js';
import { startSingleNode } from './start-single.js';

/** A TLS failure must not wait out --timeout (set far above this). */
const AT_ONCE_MS = 10_000;
const TIMEOUT = ['--timeout', '30000'];

t.test('--ca', async (t) => {
  const certs = makeTestCerts(t);
  const node = await startSingleNode(
    t,
    ['--tls-key-file', certs.node.keyFile, '--tls-cert-file', certs.node.certFile],
    true,
  );
  const trusted = ['--endpoints', node.url, '--ca', certs.caFile];
  const untrusted = ['--endpoints', node.url, ...TIMEOUT];

  t.test('with --ca every kind of command works over https', async (t) => {
    const put = jsonOf<{ revision: number }>(
      t,
      await runCli(t, ['put', 'default', 'k', '{"over":"tls"}', '--json', ...trusted]),
      'put',
    );
    t.ok(put.revision > 0);
    t.same(
      jsonOf<{ value: unknown }>(t, await runCli(t, ['get', 'default', 'k', '--json', ...trusted]), 'get')
        .value,
      {
        over: 'tls',
      },
    );
    t.equal(
      jsonOf<{ source: string }>(t, await runCli(t, ['status', '--json', ...trusted]), 'status').source,
      'members',
    );
    t.equal((await runCli(t, ['realms', 'create', 'secure', ...trusted])).code, 0, 'realms create');
    t.same(
      jsonOf<{ realms: string[] }>(
        t,
        await runCli(t, ['realms', 'list', '--json', ...trusted]),
        'realms list',
      ).realms,
      ['default', 'secure'],
    );
    // watch goes through the client library (WebSocket), not HTTP.
    const watcher = spawnCli(t, [
      'watch',
      'default',
      '--from-revision',
      String(put.revision),
      '--json',
      ...trusted,
    ]);
    watcher.stdin!.end();
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      watcher.stderr!.on('data', (chunk: Buffer) => {
        err += chunk.toString();
      });
      watcher.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      watcher.on('close', (code) => reject(new Error(`watch exited ${code}: ${err}`)));
    });
    t.match(JSON.parse(line), { type: 'put', key: 'k', modRevision: put.revision }, 'watch over wss');
    process.kill(watcher.pid!, 'SIGINT');
  });

  t.test('without --ca: TLS_ERROR at once naming the problem, for reads, writes and watch', async (t) => {
    for (const args of [
      ['get', 'default', 'k'],
      ['put', 'default', 'k', '1'],
      ['status'],
      ['realms', 'list'],
      ['watch', 'default'],
    ]) {
      const result = await runCli(t, [...args, ...untrusted]);
      const line = failsWith(t, result, 'TLS_ERROR', args.join(' '));
      t.match(line, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', `${args[0]}: names the certificate problem`);
      t.match(line, '--ca', `${args[0]}: says what to do`);
      t.notMatch(line, 'may or may not have applied', `${args[0]}: nothing was sent`);
      t.ok(result.ms < AT_ONCE_MS, `${args.join(' ')}: at once (${Math.round(result.ms)} ms)`);
    }
  });

  t.test('a missing or unreadable --ca file is a usage error naming it, before any request', async (t) => {
    const missing = join(certs.dir, 'missing.pem');
    const line = usageError(
      t,
      await runCli(t, ['get', 'default', 'k', '--endpoints', node.url, '--ca', missing]),
      'missing',
    );
    t.match(line, missing, 'names the file');
    t.match(line, 'ENOENT');
    const notPem = join(certs.dir, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    t.match(
      usageError(
        t,
        await runCli(t, ['put', 'default', 'k', '1', '--endpoints', node.url, '--ca', notPem]),
        'not PEM',
      ),
      'no PEM certificate',
    );
    t.match(
      usageError(
        t,
        await runCli(t, ['watch', 'default', '--endpoints', node.url, '--ca', certs.dir]),
        'a directory',
      ),
      certs.dir,
    );
    usageError(t, await runCli(t, ['status', '--endpoints', node.url, '--ca']), '--ca without a file');
  });
});
