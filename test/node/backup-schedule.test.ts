// Scheduled backups on real node processes: one file per interval for the cluster, retention, a node killed mid-backup, a backup directory that takes no files.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { type ClusterNode, LocalCluster } from '../../scripts/local-cluster.js';
import { waitFor } from './process-helpers.js';
import { FAST_TIMING } from './running-cluster.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const run = promisify(execFile);

interface Done {
  node: string;
  slot: number;
  file: string;
}

const logOf = (node: ClusterNode): string =>
  existsSync(`${node.dataDir}.log`) ? readFileSync(`${node.dataDir}.log`, 'utf8') : '';

/** The backup.<event> lines of every node's log, with the node's name. */
function events(nodes: readonly ClusterNode[], event: string): Done[] {
  return nodes.flatMap((node) =>
    logOf(node)
      .split('\n')
      .filter((line) => line.includes(`"event":"backup.${event}"`))
      .map((line) => ({ node: node.name, ...(JSON.parse(line) as { slot: number; file: string }) })),
  );
}

t.test(
  'one backup per interval for the cluster, kept to --backup-keep; a node killed mid-backup',
  async (t) => {
    const cluster = new LocalCluster([...FAST_TIMING, '--log-level', 'info']);
    t.teardown(() => cluster.stop());
    await cluster.create(3);
    const dir = join(cluster.nodes[0]!.dataDir, '..', 'backups');
    mkdirSync(dir);
    for (const node of cluster.nodes) {
      node.services = 'raft,api,admin,backup';
      node.extraArgs = ['--backup-dir', dir, '--backup-interval', '2s', '--backup-keep', '3'];
    }
    for (const node of cluster.nodes) cluster.start(node, {}, [], `${node.dataDir}.log`);
    const leader = await cluster.waitForLeader();
    let written = 0;
    const writing = (async () => {
      while (written >= 0) {
        const response = await fetch(`${leader.url}/v1/realms/default/kv/k${written % 50}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ n: written }),
        }).catch(() => undefined);
        if (response) await response.arrayBuffer();
        written++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    t.teardown(() => {
      written = -1e9;
      return writing;
    });

    const done = await waitFor('five backups', () => {
      const all = events(cluster.nodes, 'done');
      return all.length >= 5 ? all : undefined;
    });
    const slots = done.map((d) => d.slot);
    t.equal(
      new Set(slots).size,
      slots.length,
      `one backup per interval, not one per node (slots ${slots.join(', ')})`,
    );
    t.ok(Math.max(...slots) - Math.min(...slots) <= slots.length + 1, 'close to one every interval');
    const files = readdirSync(dir).filter((n) => n.endsWith('.snap'));
    t.ok(files.length <= 3, `retention keeps at most 3 (${files.length})`);
    await waitFor('exactly 3 kept', () =>
      readdirSync(dir).filter((n) => n.endsWith('.snap')).length === 3 ? true : undefined,
    );
    const clusterId = JSON.parse(readFileSync(join(cluster.nodes[0]!.dataDir, 'node.json'), 'utf8'))
      .clusterId as string;
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.snap'))) {
      t.match(
        name,
        new RegExp(`^conclave-${clusterId}-\\d{8}T\\d{6}Z-r\\d+\\.snap$`),
        'named by cluster, UTC time and revision',
      );
    }
    const listed = await run(process.execPath, [CLI, 'backup', 'list', dir, '--verify', '--json']);
    const entries = (JSON.parse(listed.stdout) as { files: { state: string }[] }).files;
    t.ok(
      entries.length >= 3 && entries.filter((e) => e.state === 'verified').length >= 3,
      'backup list verifies them',
    );
    const status = JSON.parse(
      (await run(process.execPath, [CLI, 'status', '--json', '--endpoints', leader.url])).stdout,
    ) as {
      backups?: { lastSuccess?: { file: string } };
    };
    t.ok(status.backups?.lastSuccess?.file.startsWith(dir), 'status shows the last success');

    // n1 now stalls between writing a backup and naming it; kill -9 it while it does.
    const [n1] = cluster.nodes as [ClusterNode];
    await cluster.kill(n1, 'SIGTERM');
    cluster.start(n1, { CONCLAVE_FAULT_BACKUP_STALL_MS: '60000' }, [], `${n1.dataDir}.log`);
    const stalled = await waitFor(
      'n1 claims an interval and stalls',
      () => {
        const started = events([n1], 'started');
        const mine = started.at(-1);
        return mine !== undefined && existsSync(`${mine.file}.partial`) ? mine : undefined;
      },
      40_000,
    );
    await cluster.kill(n1);
    t.notOk(existsSync(stalled.file), 'the killed backup left no file that looks complete');
    await waitFor('the next interval succeeds on another node', () =>
      events(cluster.nodes, 'done').find((d) => d.slot > stalled.slot && d.node !== n1.name),
    );
    const ledger = await waitFor('the status names it', async () => {
      const view = JSON.parse(
        (
          await run(process.execPath, [
            CLI,
            'status',
            '--json',
            '--endpoints',
            cluster.nodes
              .slice(1)
              .map((n) => n.url)
              .join(','),
          ])
        ).stdout,
      ) as { backups?: { lastSuccess?: { slot: number; node: string } } };
      const success = view.backups?.lastSuccess;
      return success !== undefined && success.slot > stalled.slot ? success : undefined;
    });
    t.not(
      ledger.node,
      n1.name,
      `${ledger.node} took slot ${ledger.slot}, after the killed one (${stalled.slot})`,
    );
    const listedAfter = JSON.parse(
      (await run(process.execPath, [CLI, 'backup', 'list', dir, '--json'])).stdout,
    ) as {
      files: { name: string; state: string }[];
    };
    t.ok(
      listedAfter.files.some((f) => f.state === 'incomplete' && f.name.endsWith('.partial')),
      'backup list shows the abandoned partial file as incomplete',
    );
  },
);

t.test('a backup directory that takes no files refuses the start', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'conclave-backup-dir-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  try {
    await run(process.execPath, [
      CLI,
      'start',
      '--single',
      '--data-dir',
      join(root, 'data'),
      '--client-listen',
      '127.0.0.1:0',
      '--backup-dir',
      '/dev/null/backups',
    ]);
    t.fail('the start should have been refused');
  } catch (error) {
    const failed = error as { code?: number; stderr?: string };
    t.equal(failed.code, 1);
    t.match(failed.stderr, /the backup directory \/dev\/null\/backups does not take files/);
  }
  const config = await run(process.execPath, [CLI, 'start', '--single', '--backup-interval', '1h']).catch(
    (e) => e as { code: number; stderr: string },
  );
  t.equal((config as { code: number }).code, 2);
  t.match((config as { stderr: string }).stderr, /backup-interval .*is for the backup service/);
});
