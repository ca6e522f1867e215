#!/usr/bin/env node
// The conclave command line: `start` runs a node, `secret new` writes a cluster secret, the rest talk to a cluster (src/cli/).

import '../net/polyfill.js';
import { fchmodSync, fstatSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { accessCommands } from './cli/access.js';
import { backupCommands } from './cli/backup.js';
import { EXIT_USAGE, markStdinArguments } from './cli/common.js';
import { dataCommands } from './cli/data.js';
import { drainCommand } from './cli/drain.js';
import { groupsCommands } from './cli/groups.js';
import { leaderCommands } from './cli/leader.js';
import { membersCommands } from './cli/members.js';
import { oneLine } from './cli/output.js';
import { realmsCommands } from './cli/realms.js';
import { recoveryCommands } from './cli/recovery.js';
import { statusCommand } from './cli/status.js';
import { watchCommand } from './cli/watch.js';
import {
  ConfigError,
  envName,
  isLoopbackHost,
  type NodeConfig,
  nodeRequiresAuth,
  resolveConfig,
  SETTINGS,
} from './config.js';
import type { ConclaveNode } from './node.js';
import type { ProxyNode } from './proxy-node.js';
import { EXIT_REMOVED, NodeRemovedError } from './removal.js';

async function start(flags: Record<string, unknown>): Promise<void> {
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = resolveConfig(flags, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`conclave start: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
  // Loaded here, not at the top: the client commands should not pay for libp2p and the storage engines.
  const [{ jsonLogger }, { ConclaveNode }, { ProxyNode }] = await Promise.all([
    import('../net/index.js'),
    import('./node.js'),
    import('./proxy-node.js'),
  ]);
  const logger = jsonLogger({ level: config.logLevel });
  const proxy = !config.services.includes('raft');
  let node: ConclaveNode | ProxyNode;
  try {
    node = proxy ? await ProxyNode.start(config, logger) : await ConclaveNode.start(config, logger);
  } catch (error) {
    console.error(`conclave start: ${(error as Error).message}`);
    process.exitCode = error instanceof NodeRemovedError ? EXIT_REMOVED : 1;
    return;
  }
  const scheme = config.tlsKeyFile ? 'https' : 'http';
  console.log(
    proxy
      ? `conclave: proxy ${config.name} serving ${scheme}://${config.clientHost}:${node.clientPort} ` +
          `(stateless: forwards to the cluster's members; ${config.ephemeralKey ? 'no files written' : `node key in ${config.dataDir}`}, ` +
          `uWebSockets.js ${node.uwsNative ? 'native' : 'FALLBACK (slow)'})`
      : node.clientPort === undefined
        ? `conclave: node ${config.name} running without a client port (services ${config.services.join(',')}; ` +
          `data in ${config.dataDir}, ${config.storageEngine})`
        : `conclave: node ${config.name} serving ${scheme}://${config.clientHost}:${node.clientPort} ` +
          `(data in ${config.dataDir}, ${config.storageEngine}, uWebSockets.js ${node.uwsNative ? 'native' : 'FALLBACK (slow)'})`,
  );
  if (node.clientPort !== undefined) {
    console.log(authLine(config, node));
    const host =
      config.clientHost === '0.0.0.0' || config.clientHost === '::' ? '127.0.0.1' : config.clientHost;
    const shown = host.includes(':') ? `[${host}]` : host;
    console.log(`conclave: dashboard at ${scheme}://${shown}:${node.clientPort}/`);
  }
  if ('adminToken' in node) {
    void node.adminToken.then((path) => {
      if (path !== undefined) {
        console.log(
          `conclave: the first cluster-admin token is in ${path} (mode 0600): ` +
            `export CONCLAVE_TOKEN=$(cat ${path}) to use the CLI; keep it secret`,
        );
      }
    });
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`conclave: ${signal}: stopping`);
    node.stop().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`conclave: stop failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if ('onDrainRequested' in node) node.onDrainRequested(() => shutdown('drain requested'));
  node.onFatal((error) => {
    if (stopping) return;
    stopping = true;
    const removed = error instanceof NodeRemovedError;
    const code = removed ? EXIT_REMOVED : EXIT_GROUP_FAILED;
    console.error(
      removed
        ? `conclave: ${error.message}; exiting with code ${code}. It will not start again with this data ` +
            'directory: empty it and add the node again (conclave members add) to bring it back.'
        : `conclave: the raft group failed (${error.message}); exiting with code ${code} ` +
            'so that a supervisor restarts the node once the cause (a full disk?) is fixed',
    );
    // A moment for /readyz to say why, for requests to be answered REMOVED and for the log to
    // reach its reader, then out; stopping must not hang on the storage that just failed.
    setTimeout(() => {
      const exit = () => process.exit(code);
      setTimeout(exit, 3000).unref();
      node.stop().then(exit, exit);
    }, 1000);
  });
}

/** What the node says at start about tokens. */
function authLine(config: NodeConfig, node: ConclaveNode | ProxyNode): string {
  const required = 'authRequired' in node ? node.authRequired : nodeRequiresAuth(config);
  if (required)
    return 'conclave: clients need a token (Authorization: Bearer TOKEN; CLI --token or $CONCLAVE_TOKEN)';
  if (!isLoopbackHost(config.clientHost)) {
    return `conclave: OPEN: clients need no token although it listens on ${config.clientHost} (--insecure-no-auth)`;
  }
  if ('authRequired' in node) {
    return 'conclave: OPEN: clients need no token (loopback only; start with --auth to require tokens)';
  }
  return 'conclave: clients need a token if the cluster requires one (this proxy listens on loopback only)';
}

/** Exit code of a node whose raft group failed (EX_TEMPFAIL: restart it once the cause is fixed). */
const EXIT_GROUP_FAILED = 75;

/** Commands with subcommands, and those subcommands: a usage hint names both words. */
const COMMAND_GROUPS: ReadonlyMap<string, readonly string[]> = new Map([
  ['members', ['list', 'add', 'remove', 'promote']],
  ['leader', ['transfer']],
  ['groups', ['list', 'add']],
  ['realms', ['list', 'create', 'describe', 'set', 'delete']],
  ['users', ['list', 'add', 'remove']],
  ['tokens', ['create', 'list', 'revoke']],
  ['definition', ['export', 'apply']],
  ['secret', ['new']],
  ['dr', ['promote']],
  ['backup', ['save', 'verify', 'list']],
]);

const COMMANDS: ReadonlySet<string> = new Set([
  ...COMMAND_GROUPS.keys(),
  'start',
  'status',
  'get',
  'put',
  'patch',
  'del',
  'list',
  'watch',
  'recover',
  'restore',
  'grant',
  'revoke',
  'drain',
]);

/** The command a usage error is about, for the `--help` hint. */
function commandWords(argv: readonly string[]): string {
  const [first, second] = argv.filter((word) => !word.startsWith('-'));
  if (first === undefined || !COMMANDS.has(first)) return 'conclave';
  const group = COMMAND_GROUPS.get(first);
  if (group === undefined || first === 'secret' || second === undefined || !group.includes(second)) {
    return `conclave ${first}`;
  }
  return `conclave ${first} ${second}`;
}

async function main(): Promise<void> {
  const args = hideBin(process.argv);
  let cli = yargs(markStdinArguments(args))
    .scriptName('conclave')
    .strict()
    .command(
      'start',
      'run a node (needs --single or --services)',
      (y) => {
        let withOptions = y.option('config', { type: 'string', describe: 'YAML or JSON file of settings' });
        withOptions = withOptions.option('client-listen', {
          type: 'string',
          describe: 'client edge HOST:PORT',
        });
        for (const setting of SETTINGS) {
          withOptions = withOptions.option(setting.flag, {
            type: setting.kind === 'boolean' ? 'boolean' : 'string',
            describe: setting.describe,
          });
        }
        return withOptions
          .example('$0 start --single', 'one node with every service, data in ./data')
          .example('$0 start --config ./n1.yaml', 'a node whose settings are in a YAML or JSON file')
          .example(
            '$0 start --config ./n4.yaml --join /ip4/10.0.0.1/tcp/7001',
            'a node joining a running cluster; then: conclave members add n4 --peer ADDRESS',
          )
          .epilogue(
            'Each setting may also come from the environment (a flag wins over it, and it over the ' +
              '--config file): CONCLAVE_CONFIG, CONCLAVE_CLIENT_LISTEN, ' +
              `${SETTINGS.map((setting) => envName(setting.flag)).join(', ')}.`,
          );
      },
      async (argv) => start(argv as Record<string, unknown>),
    )
    .command(
      'secret <action>',
      'cluster secrets: `conclave secret new > FILE`',
      (y) =>
        y
          .positional('action', { choices: ['new'] as const, describe: 'new: print a fresh secret' })
          .example('$0 secret new > ./secret', 'a fresh cluster secret, in a file only you can read'),
      async (argv) => {
        if (argv.action !== 'new') return;
        const { generateClusterSecret } = await import('../net/index.js');
        // `conclave secret new > FILE`: stdout is that file; make it private (0600), since a node
        // refuses a secret file that others may read.
        if (fstatSync(1).isFile()) fchmodSync(1, 0o600);
        process.stdout.write(generateClusterSecret());
      },
    );
  cli = drainCommand(accessCommands(backupCommands(cli)));
  cli = recoveryCommands(
    groupsCommands(
      leaderCommands(membersCommands(realmsCommands(watchCommand(dataCommands(statusCommand(cli)))))),
    ),
  );
  cli = cli
    .demandCommand(1, 'say what to do: conclave start --single, or conclave --help')
    .recommendCommands()
    .example('$0 start --single', 'one node on this machine, serving http://127.0.0.1:8080')
    .example(`$0 put default greeting '{"text":"hello"}'`, 'write a document')
    .example('$0 status', 'the members, the leader, the term')
    .example('$0 realms create shop', 'a new realm (a key space of its own)')
    // A usage error is one line (exit 2); an error thrown by a command's handler goes on to main().
    .fail((message, error) => {
      if (error && !message) throw error;
      process.stderr.write(
        `${oneLine(`conclave: USAGE: ${message ?? error?.message} (see ${commandWords(args)} --help)`)}\n`,
      );
      process.exit(EXIT_USAGE);
    })
    .help()
    .wrap(null);
  await cli.parseAsync();
}

main().catch((error: Error) => {
  console.error(`conclave: ${error.message}`);
  process.exitCode = 1;
});
