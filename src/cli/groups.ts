// `conclave groups list|add`: the cluster's raft groups (HA and scaled mode) over the admin routes /v1/groups.

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
        g.voters.join(','),
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
  return cli.command('groups', 'raft groups (admin): groups list, groups add [--members a,b,c]', (y) =>
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
      .demandCommand(1, 'say which: groups list, groups add')
      .example('$0 groups add', 'a new raft group; then: conclave groups list'),
  );
}
