// Small file-system steps that durability depends on: fsyncing a directory after a rename, and asking whether a path exists.

import { open, stat } from 'node:fs/promises';

/** Fsyncs a directory, so that a rename or link inside it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Whether anything exists at `path` (an error other than absence counts as absent too). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
