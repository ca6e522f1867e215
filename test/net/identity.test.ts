// The node key file, the cluster secret file, backoff, and configuration validation.

import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { backoffDelayMs } from '../../net/backoff.js';
import { MESH_DEFAULTS, validateMeshLimits } from '../../net/config.js';
import { validateEdgeLimits } from '../../net/edge.js';
import { NetConfigError, NetError } from '../../net/errors.js';
import { loadOrCreateNodeKey, NODE_KEY_FILE } from '../../net/identity.js';
import { Mesh } from '../../net/mesh.js';
import { generateClusterSecret, parseClusterSecret, readClusterSecretFile } from '../../net/secret.js';
import { newKey, newSecret, seededRandom, tempDir } from './helpers.js';

/** Asserts that `fn` throws NetConfigError naming `setting` (and matching `message`). */
function throwsSetting(t: Test, fn: () => unknown, setting: string, message?: RegExp): void {
  try {
    fn();
    t.fail(`no error for ${setting}`);
  } catch (err) {
    t.ok(err instanceof NetConfigError, `NetConfigError for ${setting}`);
    t.equal((err as NetConfigError).setting, setting);
    if (message !== undefined) t.match((err as Error).message, message);
  }
}

t.test('the node key is created once with mode 0600 and gives the same peer id on every load', async (t) => {
  const dir = await tempDir(t);
  const first = await loadOrCreateNodeKey(join(dir, 'data'));
  t.equal(first.created, true);
  t.match(first.peerId, /^12D3KooW/);
  t.equal((await stat(first.path)).mode & 0o777, 0o600);
  const second = await loadOrCreateNodeKey(join(dir, 'data'));
  t.equal(second.created, false);
  t.equal(second.peerId, first.peerId);
});

t.test('concurrent first starts agree on one key', async (t) => {
  const dir = await tempDir(t);
  const loads = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateNodeKey(dir)));
  t.equal(new Set(loads.map((load) => load.peerId)).size, 1);
  t.equal(loads.filter((load) => load.created).length, 1, 'exactly one creator');
});

t.test('a node key file open to others, or not a key, is refused with INVALID_NODE_KEY', async (t) => {
  const dir = await tempDir(t);
  const { path } = await loadOrCreateNodeKey(dir);
  await chmod(path, 0o644);
  await t.rejects(loadOrCreateNodeKey(dir), { code: 'INVALID_NODE_KEY', message: /chmod 600/ });
  await writeFile(path, 'not a key', { mode: 0o600 });
  await chmod(path, 0o600);
  await t.rejects(loadOrCreateNodeKey(dir), {
    code: 'INVALID_NODE_KEY',
    message: /not a libp2p private key/,
  });
  t.equal(NODE_KEY_FILE, 'node.key');
});

t.test('a generated secret parses, and each secret has its own fingerprint', async (t) => {
  const text = generateClusterSecret();
  const secret = parseClusterSecret(text);
  t.equal(secret.key.length, 32);
  t.match(secret.fingerprint, /^[0-9a-f]{16}$/);
  t.not(parseClusterSecret(generateClusterSecret()).fingerprint, secret.fingerprint);
  t.equal(parseClusterSecret(text.replace(/\n/g, '\r\n')).fingerprint, secret.fingerprint, 'CRLF is fine');
});

t.test('malformed secrets are refused with INVALID_SECRET and never echoed', async (t) => {
  const good = generateClusterSecret();
  const key = good.split('\n')[1]!;
  const cases = [
    '',
    'conclave-cluster-secret v1\n',
    `conclave-cluster-secret v2\n${key}\n`,
    `conclave-cluster-secret v1\n${key.slice(0, 20)}\n`,
    `conclave-cluster-secret v1\n${key}!\n`,
    `conclave-cluster-secret v1\n${Buffer.alloc(32).toString('base64url')}\n`,
    `conclave-cluster-secret v1\n${key}\nextra\n`,
    'x'.repeat(5000),
  ];
  for (const text of cases) {
    try {
      parseClusterSecret(text);
      t.fail(`accepted ${JSON.stringify(text.slice(0, 40))}`);
    } catch (err) {
      t.equal((err as NetError).code, 'INVALID_SECRET');
      t.notMatch((err as Error).message, key.slice(0, 20), 'the key material is not in the message');
    }
  }
});

t.test('a secret file must not be readable by group or others', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'cluster.secret');
  await writeFile(path, generateClusterSecret(), { mode: 0o644 });
  await chmod(path, 0o644);
  await t.rejects(readClusterSecretFile(path), { code: 'INVALID_SECRET', message: /chmod 600/ });
  await chmod(path, 0o600);
  const secret = await readClusterSecretFile(path);
  t.equal(secret.fingerprint, parseClusterSecret(await readFile(path, 'utf8')).fingerprint);
  await t.rejects(readClusterSecretFile(join(dir, 'missing')), { code: 'INVALID_SECRET' });
});

t.test('backoff grows exponentially to its cap, with jitter in [d/2, d]', async (t) => {
  const policy = { baseMs: 100, maxMs: 5_000 };
  t.equal(
    backoffDelayMs(1, policy, () => 0),
    50,
  );
  t.equal(
    backoffDelayMs(1, policy, () => 0.999999),
    100,
  );
  t.equal(
    backoffDelayMs(4, policy, () => 0.999999),
    800,
  );
  t.equal(
    backoffDelayMs(60, policy, () => 0.999999),
    5_000,
    'capped',
  );
  t.equal(
    backoffDelayMs(1000, policy, () => 0),
    2_500,
    'half the cap at least',
  );
  const random = seededRandom(7);
  const draws = Array.from({ length: 200 }, () => backoffDelayMs(3, policy, random));
  t.ok(Math.min(...draws) >= 200 && Math.max(...draws) <= 400, 'failure 3: within [200, 400]');
  t.ok(new Set(draws).size > 50, 'jitter spreads the delays');
});

t.test('limits are validated with the setting, the bound and the value in the message', async (t) => {
  t.same(validateMeshLimits(), MESH_DEFAULTS);
  throwsSetting(t, () => validateMeshLimits({ maxFrameBytes: 10 }), 'limits.maxFrameBytes', /got 10/);
  throwsSetting(
    t,
    () => validateMeshLimits({ maxFrameBytes: 8192, raftFrameTargetBytes: 16_384 }),
    'limits.raftFrameTargetBytes',
    /\[1024, 8192\]/,
  );
  t.throws(() => validateMeshLimits({ redialBaseMs: 2.5 }), NetConfigError);
  throwsSetting(t, () => validateMeshLimits({ bogus: 1 } as never), 'limits.bogus');
  throwsSetting(t, () => validateEdgeLimits({ wsIdleTimeoutSeconds: 5 }), 'limits.wsIdleTimeoutSeconds');
  throwsSetting(t, () => validateEdgeLimits({ maxBodyBytes: 0 }), 'limits.maxBodyBytes');
});

t.test('a mesh refuses bad addresses and missing parts at construction', async (t) => {
  const privateKey = await newKey();
  const secret = newSecret();
  const handlers = { raft: () => {} };
  const base = { privateKey, secret, handlers, listen: ['/ip4/127.0.0.1/tcp/0'], peers: [] as string[] };
  throwsSetting(t, () => new Mesh({ ...base, listen: ['not a multiaddr'] }), 'listen');
  throwsSetting(t, () => new Mesh({ ...base, peers: ['/ip4/127.0.0.1/udp/9'] }), 'peers');
  throwsSetting(t, () => new Mesh({ ...base, peers: ['/ip4/127.0.0.1/tcp/9/p2p/notapeerid'] }), 'peers');
  throwsSetting(t, () => new Mesh({ ...base, secret: undefined as never }), 'secret');
  throwsSetting(t, () => new Mesh({ ...base, handlers: {} as never }), 'handlers.raft');
  throwsSetting(t, () => new Mesh({ ...base, limits: { helloTimeoutMs: 1 } }), 'limits.helloTimeoutMs');
  const mesh = new Mesh(base);
  await mesh.stop();
  await t.rejects(mesh.start(), NetError, 'a stopped mesh does not start again');
});
