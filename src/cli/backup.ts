// `conclave backup save|verify` and `conclave restore`: online backups over a node's admin route, checked files, new clusters from them.

import { constants } from 'node:fs';
import { access, link, open, rm, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { exists, syncDir } from '../../storage/durable-fs.js';
import type { BackupSummary } from '../backup-file.js';
import type { NodeStatus } from '../kv-service.js';
import { type ConnectionArgs, clientOf, runCommand, UsageError, withConnection } from './common.js';
import { ApiError } from './http.js';
import { printJson, printLine, renderTable } from './output.js';

/** How long `backup save` waits without a byte from the node (it writes the file before sending it). */
const DEFAULT_IDLE_MS = 10 * 60 * 1000;
/** A follower this many entries behind the highest commit index seen still counts as caught up. */
const CAUGHT_UP_ENTRIES = 64;
const PROGRESS_EVERY_MS = 1000;

interface SaveArgs extends ConnectionArgs {
  readonly file: string;
}

interface VerifyArgs {
  readonly file: string;
  readonly json: boolean;
}

interface ListArgs {
  readonly dir: string;
  readonly verify: boolean;
  readonly json: boolean;
}

interface RestoreArgs {
  readonly from: string;
  readonly 'data-dir': string;
  readonly name: string;
  readonly 'keep-cluster-id': boolean;
  readonly 'peer-listen'?: string;
  readonly 'storage-engine': string;
  readonly json: boolean;
}

export function backupCommands<T>(cli: Argv<T>): Argv<T> {
  return cli
    .command('backup', 'backups: backup save FILE, backup verify FILE', (y) =>
      y
        .command(
          'save <file>',
          'an online, consistent backup of the cluster state, from a caught-up follower (or the leader)',
          (y) =>
            withConnection(
              y,
              DEFAULT_IDLE_MS,
              'give up after this many milliseconds without a byte from the node',
            )
              .positional('file', {
                type: 'string',
                demandOption: true,
                describe: 'where to write it (must not exist)',
              })
              .example(
                '$0 backup save ./conclave-backup.snap --endpoints http://10.0.0.1:8080,http://10.0.0.2:8080',
                '',
              ),
          (argv) => runCommand(() => save(argv as unknown as SaveArgs)),
        )
        .command(
          'verify <file>',
          'read every chunk of a backup file and print what it holds, or what is wrong with it',
          (y) =>
            y
              .positional('file', { type: 'string', demandOption: true })
              .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' }),
          (argv) => runCommand(() => verify(argv as unknown as VerifyArgs)),
        )
        .command(
          'list <dir>',
          'the backup files in a directory with what each holds (--verify reads every chunk)',
          (y) =>
            y
              .positional('dir', { type: 'string', demandOption: true })
              .option('verify', { type: 'boolean', default: false, describe: 'verify every file fully' })
              .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' }),
          (argv) => runCommand(() => list(argv as unknown as ListArgs)),
        )
        .demandCommand(1, 'say which: backup save FILE, backup verify FILE, backup list DIR'),
    )
    .command(
      'restore <from>',
      'build the data directory of the first member of a new cluster from a backup file (or the newest good one in a directory)',
      (y) =>
        y
          .positional('from', {
            type: 'string',
            demandOption: true,
            describe: 'a backup file, or a directory of them',
          })
          .option('data-dir', {
            type: 'string',
            demandOption: true,
            describe: 'the new data directory (empty or absent)',
          })
          .option('name', {
            type: 'string',
            demandOption: true,
            describe: 'the node name it will start with',
          })
          .option('peer-listen', {
            type: 'string',
            describe: 'its mesh address, recorded in the address book',
          })
          .option('keep-cluster-id', {
            type: 'boolean',
            default: false,
            describe: 'keep the backup’s cluster id (by default a new cluster gets a new one)',
          })
          .option('storage-engine', { type: 'string', default: 'rocksdb', describe: 'rocksdb or leveldb' })
          .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' })
          .example(
            '$0 restore ./backups --data-dir ./n1 --name n1 --peer-listen /ip4/10.0.0.1/tcp/7001',
            'then: conclave start --name n1 --data-dir ./n1 --initial-cluster n1=/ip4/10.0.0.1/tcp/7001 …',
          ),
      (argv) => runCommand(() => restore(argv as unknown as RestoreArgs)),
    );
}

/** The members to take the backup from, best first: caught-up followers, the leader, then the rest by applied index. */
function candidates(
  answers: { endpoint: string; status: NodeStatus }[],
): { endpoint: string; status: NodeStatus }[] {
  const members = answers.filter((a) => a.status.role !== 'proxy' && a.status.role !== 'none');
  const commit = Math.max(0, ...members.map((a) => a.status.commitIndex));
  const caughtUp = (a: { status: NodeStatus }) => a.status.appliedIndex + CAUGHT_UP_ENTRIES >= commit;
  const rank = (a: { status: NodeStatus }) =>
    a.status.state === 'follower' && caughtUp(a) ? 0 : a.status.state === 'leader' ? 1 : 2;
  return [...members].sort((a, b) => rank(a) - rank(b) || b.status.appliedIndex - a.status.appliedIndex);
}

async function save(args: SaveArgs): Promise<void> {
  const file = resolve(args.file);
  const partial = `${file}.partial`;
  if (await exists(file))
    throw new ApiError('FILE_EXISTS', `${file} exists; a backup never writes over a file`);
  // Checked before the node writes the backup, not after.
  try {
    await access(dirname(file), constants.W_OK);
  } catch (error) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `cannot write into ${dirname(file)} (${(error as { code?: string }).code ?? 'error'}): give a FILE in an existing, writable directory`,
    );
  }
  const client = clientOf(args);
  const answers = (await client.each<NodeStatus>('/v1/status')).flatMap((a) =>
    'body' in a ? [{ endpoint: a.endpoint, status: a.body }] : [],
  );
  const ordered = candidates(answers);
  if (ordered.length === 0) {
    throw new ApiError('UNAVAILABLE', `no member answered at ${client.endpoints.join(', ')}`);
  }
  let lastError: unknown;
  for (const { endpoint, status } of ordered) {
    if (status.state !== 'follower' && status.state !== 'leader') {
      process.stderr.write(`conclave: ${status.name} is ${status.state}: its backup may lag the cluster\n`);
    }
    try {
      const summary = await download(client, endpoint, status, partial, file, args.timeout);
      if (args.json) printJson({ ...summary, node: status.name, endpoint });
      else
        printLine(
          `backup of cluster ${summary.clusterId} at index ${summary.index}, revision ${summary.revision}: ` +
            `${summary.bytes} bytes, sha256 ${summary.sha256}, from ${status.name} (${status.state}) → ${file}`,
        );
      return;
    } catch (error) {
      await rm(partial, { force: true });
      // The node refused or failed: another may serve; a local problem (the disk) will not pass.
      if (!(error instanceof ApiError) || error.code === 'FILE_EXISTS' || error.code === 'DISK_FULL')
        throw error;
      process.stderr.write(`conclave: ${status.name}: ${error.message}\n`);
      lastError = error;
    }
  }
  throw lastError;
}

async function download(
  client: ReturnType<typeof clientOf>,
  endpoint: string,
  status: NodeStatus,
  partial: string,
  file: string,
  idleMs: number,
): Promise<BackupSummary> {
  const started = Date.now();
  process.stderr.write(`conclave: ${status.name} is writing the backup (revision ${status.revision})…\n`);
  const response = await client.download(endpoint, '/v1/backup', idleMs);
  const written = Date.now() - started;
  const transferStarted = Date.now();
  const total = Number(response.headers['content-length'] ?? response.headers['conclave-backup-bytes'] ?? 0);
  const handle = await open(partial, 'w', 0o600);
  let received = 0;
  let lastReport = 0;
  const report = (final: boolean) => {
    const seconds = (Date.now() - transferStarted) / 1000;
    const rate = received / Math.max(seconds, 0.001);
    const percent = total > 0 ? ((100 * received) / total).toFixed(1) : '?';
    const eta = total > 0 && rate > 0 ? `${Math.ceil((total - received) / rate)} s` : '?';
    process.stderr.write(
      `conclave: ${received} of ${total} bytes (${percent}%), ${(rate / 1e6).toFixed(1)} MB/s` +
        (final
          ? ` in ${seconds.toFixed(1)} s (the node wrote it in ${(written / 1000).toFixed(1)} s)\n`
          : `, ETA ${eta}\n`),
    );
  };
  try {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      await handle.write(chunk);
      received += chunk.length;
      if (Date.now() - lastReport >= PROGRESS_EVERY_MS) {
        lastReport = Date.now();
        report(false);
      }
    }
    if (received !== total) {
      throw new ApiError(
        'UNAVAILABLE',
        `the transfer from ${endpoint} ended at ${received} of ${total} bytes`,
      );
    }
    await handle.sync();
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOSPC') {
      throw new ApiError('DISK_FULL', `no space left on the device of ${partial} after ${received} bytes`);
    }
    throw error;
  } finally {
    await handle.close();
  }
  report(true);
  const { verifyBackupFile } = await import('../backup-file.js');
  let summary: BackupSummary;
  try {
    summary = await verifyBackupFile(partial);
  } catch (error) {
    throw new ApiError(
      'UNAVAILABLE',
      `the file received from ${endpoint} does not verify: ${(error as Error).message}`,
    );
  }
  const expected = response.headers['conclave-backup-revision'];
  if (expected !== undefined && String(summary.revision) !== expected) {
    throw new ApiError(
      'UNAVAILABLE',
      `the file is at revision ${summary.revision}, the node said ${expected}`,
    );
  }
  try {
    await link(partial, file); // Unlike rename, never replaces a file that appeared meanwhile.
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EEXIST')
      throw new ApiError('FILE_EXISTS', `${file} appeared meanwhile`);
    throw error;
  }
  await unlink(partial);
  await syncDir(dirname(file));
  return { ...summary, file };
}

async function verify(args: VerifyArgs): Promise<void> {
  const { verifyBackupFile } = await import('../backup-file.js');
  const summary = await verifyBackupFile(resolve(args.file));
  if (args.json) printJson(summary);
  else printLine(describe(summary));
}

async function list(args: ListArgs): Promise<void> {
  const { listBackups } = await import('../backup-file.js');
  const entries = await listBackups(resolve(args.dir), { verify: args.verify });
  if (args.json) {
    printJson({ dir: resolve(args.dir), files: entries });
    return;
  }
  if (entries.length === 0) {
    printLine(`${resolve(args.dir)} holds no backup files`);
    return;
  }
  printLine(
    renderTable(
      ['FILE', 'STATE', 'CLUSTER', 'INDEX', 'REVISION', 'WRITTEN', 'BYTES'],
      entries.map((e) => [
        e.name,
        e.state,
        e.clusterId ?? '-',
        e.index === undefined ? '-' : String(e.index),
        e.revision === undefined ? '-' : String(e.revision),
        e.createdAt ?? '-',
        String(e.bytes),
      ]),
    ),
  );
  for (const e of entries) if (e.problem !== undefined) printLine(`${e.name}: ${e.problem}`);
}

async function restore(args: RestoreArgs): Promise<void> {
  const [{ restoreDataDir }, { ENGINE_KINDS }, { NAME_PATTERN }] = await Promise.all([
    import('../restore.js'),
    import('../../storage/index.js'),
    import('../config.js'),
  ]);
  if (!NAME_PATTERN.test(args.name))
    throw new UsageError(`--name ${JSON.stringify(args.name)} is not a node name`);
  const engine = args['storage-engine'];
  if (!(ENGINE_KINDS as readonly string[]).includes(engine) || engine === 'memory') {
    throw new UsageError(`--storage-engine must be rocksdb or leveldb, not ${JSON.stringify(engine)}`);
  }
  const peer = args['peer-listen'];
  if (peer !== undefined && !/^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/[0-9]{1,5}$/.test(peer)) {
    throw new UsageError(
      `--peer-listen ${JSON.stringify(peer)} is not a mesh address such as /ip4/10.0.0.1/tcp/7001`,
    );
  }
  const report = await restoreDataDir(
    {
      from: args.from,
      dataDir: args['data-dir'],
      name: args.name,
      engine: engine as 'rocksdb' | 'leveldb',
      keepClusterId: args['keep-cluster-id'],
      ...(peer ? { address: peer } : {}),
    },
    (line) => {
      if (!args.json) process.stderr.write(`conclave: ${line}\n`);
    },
  );
  if (args.json) {
    printJson(report);
    return;
  }
  printLine(
    [
      `restored ${report.backup.file} into ${report.dataDir}: ${args.name} is the only voter of cluster ${report.clusterId}` +
        (args['keep-cluster-id'] ? ' (the backup’s id)' : ' (a new cluster)'),
      `  it holds revision ${report.backup.revision} at index ${report.backup.index}` +
        (report.backup.groups.length > 1
          ? `, and raft groups ${report.backup.groups
              .slice(1)
              .map((g) => g.group)
              .join(', ')} (each with it as the only voter)`
          : ''),
      `Start it: conclave start --name ${args.name} --data-dir ${report.dataDir} --initial-cluster ${args.name}=${peer ?? 'ITS_PEER_ADDRESS'} (and its other settings);`,
      `other members start with an EMPTY data directory and --join ${peer ?? 'ITS_PEER_ADDRESS'}, then conclave members add NAME --peer ADDRESS.`,
    ].join('\n'),
  );
}

function describe(summary: BackupSummary): string {
  return (
    `${summary.file}: OK, cluster ${summary.clusterId}, group ${summary.group}, index ${summary.index} (term ${summary.term}), ` +
    `revision ${summary.revision}, written ${summary.createdAt}, ${summary.bytes} bytes in ${summary.chunks} chunks ` +
    `(${summary.records} records), sha256 ${summary.sha256}` +
    (summary.groups.length > 1
      ? `; ${summary.groups.length} raft groups: ${summary.groups
          .map((g) => `group ${g.group} at index ${g.index}, revision ${g.revision} (${g.records} records)`)
          .join('; ')}`
      : '')
  );
}
