// One raft group of a node: its storage, raft driver and watch hub, log compaction, and snapshot transfer.

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Logger } from '../net/index.js';
import {
  type Membership,
  type Message,
  MessageType,
  message,
  RawNode,
  SeededPrng,
  type Snapshot,
} from '../raft/index.js';
import type { CommandResult, GroupStorage } from '../storage/index.js';
import { decodePeerAnswer, encodePeerMessage } from './peer-protocol.js';
import { RaftDriver } from './raft-driver.js';
import type { Service } from './service.js';
import type { TickClock } from './tick-clock.js';
import { WatchHub } from './watch-hub.js';

/** How a group's messages leave the node (the mesh, by member name). */
export interface GroupTransport {
  /** Sends `messages` to member `to`; false if it cannot now (unknown or unreachable peer). */
  sendRaft(to: string, groupId: number, messages: readonly Message[]): boolean;
  /** Streams a snapshot file to member `to`, `header` first; rejects if it cannot. */
  sendSnapshot(to: string, groupId: number, header: Uint8Array, source: Readable): Promise<void>;
}

export interface RaftGroupInit {
  readonly id: number;
  /** This node's name: its id in the group. */
  readonly name: string;
  /** Opened, created or bootstrapped by the caller; the group closes nothing of it. */
  readonly storage: GroupStorage;
  readonly transport: GroupTransport;
  readonly logger: Logger;
  readonly heartbeatIntervalMs: number;
  /** The node's shared tick clock (its tickMs is the heartbeat interval); without it the group ticks on its own timer. */
  readonly clock?: TickClock;
  readonly electionTimeoutMs: number;
  /** Take a snapshot once this many entries are applied past the log's first index. */
  readonly snapshotEntries: number;
  /** Entries kept before a snapshot, so that followers a little behind catch up from the log. */
  readonly logRetainEntries: number;
  /**
   * Idle heartbeat ticks before the group quiesces when this node leads it (raft's
   * quiesceAfterTicks); 0 or absent: never. The node must then wake the group where its leader
   * looks gone (ConclaveNode.wakeOrphanedGroups).
   */
  readonly quiesceAfterTicks?: number;
  /** After a membership entry is applied. */
  readonly onMembershipApplied?: () => void;
  /** After a snapshot is installed (its address book may be new). */
  readonly onSnapshotApplied?: () => void;
  /** After every applied batch and installed snapshot (cheap checks only: it runs often). */
  readonly onApplied?: () => void;
}

/**
 * A raft group of this node: one RawNode behind a RaftDriver, persisting into its
 * GroupStorage (which is also its state machine), a WatchHub over that state, bounded by
 * snapshots and compaction, and sending and receiving its snapshots as files. Services start
 * in order and stop in reverse (service.ts): start() runs the driver; stop() ends the watches,
 * then stops the driver (pending requests are refused); the storage stays open for its owner.
 */
export class RaftGroup implements Service {
  readonly name: string;
  readonly driver: RaftDriver<CommandResult>;
  readonly hub: WatchHub;
  private compacting = false;
  private stopped = false;
  private readonly sendingSnapshots = new Set<string>();
  private readonly receivedSnapshots = new Map<string, string>();

  constructor(private readonly init: RaftGroupInit) {
    this.name = `raft group ${init.id}`;
    const { storage } = init;
    this.hub = new WatchHub(storage.state);
    storage.state.onChange((change) => this.hub.onChange(change));
    // One tick per heartbeat interval: every tick wakes the process, and on an idle node each
    // wake-up costs 0.2-0.3 ms of CPU here (a plain Node TCP echo pays 0.22 ms a message at 40
    // a second), so ticks twice as often only doubled the idle cost. The election timeout is
    // rounded to whole heartbeat intervals (the configuration asks for at least 3).
    const tickMs = init.heartbeatIntervalMs;
    const node = new RawNode({
      id: init.name,
      storage: storage.log,
      prng: new SeededPrng(randomBytes(4).readUInt32LE(0)),
      applied: storage.state.appliedIndex,
      electionTicks: Math.max(3, Math.round(init.electionTimeoutMs / tickMs)),
      heartbeatTicks: 1,
      ...(init.quiesceAfterTicks ? { quiesceAfterTicks: init.quiesceAfterTicks } : {}),
    });
    this.driver = new RaftDriver<CommandResult>({
      node,
      logger: init.logger,
      tickMs,
      ...(init.clock === undefined ? {} : { clock: init.clock }),
      maxPendingRequests: 100_000,
      store: {
        persist: (ready) =>
          storage.persist(
            {
              entries: ready.entries,
              ...(ready.hardState ? { hardState: ready.hardState } : {}),
              ...(ready.snapshot ? { snapshot: ready.snapshot } : {}),
            },
            ready.snapshot ? this.takeReceivedSnapshot(ready.snapshot) : undefined,
          ),
      },
      stateMachine: {
        applySnapshot: async () => {
          // Installed by persist() with the snapshot's file.
          init.onSnapshotApplied?.();
          init.onApplied?.();
        },
        apply: async (entries) => {
          const results = new Map<number, CommandResult>();
          let membershipChanged = false;
          for (const outcome of await storage.apply(entries)) {
            if (outcome.kind === 'command') results.set(outcome.index, outcome.result);
            if (outcome.kind === 'membership') membershipChanged = true;
          }
          if (membershipChanged) init.onMembershipApplied?.();
          init.onApplied?.();
          this.maybeCompact();
          return entries.map((entry) => results.get(entry.index));
        },
      },
      sender: { send: (messages) => this.send(messages) },
    });
  }

  get id(): number {
    return this.init.id;
  }

  get storage(): GroupStorage {
    return this.init.storage;
  }

  async start(): Promise<void> {
    this.driver.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.hub.stop();
    await this.driver.stop();
  }

  status(): { id: number; role: string; term: number; commitIndex: number; appliedIndex: number } {
    const raft = this.driver.status();
    return {
      id: this.init.id,
      role: raft.role,
      term: raft.term,
      commitIndex: raft.commitIndex,
      appliedIndex: this.init.storage.state.appliedIndex,
    };
  }

  /** A raft message from member `from` (already checked to be that peer's own). */
  receive(incoming: Message): void {
    this.driver.receive(incoming);
  }

  /** Sends raft's messages: snapshots as files, the rest batched per member; unreachable members are reported. */
  private send(messages: readonly Message[]): void {
    const byMember = new Map<string, Message[]>();
    for (const outgoing of messages) {
      if (outgoing.type === MessageType.Snapshot) {
        void this.sendSnapshot(outgoing);
        continue;
      }
      const list = byMember.get(outgoing.to) ?? [];
      list.push(outgoing);
      byMember.set(outgoing.to, list);
    }
    for (const [to, list] of byMember) {
      if (!this.init.transport.sendRaft(to, this.init.id, list)) this.driver.reportUnreachable(to);
    }
  }

  /**
   * Streams the snapshot file a Snapshot message names to its member, the message itself in
   * the header; raft learns the outcome through reportSnapshot.
   */
  private async sendSnapshot(snapshotMessage: Message): Promise<void> {
    const to = snapshotMessage.to;
    const snapshot = snapshotMessage.snapshot;
    if (this.sendingSnapshots.has(to)) return;
    if (snapshot === undefined) {
      this.driver.reportSnapshot(to, false);
      return;
    }
    this.sendingSnapshots.add(to);
    try {
      const header = encodePeerMessage({
        term: snapshotMessage.term,
        index: snapshot.metadata.index,
        snapshotTerm: snapshot.metadata.term,
        membership: snapshot.metadata.membership,
        data: Buffer.from(snapshot.data).toString('base64'),
      });
      const source = createReadStream(this.init.storage.snapshotPath(snapshot));
      await this.init.transport.sendSnapshot(to, this.init.id, header, source);
      this.init.logger.info('raft.snapshot_sent', { to, index: snapshot.metadata.index });
      this.driver.reportSnapshot(to, true);
    } catch (error) {
      this.init.logger.warn('raft.snapshot_send_failed', { to, error: (error as Error).message });
      this.driver.reportSnapshot(to, false);
    } finally {
      this.sendingSnapshots.delete(to);
    }
  }

  /** A snapshot from member `from` (the leader): the file is written aside, then its message goes to raft. */
  async receiveSnapshot(from: string, header: Uint8Array, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const fields = decodePeerAnswer<{
      term: number;
      index: number;
      snapshotTerm: number;
      membership: Membership;
      data: string;
    }>(header);
    const path = this.init.storage.tempPath(`snapshot-${fields.index}-${fields.snapshotTerm}`);
    const file = await open(path, 'w', 0o600);
    try {
      for await (const chunk of chunks) await file.write(chunk);
      await file.sync();
    } catch (error) {
      // A transfer cut short leaves nothing behind: the leader sends the whole file again.
      await file.close().catch(() => undefined);
      await rm(path, { force: true });
      throw error;
    }
    await file.close();
    const snapshot: Snapshot = {
      metadata: { index: fields.index, term: fields.snapshotTerm, membership: fields.membership },
      data: new Uint8Array(Buffer.from(fields.data, 'base64')),
    };
    // A file raft never asked for (it ignored a stale snapshot) goes once a newer one arrives.
    for (const [key, older] of this.receivedSnapshots) {
      if (Number(key.split(':')[0]) <= fields.index) {
        this.receivedSnapshots.delete(key);
        void rm(older, { force: true });
      }
    }
    this.receivedSnapshots.set(`${fields.index}:${fields.snapshotTerm}`, path);
    // Raft checks the message (a malformed snapshot is refused and logged by the driver).
    this.driver.receive(
      message({ type: MessageType.Snapshot, from, to: this.init.name, term: fields.term, snapshot }),
    );
  }

  /** The received file for a snapshot raft asks us to persist. */
  private takeReceivedSnapshot(snapshot: Snapshot): string | undefined {
    const key = `${snapshot.metadata.index}:${snapshot.metadata.term}`;
    const path = this.receivedSnapshots.get(key);
    this.receivedSnapshots.delete(key);
    return path;
  }

  /**
   * Bounds the log: once `snapshotEntries` entries are applied past the first index, takes a
   * snapshot (in the background, one at a time) and compacts all but the last
   * `logRetainEntries` entries before it, so followers that lag a little catch up from the log.
   */
  private maybeCompact(): void {
    const { storage, snapshotEntries, logRetainEntries, logger } = this.init;
    if (this.compacting || this.stopped) return;
    if (storage.state.appliedIndex - storage.log.firstIndex() < snapshotEntries) return;
    this.compacting = true;
    void (async () => {
      try {
        const created = await storage.createSnapshot();
        const upTo = created.header.index - logRetainEntries;
        if (upTo >= storage.log.firstIndex()) await storage.compact(upTo);
        logger.info('storage.compacted', {
          snapshotIndex: created.header.index,
          firstIndex: storage.log.firstIndex(),
        });
      } catch (error) {
        logger.warn('storage.compaction_failed', { error: (error as Error).message });
      } finally {
        this.compacting = false;
      }
    })();
  }
}
