// Test helper: one `conclave start --single` node process on 127.0.0.1 and a free port, killed by pid when the test ends.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from '../../scripts/local-cluster.js';
import { watchServing } from './wait-serving.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

/** A started node: its client URL (http:// or https:// with TLS) and what it printed. */
export interface SingleNode {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  output(): string;
}

/**
 * Starts a single-node cluster with `args` added (e.g. --tls-key-file/--tls-cert-file) and
 * resolves once it prints that it serves; `tls` says which scheme `url` uses.
 */
export async function startSingleNode(
  t: Test,
  args: readonly string[] = [],
  tls = false,
): Promise<SingleNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'conclave-single-'));
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, 'start', '--single', '--data-dir', dataDir, '--client-listen', `127.0.0.1:${port}`, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const watched = watchServing(child, 30_000);
  await watched.serving;
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, port, dataDir, output: watched.output };
}
