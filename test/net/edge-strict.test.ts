// HTTP framing and protocol strictness of the edge at the raw-socket level: what each malformed request or WebSocket frame gets.

import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { Edge, type EdgeInit } from '../../net/edge.js';
import { CLOSE_CODES, ERROR_TABLE } from '../../src/error-codes.js';
import { waitFor } from './helpers.js';
import { TestWebSocket } from './ws-client.js';

const MIB = 1024 * 1024;

interface Harness {
  readonly edge: Edge;
  /** Bodies the PUT route applied, in order. */
  readonly writes: unknown[];
  readonly closes: { code: number; reason: string }[];
}

async function startEdge(t: Test, limits: EdgeInit['limits'] = {}): Promise<Harness> {
  const writes: unknown[] = [];
  const closes: { code: number; reason: string }[] = [];
  const edge = new Edge({
    errors: ERROR_TABLE,
    host: '127.0.0.1',
    port: 0,
    limits,
    routes: [
      {
        method: 'GET',
        pattern: '/v1/ping',
        body: 'none',
        handler: () => ({ status: 200, body: { ok: true } }),
      },
      {
        method: 'PUT',
        pattern: '/v1/kv/:key',
        body: 'json',
        handler: (request) => {
          writes.push(request.body);
          return { status: 200, body: { applied: request.body } };
        },
      },
    ],
    websocket: {
      path: '/v1/ws',
      message: (socket, message) => socket.send({ echo: message }),
      close: (_socket, code, reason) => closes.push({ code, reason }),
    },
  });
  await edge.start();
  t.teardown(() => edge.stop());
  return { edge, writes, closes };
}

/** What came back on one raw connection: the bytes, and when (ms after the write) the edge closed it. */
interface RawOutcome {
  readonly text: string;
  readonly status: number | undefined;
  readonly body: unknown;
  /** undefined: still open when we stopped waiting. */
  readonly closedAfterMs: number | undefined;
}

/**
 * Writes `request` on a fresh connection and collects everything until the edge closes it, or
 * until `waitMs` passes (then the connection is left as still open and destroyed).
 */
function exchange(port: number, request: string | Buffer, waitMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let started = 0;
    let settled = false;
    const finish = (closedAfterMs: number | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = received.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      const end = text.indexOf('\r\n\r\n');
      let body: unknown;
      if (end >= 0) {
        try {
          body = JSON.parse(received.subarray(end + 4).toString());
        } catch {
          body = received.subarray(end + 4).toString();
        }
      }
      resolve({ text, status: match === null ? undefined : Number(match[1]), body, closedAfterMs });
    };
    const timer = setTimeout(() => finish(undefined), waitMs);
    socket.on('data', (data: Buffer) => {
      received = Buffer.concat([received, data]);
    });
    socket.on('close', () => finish(Date.now() - started));
    socket.on('error', () => {});
    socket.on('connect', () => {
      started = Date.now();
      socket.write(request);
    });
  });
}

const PUT_HEAD = 'PUT /v1/kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n';

t.test(
  'a repeated Content-Length answers 400 INVALID_ARGUMENT and closes the connection; nothing is applied',
  async (t) => {
    const { edge, writes } = await startEdge(t);
    // uWS reads the first value: the body would be `{}` and the rest the start of the next request.
    const differing = await exchange(
      edge.port,
      `${PUT_HEAD}Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}abc`,
      5000,
    );
    t.equal(differing.status, 400, differing.text);
    t.match(differing.body, { code: 'INVALID_ARGUMENT', retryable: false, message: /Content-Length/ });
    t.match(differing.text, /\r\nConnection: close\r\n/i);
    t.ok(differing.closedAfterMs !== undefined && differing.closedAfterMs < 2000, 'closed at once');
    const identical = await exchange(
      edge.port,
      `${PUT_HEAD}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}`,
      5000,
    );
    t.equal(identical.status, 400, 'identical values are refused too');
    t.match(identical.body, { code: 'INVALID_ARGUMENT' });
    // A request pipelined behind the refused one (a smuggling attempt) is never run: uWS closes
    // the connection when a second request arrives before the refusal is answered.
    const smuggled = await exchange(
      edge.port,
      `${PUT_HEAD}Content-Length: 2\r\nContent-Length: 80\r\n\r\n{}` +
        `${PUT_HEAD}Content-Length: 10\r\n\r\n"smuggled"`,
      5000,
    );
    t.notMatch(smuggled.text, /smuggled/, 'the smuggled request got no answer');
    t.ok(smuggled.closedAfterMs !== undefined && smuggled.closedAfterMs < 2000, 'closed at once');
    t.same(writes, [], 'no write was applied');
    t.equal(edge.counters().errors.INVALID_ARGUMENT, 2);
    const single = await exchange(edge.port, `${PUT_HEAD}Content-Length: 2\r\n\r\n{}`, 300);
    t.equal(single.status, 200, 'one Content-Length is fine');
  },
);

t.test(
  'a Transfer-Encoding other than a single plain "chunked" answers 400 INVALID_ARGUMENT and closes the connection',
  async (t) => {
    const { edge, writes } = await startEdge(t);
    const chunkedBody = '2\r\n{}\r\n0\r\n\r\n';
    const cases: [string, string][] = [
      ['gzip, chunked', `${PUT_HEAD}Transfer-Encoding: gzip, chunked\r\n\r\n${chunkedBody}`],
      [
        'chunked twice',
        `${PUT_HEAD}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}`,
      ],
      ['chunked, chunked', `${PUT_HEAD}Transfer-Encoding: chunked, chunked\r\n\r\n${chunkedBody}`],
      // Headers alone: the edge must not wait for a body it cannot read.
      ['gzip alone', `${PUT_HEAD}Transfer-Encoding: gzip\r\n\r\n`],
      [
        'on a route without a body',
        'GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      ],
      ['on no route', 'GET /v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: identity\r\n\r\n'],
      [
        'on the WebSocket upgrade',
        'GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: gzip\r\n\r\n',
      ],
    ];
    for (const [name, request] of cases) {
      const outcome = await exchange(edge.port, request, 5000);
      t.equal(outcome.status, 400, `${name}: 400 (${outcome.text.slice(0, 40)})`);
      t.match(outcome.body, { code: 'INVALID_ARGUMENT', message: /Transfer-Encoding/ }, `${name}: the code`);
      t.ok(
        outcome.closedAfterMs !== undefined && outcome.closedAfterMs < 2000,
        `${name}: closed at once (${outcome.closedAfterMs} ms)`,
      );
    }
    t.same(writes, [], 'no write was applied');
    const plain = await exchange(
      edge.port,
      `${PUT_HEAD}Transfer-Encoding: Chunked\r\n\r\n${chunkedBody}`,
      300,
    );
    t.equal(plain.status, 200, 'plain chunked (any case) is fine');
    t.same(writes, [{}]);
  },
);

t.test(
  'what uWS refuses itself: Content-Length with Transfer-Encoding is closed at once, unanswered',
  async (t) => {
    const { edge, writes } = await startEdge(t);
    const outcome = await exchange(
      edge.port,
      `${PUT_HEAD}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
      5000,
    );
    t.equal(outcome.text, '', 'no answer');
    t.ok(outcome.closedAfterMs !== undefined && outcome.closedAfterMs < 2000, 'closed at once');
    t.same(writes, []);
  },
);

t.test(
  'what uWS cannot parse (HTTP/1.0, bare LF, absolute URI, HTTP/9.9) gets no answer and is closed by its 10 s idle timeout',
  async (t) => {
    const { edge } = await startEdge(t);
    const cases: [string, string][] = [
      ['HTTP/1.0', 'GET /v1/ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'],
      ['bare LF line ends', 'GET /v1/ping HTTP/1.1\nHost: 127.0.0.1\n\n'],
      ['absolute URI', 'GET http://127.0.0.1/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
      ['HTTP/9.9', 'GET /v1/ping HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n'],
    ];
    // In parallel: each waits out uWS's idle timeout (10 s, in 4 s ticks: 8 to 12 s).
    const outcomes = await Promise.all(cases.map(([, request]) => exchange(edge.port, request, 16_000)));
    for (const [i, [name]] of cases.entries()) {
      const outcome = outcomes[i]!;
      t.equal(outcome.text, '', `${name}: no answer`);
      t.ok(
        outcome.closedAfterMs !== undefined &&
          outcome.closedAfterMs >= 7000 &&
          outcome.closedAfterMs <= 13_000,
        `${name}: closed by the idle timeout (${outcome.closedAfterMs} ms)`,
      );
    }
    const filled = await exchange(
      edge.port,
      `GET /v1/ping HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(4096)}\r\n\r\n`,
      5000,
    );
    t.ok(
      filled.text === '' && filled.closedAfterMs !== undefined && filled.closedAfterMs < 2000,
      'once 4 KiB are buffered unparsed, closed at once',
    );
  },
);

t.test(
  'WebSocket: over the limit closes with 1009; beyond twice the limit, uWS drops the connection at the frame header',
  async (t) => {
    const { edge, closes } = await startEdge(t);
    const over = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => over.destroy());
    over.sendText(JSON.stringify('o'.repeat(1.5 * MIB)));
    await waitFor('the 1009 close', () => over.closed !== undefined, { timeoutMs: 5000 });
    t.same(over.closed, { code: CLOSE_CODES.TOO_LARGE, reason: 'TOO_LARGE', clean: true });
    const far = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => far.destroy());
    far.sendText(JSON.stringify('f'.repeat(5 * MIB)));
    const started = Date.now();
    await waitFor('the drop', () => far.closed !== undefined, { timeoutMs: 5000 });
    t.ok(Date.now() - started < 2000, `dropped at once (${Date.now() - started} ms)`);
    t.same(far.closed, { code: 1006, reason: '', clean: false }, 'no close frame: 1006 at the client');
    await waitFor('both closes seen by the edge', () => closes.length === 2);
    t.same(closes[1], { code: 1006, reason: 'Received too big message' });
    t.equal(edge.counters().wsTooLargeClosed, 2);
  },
);

t.test(
  'WebSocket: a text frame that is not UTF-8 is dropped at once by uWS, without a close frame',
  async (t) => {
    const { edge, closes } = await startEdge(t);
    const ws = await TestWebSocket.open(edge.port, '/v1/ws');
    t.teardown(() => ws.destroy());
    ws.sendTextBytes(new Uint8Array([0x22, 0xc3, 0x28, 0x22]));
    const started = Date.now();
    await waitFor('the drop', () => ws.closed !== undefined, { timeoutMs: 5000 });
    t.ok(Date.now() - started < 2000, 'at once');
    t.same(ws.closed, { code: 1006, reason: '', clean: false });
    t.same(ws.messages, [], 'no answer');
    await waitFor('the close seen by the edge', () => closes.length === 1);
    t.same(closes[0], { code: 1006, reason: 'Received invalid UTF-8' });
  },
);
