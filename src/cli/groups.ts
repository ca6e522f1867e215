// `conclave groups list|add|members`: the cluster's raft groups (HA and scaled mode) over the admin routes /v1/groups.

import type { Argv } from 'yargs';
import type { GroupsView, GroupView } from '../groups-view.js';
import { type ConnectionArgs, clientOf, runCommand, withConnection } from './common.js';
import { ADMIN_WRITE } from './membership.js';
import { printJson, printLine, renderTable } from './output.js';

const GROUPS_TIMEOUT_MS = 30_000;
/** How often `groups add` asks whether the new group has a leader. */
const POLL_MS = 250;

/** POST /v1/groups. */
interface CreatedGroup {
  readonly group: number;
  readonly members: readonly string[];
}

function lagText(view: GroupView): string {
  const parts = Object.entries(view.lag).map(([name, entries]) => `${name} ${entries}`);
  for (const name of view.missing) parts.push(`${name} -`);
  return parts.join(', ');
}

function printGroups(view: GroupsView): void {
  printLine(
    renderTable(
      ['GROUP', 'VOTERS', 'LEADER', 'TERM', 'COMMIT', 'REALMS', 'LAG (entries; - no answer)'],
      view.groups.map((g) => [
        String(g.id),
        g.voters.join(',') + (g.learners.length === 0 ? '' : ` (learning: ${g.learners.join(',')})`),
        g.leader === '' ? '(none)' : `${g.leader}${g.quiesced ? ' (idle)' : ''}`,
        String(g.term),
        String(g.commitIndex),
        g.realms.length === 0 ? '-' : g.realms.join(','),
        lagText(g),
      ]),
    ),
  );
  for (const [node, why] of Object.entries(view.unreachable)) printLine(`no answer from ${node}: ${why}`);
}

export function groupsCommands<T>(cli: Argv<T>): Argv<T> {
  return cli.command(
    'groups',
    'raft groups (admin): groups list, groups add [--members a,b,c], groups members add|remove G NODE',
    (y) =>
      y
        .command(
          'list',
          "every raft group: voters, leader, term, realms and each member's lag",
          (y) =>
            withConnection(y, GROUPS_TIMEOUT_MS)
              .example('$0 groups list', 'one line per group')
              .example('$0 groups list --json', '{"groups":[{"id":1,…}],"unreachable":{}}'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs;
              const view = await clientOf(args).call<GroupsView>('GET', '/v1/groups', { idempotent: true });
              if (args.json) printJson(view);
              else printGroups(view);
            }),
        )
        .command(
          'add',
          'create a raft group and wait until it has a leader',
          (y) =>
            withConnection(y, GROUPS_TIMEOUT_MS)
              .option('members', {
                type: 'string',
                describe:
                  'voters of group 1 to found it, comma-separated (default: three in the fewest groups)',
              })
              .example('$0 groups add', 'a group on the three least loaded voters')
              .example('$0 groups add --members n1,n2,n3', 'a group on these voters'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs & { members?: string };
              const members =
                args.members === undefined
                  ? undefined
                  : args.members
                      .split(',')
                      .map((m) => m.trim())
                      .filter((m) => m !== '');
              const client = clientOf(args);
              const created = await client.call<CreatedGroup>('POST', '/v1/groups', {
                ...ADMIN_WRITE,
                body: JSON.stringify(members === undefined ? {} : { members }),
              });
              if (!args.json) {
                printLine(
                  `created group ${created.group} on ${created.members.join(', ')}; waiting for a leader`,
                );
              }
              // The answer came once group 1 committed it; the members start the group and elect.
              const deadline = Date.now() + args.timeout;
              for (;;) {
                const view = await client.call<GroupsView>('GET', '/v1/groups', { idempotent: true });
                const group = view.groups.find((g) => g.id === created.group);
                if (group !== undefined && group.leader !== '') {
                  if (args.json) printJson({ ...created, leader: group.leader, term: group.term });
                  else printLine(`group ${created.group} is led by ${group.leader} (term ${group.term})`);
                  return;
                }
                if (Date.now() >= deadline) {
                  throw Object.assign(
                    new Error(
                      `group ${created.group} was created but has no leader yet after ${args.timeout} ms; see conclave groups list`,
                    ),
                    { code: 'TIMEOUT' },
                  );
                }
                await new Promise((resolve) => setTimeout(resolve, POLL_MS));
              }
            }),
        )
        .command('members', 'add a voter of group 1 to a raft group, or remove a member', (y) =>
          y
            .command(
              'add <group> <node>',
              'add a node to a group: it copies the group and votes once caught up (waits for that)',
              (y) =>
                withConnection(y, GROUPS_TIMEOUT_MS)
                  .positional('group', { type: 'number', describe: 'the group id (2 and up)' })
                  .positional('node', { type: 'string', describe: 'a voter of group 1' })
                  .example('$0 groups members add 2 n4', 'n4 joins group 2'),
              (argv) => runCommand(() => changeMember(argv as unknown as MemberArgs, 'add')),
            )
            .command(
              'remove <group> <node>',
              'remove a member from a group (waits until the group no longer counts it); it deletes its copy',
              (y) =>
                withConnection(y, GROUPS_TIMEOUT_MS)
                  .positional('group', { type: 'number', describe: 'the group id (2 and up)' })
                  .positional('node', { type: 'string', describe: 'a member of the group' })
                  .example('$0 groups members remove 2 n3', 'n3 leaves group 2'),
              (argv) => runCommand(() => changeMember(argv as unknown as MemberArgs, 'remove')),
            )
            .demandCommand(1, 'say which: groups members add, groups members remove')
            .example(
              '$0 groups members add 2 n4 && $0 groups members remove 2 n3',
              'replace n3 by n4 in group 2',
            ),
        )
        .demandCommand(1, 'say which: groups list, groups add, groups members')
        .example('$0 groups add', 'a new raft group; then: conclave groups list'),
  );
}

interface MemberArgs extends ConnectionArgs {
  readonly group: number;
  readonly node: string;
}

/**
 * Records the change in group 1's catalog (the HTTP call), then follows `groups list` until the
 * group's raft membership shows it: the node a voter (add) or no member at all (remove). Says
 * each new state once; TIMEOUT after --timeout, with what it saw last (the change goes on).
 */
async function changeMember(args: MemberArgs, change: 'add' | 'remove'): Promise<void> {
  const { group, node } = args;
  if (!Number.isSafeInteger(group) || group < 2) {
    throw Object.assign(
      new Error(
        `the group must be a group id from 2 (group 1's members are changed with conclave members), got ${String(group)}`,
      ),
      { code: 'INVALID_ARGUMENT' },
    );
  }
  const client = clientOf(args);
  const path = `/v1/groups/${group}/members`;
  const recorded =
    change === 'add'
      ? await client.call<{ members: string[] }>('POST', path, {
          ...ADMIN_WRITE,
          body: JSON.stringify({ node }),
        })
      : await client.call<{ members: string[] }>(
          'DELETE',
          `${path}/${encodeURIComponent(node)}`,
          ADMIN_WRITE,
        );
  if (!args.json) {
    printLine(
      `group ${group} is to have ${recorded.members.join(', ')}; waiting for its leader to ${change === 'add' ? `add ${node}` : `remove ${node}`}`,
    );
  }
  const deadline = Date.now() + args.timeout;
  let said = '';
  for (;;) {
    const view = await client.call<GroupsView>('GET', '/v1/groups', { idempotent: true });
    const seen = view.groups.find((g) => g.id === group);
    const state =
      seen === undefined
        ? 'not listed'
        : seen.voters.includes(node)
          ? 'voter'
          : seen.learners.includes(node)
            ? 'learner'
            : 'not a member';
    const done = change === 'add' ? state === 'voter' : state === 'not a member';
    if (done) {
      if (args.json)
        printJson({ group, node, change, voters: seen?.voters ?? [], leader: seen?.leader ?? '' });
      else
        printLine(`group ${group}: ${seen?.voters.join(', ')} vote; led by ${seen?.leader || '(none yet)'}`);
      return;
    }
    const behind = seen?.lag[node];
    const line = `${node} in group ${group}: ${state}${state === 'learner' && behind !== undefined ? `, ${behind} entries behind` : ''}`;
    if (line !== said && !args.json) printLine(line);
    said = line;
    if (Date.now() >= deadline) {
      throw Object.assign(
        new Error(
          `after ${args.timeout} ms ${node} is ${state} in group ${group}; the change goes on (conclave groups list shows it)`,
        ),
        { code: 'TIMEOUT' },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
