// Three real node processes on loopback: bootstrap from hardcoded peers, forwarding, kill -9 of the leader, rejoin.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');
const json = { 'content-type': 'application/json' };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Member {
  name: string;
  peerPort: number;
  clientPort: number;
  dataDir: string;
  child?: ChildProcess;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function status(member: Member): Promise<{ state: string; leader: string; term: number } | undefined> {
  const response = await fetch(`http://127.0.0.1:${member.clientPort}/v1/status`, {
    signal: AbortSignal.timeout(1000),
  });
  return response.ok
    ? ((await response.json()) as { state: string; leader: string; term: number })
    : undefined;
}

t.test(
  'three nodes bootstrap from hardcoded peers, survive kill -9 of the leader, and a restarted node catches up',
  async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'conclave-cluster-'));
    const secretFile = join(root, 'secret');
    const secret = spawnSync(process.execPath, [CLI, 'secret', 'new'], { encoding: 'utf8' });
    writeFileSync(secretFile, secret.stdout);
    chmodSync(secretFile, 0o600);
    const members: Member[] = [];
    for (const name of ['n1', 'n2', 'n3']) {
      members.push({
        name,
        peerPort: await freePort(),
        clientPort: await freePort(),
        dataDir: join(root, name),
      });
    }
    const initialCluster = members.map((m) => `${m.name}=/ip4/127.0.0.1/tcp/${m.peerPort}`).join(',');
    const start = (m: Member) => {
      m.child = spawn(
        process.execPath,
        [
          CLI,
          'start',
          '--name',
          m.name,
          '--data-dir',
          m.dataDir,
          '--peer-listen',
          `/ip4/127.0.0.1/tcp/${m.peerPort}`,
          '--client-listen',
          `127.0.0.1:${m.clientPort}`,
          '--initial-cluster',
          initialCluster,
          '--cluster-secret-file',
          secretFile,
          '--services',
          'raft,api,admin',
        ],
        { stdio: 'ignore' },
      );
    };
    t.teardown(() => {
      for (const m of members)
        if (m.child?.exitCode === null && m.child.pid) process.kill(m.child.pid, 'SIGKILL');
      rmSync(root, { recursive: true, force: true });
    });
    // Started in reverse order: the order must not matter.
    for (const m of [...members].reverse()) start(m);

    const leaderName = await until('one leader that every node knows', async () => {
      const all = await Promise.all(members.map(status));
      const leaders = new Set(all.map((s) => s?.leader));
      return leaders.size === 1 && all.every((s) => s?.leader) ? all[0]!.leader : undefined;
    });
    t.ok(leaderName, `elected ${leaderName} with no outside coordinator`);
    const leader = members.find((m) => m.name === leaderName)!;
    const follower = members.find((m) => m !== leader)!;

    const put = await fetch(`http://127.0.0.1:${follower.clientPort}/v1/realms/default/kv/k`, {
      method: 'PUT',
      headers: json,
      body: '{"n":1}',
    });
    t.equal(put.status, 200, 'a write on a follower is forwarded to the leader');
    const other = members.find((m) => m !== leader && m !== follower)!;
    const read = await fetch(`http://127.0.0.1:${other.clientPort}/v1/realms/default/kv/k`);
    t.same(
      ((await read.json()) as { value: unknown }).value,
      { n: 1 },
      'and read linearizably on another follower',
    );

    process.kill(leader.child!.pid!, 'SIGKILL');
    const killedAt = Date.now();
    const survivors = members.filter((m) => m !== leader);
    await until('a put through a survivor', async () => {
      for (const m of survivors) {
        const response = await fetch(`http://127.0.0.1:${m.clientPort}/v1/realms/default/kv/k`, {
          method: 'PUT',
          headers: json,
          body: '{"n":2}',
          signal: AbortSignal.timeout(1000),
        });
        if (response.ok) return true;
      }
      return undefined;
    });
    const failoverMs = Date.now() - killedAt;
    t.ok(failoverMs < 5000, `the survivors elect a new leader and commit (${failoverMs} ms after kill -9)`);

    start(leader);
    await until('the restarted node to serve the latest value', async () => {
      const response = await fetch(
        `http://127.0.0.1:${leader.clientPort}/v1/realms/default/kv/k?consistency=stale`,
      );
      if (!response.ok) return undefined;
      const body = (await response.json()) as { value: { n: number } };
      return body.value.n === 2 ? true : undefined;
    });
    t.pass('the restarted node caught up from the log');
    for (const m of members) process.kill(m.child!.pid!, 'SIGTERM');
    await Promise.all(
      members.map(
        (m) =>
          new Promise((resolve) =>
            m.child!.exitCode !== null ? resolve(null) : m.child!.on('exit', resolve),
          ),
      ),
    );
  },
);
