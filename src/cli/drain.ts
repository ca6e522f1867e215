// `conclave drain --endpoints URL`: one node reports not ready, hands leadership over, finishes what is in flight and stops, as on SIGTERM; the command waits until it is gone.

import type { Argv } from 'yargs';
import {
  type ConnectionArgs,
  clientOf,
  parseEndpoints,
  runCommand,
  UsageError,
  withConnection,
} from './common.js';
import { sleep } from './http.js';
import { printJson, printLine } from './output.js';

const DRAIN_TIMEOUT_MS = 60_000;

export function drainCommand<T>(cli: Argv<T>): Argv<T> {
  return cli.command(
    'drain',
    'stop one node gracefully (admin): not ready first, leadership handed over, requests finished',
    (y) =>
      withConnection(y, DRAIN_TIMEOUT_MS, 'give up waiting for the node to stop after this many milliseconds')
        .example('$0 drain --endpoints http://10.0.0.2:8080', 'then upgrade it and start it again')
        .epilogue('Give exactly the node to drain in --endpoints: the command never picks one for you.'),
    (argv) =>
      runCommand(async () => {
        const args = argv as unknown as ConnectionArgs;
        const endpoints = parseEndpoints(args.endpoints);
        if (endpoints.length !== 1) {
          throw new UsageError(
            `drain stops the node at --endpoints: give exactly one, not ${endpoints.length}`,
          );
        }
        const client = clientOf(args);
        const answer = await client.call<{ node: string; draining: boolean }>('POST', '/v1/drain', {
          idempotent: false,
        });
        if (!args.json) process.stderr.write(`conclave: ${answer.node} is draining…\n`);
        const deadline = Date.now() + args.timeout;
        for (;;) {
          // Through the CLI's client, so that --ca and --token apply; any failure means it is gone.
          const alive = await client
            .fork(1000)
            .call('GET', '/healthz', { idempotent: true })
            .then(
              () => true,
              () => false,
            );
          if (!alive) break;
          if (Date.now() > deadline) {
            throw Object.assign(new Error(`${answer.node} still answers after ${args.timeout} ms`), {
              code: 'TIMEOUT',
            });
          }
          await sleep(200);
        }
        if (args.json) printJson({ node: answer.node, stopped: true });
        else printLine(`${answer.node} stopped`);
      }),
  );
}
