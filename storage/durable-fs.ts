// Small file-system steps that durability depends on: fsyncing a directory after a rename, linking a finished file into place, and asking whether a path exists.

import { link, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StorageError } from './errors.js';

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

/**
 * Gives the finished, fsynced file `temp` the name `path` and fsyncs the directory. Unlike a
 * rename it never replaces a file: an existing `path` throws StorageError FILE_EXISTS. The
 * caller removes `temp` afterwards.
 */
export async function linkIntoPlace(temp: string, path: string): Promise<void> {
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new StorageError('FILE_EXISTS', `backup target ${path} exists`);
    }
    throw error;
  }
  await syncDir(dirname(path));
}
