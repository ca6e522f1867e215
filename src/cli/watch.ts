// `conclave watch`: a line per change under a prefix, through the TypeScript client, until Ctrl-C.

import type { Argv } from 'yargs';
import {
  type ConnectionArgs,
  nonNegativeInteger,
  parseEndpoints,
  positiveInteger,
  readCa,
  runCommand,
  tokenOf,
  withConnection,
} from './common.js';
import { compactJson, printJsonLine, printLine } from './output.js';

interface WatchArgs extends ConnectionArgs {
  readonly realm: string;
  readonly prefix?: string;
  readonly fromRevision?: number;
}

/** How long a watch may go without any node to serve it (starting or resuming) before it gives up. */
const WATCH_TIMEOUT_MS = 30_000;

export function watchCommand<T>(cli: Argv<T>): Argv<T> {
  return cli.command(
    'watch <realm> [prefix]',
    'print each change to documents under a prefix until Ctrl-C',
    (y) =>
      withConnection(y, WATCH_TIMEOUT_MS, 'give up when no node serves the watch for this many milliseconds')
        .positional('realm', { type: 'string', demandOption: true, describe: 'the realm' })
        .positional('prefix', { type: 'string', describe: 'only keys that start with this (default: all)' })
        .option('from-revision', {
          type: 'number',
          describe: 'replay the changes since this revision first (default: only new ones)',
        })
        .example('$0 watch default users/', 'one line per put or delete under users/')
        .example(
          '$0 watch default --from-revision 100 --json',
          'one JSON object per line, from revision 100',
        ),
    (argv) => runCommand(() => watch(argv as unknown as WatchArgs)),
  );
}

async function watch(args: WatchArgs): Promise<void> {
  const endpoints = parseEndpoints(args.endpoints);
  const ca = readCa(args.ca);
  const fromRevision = nonNegativeInteger(args.fromRevision, '--from-revision');
  // Loaded here so that the other commands do not load the client and its WebSocket library.
  const { Client } = await import('../client/index.js');
  const requestTimeoutMs = positiveInteger(args.timeout, '--timeout')!;
  const token = tokenOf(args);
  const client = new Client({
    endpoints,
    requestTimeoutMs,
    ...(ca === undefined ? {} : { ca }),
    ...(token === undefined ? {} : { token }),
  });
  const watcher = client.watch(
    args.realm,
    args.prefix ?? '',
    fromRevision === undefined ? {} : { fromRevision },
  );
  const stop = () => watcher.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const event of watcher) {
      const line = {
        type: event.type,
        key: event.key,
        value: event.value ?? null,
        modRevision: event.modRevision,
      };
      if (args.json) printJsonLine(line);
      else if (event.type === 'delete') printLine(`[${event.modRevision}] delete ${event.key}`);
      else printLine(`[${event.modRevision}] put ${event.key} ${compactJson(event.value, 200)}`);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    watcher.close();
    await client.close();
  }
}
