// Which peer id each member name was last seen with, kept on disk: how a founder tells a first start from lost data.

import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** The file in the data directory. */
export const SEEN_MEMBERS_FILE = 'members-seen.json';

/**
 * A durable map from a member's name to the peer id (its node key) it was last identified
 * with. The node records a peer before it binds the peer's name, and it processes no raft
 * message, request or snapshot from a peer whose name is not bound; so every node that ever
 * counted a member's vote or acknowledgement has a record of that member on disk. A founder
 * whose data directory is empty asks its peers for their record of its name (founding-check.ts):
 * a record means it took part before and its data was lost; none means this is its first start.
 */
export class SeenMembers {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly peerByName: Map<string, string>,
  ) {}

  /** Loads the record of `dataDir` (empty if there is none yet; a malformed file is an error). */
  static async load(dataDir: string): Promise<SeenMembers> {
    const path = join(dataDir, SEEN_MEMBERS_FILE);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const map = new Map<string, string>();
    if (text !== undefined) {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error(`${path} is not a JSON object`);
      for (const [name, peer] of Object.entries(parsed)) if (typeof peer === 'string') map.set(name, peer);
    }
    return new SeenMembers(path, map);
  }

  /** The peer id `name` was last seen with, if ever. */
  peerOf(name: string): string | undefined {
    return this.peerByName.get(name);
  }

  /**
   * Records that `name` is `peer`; resolves once that is on disk (written to a temporary file,
   * fsynced, renamed). Recording what is already recorded costs nothing. Rejects on an I/O error.
   */
  record(name: string, peer: string): Promise<void> {
    if (this.peerByName.get(name) === peer) return this.writing;
    this.peerByName.set(name, peer);
    const write = this.writing.then(() => this.write());
    this.writing = write.catch(() => {
      // Not on disk: forget it, so that the next record() writes it again.
      if (this.peerByName.get(name) === peer) this.peerByName.delete(name);
    });
    return write;
  }

  private async write(): Promise<void> {
    const temporary = `${this.path}.tmp`;
    const file = await open(temporary, 'w', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(Object.fromEntries(this.peerByName))}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, this.path);
  }
}
