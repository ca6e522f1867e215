// Configuration: precedence of flags, environment and file; every bad value refused by name.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, nodeRequiresAuth, resolveConfig } from '../../src/config.js';

const CLUSTER = {
  name: 'n1',
  services: 'raft,api,admin',
  'initial-cluster': 'n1=/ip4/127.0.0.1/tcp/7001,n2=/ip4/127.0.0.1/tcp/7002,n3=/ip4/127.0.0.1/tcp/7003',
  'peer-listen': '/ip4/127.0.0.1/tcp/7001',
  'cluster-secret-file': '/tmp/secret',
};

function refused(
  t: Test,
  flags: Record<string, unknown>,
  setting: string,
  env: NodeJS.ProcessEnv = {},
): void {
  try {
    resolveConfig(flags, env);
    t.fail(`expected ${setting} to be refused`);
  } catch (error) {
    t.ok(error instanceof ConfigError, 'a ConfigError');
    t.equal((error as ConfigError).setting, setting, `names ${setting}: ${(error as Error).message}`);
  }
}

t.test('--single gives a laptop node with every service and the documented defaults', async (t) => {
  const config = resolveConfig({ single: true }, {});
  t.same(config.services, ['raft', 'api', 'admin']);
  t.equal(config.clientHost, '127.0.0.1');
  t.equal(config.clientPort, 8080);
  t.match(config.dataDir, /\/data$/);
  t.same(config.initialCluster, [{ name: 'node1', address: '/ip4/127.0.0.1/tcp/7000' }]);
  t.equal(config.logLevel, 'warn', 'quiet by default');
});

t.test('a node without --services or --single refuses to start and says why', async (t) => {
  refused(t, { name: 'n1' }, 'services');
});

t.test('flags beat environment beat file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'node.yaml');
  writeFileSync(file, 'clientPort: 9001\nlogLevel: info\nrequestTimeoutMs: 1234\n');
  const config = resolveConfig(
    { ...CLUSTER, config: file, 'client-listen': '127.0.0.1:9003' },
    { CONCLAVE_LOG_LEVEL: 'debug', CONCLAVE_REQUEST_TIMEOUT_MS: '2345' },
  );
  t.equal(config.clientPort, 9003, 'the flag wins');
  t.equal(config.logLevel, 'debug', 'the environment beats the file');
  t.equal(config.requestTimeoutMs, 2345, 'integers come from the environment as text');
  const fromFile = resolveConfig({ ...CLUSTER, config: file }, {});
  t.equal(fromFile.clientPort, 9001, 'the file beats the default');
  t.equal(fromFile.initialCluster.length, 3);
});

t.test('each bad value is refused with the name of the setting', async (t) => {
  refused(t, { ...CLUSTER, name: 'bad name!' }, 'name');
  refused(t, { ...CLUSTER, services: 'raft,coffee' }, 'services');
  refused(t, { ...CLUSTER, 'client-listen': 'localhost' }, 'client-listen');
  refused(t, { ...CLUSTER, 'client-port': '70000' }, 'client-port');
  refused(t, { ...CLUSTER, 'peer-listen': 'tcp://127.0.0.1:7001' }, 'peer-listen');
  refused(t, { ...CLUSTER, 'initial-cluster': 'n2=/ip4/127.0.0.1/tcp/7002' }, 'initial-cluster');
  refused(
    t,
    { ...CLUSTER, 'initial-cluster': 'n1=/ip4/127.0.0.1/tcp/7001,n1=/ip4/127.0.0.1/tcp/7002' },
    'initial-cluster',
  );
  refused(t, { ...CLUSTER, 'initial-cluster': 'garbage' }, 'initial-cluster');
  refused(t, { ...CLUSTER, 'storage-engine': 'sqlite' }, 'storage-engine');
  refused(t, { ...CLUSTER, 'rocksdb-synced-writes': 'threaded' }, 'rocksdb-synced-writes');
  refused(t, { ...CLUSTER, 'log-level': 'loud' }, 'log-level');
  refused(
    t,
    { ...CLUSTER, 'election-timeout-ms': '100', 'heartbeat-interval-ms': '50' },
    'election-timeout-ms',
  );
  refused(t, { ...CLUSTER, 'cluster-secret-file': undefined }, 'cluster-secret-file');
  refused(t, { ...CLUSTER, 'tls-key-file': '/k.pem' }, 'tls-cert-file');
  refused(t, { single: true }, 'request-timeout-ms', { CONCLAVE_REQUEST_TIMEOUT_MS: 'soon' });
});

t.test('backup settings: only with the backup service, which needs raft and a directory', async (t) => {
  const backup = { ...CLUSTER, services: 'raft,api,admin,backup', 'backup-dir': '/tmp/backups' };
  const config = resolveConfig({ ...backup, 'backup-interval': '90s', 'backup-keep': '5' }, {});
  t.same([config.backupDir, config.backupIntervalMs, config.backupKeep], ['/tmp/backups', 90_000, 5]);
  t.equal(resolveConfig(backup, {}).backupIntervalMs, 3_600_000, 'hourly by default');
  t.equal(
    resolveConfig({ ...backup, 'backup-interval': '2500' }, {}).backupIntervalMs,
    2500,
    'or milliseconds',
  );
  t.same(
    resolveConfig({ single: true, 'backup-dir': '/tmp/b' }, {}).services,
    ['raft', 'api', 'admin', 'backup'],
    '--single with --backup-dir runs the backup service',
  );
  refused(t, { ...CLUSTER, services: 'raft,api,admin,backup' }, 'backup-dir');
  refused(t, { ...CLUSTER, 'backup-dir': '/tmp/backups' }, 'backup-dir');
  refused(t, { ...CLUSTER, 'backup-keep': '3' }, 'backup-keep');
  refused(t, { ...backup, services: 'api,backup' }, 'services');
  for (const bad of ['0', '999', 'hourly', '1y', '31d', '-5s']) {
    refused(t, { ...backup, 'backup-interval': bad }, 'backup-interval');
  }
  refused(t, { ...backup, 'backup-keep': '0' }, 'backup-keep');
});

t.test('a bad config file is refused naming the file and the setting', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const unknown = join(dir, 'unknown.json');
  writeFileSync(unknown, JSON.stringify({ colour: 'blue' }));
  refused(t, { single: true, config: unknown }, 'colour');
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{ not json');
  refused(t, { single: true, config: broken }, 'config');
  refused(t, { single: true, config: join(dir, 'missing.yaml') }, 'config');
});

t.test(
  'a node without raft is a stateless proxy: it needs api, members to reach and the secret',
  async (t) => {
    const proxy = {
      name: 'p1',
      services: 'api',
      join: '/ip4/127.0.0.1/tcp/7001,/ip4/127.0.0.1/tcp/7002',
      'cluster-secret-file': '/tmp/secret',
    };
    const config = resolveConfig(proxy, {});
    t.same(config.services, ['api']);
    t.equal(config.ephemeralKey, true, 'no --data-dir: the key stays in memory');
    t.equal(config.peerListen, '/ip4/127.0.0.1/tcp/0', 'a proxy only dials: any free peer port');
    t.same(config.join, ['/ip4/127.0.0.1/tcp/7001', '/ip4/127.0.0.1/tcp/7002']);
    t.equal(
      resolveConfig({ ...proxy, 'data-dir': '/tmp/p1' }, {}).ephemeralKey,
      false,
      'with --data-dir it keeps its key',
    );
    const viaFounders = resolveConfig({ ...CLUSTER, name: 'p1', services: 'api,admin' }, {});
    t.equal(
      viaFounders.initialCluster.length,
      3,
      "--initial-cluster need not list a proxy: they are the members' addresses",
    );
    t.equal(resolveConfig(CLUSTER, {}).ephemeralKey, false, 'a member never has an in-memory key');
    refused(t, { ...proxy, services: 'admin' }, 'services');
    refused(t, { name: 'p1', services: 'api', 'cluster-secret-file': '/tmp/secret' }, 'join');
    refused(t, { name: 'p1', services: 'api', join: '/ip4/127.0.0.1/tcp/7001' }, 'cluster-secret-file');
  },
);

t.test(
  '--role: only a joiner asks for one, among the roles there are, from an address others can dial',
  async (t) => {
    const joiner = {
      name: 'n4',
      services: 'raft,api,admin',
      join: '/ip4/127.0.0.1/tcp/7001',
      'peer-listen': '/ip4/127.0.0.1/tcp/7004',
      'cluster-secret-file': '/tmp/secret',
    };
    for (const role of ['voter', 'learner', 'spare', 'satellite', 'dr']) {
      t.equal(resolveConfig({ ...joiner, role }, {}).role, role, `${role} is taken`);
    }
    t.equal(resolveConfig(joiner, {}).role, undefined, 'without it, the node waits for members add');
    refused(t, { ...joiner, role: 'emperor' }, 'role');
    refused(t, { ...CLUSTER, role: 'spare' }, 'role');
    refused(t, { ...joiner, role: 'spare', 'peer-listen': '/ip4/0.0.0.0/tcp/7004' }, 'peer-listen');
    refused(
      t,
      {
        name: 'p1',
        services: 'api',
        join: '/ip4/127.0.0.1/tcp/7001',
        'cluster-secret-file': '/tmp/secret',
        role: 'spare',
      },
      'role',
    );
  },
);

t.test(
  'who requires a token: --auth, or a client address beyond loopback without --insecure-no-auth',
  async (t) => {
    const requires = (flags: Record<string, unknown>) =>
      nodeRequiresAuth(resolveConfig({ single: true, ...flags }, {}));
    t.equal(requires({}), false, 'the laptop node: open');
    t.equal(requires({ auth: true }), true, '--auth');
    t.equal(requires({ 'client-host': '0.0.0.0' }), true, 'every address');
    t.equal(requires({ 'client-host': '10.0.0.4' }), true, 'a private address');
    t.equal(requires({ 'client-host': '10.0.0.4', 'insecure-no-auth': true }), false, 'unless waived');
    t.equal(requires({ 'client-host': '127.0.0.2' }), false, 'any 127/8 address is loopback');
    t.equal(requires({ 'client-host': 'localhost' }), false);
    t.equal(requires({ 'client-host': '::1' }), false);
    refused(t, { single: true, auth: true, 'insecure-no-auth': true }, 'insecure-no-auth');
    refused(t, { single: true, auth: 'maybe' }, 'auth', {});
  },
);
