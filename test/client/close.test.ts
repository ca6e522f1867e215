// close() leaves nothing behind: a process that used clients and closed them exits by itself.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const CHILD = fileURLToPath(new URL('./close-child.js', import.meta.url));

t.test('after close() no timer or socket keeps the process alive', async (t) => {
  const child = spawn(process.execPath, [CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  // The child's client timers are ten minutes long; anything left armed would hold it far past this.
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
  );
  clearTimeout(killer);
  t.equal(signal, null, 'the child exited by itself (not killed)');
  t.equal(code, 0);
  t.same(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'), {
    heldRead: 'CLOSED',
    heldWrite: 'CLOSED',
    stuckRead: 'CLOSED',
    watchDone: true,
  });
});
