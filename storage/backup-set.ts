// The backup set: one file holding a snapshot image of every raft group of a cluster, each at a consistent point of its own.

/*
 * Layout (the preamble and header as in snapshot-file.ts, with formatVersion 2):
 *
 *   set      := preamble header section*
 *   header   := headerJson headerCrc     { clusterId, createdAtMs, sections: [{ group, bytes }] }
 *   section  := a snapshot file image (snapshot-file.ts, format 1) of exactly `bytes` bytes
 *
 * Group 1 comes first, then the other groups in ascending id order. Each section is the group's
 * state at its own applied index (raft groups commit independently; there is no point in time
 * common to all of them), and is checksummed chunk by chunk like any snapshot. A cluster with
 * no group besides group 1 is backed up as a plain snapshot file (format 1), which this reader
 * takes as a set of one section; builds older than the set read that file and refuse a set
 * with SNAPSHOT_NEWER_FORMAT.
 *
 * Refusals (SnapshotFileError): the header lacking a field or listing groups out of order
 * (CORRUPT); the file shorter than the header says (TRUNCATED) or longer (CORRUPT); a section
 * whose own header names another group or cluster (CORRUPT); and each section's own refusals.
 */

import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { linkIntoPlace } from './durable-fs.js';
import { SnapshotFileError, StorageError } from './errors.js';
import { GROUPS_MAX } from './group-catalog.js';
import { MAX_GROUP_ID } from './keys.js';
import {
  BACKUP_SET_FORMAT_VERSION,
  encodeHeaderBlock,
  readHeaderBlock,
  type SnapshotHeader,
  SnapshotReader,
} from './snapshot-file.js';

const decoder = new TextDecoder('utf-8', { fatal: true });
const COPY_BUFFER_BYTES = 1024 * 1024;

/** One group's snapshot image inside a backup file. */
export interface BackupSection {
  readonly group: number;
  /** Where the image starts in the file, and its length. */
  readonly offset: number;
  readonly bytes: number;
  /** The image's own header (its index, term, revision, membership). */
  readonly header: SnapshotHeader;
}

/** What verify() read: every chunk of every section checked. */
export interface BackupSetCount {
  readonly chunks: number;
  readonly records: number;
  /** Records per group. */
  readonly recordsByGroup: ReadonlyMap<number, number>;
}

/**
 * A backup file whose headers (the set's and every section's) are read and checked; the
 * sections' chunks are checked by verify() or as a section is read (openSection).
 */
export class BackupSet {
  private constructor(
    readonly path: string,
    /** 1: a plain snapshot file (group 1 only); 2: a set. */
    readonly format: number,
    readonly clusterId: string,
    readonly createdAtMs: number,
    readonly size: number,
    readonly sections: readonly BackupSection[],
  ) {}

  /** Opens `path` and checks every header in it. Throws SnapshotFileError, or the fs error (ENOENT). */
  static async open(path: string): Promise<BackupSet> {
    const file = await open(path, 'r');
    let size: number;
    let block: Awaited<ReturnType<typeof readHeaderBlock>>;
    try {
      size = (await file.stat()).size;
      block = await readHeaderBlock(file, path, 0);
    } finally {
      await file.close();
    }
    if (block.version !== BACKUP_SET_FORMAT_VERSION) {
      // A plain snapshot file: the set of group 1 alone.
      const reader = await SnapshotReader.open(path);
      await reader.close();
      const { header } = reader;
      return new BackupSet(path, block.version, header.clusterId, header.createdAtMs, size, [
        { group: header.group, offset: 0, bytes: size, header },
      ]);
    }
    const head = parseSetHeader(block.json, path);
    const total = head.sections.reduce((sum, s) => sum + s.bytes, block.end);
    if (size < total) {
      throw new SnapshotFileError(
        'SNAPSHOT_TRUNCATED',
        path,
        `the header lists ${head.sections.length} groups in ${total} bytes; the file has ${size}`,
      );
    }
    if (size > total) {
      throw new SnapshotFileError(
        'SNAPSHOT_CORRUPT',
        path,
        `${size - total} bytes after the last group's section`,
      );
    }
    const sections: BackupSection[] = [];
    let offset = block.end;
    for (const { group, bytes } of head.sections) {
      const reader = await SnapshotReader.open(path, { offset, length: bytes });
      await reader.close();
      const { header } = reader;
      if (header.group !== group || header.clusterId !== head.clusterId) {
        throw new SnapshotFileError(
          'SNAPSHOT_CORRUPT',
          path,
          `the section listed as group ${group} holds group ${header.group} of cluster ${JSON.stringify(header.clusterId)}`,
        );
      }
      sections.push({ group, offset, bytes, header });
      offset += bytes;
    }
    return new BackupSet(path, block.version, head.clusterId, head.createdAtMs, size, sections);
  }

  /** Group 1's section (every file has one). */
  get first(): BackupSection {
    return this.sections[0]!;
  }

  section(group: number): BackupSection | undefined {
    return this.sections.find((s) => s.group === group);
  }

  /** A reader of `group`'s image; close it. Throws StorageError GROUP_NOT_FOUND if the file lacks it. */
  openSection(group: number): Promise<SnapshotReader> {
    const section = this.require(group);
    return this.format === BACKUP_SET_FORMAT_VERSION
      ? SnapshotReader.open(this.path, { offset: section.offset, length: section.bytes })
      : SnapshotReader.open(this.path);
  }

  /** Reads every chunk of every section, checking each. Throws SnapshotFileError at the first problem. */
  async verify(): Promise<BackupSetCount> {
    let chunks = 0;
    let records = 0;
    const recordsByGroup = new Map<number, number>();
    for (const { group } of this.sections) {
      const reader = await this.openSection(group);
      let inGroup = 0;
      try {
        for await (const chunk of reader.chunks()) {
          chunks++;
          inGroup += chunk.length;
        }
      } finally {
        await reader.close();
      }
      records += inGroup;
      recordsByGroup.set(group, inGroup);
    }
    return { chunks, records, recordsByGroup };
  }

  /**
   * Copies `group`'s image into a new file `dest` (refused if it exists) and fsyncs it: a plain
   * snapshot file, which NodeStorage.restoreGroup takes. The copy is checked when it is read.
   */
  async extract(group: number, dest: string): Promise<void> {
    const section = this.require(group);
    const source = await open(this.path, 'r');
    try {
      const target = await open(dest, 'wx');
      try {
        await copyRange(source, section.offset, section.bytes, target);
        await target.sync();
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
  }

  private require(group: number): BackupSection {
    const section = this.section(group);
    if (section === undefined) {
      throw new StorageError('GROUP_NOT_FOUND', `${this.path} holds no section for raft group ${group}`);
    }
    return section;
  }
}

/**
 * Writes a backup set at `path` from one snapshot file per group (`parts`: group 1 first, then
 * ascending ids, each file written by GroupStorage.backup) and fsyncs it and its directory. The
 * set is written under a temporary name and linked into place, so `path` never holds a partial
 * set; an existing `path` is refused (StorageError FILE_EXISTS). Returns the set's size.
 */
export async function writeBackupSet(
  path: string,
  clusterId: string,
  parts: readonly { readonly group: number; readonly file: string }[],
): Promise<number> {
  const sections: { group: number; bytes: number }[] = [];
  for (const part of parts) {
    const handle = await open(part.file, 'r');
    try {
      sections.push({ group: part.group, bytes: (await handle.stat()).size });
    } finally {
      await handle.close();
    }
  }
  checkOrder(
    sections.map((s) => s.group),
    (detail) => new RangeError(`backup set parts ${detail}`),
  );
  const head = encodeHeaderBlock(BACKUP_SET_FORMAT_VERSION, { clusterId, createdAtMs: Date.now(), sections });
  const temp = `${path}.${randomBytes(6).toString('hex')}.part`;
  try {
    const target = await open(temp, 'wx');
    let size = head.length;
    try {
      await writeAll(target, head, 0);
      for (const [i, part] of parts.entries()) {
        const source = await open(part.file, 'r');
        try {
          await copyRange(source, 0, sections[i]!.bytes, target, size);
        } finally {
          await source.close();
        }
        size += sections[i]!.bytes;
      }
      await target.sync();
    } finally {
      await target.close();
    }
    await linkIntoPlace(temp, path);
    return size;
  } finally {
    await rm(temp, { force: true });
  }
}

interface SetHeader {
  readonly clusterId: string;
  readonly createdAtMs: number;
  readonly sections: readonly { readonly group: number; readonly bytes: number }[];
}

function parseSetHeader(json: Uint8Array, path: string): SetHeader {
  let value: Partial<SetHeader>;
  try {
    value = JSON.parse(decoder.decode(json)) as Partial<SetHeader>;
  } catch {
    throw new SnapshotFileError('SNAPSHOT_CORRUPT', path, 'the backup set header is not JSON');
  }
  const fail = (detail: string) =>
    new SnapshotFileError('SNAPSHOT_CORRUPT', path, `the backup set header ${detail}`);
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.clusterId !== 'string' ||
    typeof value.createdAtMs !== 'number' ||
    !Array.isArray(value.sections) ||
    value.sections.length === 0 ||
    value.sections.length > GROUPS_MAX + 1
  ) {
    throw fail('lacks a field or has one of the wrong type');
  }
  for (const section of value.sections as unknown[]) {
    const s = section as { group?: unknown; bytes?: unknown };
    if (
      typeof s !== 'object' ||
      s === null ||
      !Number.isSafeInteger(s.group) ||
      !Number.isSafeInteger(s.bytes) ||
      (s.bytes as number) <= 0
    ) {
      throw fail('lists a section without a group id or size');
    }
  }
  checkOrder(
    value.sections.map((s) => s.group),
    (detail) => fail(detail),
  );
  return value as SetHeader;
}

/** Group 1 first, then ascending ids within range. */
function checkOrder(groups: readonly number[], fail: (detail: string) => Error): void {
  if (groups[0] !== 1) throw fail(`must start with group 1, not ${groups[0]}`);
  for (let i = 1; i < groups.length; i++) {
    const group = groups[i]!;
    if (group <= groups[i - 1]! || group > MAX_GROUP_ID) {
      throw fail(`list group ${group} out of order or out of range`);
    }
  }
}

async function writeAll(
  file: Awaited<ReturnType<typeof open>>,
  bytes: Uint8Array,
  at: number,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written, bytes.length - written, at + written);
    written += bytesWritten;
  }
}

/** Copies `length` bytes at `from` of `source` to `target` at `to`; TRUNCATED-safe: throws if the source ends early. */
async function copyRange(
  source: Awaited<ReturnType<typeof open>>,
  from: number,
  length: number,
  target: Awaited<ReturnType<typeof open>>,
  to = 0,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(COPY_BUFFER_BYTES, Math.max(1, length)));
  let done = 0;
  while (done < length) {
    const { bytesRead } = await source.read(buffer, 0, Math.min(buffer.length, length - done), from + done);
    if (bytesRead === 0) throw new Error(`the source ended ${length - done} bytes early`);
    await writeAll(target, buffer.subarray(0, bytesRead), to + done);
    done += bytesRead;
  }
}
