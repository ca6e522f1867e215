// `conclave leader transfer --to NAME`: hand leadership to another voter (before maintenance on the leader).

import type { Argv } from 'yargs';
import { type ConnectionArgs, clientOf, runCommand, withConnection } from './common.js';
import { ADMIN_WRITE } from './membership.js';
import { printJson, printLine } from './output.js';

const TRANSFER_TIMEOUT_MS = 30_000;

interface TransferArgs extends ConnectionArgs {
  readonly to: string;
}

export function leaderCommands<T>(cli: Argv<T>): Argv<T> {
  return cli.command('leader', 'leadership (admin): leader transfer --to NAME', (y) =>
    y
      .command(
        'transfer',
        'make another voter the leader',
        (y) =>
          withConnection(y, TRANSFER_TIMEOUT_MS)
            .option('to', { type: 'string', demandOption: true, describe: 'the voter to lead next' })
            .example('$0 leader transfer --to n2', 'n2 leads; the old leader can be stopped for maintenance'),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as TransferArgs;
            const answer = await clientOf(args).call<{ leader: string; term: number }>(
              'POST',
              '/v1/leader/transfer',
              { ...ADMIN_WRITE, body: JSON.stringify({ to: args.to }) },
            );
            if (args.json) printJson(answer);
            else printLine(`leader is now ${answer.leader} (term ${answer.term})`);
          }),
      )
      .demandCommand(1, 'say which: leader transfer --to NAME')
      .example('$0 leader transfer --to n2', 'hand leadership to n2'),
  );
}
