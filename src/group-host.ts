// The raft groups a node runs besides group 1 (HA and scaled mode): opened from storage at start, created as group 1's catalog names this node.

/*
 * Group 1's catalog (storage/group-catalog.ts) lists every other group and its members. Each
 * founding member bootstraps the group's storage with the founders as voters (the same
 * snapshot at index 1, term 1 on each of them, without the default realm) and runs it; raft
 * elects its leader. A node added later (`groups members add`) creates the group's storage
 * empty and runs it: the group's leader adds it as a learner (group-members.ts) and sends it a
 * snapshot. A node that was down when the group was created or it was added does the same when
 * it next applies the catalog (at start, or when it catches up), and a group it already holds
 * is opened from storage. Messages for a group a node does not run yet are dropped by the
 * node; raft repeats them.
 *
 * A node the catalog removed from a group keeps running it until the removal is committed:
 * until its own applied membership leaves it out, or the group's leader reports an applied
 * membership without it at an index at least this node's (so a removal lies between them).
 * Stopping earlier could leave a group of two unable to commit the removal. Then it stops the
 * group and deletes its copy (NodeStorage.deleteGroup). checkLeaving() runs that check.
 *
 * Contract: reconcile() may be called at any time and as often as wanted (after every apply of
 * group 1); calls run one at a time and do nothing when the catalog did not change. A group
 * that fails to open or start is logged and retried at the next change of the catalog or the
 * next start; the node goes on with the others. stop() stops every group it started.
 */

import type { Logger } from '../net/index.js';
import type { GroupCatalog, GroupStorage, NodeStorage } from '../storage/index.js';
import { currentMembers, FIRST_GROUP } from '../storage/index.js';
import type { LocalGroupStatus } from './groups-view.js';
import type { RaftGroup } from './raft-group.js';
import type { Service } from './service.js';

export interface GroupHostInit {
  /** This node's name. */
  readonly name: string;
  readonly storage: NodeStorage;
  /** Group 1's catalog as applied on this node. */
  readonly catalog: () => GroupCatalog;
  /** Group 1's address book (member name -> mesh address), for the new groups' state. */
  readonly addresses: () => Readonly<Record<string, string>>;
  /** Builds the group object over its opened storage (not started). */
  readonly makeGroup: (id: number, storage: GroupStorage) => RaftGroup;
  /** The node's groups by id, group 1 in it: the host adds the others. */
  readonly groups: Map<number, RaftGroup>;
  /**
   * Whether this node is a satellite or disaster-recovery replica of group 1: it then runs
   * every group as a learner (its leader adds it: group-members.ts), so that it serves and keeps
   * every realm, not only group 1's.
   */
  readonly observer: () => boolean;
  /** Group `id` as its leader reports it (asked over the mesh); undefined if no member says it leads. */
  readonly leaderReport: (id: number) => Promise<LocalGroupStatus | undefined>;
  readonly logger: Logger;
}

export class GroupHost implements Service {
  readonly name = 'raft groups';
  private chain: Promise<void> = Promise.resolve();
  private seen: GroupCatalog | undefined;
  private seenObserver = false;
  private stopped = false;
  private leaving = false;
  private readonly started: RaftGroup[] = [];

  constructor(private readonly init: GroupHostInit) {}

  /** Opens and starts every group this node holds in storage, then those the catalog adds. */
  async start(): Promise<void> {
    const ids = (await this.init.storage.groupIds()).filter((id) => id !== FIRST_GROUP);
    for (const id of ids) await this.run(id, () => this.init.storage.openGroup(id));
    this.reconcile();
    await this.chain;
  }

  /** Starts the groups the catalog names this node in that it does not run yet. */
  reconcile(): void {
    if (this.stopped) return;
    const catalog = this.init.catalog();
    const observer = this.init.observer();
    if (catalog === this.seen && observer === this.seenObserver) return;
    this.seen = catalog;
    this.seenObserver = observer;
    const me = this.init.name;
    this.chain = this.chain.then(async () => {
      for (const record of catalog.groups) {
        if (this.stopped) return;
        const runs = currentMembers(record).includes(me) || (observer && !(record.left ?? []).includes(me));
        if (this.init.groups.has(record.id) || !runs) continue;
        const held = (await this.init.storage.groupIds()).includes(record.id);
        const founder = record.members.includes(me) && !(record.joined ?? []).includes(me);
        await this.run(record.id, () => {
          if (held) return this.init.storage.openGroup(record.id);
          // A joiner learns everything from the group's leader, as a node joining group 1 does.
          if (!founder) return this.init.storage.createGroup(record.id);
          const book = this.init.addresses();
          const addresses = Object.fromEntries(
            record.members.filter((m) => book[m] !== undefined).map((m) => [m, book[m]!]),
          );
          return this.init.storage.bootstrapGroup(
            record.id,
            { voters: [...record.members], learners: [] },
            addresses,
            { defaultRealm: false },
          );
        });
      }
    });
  }

  /**
   * Stops and deletes each group this node runs that the catalog says it left, once the
   * group's removal of it is committed (see the header). Runs one at a time with reconcile().
   */
  checkLeaving(): Promise<void> {
    if (this.stopped || this.leaving) return Promise.resolve();
    const me = this.init.name;
    const gone = this.init
      .catalog()
      .groups.filter((g) => (g.left ?? []).includes(me) && this.init.groups.has(g.id))
      .map((g) => g.id);
    if (gone.length === 0) return Promise.resolve();
    this.leaving = true;
    const run = this.chain.then(async () => {
      for (const id of gone) {
        const group = this.init.groups.get(id);
        if (group === undefined || this.stopped) continue;
        if (!(await this.removalCommitted(group))) continue;
        await this.leave(group);
      }
    });
    this.chain = run.catch((error) =>
      this.init.logger.error('group.leave_failed', { error: (error as Error).message }),
    );
    return this.chain.finally(() => {
      this.leaving = false;
    });
  }

  private async removalCommitted(group: RaftGroup): Promise<boolean> {
    const me = this.init.name;
    const state = group.storage.state;
    const { voters, learners } = state.membership;
    if (!voters.includes(me) && !learners.includes(me)) return true;
    const leader = await this.init.leaderReport(group.id).catch(() => undefined);
    return (
      leader !== undefined &&
      leader.appliedIndex >= state.appliedIndex &&
      !leader.voters.includes(me) &&
      !leader.learners.includes(me)
    );
  }

  private async leave(group: RaftGroup): Promise<void> {
    await group.stop();
    const at = this.started.indexOf(group);
    if (at >= 0) this.started.splice(at, 1);
    this.init.groups.delete(group.id);
    await this.init.storage.deleteGroup(group.id);
    this.init.logger.info('group.left', {
      group: group.id,
      detail: 'removed from the group; its copy here is deleted',
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.chain.catch(() => undefined);
    const groups = this.started.splice(0);
    await Promise.all(groups.map((group) => group.stop()));
    for (const group of groups) this.init.groups.delete(group.id);
  }

  private async run(id: number, open: () => Promise<GroupStorage>): Promise<void> {
    try {
      const storage = await open();
      if (this.stopped) return;
      const group = this.init.makeGroup(id, storage);
      await group.start();
      this.started.push(group);
      this.init.groups.set(id, group);
      this.init.logger.info('group.started', { group: id, members: storage.state.membership.voters });
    } catch (error) {
      // Seen again at the next catalog change or start: forget that this catalog was handled.
      this.seen = undefined;
      this.init.logger.error('group.start_failed', { group: id, error: (error as Error).message });
    }
  }
}
