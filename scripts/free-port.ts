// Free TCP ports for test and bench servers, chosen below the kernel's ephemeral range so that no client socket can take one between the check and the server's bind.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/*
 * Port 0 hands out ports from the ephemeral range, the same range every outgoing connection's
 * local port comes from: with two test files at once making thousands of connections, a port
 * found free could be some client socket's a moment later, and the node started on it exited
 * with EADDRINUSE. Ports are picked at random below that range instead, checked by binding,
 * and never handed out twice by one process.
 */
const FALLBACK_EPHEMERAL_LOW = 32768;
const LOWEST = 10_000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : FALLBACK_EPHEMERAL_LOW;
  } catch {
    return FALLBACK_EPHEMERAL_LOW;
  }
}

const HIGHEST = ephemeralLow() - 1;
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that was free just now and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found between ${LOWEST} and ${HIGHEST} in 200 attempts`);
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  return ports;
}
