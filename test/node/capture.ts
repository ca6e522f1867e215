// Test helper: (re)starts a LocalCluster node with its output kept, so a test can read what it logged and how it exited.

import { spawn } from 'node:child_process';
import type { ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';

export interface CapturedRun {
  /** Everything the process printed so far, stdout and stderr interleaved. */
  readonly output: () => string;
  /** Its exit code (null if killed by a signal). */
  readonly exited: Promise<number | null>;
}

/** Starts `node` (info logs on) in place of `cluster.start(node)`; the cluster still kills it at stop(). */
export function startCapturing(cluster: LocalCluster, node: ClusterNode, secretFile?: string): CapturedRun {
  const child = spawn(process.execPath, [...cluster.args(node, secretFile), '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  node.child = child;
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { output: () => output, exited };
}
