// Waits for a node process started by a test to print that it serves, collecting what it prints.

import type { ChildProcess } from 'node:child_process';

/** What a started node has printed so far (stdout and stderr together), and when it serves. */
export interface Watched {
  readonly serving: Promise<void>;
  output(): string;
}

/** Resolves `serving` once the child prints `serving http://` (or https://); rejects if it exits or stays silent past `timeoutMs`. */
export function watchServing(child: ChildProcess, timeoutMs: number): Watched {
  let output = '';
  const serving = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "serving" within ${timeoutMs} ms: ${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/serving https?:\/\//.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before serving: ${output}`));
    });
  });
  // A caller that stops waiting must not leave an unhandled rejection behind.
  serving.catch(() => undefined);
  return { serving, output: () => output };
}
