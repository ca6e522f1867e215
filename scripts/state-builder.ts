// Fills a group with about N MiB of 4 KB documents of pseudo-random text: the state bench:storage and bench:backup measure on.

import type { Entry } from '../raft/types.js';
import { encodeCommand } from '../storage/commands.js';
import type { GroupStorage } from '../storage/storage.js';

const MB = 1024 * 1024;
const VALUE_CHARS = 4000;
const PER_BATCH = 64;

/**
 * Applies puts of 4,000-character values (keys doc/N) after the group's applied index until the
 * values add up to `mb` MiB. Pseudo-random text, so compression does not flatter the numbers.
 * Only the state is written unless `persistLog`: a data directory a node will open needs the
 * log too, and a snapshot taken afterwards (GroupStorage.createSnapshot) so that the log can be
 * compacted. Resolves with the documents and value bytes.
 */
export async function buildState(
  group: GroupStorage,
  mb: number,
  options: { persistLog?: boolean } = {},
): Promise<{ documents: number; valueBytes: number }> {
  let next = group.state.appliedIndex + 1;
  let valueBytes = 0;
  let documents = 0;
  let state = 99;
  while (valueBytes < mb * MB) {
    const entries: Entry[] = [];
    for (let i = 0; i < PER_BATCH; i++) {
      let value = '';
      while (value.length < VALUE_CHARS) {
        state = (state * 1103515245 + 12345) >>> 0;
        value += state.toString(36);
      }
      value = value.slice(0, VALUE_CHARS);
      entries.push({
        index: next,
        term: 1,
        type: 0,
        data: encodeCommand({
          v: 1,
          time: next,
          op: { type: 'put', realm: 'default', key: `doc/${next}`, value },
        }),
      });
      next++;
      documents++;
      valueBytes += VALUE_CHARS;
    }
    if (options.persistLog) await group.persist({ entries });
    await group.apply(entries);
  }
  return { documents, valueBytes };
}
