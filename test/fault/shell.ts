// Runs system commands (ip, iptables) synchronously, so that teardown also works inside signal handlers.

import { spawnSync } from 'node:child_process';

export interface CommandResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` with `args`; `input` goes to its stdin. Never throws. */
export function tryRun(command: string, args: readonly string[], input?: string): CommandResult {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    timeout: 30_000,
    ...(input === undefined ? {} : { input }),
  });
  return {
    ok: result.status === 0 && result.error === undefined,
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: result.error ? String(result.error) : (result.stderr ?? ''),
  };
}

/** Runs `command` with `args`; throws with its stderr when it fails. */
export function run(command: string, args: readonly string[], input?: string): string {
  const result = tryRun(command, args, input);
  if (!result.ok) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
