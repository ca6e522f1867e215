// Member roles on real node processes: joiners that ask for a role, `members add --role`, and what `members list` and `status` show of each member.

import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { peerAddress } from '../../scripts/local-cluster.js';
import { waitFor } from '../node/process-helpers.js';
import { runningCluster } from '../node/running-cluster.js';

const CLI = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli.js');
const run = promisify(execFile);

interface Member {
  name: string;
  role: string;
  state: string;
  lag: number;
  lagMs: number;
  lastContactMs: number | null;
  reachable: boolean;
}

async function cli(args: readonly string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
  return stdout;
}

async function members(endpoints: string): Promise<Member[]> {
  return (
    JSON.parse(await cli(['members', 'list', '--json', '--endpoints', endpoints])) as { members: Member[] }
  ).members;
}

t.test(
  'joiners get the role they ask for; members list shows role, lag, contact and reachability',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const endpoints = cluster.nodes.map((n) => n.url).join(',');

    // n4 asks to be a spare, n5 a voter (added as a learner, promoted once caught up), n6 waits
    // for the operator, who adds it as a satellite.
    const n4 = await cluster.addJoiner(['--role', 'spare']);
    const n5 = await cluster.addJoiner(['--role', 'voter']);
    const n6 = await cluster.addJoiner();
    const n7 = await cluster.addJoiner(['--role', 'dr']);
    cluster.start(n4);
    cluster.start(n5);
    cluster.start(n6);
    cluster.start(n7);
    await cli([
      'members',
      'add',
      n6.name,
      '--role',
      'satellite',
      '--peer',
      peerAddress(n6),
      '--endpoints',
      endpoints,
    ]);

    const settled = await waitFor('n4 a caught-up spare, n5 a voter, n6 a satellite', async () => {
      const list = await members(endpoints);
      const role = (name: string) => list.find((m) => m.name === name);
      const ok =
        role(n4.name)?.role === 'spare' &&
        role(n5.name)?.role === 'voter' &&
        role(n6.name)?.role === 'satellite' &&
        role(n7.name)?.role === 'dr' &&
        list.every((m) => m.lag === 0 && m.reachable);
      return ok ? list : undefined;
    });
    t.same(
      settled.map((m) => [m.name, m.role]).sort(),
      [
        ['n1', 'voter'],
        ['n2', 'voter'],
        ['n3', 'voter'],
        ['n4', 'spare'],
        ['n5', 'voter'],
        ['n6', 'satellite'],
        ['n7', 'dr'],
      ],
      'four voters, a spare, a satellite and a DR replica',
    );
    for (const m of settled) {
      t.equal(m.lagMs, 0, `${m.name}: caught up, so 0 ms behind`);
      t.ok(m.lastContactMs !== null && m.lastContactMs < 1000, `${m.name}: heard from lately`);
    }

    // The DR replica answers health, readiness and status, and nothing else.
    t.equal((await fetch(`${n7.url}/healthz`)).status, 200, 'the DR replica answers /healthz');
    t.equal((await fetch(`${n7.url}/readyz`)).status, 200, 'and /readyz');
    const drStatus = (await (await fetch(`${n7.url}/v1/status`)).json()) as { role: string };
    t.equal(drStatus.role, 'dr', 'and /v1/status, which says it is a DR replica');
    for (const path of ['/v1/realms/default/kv/anything', '/v1/members', '/v1/realms']) {
      const response = await fetch(`${n7.url}${path}`);
      const body = (await response.json()) as { code: string; message: string; retryable: boolean };
      t.match(
        [response.status, body],
        [503, { code: 'UNAVAILABLE', retryable: true, message: /disaster-recovery replica/ }],
        `GET ${path} on the DR replica is refused`,
      );
    }
    const upgrade = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(`${n7.url}/v1/ws`, {
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'sec-websocket-version': '13',
        },
      });
      request.on('upgrade', (_response, socket) => {
        socket.destroy();
        resolve(101);
      });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      request.end();
    });
    t.equal(upgrade, 503, 'and so is a WebSocket');

    // Each node's own status says its role; `status` and the table show the new columns.
    const own = (await (await fetch(`${n4.url}/v1/status`)).json()) as { role: string; members: Member[] };
    t.equal(own.role, 'spare', "n4's own status says it is a spare");
    t.equal(own.members.find((m) => m.name === n6.name)?.role, 'satellite', 'and names the satellite');
    t.match(
      await cli(['status', '--endpoints', endpoints]),
      /n6\s+\S+\s+satellite/,
      'conclave status lists the satellite',
    );
    const table = await cli(['members', 'list', '--endpoints', endpoints]);
    t.match(table, /LAG MS/, 'the table has a LAG MS column');
    t.match(table, /REACHABLE/, 'and a REACHABLE column');
    t.match(table, /n4\s+\S+\s+spare/, 'n4 is listed as a spare');

    // A restarted spare keeps its role and asks for nothing more.
    await cluster.kill(n4);
    const down = await waitFor('n4 seen unreachable', async () => {
      const m = (await members(endpoints)).find((x) => x.name === n4.name);
      return m !== undefined && !m.reachable ? m : undefined;
    });
    t.ok(
      down.lastContactMs !== null && down.lastContactMs > 300,
      'unreachable once not heard from for an election timeout',
    );
    // Writes while it is down leave it behind, in entries and in time.
    const write = await fetch(`${cluster.nodes[0]!.url}/v1/realms/default/kv/while-down`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ down: true }),
    });
    t.equal(write.status, 200, 'a write while n4 is down');
    const behind = await waitFor('n4 shown behind', async () => {
      const m = (await members(endpoints)).find((x) => x.name === n4.name);
      return m !== undefined && m.lag > 0 && m.lagMs >= 100 ? m : undefined;
    });
    t.pass(`it lacks a write made a while ago: ${behind.lag} entries, ${behind.lagMs} ms behind`);
    cluster.start(n4);
    const back = await waitFor('n4 back', async () => {
      const m = (await members(endpoints)).find((x) => x.name === n4.name);
      return m?.reachable && m.lag === 0 ? m : undefined;
    });
    t.equal(back.role, 'spare', 'still a spare after a restart');

    // Bad adds are refused with the reason, and change nothing.
    const add = async (body: unknown) => {
      const response = await fetch(`${cluster.nodes[0]!.url}/v1/members`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as { code: string; message: string } };
    };
    const badRole = await add({ name: 'x1', peer: '/ip4/127.0.0.1/tcp/1', role: 'emperor' });
    t.equal(badRole.status, 400);
    t.match(badRole.body, {
      code: 'INVALID_ARGUMENT',
      message: /role must be one of learner, spare, satellite, dr/,
    });
    const noPeer = await add({ name: 'x2', role: 'spare' });
    t.equal(noPeer.status, 400, 'only a satellite may go without a peer address');
    const again = await add({ name: n4.name, peer: peerAddress(n4), role: 'dr' });
    t.equal(again.status, 409, 'a member cannot be added twice');
    const usage = await run(process.execPath, [
      CLI,
      'members',
      'add',
      'x3',
      '--role',
      'king',
      '--endpoints',
      endpoints,
    ]).catch((error: { code: number; stderr: string }) => error);
    t.match(
      usage,
      { code: 2, stderr: /--role must be one of voter, learner, spare, satellite, dr/ },
      'the CLI names the bad role',
    );
    t.same(
      (await members(endpoints)).map((m) => [m.name, m.role]).sort(),
      settled.map((m) => [m.name, m.role]).sort(),
      'the membership is as it was',
    );
  },
);
