// `conclave realms list|create`: the realms of the cluster over the HTTP API's /v1/realms routes.

import type { Argv } from 'yargs';
import { type ConnectionArgs, clientOf, runCommand, withConnection } from './common.js';
import { printJson, printLine } from './output.js';

/** Realm commands answer within this unless --timeout says otherwise. */
const REALMS_TIMEOUT_MS = 30_000;

/** GET /v1/realms. */
interface RealmList {
  readonly realms: string[];
  readonly revision: number;
}

/** POST /v1/realms. */
interface CreatedRealm {
  readonly name: string;
  readonly revision: number;
}

/**
 * `realms list` (GET /v1/realms: every realm's name, in order) and `realms create NAME`
 * (POST /v1/realms: CONFLICT if it exists, INVALID_ARGUMENT for a bad name, TOO_LARGE at the
 * realm limit). A create is sent once: resent after its answer was lost, it would answer
 * CONFLICT for its own success, so a create whose answer is lost fails indeterminate.
 */
export function realmsCommands<T>(cli: Argv<T>): Argv<T> {
  return cli.command('realms', 'realms: realms list, realms create NAME', (y) =>
    y
      .command(
        'list',
        'print the name of every realm',
        (y) =>
          withConnection(y, REALMS_TIMEOUT_MS)
            .option('stale', {
              type: 'boolean',
              default: false,
              describe: "read this node's copy at once, without confirming with the leader",
            })
            .example('$0 realms list', 'one realm name per line')
            .example('$0 realms list --json', '{"realms":["default",…],"revision":N}'),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as ConnectionArgs & { stale: boolean };
            const answer = await clientOf(args).call<RealmList>('GET', '/v1/realms', {
              idempotent: true,
              query: { consistency: args.stale ? 'stale' : undefined },
            });
            if (args.json) printJson(answer);
            else for (const realm of answer.realms) printLine(realm);
          }),
      )
      .command(
        'create <name>',
        'create a realm (a separate key space; `default` always exists)',
        (y) =>
          withConnection(y, REALMS_TIMEOUT_MS)
            .positional('name', {
              type: 'string',
              demandOption: true,
              describe:
                "the realm's name: a-z, 0-9, '_', '.', '-', at most 64, starting with a letter or digit",
            })
            .example('$0 realms create shop', 'then: conclave put shop KEY VALUE')
            .example('$0 realms create shop --json', '{"name":"shop","revision":N}'),
        (argv) =>
          runCommand(async () => {
            const args = argv as unknown as ConnectionArgs & { name: string };
            const answer = await clientOf(args).call<CreatedRealm>('POST', '/v1/realms', {
              body: JSON.stringify({ name: args.name }),
              idempotent: false,
            });
            if (args.json) printJson(answer);
            else printLine(`created realm ${answer.name} at revision ${answer.revision}`);
          }),
      )
      .demandCommand(1, 'say which: realms list, or realms create NAME')
      .example('$0 realms list', 'the realms')
      .example('$0 realms create shop', 'a new realm named shop'),
  );
}
