// GET /metrics on a 3-node cluster and a proxy: the Prometheus text format, and chosen series that follow what the cluster does (writes, WebSocket ops, the leader, a leader change, lag).

import t, { type Test } from 'tap';
import { LocalCluster } from '../../scripts/local-cluster.js';
import { Client } from '../../src/client/index.js';
import { waitFor } from './process-helpers.js';
import { FAST_TIMING } from './running-cluster.js';

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SPECIAL_VALUES: ReadonlyMap<string, number> = new Map([
  ['nan', Number.NaN],
  ['+inf', Number.POSITIVE_INFINITY],
  ['inf', Number.POSITIVE_INFINITY],
  ['-inf', Number.NEGATIVE_INFINITY],
]);

/**
 * Parses the text exposition format (version 0.0.4), failing on any line that does not follow
 * it: every family has one HELP and one TYPE line before its samples, every sample is
 * `name{label="value",…} number`, names and labels are valid.
 */
function parseExposition(t: Test, text: string): Sample[] {
  const samples: Sample[] = [];
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (!NAME.test(name!)) t.fail(`bad metric name in ${line}`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest!))
          t.fail(`bad type: ${line}`);
        if (typed.has(name!)) t.fail(`two TYPE lines for ${name}`);
        typed.set(name!, rest!);
      } else helped.add(name!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (sample === null) {
      t.fail(`not a sample line: ${JSON.stringify(line)}`);
      continue;
    }
    const [, name, labelText, valueText] = sample;
    const labels: Record<string, string> = {};
    if (labelText) {
      const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let at = 0;
      while (at < labelText.length) {
        LABEL.lastIndex = at;
        const match = LABEL.exec(labelText);
        if (match === null) {
          t.fail(`bad labels: ${line}`);
          break;
        }
        labels[match[1]!] = match[2]!;
        at = LABEL.lastIndex;
      }
    }
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes `Nan`).
    const special = SPECIAL_VALUES.get(valueText!.toLowerCase());
    const value = special ?? Number(valueText);
    if (special === undefined && (Number.isNaN(value) || valueText === '')) t.fail(`bad value: ${line}`);
    const family = name!.replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(name!) && !typed.has(family)) t.fail(`sample before its TYPE: ${line}`);
    if (!helped.has(name!) && !helped.has(family)) t.fail(`sample without HELP: ${line}`);
    samples.push({ name: name!, labels, value });
  }
  return samples;
}

function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value),
  );
  return found?.value;
}

async function scrape(t: Test, url: string): Promise<Sample[]> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  t.equal(response.status, 200, `${url}/metrics answers`);
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseExposition(t, await response.text());
}

t.test('metrics of members and a proxy', async (t) => {
  const cluster = new LocalCluster(FAST_TIMING);
  t.teardown(() => cluster.stop());
  await cluster.create(3);
  cluster.startAll();
  const leader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((n) => n !== leader)!;

  const puts = 25;
  for (let i = 0; i < puts; i++) {
    const response = await fetch(`${follower.url}/v1/realms/default/kv/m${i}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"v":1}',
    });
    t.equal(response.status, 200);
  }
  const client = new Client({ endpoints: [leader.url] });
  t.teardown(() => client.close());
  await client.put('default', 'ws', 1);
  await client.get('default', 'ws');

  const all = await Promise.all(cluster.nodes.map((node) => scrape(t, node.url)));
  const [atLeader, atFollower] = [all[cluster.nodes.indexOf(leader)]!, all[cluster.nodes.indexOf(follower)]!];

  t.equal(
    all.reduce((sum, samples) => sum + (sampleValue(samples, 'conclave_raft_is_leader') ?? 0), 0),
    1,
    'exactly one node says it leads',
  );
  t.equal(new Set(all.map((samples) => sampleValue(samples, 'conclave_raft_term'))).size, 1, 'one term');
  t.equal(sampleValue(atLeader, 'conclave_raft_state', { state: 'leader' }), 1);
  t.equal(sampleValue(atFollower, 'conclave_raft_state', { state: 'follower' }), 1);
  t.equal(sampleValue(atLeader, 'conclave_raft_voters'), 3);
  t.equal(
    sampleValue(atFollower, 'conclave_http_requests_total', {
      route: '/v1/realms/:realm/kv/*',
      method: 'PUT',
      code: 'OK',
    }),
    puts,
    'the follower counted the puts sent to it',
  );
  t.equal(
    sampleValue(atFollower, 'conclave_http_request_duration_seconds_count', {
      route: '/v1/realms/:realm/kv/*',
      method: 'PUT',
    }),
    puts,
  );
  t.ok(
    (sampleValue(atFollower, 'conclave_mesh_rpc_requests_sent_total') ?? 0) >= puts,
    'and forwarded them to the leader',
  );
  t.equal(
    sampleValue(atLeader, 'conclave_ws_requests_total', { op: 'put', code: 'OK' }),
    1,
    'a WebSocket put',
  );
  t.equal(
    sampleValue(atLeader, 'conclave_ws_requests_total', { op: 'get', code: 'OK' }),
    1,
    'a WebSocket get',
  );
  t.ok((sampleValue(atLeader, 'conclave_raft_proposals_total') ?? 0) >= puts + 1, 'the leader proposed them');
  for (const node of cluster.nodes) {
    t.not(
      sampleValue(atLeader, 'conclave_raft_member_lag_entries', { member: node.name }),
      undefined,
      `lag of ${node.name}`,
    );
  }
  t.equal(
    sampleValue(atFollower, 'conclave_raft_member_lag_entries'),
    undefined,
    'lag is the leader’s to tell',
  );
  t.ok(
    (sampleValue(atLeader, 'conclave_storage_write_duration_seconds_count', { synced: 'true' }) ?? 0) > 0,
    'fsyncs timed',
  );
  t.ok((sampleValue(atLeader, 'conclave_storage_database_bytes') ?? 0) > 0, 'database bytes');
  t.ok((sampleValue(atLeader, 'conclave_mesh_raft_messages_sent_total') ?? 0) > 0, 'raft messages sent');
  t.equal(sampleValue(atLeader, 'conclave_mesh_peers_connected'), 2);
  t.equal(
    sampleValue(atLeader, 'conclave_http_requests_in_flight'),
    1,
    'one HTTP request in flight at the scrape: the scrape itself',
  );
  t.ok((sampleValue(atLeader, 'conclave_kv_revision') ?? 0) >= puts + 2);
  t.not(sampleValue(atLeader, 'process_cpu_seconds_total'), undefined, 'process metrics');
  t.not(sampleValue(atLeader, 'nodejs_eventloop_lag_seconds'), undefined, 'event loop lag');
  t.ok(
    atLeader.every((s) => s.labels.node === leader.name),
    'every series names its node',
  );

  t.test('a leader change is counted and followed', async (t) => {
    const before = all.map((samples) => sampleValue(samples, 'conclave_raft_leader_changes_total') ?? 0);
    await cluster.kill(leader);
    const next = await waitFor('a new leader', async () => {
      const agreed = await cluster.waitForLeader();
      return agreed === leader ? undefined : agreed;
    });
    const survivors = cluster.nodes.filter((n) => n !== leader);
    const after = await Promise.all(survivors.map((node) => scrape(t, node.url)));
    survivors.forEach((node, i) => {
      const was = before[cluster.nodes.indexOf(node)]!;
      t.ok(
        (sampleValue(after[i]!, 'conclave_raft_leader_changes_total') ?? 0) > was,
        `${node.name} counted the change`,
      );
    });
    const atNext = after[survivors.indexOf(next)]!;
    t.equal(sampleValue(atNext, 'conclave_raft_is_leader'), 1, 'the new leader says so');
    await waitFor('the dead leader shows a growing last contact', async () => {
      const samples = await scrape(t, next.url);
      const seconds = sampleValue(samples, 'conclave_raft_member_last_contact_seconds', {
        member: leader.name,
      });
      return seconds !== undefined && seconds > 0.5 ? true : undefined;
    });
  });

  t.test('a proxy: edge and mesh, no raft', async (t) => {
    const proxy = await cluster.addProxy();
    cluster.startProxy(
      proxy,
      'api',
      cluster.nodes.filter((n) => n !== leader),
    );
    await waitFor('the proxy serves', async () =>
      (await fetch(`${proxy.url}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
    );
    const put = await fetch(`${proxy.url}/v1/realms/default/kv/viaproxy`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '1',
    });
    t.equal(put.status, 200);
    const samples = await scrape(t, proxy.url);
    t.equal(sampleValue(samples, 'conclave_http_requests_total', { method: 'PUT', code: 'OK' }), 1);
    t.ok((sampleValue(samples, 'conclave_mesh_rpc_requests_sent_total') ?? 0) >= 1);
    t.equal(sampleValue(samples, 'conclave_raft_term'), undefined, 'a proxy has no raft');
  });
});
