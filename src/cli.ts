#!/usr/bin/env node
// The conclave command line: `start` runs a node, `secret new` writes a cluster secret.

import '../net/polyfill.js';
import { fchmodSync, fstatSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { generateClusterSecret, jsonLogger } from '../net/index.js';
import { ConfigError, resolveConfig, SETTINGS } from './config.js';
import { ConclaveNode } from './node.js';

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
  const logger = jsonLogger({ level: config.logLevel });
  let node: ConclaveNode;
  try {
    node = await ConclaveNode.start(config, logger);
  } catch (error) {
    console.error(`conclave start: ${(error as Error).message}`);
    process.exitCode = 1;
    return;
  }
  const scheme = config.tlsKeyFile ? 'https' : 'http';
  console.log(
    `conclave: node ${config.name} serving ${scheme}://${config.clientHost}:${node.clientPort} ` +
      `(data in ${config.dataDir}, ${config.storageEngine}, uWebSockets.js ${node.uwsNative ? 'native' : 'FALLBACK (slow)'})`,
  );
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
}

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
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
        return withOptions;
      },
      async (argv) => start(argv as Record<string, unknown>),
    )
    .command(
      'secret <action>',
      'cluster secrets: `conclave secret new > FILE`',
      (y) => y.positional('action', { choices: ['new'] as const, describe: 'new: print a fresh secret' }),
      (argv) => {
        if (argv.action !== 'new') return;
        // `conclave secret new > FILE`: stdout is that file; make it private (0600), since a node
        // refuses a secret file that others may read.
        if (fstatSync(1).isFile()) fchmodSync(1, 0o600);
        process.stdout.write(generateClusterSecret());
      },
    )
    .demandCommand(1, 'say what to do: conclave start --single')
    .help();
  await cli.parseAsync();
}

main().catch((error: Error) => {
  console.error(`conclave: ${error.message}`);
  process.exitCode = 1;
});
