// `conclave realms list|create|describe|delete`: the realms of the cluster over the HTTP API's /v1/realms routes.

import type { Argv } from 'yargs';
import {
  type ConnectionArgs,
  clientOf,
  positiveInteger,
  runCommand,
  UsageError,
  withConnection,
} from './common.js';
import { printJson, printLine, renderTable } from './output.js';

/** Realm commands answer within this unless --timeout says otherwise. */
const REALMS_TIMEOUT_MS = 30_000;

/** GET /v1/realms. */
interface RealmList {
  readonly realms: string[];
  readonly revision: number;
}

/** GET /v1/realms/NAME/definition. */
interface RealmDescription {
  readonly name: string;
  readonly createRevision: number;
  readonly documents: number;
  readonly settings: { readonly maxValueBytes?: number };
  readonly grants: Readonly<Record<string, string>>;
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
  return cli.command(
    'realms',
    'realms: realms list, create NAME, describe NAME, set NAME, delete NAME',
    (y) =>
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
              .option('max-value-bytes', {
                type: 'number',
                describe: 'the largest document the realm takes (JSON bytes); default: the node limit',
              })
              .option('group', {
                type: 'string',
                describe:
                  'the raft group to put it in: an id from conclave groups list, or auto (the group with the fewest realms); default: group 1',
              })
              .example('$0 realms create shop', 'then: conclave put shop KEY VALUE')
              .example('$0 realms create orders --group auto', 'in the raft group with the fewest realms')
              .example('$0 realms create shop --json', '{"name":"shop","revision":N}'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs & {
                name: string;
                maxValueBytes?: number;
                group?: string;
              };
              const max = positiveInteger(args.maxValueBytes, '--max-value-bytes');
              if (
                args.group !== undefined &&
                args.group !== 'auto' &&
                !/^[1-9][0-9]{0,9}$/.test(args.group)
              ) {
                throw new UsageError(
                  `--group must be a group id (conclave groups list) or auto, not ${args.group}`,
                );
              }
              const group =
                args.group === undefined || args.group === 'auto' ? args.group : Number(args.group);
              const answer = await clientOf(args).call<CreatedRealm>('POST', '/v1/realms', {
                body: JSON.stringify({
                  name: args.name,
                  ...(max === undefined ? {} : { settings: { maxValueBytes: max } }),
                  ...(group === undefined ? {} : { group }),
                }),
                idempotent: false,
              });
              if (args.json) printJson(answer);
              else printLine(`created realm ${answer.name} at revision ${answer.revision}`);
            }),
        )
        .command(
          'describe <name>',
          "a realm's settings, document count and grants (needs admin on it)",
          (y) =>
            withConnection(y, REALMS_TIMEOUT_MS)
              .positional('name', { type: 'string', demandOption: true, describe: 'the realm' })
              .example('$0 realms describe shop', 'its settings, documents and who may do what'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs & { name: string };
              const answer = await clientOf(args).call<RealmDescription>(
                'GET',
                `/v1/realms/${encodeURIComponent(args.name)}/definition`,
                { idempotent: true },
              );
              if (args.json) {
                printJson(answer);
                return;
              }
              printLine(
                `realm ${answer.name}: ${answer.documents} document${answer.documents === 1 ? '' : 's'}, created at revision ${answer.createRevision}`,
              );
              printLine(
                `max document size: ${answer.settings.maxValueBytes === undefined ? 'the node limit' : `${answer.settings.maxValueBytes} bytes`}`,
              );
              const grants = Object.entries(answer.grants);
              if (grants.length === 0) printLine('grants: none (cluster admins may do everything)');
              else printLine(renderTable(['USER', 'LEVEL'], grants));
            }),
        )
        .command(
          'set <name>',
          "change a realm's settings (needs admin on it)",
          (y) =>
            withConnection(y, REALMS_TIMEOUT_MS)
              .positional('name', { type: 'string', demandOption: true, describe: 'the realm' })
              .option('max-value-bytes', {
                type: 'number',
                describe: 'the largest document it takes (JSON bytes); 0: back to the node limit',
                demandOption: true,
              })
              .example('$0 realms set shop --max-value-bytes 65536', 'documents of at most 64 KiB'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs & { name: string; maxValueBytes: number };
              const max =
                args.maxValueBytes === 0
                  ? undefined
                  : positiveInteger(args.maxValueBytes, '--max-value-bytes');
              const answer = await clientOf(args).call<{ version: number }>(
                'PUT',
                `/v1/realms/${encodeURIComponent(args.name)}/settings`,
                { body: JSON.stringify(max === undefined ? {} : { maxValueBytes: max }), idempotent: true },
              );
              if (args.json) printJson(answer);
              else printLine(`realm ${args.name} changed (definition version ${answer.version})`);
            }),
        )
        .command(
          'delete <name>',
          'delete an empty realm (needs cluster-admin)',
          (y) =>
            withConnection(y, REALMS_TIMEOUT_MS)
              .positional('name', { type: 'string', demandOption: true, describe: 'the realm' })
              .example('$0 realms delete old', 'CONFLICT while it holds documents'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as ConnectionArgs & { name: string };
              const answer = await clientOf(args).call<{ version: number }>(
                'DELETE',
                `/v1/realms/${encodeURIComponent(args.name)}`,
                { idempotent: false },
              );
              if (args.json) printJson(answer);
              else printLine(`deleted realm ${args.name} (definition version ${answer.version})`);
            }),
        )
        .demandCommand(1, 'say which: realms list, create NAME, describe NAME, set NAME or delete NAME')
        .example('$0 realms list', 'the realms')
        .example('$0 realms create shop', 'a new realm named shop'),
  );
}
