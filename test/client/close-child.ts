// Run by close.test.ts in its own process: uses clients in every way that arms a timer or holds a socket, closes them, and must then exit by itself.

import { Client } from '../../src/client/index.js';
import { FakeCluster, FakeNode } from './fake-node.js';

// Every client timer is ten minutes long: one left armed would keep this process alive long past the parent's patience.
const LONG = {
  requestTimeoutMs: 600_000,
  connectTimeoutMs: 600_000,
  backoff: { baseMs: 600_000, maxMs: 600_000 },
};

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

const cluster = new FakeCluster();
const node = await FakeNode.start(cluster, 'n1');
const dead = await FakeNode.start(new FakeCluster(), 'dead');
const deadEndpoint = dead.endpoint;
await dead.stop();

const client = new Client({ endpoints: [node.endpoint], ...LONG });
await client.put('default', 'k', 1);
await client.get('default', 'k');
const watch = client.watch('default', 'w/');
await until(() => node.watchCount === 1);
cluster.putDirect('default', 'w/1', 2);
const iterator = watch[Symbol.asyncIterator]();
await iterator.next();
const waitingEvent = iterator.next();

node.faults.hold = true;
const heldRead = client.get('default', 'k').catch((error: { code: string }) => error.code);
const heldWrite = client.put('default', 'k', 3).catch((error: { code: string }) => error.code);
await until(() => node.heldCount === 2);

// A client that cannot connect: after one failed round it waits out a ten-minute backoff.
const stuck = new Client({ endpoints: [deadEndpoint], ...LONG });
const stuckRead = stuck.get('default', 'k').catch((error: { code: string }) => error.code);
await new Promise((resolve) => setTimeout(resolve, 100));

await Promise.all([client.close(), stuck.close()]);
await node.stop();
const outcome = {
  heldRead: await heldRead,
  heldWrite: await heldWrite,
  stuckRead: await stuckRead,
  watchDone: (await waitingEvent).done,
};
console.log(JSON.stringify(outcome));
// No process.exit(): the parent checks that nothing keeps the event loop alive.
