// Tokens and the gate: the token format, hashes compared in constant time, expiry, and a proxy's short memory of a member's answers.

import t from 'tap';
import { type AccessView, OPEN, StateGate } from '../../src/auth.js';
import { ProxyGate } from '../../src/proxy-gate.js';
import { bearerToken, hashSecret, newToken, parseToken, secretMatches } from '../../src/tokens.js';
import type { TokenRecord, UserRecord } from '../../storage/index.js';

t.test('a token: 64-bit id, 256-bit secret, only the hash kept', async (t) => {
  const made = newToken();
  t.match(made.token, /^cnc_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const parsed = parseToken(made.token)!;
  t.equal(parsed.id, made.id);
  t.equal(Buffer.from(parsed.secret, 'base64url').length, 32, '256 random bits');
  t.equal(made.hash, hashSecret(parsed.secret));
  t.notMatch(made.hash, parsed.secret);
  t.ok(secretMatches(made.hash, parsed.secret));
  const last = parsed.secret.slice(-1) === 'A' ? 'B' : 'A';
  t.notOk(secretMatches(made.hash, `${parsed.secret.slice(0, -1)}${last}`), 'one character off');
  t.notOk(secretMatches('00', parsed.secret), 'a malformed stored hash never matches');
  t.not(newToken().token, made.token, 'random');
  for (const bad of ['', 'cnc_', `cnc_${made.id}`, `${made.token}x`, made.token.replace('cnc_', 'cnx_')]) {
    t.equal(parseToken(bad), undefined, `malformed: ${JSON.stringify(bad)}`);
  }
  t.equal(bearerToken('Bearer abc'), 'abc');
  t.equal(bearerToken('bearer   abc '), 'abc');
  t.equal(bearerToken(undefined), undefined);
});

t.test('the gate: required or open, valid, unknown, wrong secret, expired, user gone', async (t) => {
  const alice = newToken();
  const old = newToken();
  const tokens = new Map<string, TokenRecord>([
    [alice.id, { id: alice.id, user: 'alice', hash: alice.hash, createdAt: 0, expiresAt: 0 }],
    [old.id, { id: old.id, user: 'alice', hash: old.hash, createdAt: 0, expiresAt: 1000 }],
  ]);
  const users = new Map<string, UserRecord>([['alice', { clusterAdmin: false, grants: { shop: 'read' } }]]);
  let auth = false;
  const view: AccessView = {
    get auth() {
      return auth;
    },
    user: (name) => users.get(name),
    token: (id) => tokens.get(id),
    realm: () => undefined,
  };
  let now = 500;
  const gate = new StateGate(
    () => view,
    false,
    () => now,
  );
  t.equal(gate.principal(undefined), OPEN, 'auth off: everyone may do everything');
  t.equal(gate.principal('garbage'), OPEN, 'a token is not even looked at');
  t.throws(
    () => gate.principal(undefined, true),
    { code: 'UNAUTHENTICATED' },
    'unless the asking proxy requires one',
  );
  auth = true;
  t.same(gate.principal(alice.token), { user: 'alice', clusterAdmin: false, grants: { shop: 'read' } });
  t.throws(() => gate.principal(undefined), { code: 'UNAUTHENTICATED', message: /requires a token/ });
  t.throws(() => gate.principal(alice.token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))), {
    code: 'UNAUTHENTICATED',
    message: /not valid/,
  });
  t.throws(() => gate.principal(newToken().token), { code: 'UNAUTHENTICATED' }, 'an unknown id');
  t.ok(gate.principal(old.token), 'before its expiry');
  now = 1000;
  t.throws(() => gate.principal(old.token), { code: 'UNAUTHENTICATED' }, 'at its expiry');
  users.delete('alice');
  t.throws(() => gate.principal(alice.token), { code: 'UNAUTHENTICATED' }, 'its user removed');
  t.ok(new StateGate(() => ({ ...view, auth: false }), true).principal, 'a node that requires tokens itself');
  t.throws(() => new StateGate(() => ({ ...view, auth: false }), true).principal(undefined), {
    code: 'UNAUTHENTICATED',
  });
});

t.test("a proxy keeps a member's answer for half a second, refusals too, failures not", async (t) => {
  let asked = 0;
  let answer: 'ok' | 'refused' | 'unreachable' = 'ok';
  let now = 0;
  const gate = new ProxyGate(
    async () => {
      asked++;
      if (answer === 'refused') throw Object.assign(new Error('no'), { code: 'UNAUTHENTICATED' });
      if (answer === 'unreachable') throw Object.assign(new Error('none'), { code: 'UNAVAILABLE' });
      return OPEN;
    },
    () => now,
  );
  await gate.principal('a');
  await gate.principal('a');
  t.equal(asked, 1, 'kept');
  now = 499;
  answer = 'refused';
  t.equal(await gate.principal('a'), OPEN, 'still kept at 499 ms');
  now = 500;
  await t.rejects(gate.principal('a'), { code: 'UNAUTHENTICATED' }, 'asked again at 500 ms: revoked');
  await t.rejects(gate.principal('a'), { code: 'UNAUTHENTICATED' });
  t.equal(asked, 2, 'the refusal is kept too');
  answer = 'unreachable';
  await t.rejects(gate.principal('b'), { code: 'UNAVAILABLE' });
  await t.rejects(gate.principal('b'), { code: 'UNAVAILABLE' });
  t.equal(asked, 4, 'a failure to ask is not kept');
});
