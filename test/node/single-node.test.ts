// A real single node as a child process: the CLI starts it, the HTTP API serves it, SIGTERM stops it, data survives.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

/** Starts a node and resolves once it prints where it serves. */
function startNode(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node did not start within 15 s: ${output}`));
    }, 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('serving http://')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before serving: ${output}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

const json = { 'content-type': 'application/json' };

t.test('a client still sending an oversized body gets its 413, not a reset', async (t) => {
  // The node answers 413 as soon as it reads the declared length; had it closed the connection
  // then, a client still writing would get EPIPE instead of the answer (138 of 200 did).
  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-single-'));
  const port = await freePort();
  const node = await startNode(dataDir, port);
  t.teardown(() => {
    if (node.exitCode === null && node.pid) process.kill(node.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  let answered = 0;
  const failures: string[] = [];
  for (let i = 0; i < 30; i++) {
    try {
      const tooBig = await fetch(`http://127.0.0.1:${port}/v1/realms/default/kv/x`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify('x'.repeat(2 * 1024 * 1024)),
      });
      if (tooBig.status === 413 && ((await tooBig.json()) as { code: string }).code === 'TOO_LARGE')
        answered++;
    } catch (error) {
      failures.push(String((error as { cause?: { code?: string } }).cause?.code ?? error));
    }
  }
  t.equal(answered, 30, `every oversized put is answered 413 (failures: ${failures.join(', ') || 'none'})`);
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, 'and the node serves on');
});

t.test('a single node serves writes and reads, stops on SIGTERM, and keeps its data', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-single-'));
  const children: ChildProcess[] = [];
  t.teardown(() => {
    for (const child of children)
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const first = await startNode(dataDir, port);
  children.push(first);

  const put = await fetch(`${base}/v1/realms/default/kv/greeting`, {
    method: 'PUT',
    headers: json,
    body: '{"text":"hello"}',
  });
  t.equal(put.status, 200);
  const { revision } = (await put.json()) as { revision: number };
  t.ok(revision > 0, `the write answers its revision (${revision})`);
  const conflict = await fetch(`${base}/v1/realms/default/kv/greeting?ifAbsent=true`, {
    method: 'PUT',
    headers: json,
    body: '1',
  });
  t.equal(conflict.status, 409, 'ifAbsent on an existing key conflicts');
  t.equal(((await conflict.json()) as { code: string }).code, 'CONFLICT');
  const status = (await (await fetch(`${base}/v1/status`)).json()) as {
    state: string;
    leader: string;
    name: string;
  };
  t.equal(status.state, 'leader', 'the single node leads');
  t.equal(status.leader, status.name);
  t.equal((await fetch(`${base}/readyz`)).status, 200, 'ready');

  // Bad requests answer their documented codes and change nothing.
  const before = ((await (await fetch(`${base}/v1/status`)).json()) as { revision: number }).revision;
  const bad: [string, Promise<Response>, number, string][] = [
    [
      'malformed JSON',
      fetch(`${base}/v1/realms/default/kv/x`, { method: 'PUT', headers: json, body: '{"a":' }),
      400,
      'INVALID_ARGUMENT',
    ],
    [
      'oversized document',
      fetch(`${base}/v1/realms/default/kv/x`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify('x'.repeat(2 * 1024 * 1024)),
      }),
      413,
      'TOO_LARGE',
    ],
    [
      'unknown realm',
      fetch(`${base}/v1/realms/nowhere/kv/x`, { method: 'PUT', headers: json, body: '1' }),
      404,
      'NOT_FOUND',
    ],
    [
      'empty key',
      fetch(`${base}/v1/realms/default/kv/`, { method: 'PUT', headers: json, body: '1' }),
      400,
      'INVALID_ARGUMENT',
    ],
    [
      'oversized key',
      fetch(`${base}/v1/realms/default/kv/${'k'.repeat(2000)}`, { method: 'PUT', headers: json, body: '1' }),
      413,
      'TOO_LARGE',
    ],
    [
      'bad ifRevision',
      fetch(`${base}/v1/realms/default/kv/x?ifRevision=soon`, { method: 'PUT', headers: json, body: '1' }),
      400,
      'INVALID_ARGUMENT',
    ],
  ];
  for (const [what, pending, statusCode, code] of bad) {
    const response = await pending;
    t.equal(response.status, statusCode, `${what}: ${statusCode}`);
    t.equal(((await response.json().catch(() => ({}))) as { code?: string }).code, code, `${what}: ${code}`);
  }
  const after = ((await (await fetch(`${base}/v1/status`)).json()) as { revision: number }).revision;
  t.equal(after, before, 'no bad request changed anything');

  const started = Date.now();
  process.kill(first.pid!, 'SIGTERM');
  t.equal(await exited(first), 0, `SIGTERM stops it cleanly (in ${Date.now() - started} ms)`);

  const second = await startNode(dataDir, port);
  children.push(second);
  const get = await fetch(`${base}/v1/realms/default/kv/greeting`);
  t.equal(get.status, 200, 'a restart reuses the data');
  t.same(await get.json(), {
    key: 'greeting',
    value: { text: 'hello' },
    createRevision: revision,
    modRevision: revision,
    version: 1,
  });
  process.kill(second.pid!, 'SIGTERM');
  t.equal(await exited(second), 0);
});

t.test('a node told neither --single nor --services refuses to start and says why', async (t) => {
  const result = spawnSync(process.execPath, [CLI, 'start', '--name', 'n1'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  t.equal(result.status, 2, 'exit code 2');
  t.match(result.stderr, /never guesses its job.*--single.*--services/s);
});
