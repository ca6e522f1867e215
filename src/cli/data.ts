// Data commands over the HTTP API: get, put, patch, del and list of documents in a realm.

import type { Argv } from 'yargs';
import {
  type ConnectionArgs,
  clientOf,
  nonNegativeInteger,
  positiveInteger,
  readJsonArgument,
  runCommand,
  withConnection,
} from './common.js';
import { documentPath } from './http.js';
import { compactJson, printJson, printLine, renderTable } from './output.js';

/** Data commands answer within this unless --timeout says otherwise. */
const DATA_TIMEOUT_MS = 30_000;

interface Document {
  readonly key: string;
  readonly value: unknown;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

interface ListPage {
  readonly documents: Document[];
  readonly more: boolean;
  readonly next: string | null;
  readonly revision: number;
}

interface WriteAnswer {
  readonly revision: number;
}

interface DocumentArgs extends ConnectionArgs {
  readonly realm: string;
  readonly key: string;
}

interface WriteArgs extends DocumentArgs {
  readonly ifRevision?: number;
}

function realmAndKey<T>(y: Argv<T>) {
  return y
    .positional('realm', { type: 'string', demandOption: true, describe: 'the realm (e.g. default)' })
    .positional('key', { type: 'string', demandOption: true, describe: 'the document key' });
}

function ifRevisionOption<T>(y: Argv<T>) {
  return y.option('if-revision', {
    type: 'number',
    describe: 'only if the document is at this modRevision (0: only if absent)',
  });
}

function ifRevisionOf(args: WriteArgs): number | undefined {
  return nonNegativeInteger(args.ifRevision, '--if-revision');
}

function printWrite(args: ConnectionArgs, verb: string, key: string, answer: WriteAnswer): void {
  if (args.json) printJson(answer);
  else printLine(`${verb} ${key} at revision ${answer.revision}`);
}

export function dataCommands<T>(cli: Argv<T>): Argv<T> {
  return cli
    .command(
      'get <realm> <key>',
      'print a document',
      (y) =>
        withConnection(realmAndKey(y), DATA_TIMEOUT_MS)
          .option('stale', {
            type: 'boolean',
            default: false,
            describe: "read this node's copy at once, without confirming with the leader",
          })
          .example('$0 get default greeting', 'the value and its revisions')
          .example('$0 get default greeting --json | jq .value', 'the document as JSON'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as DocumentArgs & { stale: boolean };
          const client = clientOf(args);
          const document = await client.call<Document>('GET', documentPath(args.realm, args.key), {
            idempotent: true,
            query: { consistency: args.stale ? 'stale' : undefined },
          });
          if (args.json) {
            printJson(document);
            return;
          }
          printLine(
            `${document.key}  modRevision ${document.modRevision}  createRevision ${document.createRevision}  ` +
              `version ${document.version}`,
          );
          printLine(JSON.stringify(document.value, null, 2));
        }),
    )
    .command(
      'put <realm> <key> <value>',
      'write a document (VALUE is JSON; - reads it from stdin)',
      (y) =>
        withConnection(ifRevisionOption(realmAndKey(y)), DATA_TIMEOUT_MS)
          .positional('value', { type: 'string', demandOption: true, describe: 'the document, as JSON' })
          .option('if-absent', { type: 'boolean', describe: 'only if the key has no document' })
          .conflicts('if-revision', 'if-absent')
          .example(`$0 put default greeting '{"text":"hello"}'`, 'write a document')
          .example('$0 put default greeting - --if-revision 7 < doc.json', 'only if still at revision 7'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as WriteArgs & { value: string; ifAbsent?: boolean };
          const ifRevision = ifRevisionOf(args);
          const client = clientOf(args);
          const body = await readJsonArgument(args.value, 'VALUE');
          const answer = await client.call<WriteAnswer>('PUT', documentPath(args.realm, args.key), {
            body,
            query: { ifRevision, ifAbsent: args.ifAbsent === true ? true : undefined },
            idempotent: false,
          });
          printWrite(args, 'put', args.key, answer);
        }),
    )
    .command(
      'patch <realm> <key> <patch>',
      'merge a JSON merge patch (RFC 7386) into a document (- reads it from stdin)',
      (y) =>
        withConnection(ifRevisionOption(realmAndKey(y)), DATA_TIMEOUT_MS)
          .positional('patch', { type: 'string', demandOption: true, describe: 'the merge patch, as JSON' })
          .example(`$0 patch default greeting '{"lang":"en","draft":null}'`, 'set lang, remove draft'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as WriteArgs & { patch: string };
          const ifRevision = ifRevisionOf(args);
          const client = clientOf(args);
          const body = await readJsonArgument(args.patch, 'PATCH');
          const answer = await client.call<WriteAnswer>('PATCH', documentPath(args.realm, args.key), {
            body,
            query: { ifRevision },
            idempotent: false,
          });
          printWrite(args, 'patched', args.key, answer);
        }),
    )
    .command(
      'del <realm> <key>',
      'delete a document',
      (y) =>
        withConnection(ifRevisionOption(realmAndKey(y)), DATA_TIMEOUT_MS)
          .example('$0 del default greeting', 'delete it')
          .example('$0 del default greeting --if-revision 9', 'only if nobody changed it since revision 9'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as WriteArgs;
          const ifRevision = ifRevisionOf(args);
          const client = clientOf(args);
          const answer = await client.call<WriteAnswer>('DELETE', documentPath(args.realm, args.key), {
            query: { ifRevision },
            idempotent: false,
          });
          printWrite(args, 'deleted', args.key, answer);
        }),
    )
    .command(
      'list <realm> [prefix]',
      'list documents in key order, a page at a time (--all: every page)',
      (y) =>
        withConnection(y, DATA_TIMEOUT_MS)
          .positional('realm', { type: 'string', demandOption: true, describe: 'the realm' })
          .positional('prefix', { type: 'string', describe: 'only keys that start with this' })
          .option('limit', { type: 'number', describe: 'documents per page (the server caps it)' })
          .option('after', { type: 'string', describe: 'start after this key (a previous page’s next)' })
          .option('all', { type: 'boolean', default: false, describe: 'follow `next` through every page' })
          .option('stale', { type: 'boolean', default: false, describe: "read this node's copy at once" })
          .example('$0 list default users/ --limit 20', 'the first 20 keys under users/')
          .example('$0 list default --all --json', 'every document, as one JSON document'),
      (argv) =>
        runCommand(async () => {
          const args = argv as unknown as ConnectionArgs & {
            realm: string;
            prefix?: string;
            limit?: number;
            after?: string;
            all: boolean;
            stale: boolean;
          };
          const limit = positiveInteger(args.limit, '--limit');
          const client = clientOf(args);
          const path = `/v1/realms/${encodeURIComponent(args.realm)}/kv`;
          const documents: Document[] = [];
          let after = args.after;
          let page: ListPage;
          for (;;) {
            page = await client.call<ListPage>('GET', path, {
              idempotent: true,
              query: {
                prefix: args.prefix === '' ? undefined : args.prefix,
                limit,
                after,
                consistency: args.stale ? 'stale' : undefined,
              },
            });
            documents.push(...page.documents);
            // Stop on a page that cannot advance, whatever the server says, rather than loop.
            if (!args.all || !page.more || page.next === null || page.next === after) break;
            after = page.next;
          }
          // With --all the pages are separate reads: `revision` is the last page's.
          const result: ListPage = {
            documents,
            more: page.more && !args.all,
            next: args.all ? null : page.next,
            revision: page.revision,
          };
          if (args.json) {
            printJson(result);
            return;
          }
          if (documents.length === 0) printLine('(no documents)');
          else {
            printLine(
              renderTable(
                ['KEY', 'MOD REV', 'VERSION', 'VALUE'],
                documents.map((d) => [d.key, String(d.modRevision), String(d.version), compactJson(d.value)]),
              ),
            );
          }
          if (result.more && result.next !== null) {
            process.stderr.write(`more: continue with --after ${JSON.stringify(result.next)} (or --all)\n`);
          }
        }),
    );
}
