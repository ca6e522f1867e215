// Benchmark of the client edge alone: HTTP requests/s and WebSocket messages/s on a trivial route, clients in another process.
//
// usage: npm run bench:edge -- [--connections 1,64,256] [--seconds 5]
// The edge (uWebSockets.js) runs in a child process with one GET route answering {"ok":true}
// and a WebSocket endpoint echoing each message; this process opens the connections, each
// doing one request (or one message round trip) at a time, keep-alive.

import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Edge } from '../net/index.js';
import { ERROR_TABLE } from '../src/error-codes.js';

async function serve(): Promise<void> {
  const edge = new Edge({
    errors: ERROR_TABLE,
    host: '127.0.0.1',
    port: 0,
    routes: [
      {
        method: 'GET',
        pattern: '/v1/ping',
        body: 'none',
        handler: () => ({ status: 200, body: { ok: true } }),
      },
    ],
    websocket: { path: '/v1/ws', message: (socket, message) => void socket.send(message) },
    limits: { maxInflightRequests: 100_000, maxWsConnections: 100_000 },
  });
  await edge.start();
  process.stdout.write(`${JSON.stringify({ port: edge.port, native: edge.runtime.native })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void edge.stop().then(() => process.exit(0)));
}

interface Options {
  connections: number[];
  seconds: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { connections: [1, 64, 256], seconds: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${argv[i]} needs a value`);
    if (argv[i] === '--connections') options.connections = value.split(',').map(Number);
    else if (argv[i] === '--seconds') options.seconds = Number(value);
    else throw new Error(`unknown flag ${argv[i]} (--connections 1,64 --seconds S)`);
  }
  if (!options.connections.every((n) => Number.isInteger(n) && n > 0) || !(options.seconds > 0)) {
    throw new Error('bad --connections or --seconds');
  }
  return options;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function httpLoad(port: number, connections: number, seconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/v1/ping', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function wsLoad(port: number, connections: number, seconds: number) {
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
          socket.once('open', () => resolve(socket));
          socket.once('error', reject);
        }),
    ),
  );
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          let sentAt = 0;
          const send = () => {
            if (performance.now() >= deadline) return resolve();
            sentAt = performance.now();
            socket.send('{"n":1}');
          };
          socket.on('message', () => {
            latencies.push(performance.now() - sentAt);
            send();
          });
          send();
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.terminate();
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const { port, native } = await new Promise<{ port: number; native: boolean }>((resolve, reject) => {
      child.stdout!.once('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString())));
      child.once('exit', (code) => reject(new Error(`edge process exited with ${code}`)));
    });
    console.log(
      `bench:edge — uWebSockets.js ${native ? 'native' : 'FALLBACK'} edge in a child process, clients here (node http keep-alive, ws), ` +
        `one request or message round trip at a time per connection, ${options.seconds} s per row (node ${process.version})`,
    );
    const rows = [
      ['connections', 'HTTP req/s', 'HTTP p50 ms', 'HTTP p99 ms', 'WS msg/s', 'WS p50 ms', 'WS p99 ms'],
    ];
    for (const connections of options.connections) {
      const http = await httpLoad(port, connections, options.seconds);
      const ws = await wsLoad(port, connections, options.seconds);
      rows.push([
        String(connections),
        Math.round(http.rate).toLocaleString('en-US'),
        http.p50.toFixed(2),
        http.p99.toFixed(2),
        Math.round(ws.rate).toLocaleString('en-US'),
        ws.p50.toFixed(2),
        ws.p99.toFixed(2),
      ]);
    }
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
    console.log(
      'The client is one Node process on the same 2 cores: at high connection counts it, not the edge, may be the limit.',
    );
  } finally {
    child.stdin!.end();
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}

if (process.argv.includes('--serve')) {
  serve().catch((error: Error) => {
    console.error(`bench:edge server: ${error.message}`);
    process.exit(1);
  });
} else {
  main().catch((error: Error) => {
    console.error(`bench:edge: ${error.message}`);
    process.exitCode = 1;
  });
}
