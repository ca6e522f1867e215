// Restarting members is not reported as strangers knocking; a node with another cluster's secret is, as an error with a hint.

import t from 'tap';
import { type ClusterNode, freePort } from '../../scripts/local-cluster.js';
import { startCapturing } from './capture.js';
import { runningCluster } from './running-cluster.js';

const strangerLines = (output: string) =>
  output.split('\n').filter((line) => line.includes('stranger_rejected'));

t.test(
  'members restarting (graceful and killed) log no stranger_rejected; a wrong secret does',
  async (t) => {
    const cluster = await runningCluster(t, 3);
    const [watcher, a] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    // Eight restarts, every node in turn, each run's output kept: a hello cut short by a restart
    // (about one in eight restarts here) must not read as a stranger knocking.
    const outputs: (() => string)[] = [];
    /** Each node's current run. */
    const latest = new Map<string, () => string>();
    for (let round = 0; round < 8; round++) {
      const node = cluster.nodes[round % 3] as ClusterNode;
      await cluster.kill(node, round % 2 === 0 ? 'SIGTERM' : 'SIGKILL');
      const run = startCapturing(cluster, node).output;
      outputs.push(run);
      latest.set(node.name, run);
      await cluster.waitForLeader(30_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const everything = () => outputs.map((output) => output()).join('');
    t.same(strangerLines(everything()), [], 'eight restarts of members: no stranger_rejected anywhere');
    const interrupted = everything()
      .split('\n')
      .filter((line) => line.includes('hello_interrupted')).length;
    t.comment(`hellos cut short by a restart (logged at info): ${interrupted}`);

    // A node of the same names but started with another secret, dialing the watcher: a real stranger.
    const intruder: ClusterNode = {
      ...a,
      name: 'intruder',
      peerPort: await freePort(),
      clientPort: await freePort(),
      dataDir: `${a.dataDir}-intruder`,
      child: undefined,
      join: [`/ip4/127.0.0.1/tcp/${watcher.peerPort}`],
      url: '',
    };
    cluster.nodes.push(intruder);
    const intruderOutput = startCapturing(cluster, intruder, cluster.otherSecretFile()).output;
    const deadline = Date.now() + 20_000;
    const plain = () =>
      [...strangerLines(everything()), ...strangerLines(intruderOutput())].filter(
        (line) => line.includes('"level":"error"') && line.includes('cluster-secret-file'),
      );
    while (plain().length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.ok(strangerLines(everything()).length > 0, 'the members reject the node with the wrong secret');
    // It keeps redialing; each member logs the refusal once a minute, with the count, not once a dial.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const metrics = await (await fetch(`${watcher.url}/metrics`)).text();
    const refused = Number(/^conclave_mesh_strangers_refused_total\{[^}]*\} (\d+)$/m.exec(metrics)?.[1]);
    const watcherLines = strangerLines(latest.get(watcher.name)?.() ?? '');
    t.ok(refused >= 2, `the intruder was refused ${refused} times by ${watcher.name}`);
    t.equal(watcherLines.length, 1, `and ${watcher.name} logged it once:\n${watcherLines.join('\n')}`);
    t.ok(
      plain().length > 0,
      `one side says plainly, as an error naming --cluster-secret-file:\n${[...strangerLines(everything()), ...strangerLines(intruderOutput())].join('\n')}`,
    );
  },
);
