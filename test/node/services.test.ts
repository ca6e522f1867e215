// What --services changes: a node with raft and without api opens no client port but still takes part.

import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { spawnCli } from './cli-run.js';

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

t.test('--services raft,admin: the node runs, says so, and opens no client port', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-services-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const clientPort = await freePort();
  const peer = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  // Killed by pid when the test ends.
  const child = spawnCli(t, [
    'start',
    '--name',
    'solo',
    '--data-dir',
    dataDir,
    '--peer-listen',
    peer,
    '--client-listen',
    `127.0.0.1:${clientPort}`,
    '--initial-cluster',
    `solo=${peer}`,
    '--services',
    'raft,admin',
  ]);
  child.stdin!.end();
  let output = '';
  const said = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start line within 30 s: ${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('without a client port')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
  });
  await said;
  t.match(
    output,
    /node solo running without a client port \(services raft,admin;/,
    'it says it serves no clients',
  );
  t.equal(await listening(clientPort), false, `nothing listens on the client port ${clientPort}`);
  t.equal(child.exitCode, null, 'and it keeps running');
});
