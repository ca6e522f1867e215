// Protocol versions in the mesh hello: nodes whose ranges overlap connect (mixed compatible versions run together), nodes whose ranges do not are refused at both ends with the ranges logged.

import t from 'tap';
import { sharedVersion, THIS_BUILD } from '../../net/hello.js';
import { freePorts, newKey, newSecret, startNode, stopAll, waitFor, waitFullyConnected } from './helpers.js';

t.test('the version two ranges share', async (t) => {
  t.equal(sharedVersion({ min: 1, max: 2 }, { min: 1, max: 1 }), 1);
  t.equal(sharedVersion({ min: 1, max: 3 }, { min: 2, max: 5 }), 3);
  t.equal(sharedVersion({ min: 3, max: 3 }, { min: 1, max: 2 }), undefined);
  t.same(THIS_BUILD, { min: 1, max: 1 }, 'this build speaks version 1 only');
});

t.test('this build, a newer node that still speaks 1, and a node that no longer does', async (t) => {
  const [portA, portB, portC] = await freePorts(3);
  const secret = newSecret();
  // A: this build (1..1). B: a later release speaking 1..2. C: a release that dropped 1 (2..3).
  const a = await startNode({ key: await newKey(), port: portA!, secret, peers: [] });
  const b = await startNode({
    key: await newKey(),
    port: portB!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portA}`],
    versions: { min: 1, max: 2 },
  });
  const c = await startNode({
    key: await newKey(),
    port: portC!,
    secret,
    peers: [`/ip4/127.0.0.1/tcp/${portA}`, `/ip4/127.0.0.1/tcp/${portB}`],
    versions: { min: 2, max: 3 },
  });
  t.teardown(() => stopAll([a, b, c]));
  await waitFullyConnected([a, b]);
  t.pass('1..1 and 1..2 connect: mixed compatible versions run together');
  await waitFor('B and C to connect (they share version 2)', () => b.mesh.isConnected(c.mesh.peerId));
  await waitFor('A to refuse C', () =>
    a.logger.events('peer_version_refused').some((line) => line.peer === c.mesh.peerId),
  );
  const refusal = a.logger.events('peer_version_refused').find((line) => line.peer === c.mesh.peerId)!;
  t.match(
    String(refusal.detail),
    /speaks protocol versions 2-3; this node speaks version 1/,
    'A logs both ranges',
  );
  t.equal(refusal.reason, 'version');
  await waitFor(
    'C to see it refused',
    () =>
      c.logger.events('stranger_rejected').some((line) => line.peer === a.mesh.peerId) ||
      c.logger.events('peer_version_refused').some((line) => line.peer === a.mesh.peerId),
  );
  t.equal(a.mesh.isConnected(c.mesh.peerId), false, 'A and C never connect');
  t.ok(a.mesh.isConnected(b.mesh.peerId), 'A and B are unaffected');
});
