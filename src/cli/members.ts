// `conclave members …`: list, add (as a learner, then promoted once caught up), remove and promote cluster members.

import type { Argv } from 'yargs';
import { type ConnectionArgs, clientOf, runCommand, UsageError, withConnection } from './common.js';
import { type ApiClient, ApiError, sleep } from './http.js';
import {
  ADMIN_WRITE,
  fetchMembers,
  type MembersView,
  type MemberView,
  renderClusterLine,
  renderMembers,
} from './membership.js';
import { printJson, printLine } from './output.js';

const ADMIN_TIMEOUT_MS = 30_000;
/** `members add` waits this long for the learner to catch up, unless --timeout says otherwise. */
const ADD_TIMEOUT_MS = 10 * 60_000;
const POLL_INTERVAL_MS = 1000;
/** One poll of the membership gets at most this long; the loop goes on until --timeout. */
const POLL_TIMEOUT_MS = 5000;
/** Without a TTY, a progress line when the match index moves, and at least this often. */
const PROGRESS_LINE_INTERVAL_MS = 10_000;
/** A learner this close to the commit index is asked to be promoted; the leader has the last word. */
const PROMOTE_LAG_MAX = 100;
/** Promotion refusals that pass with time: the learner is behind, or the add is not committed yet. */
const PROMOTE_WAIT_REASONS: ReadonlySet<string> = new Set([
  'LEARNER_NOT_CAUGHT_UP',
  'MEMBERSHIP_CHANGE_PENDING',
]);

interface NameArgs extends ConnectionArgs {
  readonly name: string;
}

interface AddArgs extends NameArgs {
  readonly peer?: string;
  readonly learner: boolean;
  readonly role?: string;
}

/** What `members add --role` takes: a voter is added as a learner, then promoted. */
const ADD_ROLES = ['voter', 'learner', 'spare', 'satellite', 'dr'] as const;

function nameArgument<T>(y: Argv<T>, describe: string) {
  return y.positional('name', { type: 'string', demandOption: true, describe });
}

function memberPath(name: string): string {
  return `/v1/members/${encodeURIComponent(name)}`;
}

export function membersCommands<T>(cli: Argv<T>): Argv<T> {
  return cli.command('members', 'list, add, remove and promote cluster members (admin)', (y) =>
    y
      .command(
        'list',
        'the members as the leader sees them',
        (y) =>
          withConnection(y, ADMIN_TIMEOUT_MS)
            .example('$0 members list', 'a table of the members')
            .example('$0 members list --json', 'GET /v1/members as JSON'),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as ConnectionArgs;
            printMembership(args, await fetchMembers(clientOf(args)));
          }),
      )
      .command(
        'add <name>',
        'add a node (already started with --join) in a role; a voter is added as a learner, then promoted once it has caught up',
        (y) =>
          withConnection(nameArgument(y, 'the new member’s --name'), ADD_TIMEOUT_MS)
            .option('peer', {
              type: 'string',
              describe:
                'the new member’s mesh address (its --peer-listen), a multiaddr; a satellite may have none (it dials the members)',
            })
            .option('role', {
              type: 'string',
              describe:
                'voter (the default), learner (a non-voting replica), spare (replaces a dead voter), satellite (serves distant clients) or dr (a disaster-recovery replica)',
            })
            .option('learner', {
              type: 'boolean',
              default: false,
              describe: 'the same as --role learner: promote it later with `members promote`',
            })
            .example('$0 members add n4 --peer /ip4/10.0.0.4/tcp/7001', 'add n4; it votes once caught up')
            .example('$0 members add r1 --learner --peer /ip4/10.0.0.9/tcp/7001', 'a non-voting replica')
            .example('$0 members add s1 --role spare --peer /ip4/10.0.0.5/tcp/7001', 'a spare'),
        (argv) => runCommand(() => addMember(argv as unknown as AddArgs)),
      )
      .command(
        'remove <name>',
        'remove a member (a voter or a learner)',
        (y) =>
          withConnection(nameArgument(y, 'the member to remove'), ADMIN_TIMEOUT_MS).example(
            '$0 members remove n4',
            'n4 leaves the cluster',
          ),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as NameArgs;
            const answer = await clientOf(args).call<{ name: string; removed: boolean }>(
              'DELETE',
              memberPath(args.name),
              ADMIN_WRITE,
            );
            if (args.json) printJson(answer);
            else printLine(`removed ${answer.name}`);
          }),
      )
      .command(
        'promote <name>',
        'make a learner a voter (refused with LEARNER_NOT_CAUGHT_UP while it lags)',
        (y) =>
          withConnection(nameArgument(y, 'the learner to promote'), ADMIN_TIMEOUT_MS).example(
            '$0 members promote n4',
            'n4 votes from now on',
          ),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as NameArgs;
            const answer = await promote(clientOf(args), args.name);
            if (args.json) printJson(answer);
            else printLine(`promoted ${answer.name} to ${answer.role}`);
          }),
      )
      .demandCommand(1, 'say which: members list | add | remove | promote')
      .example('$0 members list', 'the members')
      .example('$0 members add n4 --peer /ip4/127.0.0.1/tcp/7004', 'add a node'),
  );
}

function printMembership(args: ConnectionArgs, view: MembersView): void {
  if (args.json) {
    printJson(view);
    return;
  }
  printLine(renderClusterLine(view));
  printLine(renderMembers(view, { address: true }));
}

function promote(client: ApiClient, name: string): Promise<{ name: string; role: string }> {
  return client.call('POST', `${memberPath(name)}/promote`, ADMIN_WRITE);
}

/**
 * Adds the member as a learner, then (unless --learner) waits for it to catch up and promotes
 * it. Re-running after an interrupted add picks up where it stopped: a member of that name and
 * address already there is not an error.
 */
async function addMember(args: AddArgs): Promise<void> {
  const role = roleOf(args);
  const peer = args.peer ?? '';
  if (peer === '' ? role !== 'satellite' : peer.trim() === '' || !peer.startsWith('/')) {
    throw new UsageError(
      `--peer must be a multiaddr such as /ip4/10.0.0.4/tcp/7001${peer === '' ? ' (only a satellite may go without)' : `, not ${JSON.stringify(peer)}`}`,
    );
  }
  const client = clientOf(args);
  await addLearner(client, args.name, peer, role === 'voter' ? 'learner' : role);
  if (role === 'voter') {
    await catchUpAndPromote(client, args.name);
    progress(`${args.name}: a voter`);
  }
  // Its own short deadline: the wait may have used up --timeout to the last moment.
  printMembership(args, await fetchMembers(client.fork(POLL_TIMEOUT_MS)));
}

function roleOf(args: AddArgs): (typeof ADD_ROLES)[number] {
  const role = args.role ?? (args.learner ? 'learner' : 'voter');
  if (!(ADD_ROLES as readonly string[]).includes(role)) {
    throw new UsageError(`--role must be one of ${ADD_ROLES.join(', ')}, not ${JSON.stringify(role)}`);
  }
  if (args.learner && role !== 'learner') {
    throw new UsageError(`--learner says role learner, --role says ${role}: give one`);
  }
  return role as (typeof ADD_ROLES)[number];
}

async function addLearner(client: ApiClient, name: string, peer: string, role: string): Promise<void> {
  try {
    await client.call('POST', '/v1/members', {
      ...ADMIN_WRITE,
      body: JSON.stringify(role === 'learner' ? { name, peer } : { name, peer, role }),
    });
    progress(`${name}: added as a ${role === 'learner' ? 'learner' : `learner with role ${role}`}`);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.code !== 'CONFLICT' && !error.indeterminate)) throw error;
    // Already a member (an earlier run), or an add whose answer was lost: look before failing.
    const existing = (await fetchMembers(client, { timeoutMs: POLL_TIMEOUT_MS })).members.find(
      (m) => m.name === name,
    );
    if (existing === undefined || (existing.address !== '' && existing.address !== peer)) throw error;
    progress(`${name}: already a ${existing.role}`);
  }
}

async function catchUpAndPromote(client: ApiClient, name: string): Promise<void> {
  const reporter = new ProgressReporter(name);
  let lag: number | null = null;
  try {
    for (;;) {
      const view = await fetchMembers(client, { timeoutMs: POLL_TIMEOUT_MS });
      const member = view.members.find((m) => m.name === name);
      if (member === undefined) {
        throw new ApiError('NOT_FOUND', `${name} is no longer a member (removed meanwhile?)`);
      }
      if (member.role === 'voter') return;
      lag = lagOf(member, view);
      reporter.report(member, view, lag);
      if (lag !== null && lag <= PROMOTE_LAG_MAX && (await tryPromote(client, name))) return;
      await sleep(Math.min(POLL_INTERVAL_MS, client.remainingMs()));
    }
  } catch (error) {
    // Out of time in a poll or a promote: say what that means for the member, not which call it was.
    if (error instanceof ApiError && error.code === 'TIMEOUT' && client.remainingMs() === 0) {
      throw new ApiError(
        'TIMEOUT',
        `${name} was not promoted within ${client.timeoutMs} ms (last lag ${lag ?? 'unknown'}); ` +
          `it is still a learner: see conclave members list, then members promote ${name} or members remove ${name}`,
      );
    }
    throw error;
  } finally {
    reporter.end();
  }
}

/** True once promoted; false when the leader says to wait (or the answer was lost: the next poll tells). */
async function tryPromote(client: ApiClient, name: string): Promise<boolean> {
  try {
    await promote(client, name);
    return true;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.code === 'CONFLICT' && error.reason !== undefined && PROMOTE_WAIT_REASONS.has(error.reason))
      return false;
    if (error.indeterminate) return false;
    throw error;
  }
}

function lagOf(member: MemberView, view: MembersView): number | null {
  if (member.lag !== null) return member.lag;
  return member.matchIndex === null ? null : Math.max(0, view.commitIndex - member.matchIndex);
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Catch-up progress on stderr: one updating line on a TTY, else a line when it moves (or every 10 s). */
class ProgressReporter {
  private readonly tty = process.stderr.isTTY === true;
  private lastMatch: number | null = null;
  private lastLineAt = 0;
  private pending = false;

  constructor(private readonly name: string) {}

  report(member: MemberView, view: MembersView, lag: number | null): void {
    const line =
      `${this.name}: catching up: match ${member.matchIndex ?? '?'} of commit ${view.commitIndex}` +
      ` (lag ${lag ?? '?'}, ${member.state})`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      this.pending = true;
      return;
    }
    const now = Date.now();
    if (member.matchIndex === this.lastMatch && now - this.lastLineAt < PROGRESS_LINE_INTERVAL_MS) return;
    this.lastMatch = member.matchIndex;
    this.lastLineAt = now;
    progress(line);
  }

  end(): void {
    if (this.pending) process.stderr.write('\n');
    this.pending = false;
  }
}
