// A founding node that requires tokens makes the first cluster-admin token once: proposed as a hash through the leader, the token itself written to DATA_DIR/admin.token (0600).

import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../net/index.js';
import { exists, syncDir } from '../storage/index.js';
import type { KvService } from './kv-service.js';
import { hashSecret, newToken, parseToken } from './tokens.js';

export const ADMIN_TOKEN_FILE = 'admin.token';

export interface BootstrapAdminInit {
  readonly name: string;
  readonly dataDir: string;
  readonly kv: KvService;
  /** Whether this node made its first admin token already (the replicated record). */
  readonly done: () => boolean;
  readonly logger: Logger;
  /** Between attempts while there is no leader yet. */
  readonly retryMs: number;
}

/**
 * Makes the token, in this order, so that a crash at any point loses nothing and leaves no
 * usable token unknown to the cluster: the token is written to admin.token.partial (0600,
 * synced); its hash is proposed (bootstrapAdmin, repeatable with the same token); once applied,
 * the file is renamed to admin.token and the directory synced. A restart finds the partial file
 * and proposes the same token again. Resolves with the file's path, or undefined when this node
 * made its token before (the file may have been moved away since: it is not made again).
 */
export async function makeAdminToken(
  init: BootstrapAdminInit,
  stopped: () => boolean,
): Promise<string | undefined> {
  const path = join(init.dataDir, ADMIN_TOKEN_FILE);
  const partial = `${path}.partial`;
  if (init.done() && !(await exists(partial))) return undefined;
  let token = (await exists(partial)) ? (await readFile(partial, 'utf8')).trim() : undefined;
  if (token === undefined || parseToken(token) === undefined) {
    token = newToken().token;
    const handle = await open(partial, 'w', 0o600);
    try {
      await handle.writeFile(`${token}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDir(init.dataDir);
  }
  const { id, secret } = parseToken(token)!;
  for (;;) {
    if (stopped()) return undefined;
    try {
      const result = await init.kv.write({
        type: 'bootstrapAdmin',
        node: init.name,
        id,
        hash: hashSecret(secret),
      });
      if (!result.ok) {
        // This node made a token before under another id: this one was never valid.
        init.logger.warn('auth.admin_token_refused', { reason: result.error.message });
        await unlink(partial).catch(() => undefined);
        return undefined;
      }
      break;
    } catch (error) {
      init.logger.debug('auth.admin_token_retry', { error: (error as Error).message });
      await new Promise((resolve) => setTimeout(resolve, init.retryMs));
    }
  }
  await rename(partial, path);
  await syncDir(init.dataDir);
  init.logger.info('auth.admin_token_written', { path });
  return path;
}
