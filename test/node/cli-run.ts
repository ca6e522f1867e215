// Test helper: runs the compiled conclave CLI as a child process and checks its output contract (exit code, one-line errors).

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Test } from 'tap';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');
/** Any one CLI run ends well within this, or is killed and fails. */
export const RUN_TIMEOUT_MS = 60_000;

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Milliseconds from start to exit. */
  readonly ms: number;
}

/** Starts `conclave ARGS` without CONCLAVE_ENDPOINTS in its environment; killed by pid when `t` ends. */
export function spawnCli(t: Test, args: readonly string[]): ChildProcess {
  const env = { ...process.env };
  delete env.CONCLAVE_ENDPOINTS;
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  return child;
}

/** Runs `conclave ARGS` to its end. */
export function runCli(t: Test, args: readonly string[]): Promise<Run> {
  return collect(spawnCli(t, args), args);
}

/**
 * Feeds `input` to a started CLI child, collects its output and resolves at its end; the child
 * is killed and the promise rejects past RUN_TIMEOUT_MS.
 */
export function collect(child: ChildProcess, args: readonly string[], input = ''): Promise<Run> {
  const started = performance.now();
  child.stdin!.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`conclave ${args.join(' ')} did not end within ${RUN_TIMEOUT_MS} ms: ${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Exit 1, nothing on stdout, one line `conclave: CODE: …` on stderr; returns that line. */
export function failsWith(t: Test, result: Run, code: string, what: string): string {
  t.equal(result.code, 1, `${what}: exit 1`);
  t.equal(result.stdout, '', `${what}: nothing on stdout`);
  const lines = result.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `${what}: one line on stderr (${result.stderr.trimEnd()})`);
  t.match(lines[0], new RegExp(`^conclave: ${code}: \\S`), `${what}: conclave: ${code}: message`);
  return lines[0] ?? '';
}

/** Exit 2, nothing on stdout, one line `conclave: USAGE: …`; returns that line. */
export function usageError(t: Test, result: Run, what: string): string {
  t.equal(result.code, 2, `${what}: exit 2`);
  t.equal(result.stdout, '', `${what}: nothing on stdout`);
  const lines = result.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `${what}: one line on stderr (${result.stderr.trimEnd()})`);
  t.match(lines[0], /^conclave: USAGE: \S/, `${what}: conclave: USAGE: message`);
  return lines[0] ?? '';
}

/** Exit 0 and stdout one JSON document, parsed. */
export function jsonOf<T = Record<string, unknown>>(t: Test, result: Run, what: string): T {
  t.equal(result.code, 0, `${what}: exit 0 (${result.stderr.trimEnd()})`);
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    t.fail(`${what}: stdout is one JSON document: ${(error as Error).message}: ${result.stdout}`);
    return {} as T;
  }
}
