// `conclave users|grant|revoke|tokens|definition`: who may do what, edited through the leader over the definition routes (src/definition-api.ts).

import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { DefinitionDoc } from '../../storage/access.js';
import { parseDuration } from '../config.js';
import type { DefinitionView } from '../kv-service.js';
import {
  type ConnectionArgs,
  clientOf,
  nonNegativeInteger,
  runCommand,
  UsageError,
  withConnection,
} from './common.js';
import { definitionDiff, definitionYaml, parseDefinitionFile } from './definition-file.js';
import { printJson, printLine, renderTable } from './output.js';

const TIMEOUT_MS = 30_000;
/** The file's limits are the node's to check; the CLI only refuses what no node takes. */
const FILE_VALUE_MAX_BYTES = 64 * 1024 * 1024;

type Args<T> = ConnectionArgs & T;

const path = (...parts: string[]): string => `/v1/${parts.map(encodeURIComponent).join('/')}`;

export function accessCommands<T>(cli: Argv<T>): Argv<T> {
  return cli
    .command('users', 'users: users list, add NAME, remove NAME', (y) =>
      y
        .command(
          'list',
          'every user, with cluster-admin and grants',
          (y) => withConnection(y, TIMEOUT_MS),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<object>;
              const answer = await clientOf(args).call<{ users: DefinitionDoc['users']; version: number }>(
                'GET',
                '/v1/users',
                { idempotent: true },
              );
              if (args.json) return printJson(answer);
              const rows = Object.entries(answer.users).map(([name, user]) => [
                name,
                user.clusterAdmin ? 'yes' : 'no',
                Object.entries(user.grants)
                  .map(([realm, level]) => `${realm}:${level}`)
                  .join(' ') || '-',
              ]);
              printLine(renderTable(['USER', 'CLUSTER-ADMIN', 'GRANTS'], rows));
            }),
        )
        .command(
          'add <name>',
          'add a user (then: grant, tokens create)',
          (y) =>
            withConnection(y, TIMEOUT_MS)
              .positional('name', {
                type: 'string',
                demandOption: true,
                describe: 'a-z, 0-9, _ . @ -, at most 64',
              })
              .option('cluster-admin', {
                type: 'boolean',
                default: false,
                describe: 'membership, backups, the whole definition',
              })
              .example('$0 users add alice', 'then: conclave grant alice shop write'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<{ name: string; clusterAdmin: boolean }>;
              const answer = await clientOf(args).call<{ name: string; version: number }>(
                'POST',
                '/v1/users',
                {
                  body: JSON.stringify({ name: args.name, clusterAdmin: args.clusterAdmin }),
                  idempotent: false,
                },
              );
              if (args.json) printJson(answer);
              else printLine(`added user ${answer.name} (definition version ${answer.version})`);
            }),
        )
        .command(
          'remove <name>',
          'remove a user and every token of it',
          (y) => withConnection(y, TIMEOUT_MS).positional('name', { type: 'string', demandOption: true }),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<{ name: string }>;
              const answer = await clientOf(args).call<{ version: number }>(
                'DELETE',
                path('users', args.name),
                {
                  idempotent: false,
                },
              );
              if (args.json) printJson(answer);
              else
                printLine(`removed user ${args.name} and its tokens (definition version ${answer.version})`);
            }),
        )
        .demandCommand(1, 'say which: users list, users add NAME, users remove NAME'),
    )
    .command(
      'grant <user> [realm] [level]',
      'give USER read, write or admin on REALM, or --cluster-admin',
      (y) =>
        withConnection(y, TIMEOUT_MS)
          .positional('user', { type: 'string', demandOption: true })
          .positional('realm', { type: 'string', describe: 'the realm' })
          .positional('level', { type: 'string', choices: ['read', 'write', 'admin'] as const })
          .option('cluster-admin', {
            type: 'boolean',
            default: false,
            describe: 'grant cluster-admin instead',
          })
          .example('$0 grant alice shop write', 'alice may read and write realm shop')
          .example('$0 grant bob --cluster-admin', 'bob may do everything'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as Args<{
            user: string;
            realm?: string;
            level?: string;
            clusterAdmin: boolean;
          }>;
          const client = clientOf(args);
          let answer: { version: number };
          if (args.clusterAdmin) {
            if (args.realm !== undefined)
              throw new UsageError('give a realm and a level, or --cluster-admin, not both');
            answer = await client.call('PUT', path('users', args.user, 'cluster-admin'), {
              idempotent: true,
            });
          } else {
            if (args.realm === undefined || args.level === undefined) {
              throw new UsageError(
                'say what to grant: conclave grant USER REALM read|write|admin, or --cluster-admin',
              );
            }
            answer = await client.call('PUT', path('realms', args.realm, 'grants', args.user), {
              body: JSON.stringify({ level: args.level }),
              idempotent: true,
            });
          }
          if (args.json) printJson(answer);
          else printLine(`granted (definition version ${answer.version})`);
        }),
    )
    .command(
      'revoke <user> [realm]',
      "take USER's grant on REALM away, or --cluster-admin",
      (y) =>
        withConnection(y, TIMEOUT_MS)
          .positional('user', { type: 'string', demandOption: true })
          .positional('realm', { type: 'string' })
          .option('cluster-admin', {
            type: 'boolean',
            default: false,
            describe: 'take cluster-admin away instead',
          })
          .example('$0 revoke alice shop', 'alice may no longer use realm shop'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as Args<{ user: string; realm?: string; clusterAdmin: boolean }>;
          if (args.clusterAdmin === (args.realm !== undefined)) {
            throw new UsageError(
              'say what to revoke: conclave revoke USER REALM, or conclave revoke USER --cluster-admin',
            );
          }
          const answer = await clientOf(args).call<{ version: number }>(
            'DELETE',
            args.clusterAdmin
              ? path('users', args.user, 'cluster-admin')
              : path('realms', args.realm!, 'grants', args.user),
            { idempotent: true },
          );
          if (args.json) printJson(answer);
          else printLine(`revoked (definition version ${answer.version})`);
        }),
    )
    .command('tokens', 'tokens: tokens create USER, list, revoke ID', (y) =>
      y
        .command(
          'create <user>',
          'make a token for USER; printed once, on stdout',
          (y) =>
            withConnection(y, TIMEOUT_MS)
              .positional('user', { type: 'string', demandOption: true })
              .option('ttl', {
                type: 'string',
                describe: 'expires after this long: 90s, 30m, 12h, 30d (default: never)',
              })
              .example('$0 tokens create alice --ttl 30d > alice.token', 'a token valid for 30 days'),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<{ user: string; ttl?: string }>;
              let ttlSeconds: number | undefined;
              if (args.ttl !== undefined) {
                const ms = parseDuration(args.ttl);
                if (ms === undefined || ms < 1000)
                  throw new UsageError(
                    `--ttl ${args.ttl}: give a duration of at least 1s, such as 90s, 30m, 12h or 30d`,
                  );
                ttlSeconds = Math.floor(ms / 1000);
              }
              const answer = await clientOf(args).call<{
                id: string;
                token: string;
                user: string;
                expiresAt: number;
              }>('POST', '/v1/tokens', {
                body: JSON.stringify({
                  user: args.user,
                  ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
                }),
                idempotent: false,
              });
              if (args.json) return printJson(answer);
              printLine(answer.token);
              process.stderr.write(
                `conclave: token ${answer.id} for ${answer.user}, ${answer.expiresAt === 0 ? 'never expires' : `expires ${new Date(answer.expiresAt).toISOString()}`}; it is not shown again\n`,
              );
            }),
        )
        .command(
          'list',
          'every token: id, user, made, expires (never the token itself)',
          (y) => withConnection(y, TIMEOUT_MS),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<object>;
              const answer = await clientOf(args).call<{ tokens: DefinitionView['tokens'] }>(
                'GET',
                '/v1/tokens',
                {
                  idempotent: true,
                },
              );
              if (args.json) return printJson(answer);
              const when = (ms: number) => (ms === 0 ? 'never' : new Date(ms).toISOString());
              printLine(
                renderTable(
                  ['ID', 'USER', 'CREATED', 'EXPIRES'],
                  answer.tokens.map((t) => [t.id, t.user, when(t.createdAt), when(t.expiresAt)]),
                ),
              );
            }),
        )
        .command(
          'revoke <id>',
          'revoke a token on every node (see tokens list for ids)',
          (y) => withConnection(y, TIMEOUT_MS).positional('id', { type: 'string', demandOption: true }),
          (argv) =>
            runCommand(async () => {
              const args = argv as unknown as Args<{ id: string }>;
              const answer = await clientOf(args).call<{ version: number }>(
                'DELETE',
                path('tokens', args.id),
                {
                  idempotent: false,
                },
              );
              if (args.json) printJson(answer);
              else printLine(`revoked token ${args.id} (definition version ${answer.version})`);
            }),
        )
        .demandCommand(1, 'say which: tokens create USER, tokens list, tokens revoke ID'),
    )
    .command(
      'definition',
      'the whole realm definition as YAML: definition export, definition apply FILE',
      (y) =>
        y
          .command(
            'export',
            'print the definition as YAML (realms, users, grants, auth; no tokens)',
            (y) =>
              withConnection(y, TIMEOUT_MS).example(
                '$0 definition export > def.yaml',
                'then edit and apply it',
              ),
            (argv) =>
              runCommand(async () => {
                const args = argv as unknown as Args<object>;
                const client = clientOf(args);
                const view = await client.call<DefinitionView>('GET', '/v1/definition', { idempotent: true });
                if (args.json) return printJson({ version: view.version, definition: view.definition });
                process.stdout.write(
                  definitionYaml(view.definition, view.version, client.endpoints[0] ?? ''),
                );
              }),
          )
          .command(
            'apply <file>',
            'show what FILE changes, then apply it at once (refused if the definition moved on)',
            (y) =>
              withConnection(y, TIMEOUT_MS)
                .positional('file', {
                  type: 'string',
                  demandOption: true,
                  describe: 'a YAML file, as export writes it',
                })
                .option('if-version', {
                  type: 'number',
                  describe:
                    "apply only if the definition is at this version (default: the file's version, else the one read)",
                })
                .option('dry-run', {
                  type: 'boolean',
                  default: false,
                  describe: 'show the changes, apply nothing',
                })
                .example('$0 definition apply def.yaml', 'prints the changes, then applies them'),
            (argv) =>
              runCommand(async () => {
                const args = argv as unknown as Args<{ file: string; ifVersion?: number; dryRun: boolean }>;
                let text: string;
                try {
                  text = await readFile(args.file, 'utf8');
                } catch (error) {
                  throw new UsageError(`${args.file}: cannot read it (${(error as Error).message})`);
                }
                const file = parseDefinitionFile(text, args.file, FILE_VALUE_MAX_BYTES);
                const client = clientOf(args);
                const current = await client.call<DefinitionView>('GET', '/v1/definition', {
                  idempotent: true,
                });
                const ifVersion =
                  nonNegativeInteger(args.ifVersion, '--if-version') ?? file.version ?? current.version;
                const changes = definitionDiff(current.definition, file.definition);
                if (!args.json) {
                  for (const line of changes) printLine(line);
                  if (changes.length === 0)
                    printLine(
                      `no changes: the definition is as ${args.file} says (version ${current.version})`,
                    );
                }
                if (changes.length === 0 || args.dryRun) {
                  if (args.json) printJson({ version: current.version, changes, applied: false });
                  return;
                }
                if (ifVersion !== current.version) {
                  throw Object.assign(
                    new Error(
                      `the definition is at version ${current.version}, not ${ifVersion}: export it again and redo the edit`,
                    ),
                    { code: 'CONFLICT' },
                  );
                }
                const answer = await client.call<{ version: number; created?: string[] }>(
                  'PUT',
                  '/v1/definition',
                  {
                    body: JSON.stringify({ definition: file.definition, ifVersion }),
                    idempotent: false,
                  },
                );
                if (args.json) printJson({ ...answer, changes, applied: true });
                else
                  printLine(
                    `applied ${changes.length} change${changes.length === 1 ? '' : 's'}: definition version ${answer.version}`,
                  );
              }),
          )
          .demandCommand(1, 'say which: definition export, definition apply FILE'),
    );
}
