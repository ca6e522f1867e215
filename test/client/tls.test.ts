// TLS: a certificate the client cannot verify fails at once with TLS_ERROR naming Node's code; `ca` trusts a private CA (issue 13).

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import t, { type Test } from 'tap';
import { Client, ConclaveError } from '../../src/client/index.js';
import { type KeyPair, makeTestCerts } from '../lib/certs.js';
import { startSingleNode } from '../node/start-single.js';
import { rejection } from './helpers.js';

const REQUEST_TIMEOUT_MS = 20_000;
const AT_ONCE_MS = 5_000;

function client(t: Test, endpoints: string[], ca?: string): Client {
  const c = new Client({
    endpoints,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    backoff: { baseMs: 5, maxMs: 50 },
    ...(ca === undefined ? {} : { ca }),
  });
  t.teardown(() => c.close());
  return c;
}

/** An HTTPS server in the test that presents `pair` (the handshake fails before any request). */
async function httpsServer(t: Test, pair: KeyPair): Promise<string> {
  const server: Server = createServer({ key: readFileSync(pair.keyFile), cert: readFileSync(pair.certFile) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `https://127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function tlsError(t: Test, call: Promise<unknown>, code: string, what: string): Promise<void> {
  const started = performance.now();
  const error = (await rejection(call)) as ConclaveError;
  const ms = performance.now() - started;
  t.ok(error instanceof ConclaveError, `${what}: a ConclaveError (${String(error)})`);
  t.equal(error.code, 'TLS_ERROR', `${what}: TLS_ERROR, not TIMEOUT (${error.message})`);
  t.match(error.message, code, `${what}: the message names ${code}`);
  t.equal(error.retryable, false, `${what}: not retryable`);
  t.equal(error.indeterminate, false, `${what}: nothing was sent`);
  t.ok(ms < AT_ONCE_MS, `${what}: at once (${Math.round(ms)} ms), not after the deadline`);
}

t.test('TLS', async (t) => {
  const certs = makeTestCerts(t);
  const node = await startSingleNode(
    t,
    ['--tls-key-file', certs.node.keyFile, '--tls-cert-file', certs.node.certFile],
    true,
  );

  t.test('a node whose CA the client does not trust', async (t) => {
    const c = client(t, [node.url]);
    await tlsError(t, c.put('default', 'k', 1), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'put');
    await tlsError(t, c.get('default', 'k'), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'get after it');
  });

  t.test('with `ca` the same node serves', async (t) => {
    const c = client(t, [node.url], certs.caPem);
    const { revision } = await c.put('default', 'k', { over: 'tls' });
    t.same((await c.get('default', 'k')).value, { over: 'tls' });
    t.ok(revision > 0);
  });

  t.test('a self-signed certificate: DEPTH_ZERO_SELF_SIGNED_CERT', async (t) => {
    const url = await httpsServer(t, certs.selfSigned);
    await tlsError(t, client(t, [url]).get('default', 'k'), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'get');
  });

  t.test(
    'a certificate for another host: ERR_TLS_CERT_ALTNAME_INVALID, even with its CA trusted',
    async (t) => {
      const url = await httpsServer(t, certs.wrongHost);
      await tlsError(
        t,
        client(t, [url], certs.caPem).put('default', 'k', 1),
        'ERR_TLS_CERT_ALTNAME_INVALID',
        'put',
      );
    },
  );

  t.test('an expired certificate: CERT_HAS_EXPIRED, even with its CA trusted', async (t) => {
    const url = await httpsServer(t, certs.expired);
    await tlsError(t, client(t, [url], certs.caPem).get('default', 'k'), 'CERT_HAS_EXPIRED', 'get');
  });

  t.test('a bad certificate at one endpoint: the client moves on to the next', async (t) => {
    const bad = await httpsServer(t, certs.selfSigned);
    const c = client(t, [bad, node.url], certs.caPem);
    t.ok((await c.put('default', 'past-bad', 1)).revision > 0, 'the write went to the good endpoint');
  });

  t.test('`ca` must hold a PEM certificate', async (t) => {
    for (const ca of ['not a certificate', Buffer.alloc(0), [] as string[]]) {
      const error = (() => {
        try {
          new Client({ endpoints: [node.url], ca });
        } catch (e) {
          return e as ConclaveError;
        }
        return undefined;
      })();
      t.equal(error?.code, 'INVALID_ARGUMENT', `${JSON.stringify(ca)} is refused`);
      t.match(error?.message, /options\.ca/);
    }
  });
});
