// Test helper for tests of node processes: the CLI run as a user runs it, waiting for a condition, and the default realm read page by page.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const run = promisify(execFile);

/** Runs `conclave ARGS`; resolves with its output and exit code, never rejects for a failing command. */
export async function cli(
  args: readonly string[],
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 120_000 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; code?: number };
    return { stdout: failed.stdout ?? '', stderr: failed.stderr ?? '', code: failed.code ?? -1 };
  }
}

/**
 * Calls `probe` every 200 ms until it returns something other than undefined (a throw counts as
 * not yet); throws after `timeoutMs`, with the last error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} within ${timeoutMs} ms (last error: ${String(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Every document of the default realm at `url`, page by page (linearizable reads), by key. */
export async function listAll<D extends { key: string }>(url: string): Promise<Map<string, D>> {
  const docs = new Map<string, D>();
  let after: string | null = null;
  for (;;) {
    const query: string = `limit=500${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const response = await fetch(`${url}/v1/realms/default/kv?${query}`, {
      signal: AbortSignal.timeout(10_000),
    });
    if (response.status !== 200) throw new Error(`list: ${response.status} ${await response.text()}`);
    const page = (await response.json()) as { documents: D[]; more: boolean; next: string | null };
    for (const doc of page.documents) docs.set(doc.key, doc);
    if (!page.more) return docs;
    after = page.next;
  }
}
