// `conclave dr promote` and `conclave recover --force-new-cluster`: offline, make a stopped node the only voter of a new cluster.

import type { Argv } from 'yargs';
import type { NewClusterReport, NodeHoldings } from '../new-cluster.js';
import { runCommand, UsageError } from './common.js';
import { printJson, printLine } from './output.js';

const DATA_DIR_ENV = 'CONCLAVE_DATA_DIR';
const SECRET_ENV = 'CONCLAVE_CLUSTER_SECRET_FILE';

interface OfflineArgs {
  readonly 'data-dir': string;
  readonly json: boolean;
}

interface RecoverArgs extends OfflineArgs {
  readonly 'force-new-cluster': boolean;
  readonly 'cluster-secret-file'?: string;
  readonly 'probe-timeout': number;
}

function withDataDir<T>(y: Argv<T>) {
  return y
    .option('data-dir', {
      type: 'string',
      default: process.env[DATA_DIR_ENV] || './data',
      defaultDescription: `$${DATA_DIR_ENV} or ./data`,
      describe: 'the stopped node’s data directory',
    })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' });
}

export function recoveryCommands<T>(cli: Argv<T>): Argv<T> {
  return cli
    .command('dr', 'disaster recovery: dr promote (offline, on the DR replica)', (y) =>
      y
        .command(
          'promote',
          'make this stopped DR replica the only voter of a new cluster holding everything it applied',
          (y) =>
            withDataDir(y).example(
              '$0 dr promote --data-dir /var/lib/conclave',
              'then start it with --initial-cluster NAME=ADDRESS and grow it with members add',
            ),
          (argv) => runCommand(() => promote(argv as unknown as OfflineArgs)),
        )
        .demandCommand(1, 'say which: dr promote'),
    )
    .command(
      'recover',
      'offline, on a surviving voter of a cluster that lost quorum for good: recover --force-new-cluster',
      (y) =>
        withDataDir(y)
          .option('force-new-cluster', {
            type: 'boolean',
            default: false,
            describe:
              'make this stopped voter the only voter of a new cluster (required: it is the confirmation)',
          })
          .option('cluster-secret-file', {
            type: 'string',
            default: process.env[SECRET_ENV] || undefined,
            defaultDescription: `$${SECRET_ENV}`,
            describe: 'the cluster secret, to ask the old members whether they are alive',
          })
          .option('probe-timeout', {
            type: 'number',
            default: 5000,
            describe: 'how long to wait for the old members to answer (ms)',
          })
          .example(
            '$0 recover --force-new-cluster --data-dir ./n1 --cluster-secret-file ./secret',
            'n1 alone is a new cluster with its data; refused while another voter answers',
          ),
      (argv) => runCommand(() => recover(argv as unknown as RecoverArgs)),
    );
}

async function promote(args: OfflineArgs): Promise<void> {
  const { NewClusterError, readHoldings, startNewCluster } = await import('../new-cluster.js');
  const holdings = await readHoldings(args['data-dir']);
  if (holdings.role !== 'dr') {
    throw new NewClusterError(
      'WRONG_ROLE',
      `${holdings.name} is ${describeRole(holdings)} of cluster ${holdings.clusterId}, not a DR replica` +
        (holdings.role === 'voter'
          ? ': to recover a cluster that lost its quorum for good, use conclave recover --force-new-cluster'
          : ''),
    );
  }
  const report = await startNewCluster(args['data-dir'], progressLine(args));
  printReport(args, report, 'promoted DR replica');
}

async function recover(args: RecoverArgs): Promise<void> {
  if (!args['force-new-cluster']) {
    throw new UsageError(
      'recover makes this node the only voter of a new cluster; say so with --force-new-cluster',
    );
  }
  const secretFile = args['cluster-secret-file'];
  if (!Number.isInteger(args['probe-timeout']) || args['probe-timeout'] < 500) {
    throw new UsageError(
      `--probe-timeout must be an integer of at least 500 ms, got ${args['probe-timeout']}`,
    );
  }
  const [{ NewClusterError, readHoldings, startNewCluster }, net, { probePeers }] = await Promise.all([
    import('../new-cluster.js'),
    import('../../net/index.js'),
    import('../peer-probe.js'),
  ]);
  const holdings = await readHoldings(args['data-dir']);
  if (holdings.role !== 'voter') {
    throw new NewClusterError(
      'WRONG_ROLE',
      `${holdings.name} is ${describeRole(holdings)} of cluster ${holdings.clusterId}, not a voter` +
        (holdings.role === 'dr' ? ': promote a DR replica with conclave dr promote' : ''),
    );
  }
  const others = Object.entries(holdings.addresses).filter(([name]) => name !== holdings.name);
  if (others.length > 0 && (secretFile === undefined || secretFile === '')) {
    throw new UsageError(
      `--cluster-secret-file is needed to ask the old members (${others.map(([name]) => name).join(', ')}) whether they are alive`,
    );
  }
  const secret = others.length > 0 ? await net.readClusterSecretFile(secretFile!) : undefined;
  if (secret !== undefined) {
    progressLine(args)(
      `asking ${others.length} old member(s) whether they are alive (${args['probe-timeout']} ms): ${others
        .map(([name]) => name)
        .join(', ')}`,
    );
  }
  const answers =
    secret === undefined
      ? []
      : await probePeers({
          dataDir: args['data-dir'],
          name: holdings.name,
          secret,
          addresses: others.map(([, address]) => address),
          timeoutMs: args['probe-timeout'],
          logger: net.jsonLogger({ level: 'error' }),
        });
  const alive = answers.filter((a) => a.clusterId === holdings.clusterId);
  const aliveVoters = alive.filter((a) => holdings.voters.includes(a.name));
  if (aliveVoters.length > 0) {
    throw new NewClusterError(
      'PEERS_ANSWER',
      `voter(s) ${aliveVoters.map((a) => a.name).join(', ')} of cluster ${holdings.clusterId} answer: ` +
        'the cluster may still have a quorum, and a new cluster beside it would split its data. ' +
        'Stop them first, or repair the cluster with conclave members remove/add.',
    );
  }
  if (alive.length > 0) {
    progressLine(args)(
      `learner(s) ${alive.map((a) => a.name).join(', ')} answer; they cannot form a quorum and stay in the old cluster`,
    );
  }
  const report = await startNewCluster(args['data-dir'], progressLine(args));
  printReport(args, report, 'recovered voter');
}

function describeRole(holdings: NodeHoldings): string {
  switch (holdings.role) {
    case 'voter':
      return 'a voter';
    case 'none':
      return 'no member';
    default:
      return `a ${holdings.role}`;
  }
}

function progressLine(args: OfflineArgs): (line: string) => void {
  return (line) => {
    if (!args.json) process.stderr.write(`conclave: ${line}\n`);
  };
}

function printReport(args: OfflineArgs, report: NewClusterReport, what: string): void {
  if (args.json) {
    printJson(report);
    return;
  }
  const address = report.address === '' ? 'ADDRESS' : report.address;
  printLine(
    [
      `${what} ${report.name} is now the only voter of a NEW cluster ${report.clusterId} (it was of ${report.previousClusterId}).`,
      `It holds revision ${report.revision} at log index ${report.index} (term ${report.term}): everything it knew committed. ` +
        `The old cluster may have had writes past revision ${report.revision}.`,
      `  committed entries applied from its log now: ${report.appliedFromLog}; uncommitted entries discarded: ${report.discarded}`,
      `  the data directory as it was: ${report.previousDataDir} (delete it once the new cluster is verified)`,
      ...(report.groups.length > 1 ? [`  raft groups carried over: ${report.groups.join(', ')}`] : []),
      ...(report.missingGroups.length > 0
        ? [
            `  WARNING: raft groups ${report.missingGroups.join(', ')} did not run on ${report.name}; the realms placed in them are not in the new cluster ` +
              '(restore them from a backup of the old cluster instead, if it has one)',
          ]
        : []),
      `Start it with --initial-cluster ${report.name}=${address} instead of --join/--role (its other settings as before),`,
      `then grow it: start each new node with an EMPTY data directory and --join ${address}, and run conclave members add NAME --peer ADDRESS.`,
      'Nodes of the old cluster are refused by the new one, and it by them.',
    ].join('\n'),
  );
}
