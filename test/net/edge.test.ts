// The uWS edge on loopback: native binary, JSON routes and their error answers, WebSocket limits, TLS.

import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Edge, EdgeError, type EdgeInit, type EdgeRoute, type EdgeSocket } from '../../net/edge.js';
import { NetConfigError } from '../../net/errors.js';
import { loadUws } from '../../net/uws.js';
import { CLOSE_CODES, ERROR_TABLE } from '../../src/error-codes.js';
import { type RecordingLogger, recordingLogger, tempDir, waitFor } from './helpers.js';
import { rawHttp, TestWebSocket } from './ws-client.js';

const KIB = 1024;

interface Harness {
  readonly edge: Edge;
  readonly base: string;
  readonly logger: RecordingLogger;
  readonly sockets: EdgeSocket[];
  readonly closes: { code: number; reason: string }[];
  readonly held: (() => void)[];
}

const routes: EdgeRoute[] = [
  { method: 'GET', pattern: '/v1/ping', body: 'none', handler: () => ({ status: 200, body: { ok: true } }) },
  {
    method: 'POST',
    pattern: '/v1/echo/:name',
    body: 'json',
    handler: (request) => ({
      status: 201,
      body: { name: request.params.name, body: request.body, query: request.query },
      headers: { 'x-conclave': 'yes' },
    }),
  },
  {
    method: 'PUT',
    pattern: '/v1/conflict',
    body: 'json',
    handler: () => {
      throw new EdgeError('CONFLICT', 'the revision moved', { revision: 17 });
    },
  },
  {
    method: 'GET',
    pattern: '/v1/not-leader',
    body: 'none',
    handler: async () => {
      throw Object.assign(new Error('ask node 2'), { code: 'NOT_LEADER' });
    },
  },
  {
    method: 'GET',
    pattern: '/v1/bug',
    body: 'none',
    handler: () => {
      throw new TypeError('undefined is not a function');
    },
  },
];

async function startEdge(
  t: Test,
  limits: EdgeInit['limits'] = {},
  extra: Partial<EdgeInit> = {},
): Promise<Harness> {
  const logger = recordingLogger();
  const sockets: EdgeSocket[] = [];
  const closes: { code: number; reason: string }[] = [];
  const held: (() => void)[] = [];
  const edge = new Edge({
    errors: ERROR_TABLE,
    host: '127.0.0.1',
    port: 0,
    logger,
    limits: { maxBodyBytes: 4 * KIB, maxWsPayloadBytes: 4 * KIB, ...limits },
    routes: [
      ...routes,
      {
        method: 'GET',
        pattern: '/v1/hold',
        body: 'none',
        handler: () => new Promise((resolve) => held.push(() => resolve({ status: 200, body: 'released' }))),
      },
    ],
    websocket: {
      path: '/v1/ws',
      open: (socket) => sockets.push(socket),
      message: (socket, message) => {
        const m = message as { flood?: number; size?: number; burst?: number };
        if (typeof m.burst === 'number') {
          for (let n = 0; n < m.burst; n++) socket.send({ n });
          return;
        }
        if (typeof m.flood === 'number') {
          const payload = { data: 'x'.repeat(m.size ?? 16 * KIB) };
          for (let i = 0; i < m.flood && socket.send(payload); i++);
          return;
        }
        socket.send({ echo: message });
      },
      close: (_socket, code, reason) => closes.push({ code, reason }),
    },
    ...extra,
  });
  await edge.start();
  t.teardown(() => edge.stop());
  return { edge, base: `http://127.0.0.1:${edge.port}`, logger, sockets, closes, held };
}

async function json(response: Response): Promise<{ status: number; body: unknown }> {
  return { status: response.status, body: await response.json() };
}

t.test('the native uWebSockets.js binary is active and the edge says so at start', async (t) => {
  const runtime = loadUws();
  t.equal(runtime.native, true, runtime.description);
  t.match(runtime.binary ?? '', /uws_linux_x64_\d+\.node$/);
  const { logger } = await startEdge(t);
  const started = logger.events('edge_started');
  t.equal(started.length, 1);
  t.equal(started[0]!.native, true);
});

t.test('routes answer JSON; parameters, query and headers come through', async (t) => {
  const { base } = await startEdge(t);
  t.same(await json(await fetch(`${base}/v1/ping`)), { status: 200, body: { ok: true } });
  const response = await fetch(`${base}/v1/echo/caf%C3%A9?x=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ value: [1, 'two'] }),
  });
  t.equal(response.headers.get('x-conclave'), 'yes');
  t.same(await json(response), {
    status: 201,
    body: { name: 'café', body: { value: [1, 'two'] }, query: 'x=1' },
  });
});

t.test('bad requests answer with stable codes and statuses', async (t) => {
  const { base, edge, logger } = await startEdge(t);
  const post = (path: string, body: string | Uint8Array, type = 'application/json') =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  const cases: [string, Promise<Response>, number, string][] = [
    ['unknown route', fetch(`${base}/v1/nothing`), 404, 'NOT_FOUND'],
    ['wrong method', fetch(`${base}/v1/echo/x`), 404, 'NOT_FOUND'],
    ['malformed JSON', post('/v1/echo/x', '{"a":'), 400, 'INVALID_ARGUMENT'],
    ['empty body', post('/v1/echo/x', ''), 400, 'INVALID_ARGUMENT'],
    ['not JSON content', post('/v1/echo/x', '{}', 'text/plain'), 400, 'INVALID_ARGUMENT'],
    ['merge-patch JSON is JSON', post('/v1/echo/x', '{}', 'application/merge-patch+json'), 201, ''],
    ['invalid UTF-8', post('/v1/echo/x', new Uint8Array([0x22, 0xc3, 0x28, 0x22])), 400, 'INVALID_ARGUMENT'],
    [
      'handler conflict',
      fetch(`${base}/v1/conflict`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      }),
      409,
      'CONFLICT',
    ],
    ['error with a known code', fetch(`${base}/v1/not-leader`), 503, 'NOT_LEADER'],
    ['a bug', fetch(`${base}/v1/bug`), 500, 'INTERNAL'],
  ];
  for (const [name, pending, status, code] of cases) {
    const { status: got, body } = await json(await pending);
    t.equal(got, status, `${name}: ${status}`);
    if (code !== '') t.equal((body as { code: string }).code, code, `${name}: ${code}`);
  }
  const conflict = (
    await json(
      await fetch(`${base}/v1/conflict`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      }),
    )
  ).body;
  t.same(
    conflict,
    { revision: 17, code: 'CONFLICT', message: 'the revision moved', retryable: false },
    'details travel',
  );
  t.equal(logger.events('route_failed').length, 1, 'the bug is logged, its message is not sent');
  t.equal(edge.counters().errors.INTERNAL, 1);
});

t.test('bodies over the limit answer 413 TOO_LARGE, declared or streamed', async (t) => {
  const { edge } = await startEdge(t);
  const declared = await rawHttp(
    edge.port,
    'POST /v1/echo/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n',
  );
  t.equal(declared.status, 413);
  t.equal(JSON.parse(declared.body).code, 'TOO_LARGE');
  t.equal(JSON.parse(declared.body).limitBytes, 4 * KIB);
  const chunk = `1000\r\n${'7'.repeat(4096)}\r\n`;
  const streamed = await rawHttp(
    edge.port,
    'POST /v1/echo/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    { thenWrite: (socket) => socket.write(chunk + chunk) },
  );
  t.equal(streamed.status, 413);
  t.equal(JSON.parse(streamed.body).code, 'TOO_LARGE');
  const justRight = await fetch(`http://127.0.0.1:${edge.port}/v1/echo/x`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify('y'.repeat(4 * KIB - 2)),
  });
  t.equal(response(justRight), 201, 'exactly at the limit is fine');
  t.equal(edge.counters().errors.TOO_LARGE, 2);
});

t.test(
  'a body nested deeper than the limit answers 413 before it is parsed, over HTTP and WebSocket',
  async (t) => {
    const { edge, base } = await startEdge(t, { maxBodyBytes: 2 * 1024 * 1024, maxJsonDepth: 50 });
    const deep = await fetch(`${base}/v1/echo/x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '['.repeat(1024 * 1024),
    });
    t.equal(deep.status, 413);
    const body = (await deep.json()) as { code: string; message: string };
    t.equal(body.code, 'TOO_LARGE');
    t.match(body.message, /nests arrays or objects deeper than 50/);
    const atLimit = await fetch(`${base}/v1/echo/x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `${'['.repeat(50)}${']'.repeat(50)}`,
    });
    t.equal(atLimit.status, 201, 'exactly at the limit is parsed');
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    ws.sendText(`${'['.repeat(60)}${']'.repeat(60)}`);
    await waitFor('the answer', () => ws.messages.length === 1);
    const answer = JSON.parse(ws.messages[0]!) as { type: string; error: { code: string; message: string } };
    t.equal(answer.type, 'error');
    t.equal(answer.error.code, 'TOO_LARGE');
    t.match(answer.error.message, /deeper than 50/);
    t.equal(ws.closed, undefined, 'the socket stays open');
  },
);

function response(r: Response): number {
  return r.status;
}

t.test('a slow handler answers 504 TIMEOUT; too many in flight answer 503 UNAVAILABLE', async (t) => {
  const { base, held } = await startEdge(t, { requestTimeoutMs: 200, maxInflightRequests: 2 });
  const slow = fetch(`${base}/v1/hold`);
  const second = fetch(`${base}/v1/hold`);
  await waitFor('two held requests', () => held.length === 2);
  const third = await json(await fetch(`${base}/v1/hold`));
  t.equal(third.status, 503);
  t.equal((third.body as { code: string }).code, 'UNAVAILABLE');
  const timedOut = await json(await slow);
  t.equal(timedOut.status, 504);
  t.equal((timedOut.body as { code: string }).code, 'TIMEOUT');
  await second;
  for (const release of held) release();
  t.same(
    await json(await fetch(`${base}/v1/ping`)),
    { status: 200, body: { ok: true } },
    'slots freed after the timeouts',
  );
});

t.test(
  'WebSocket: JSON in and out; bad messages answered with INVALID_ARGUMENT without closing',
  async (t) => {
    const { edge, sockets } = await startEdge(t);
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    ws.sendText(JSON.stringify({ hello: 'world' }));
    ws.sendText('{not json');
    ws.sendBinary(new Uint8Array([1, 2, 3]));
    ws.sendText(JSON.stringify(42));
    await waitFor('four answers', () => ws.messages.length === 4);
    const answers = ws.messages.map((m) => JSON.parse(m));
    t.same(answers[0], { echo: { hello: 'world' } });
    t.equal(answers[1].error.code, 'INVALID_ARGUMENT');
    t.equal(answers[2].error.code, 'INVALID_ARGUMENT');
    t.same(answers[3], { echo: 42 });
    t.equal(ws.closed, undefined, 'still open');
    t.equal(sockets.length, 1);
    t.equal(edge.counters().wsInvalidMessages, 2);
  },
);

t.test(
  'WebSocket: a message over the payload limit closes with 1009; far over, uWS drops the connection',
  async (t) => {
    const { edge, closes } = await startEdge(t);
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    ws.sendText(JSON.stringify('z'.repeat(5 * KIB)));
    await waitFor('the close', () => ws.closed !== undefined);
    t.same(ws.closed, { code: CLOSE_CODES.TOO_LARGE, reason: 'TOO_LARGE', clean: true });
    const far = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => far.destroy());
    far.sendText('y'.repeat(9 * KIB));
    await waitFor('the drop', () => far.closed !== undefined);
    t.equal(far.closed!.clean, false, 'no close frame: the TCP connection ends (1006 at the client)');
    await waitFor('both closes seen by the edge', () => closes.length === 2);
    t.equal(edge.counters().wsTooLargeClosed, 2);
  },
);

t.test(
  'WebSocket: the messages sent to a socket in one turn go out in order, in one corked write',
  async (t) => {
    const { edge } = await startEdge(t);
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    const writes = edge.counters().wsWrites;
    ws.sendText(JSON.stringify({ burst: 100 }));
    await waitFor('all 100 messages', () => ws.messages.length === 100);
    t.same(
      ws.messages.map((text) => (JSON.parse(text) as { n: number }).n),
      Array.from({ length: 100 }, (_, n) => n),
      'every message, in the order sent',
    );
    t.equal(edge.counters().wsWrites - writes, 1, 'one write for the 100 messages');
    t.equal(edge.counters().wsMessagesOut, 100);
    ws.sendText(JSON.stringify({ burst: 1 }));
    await waitFor('one more', () => ws.messages.length === 101);
    t.equal(edge.counters().wsWrites - writes, 2, 'a later turn makes a later write');
  },
);

t.test(
  'WebSocket: a subscriber that stops reading is closed with 4008 SLOW_CONSUMER, not buffered without bound',
  async (t) => {
    const { edge, sockets, logger } = await startEdge(t, {
      maxWsBackpressureBytes: 256 * KIB,
      maxWsPayloadBytes: 64 * KIB,
    });
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    ws.pause();
    // The client reads nothing while the server pushes ~64 MiB at it.
    ws.sendText(JSON.stringify({ flood: 4096, size: 16 * KIB }));
    await waitFor('the edge to drop the slow consumer', () => edge.counters().wsSlowConsumersClosed === 1);
    t.equal(sockets[0]!.open, false);
    t.equal(sockets[0]!.send({ late: true }), false, 'sending to a dropped socket is refused');
    t.ok(
      edge.counters().wsMessagesOut < 4096,
      `${edge.counters().wsMessagesOut} of 4096 messages were queued before the drop`,
    );
    t.equal(logger.events('websocket_slow_consumer').length, 1);
    ws.resume();
    await waitFor('the client to see the close', () => ws.closed !== undefined);
    // The close frame waits behind the data already buffered, and arrives once the client reads.
    t.same(ws.closed, { code: CLOSE_CODES.SLOW_CONSUMER, reason: 'SLOW_CONSUMER', clean: true });
  },
);

t.test(
  'WebSocket: upgrades beyond maxWsConnections answer 503; stop() closes sockets with 1001',
  async (t) => {
    const { edge, base, held } = await startEdge(t, { maxWsConnections: 2 });
    // A request still in its handler when the edge stops: its late answer must go nowhere, quietly.
    const inFlight = fetch(`${base}/v1/hold`).then(
      (r) => r.status,
      () => 'connection closed',
    );
    await waitFor('the held request', () => held.length === 1);
    const first = await TestWebSocket.open(edge.port, '/v1/ws');
    const second = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => {
      first.destroy();
      second.destroy();
    });
    await t.rejects(TestWebSocket.open(edge.port, '/v1/ws'), /503 Service Unavailable.*UNAVAILABLE/);
    await edge.stop();
    await waitFor('both closed', () => first.closed !== undefined && second.closed !== undefined);
    t.same(first.closed, { code: CLOSE_CODES.GOING_AWAY, reason: 'GOING_AWAY', clean: true });
    await t.rejects(fetch(`http://127.0.0.1:${edge.port}/v1/ping`), 'no longer listening');
    t.equal(await inFlight, 'connection closed', 'the in-flight request was cut off by stop()');
    held[0]!();
    await new Promise((resolve) => setImmediate(resolve));
    t.pass('answering after stop() neither throws nor crashes');
  },
);

t.test('TLS: with a key and certificate the edge serves HTTPS', async (t) => {
  const dir = await tempDir(t);
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const { edge } = await startEdge(t, {}, { tls: { keyFile, certFile } });
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: edge.port, path: '/v1/ping', rejectUnauthorized: false },
      (res) => {
        let body = '';
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.same(answer, { status: 200, body: '{"ok":true}' });
});

t.test('edge configuration is refused before uWS sees it', async (t) => {
  const base: EdgeInit = { host: '127.0.0.1', port: 0, routes: [], errors: ERROR_TABLE };
  const settingOf = (init: EdgeInit) => {
    try {
      new Edge(init);
      return 'accepted';
    } catch (err) {
      return err instanceof NetConfigError ? err.setting : `not a NetConfigError: ${String(err)}`;
    }
  };
  t.equal(settingOf({ ...base, port: 70000 }), 'port');
  t.equal(settingOf({ ...base, tls: { keyFile: '/nonexistent', certFile: '/nonexistent' } }), 'tls.keyFile');
  t.equal(settingOf({ ...base, routes: [{ ...routes[0]!, method: 'TRACE' as never }] }), 'routes[0].method');
  t.equal(settingOf({ ...base, routes: [routes[0]!, routes[0]!] }), 'routes[1]');
  t.equal(settingOf({ ...base, websocket: { path: 'ws', message: () => {} } }), 'websocket.path');
  t.equal(settingOf({ ...base, limits: { wsIdleTimeoutSeconds: 3 } }), 'limits.wsIdleTimeoutSeconds');
  t.equal(settingOf(base), 'accepted');
});
