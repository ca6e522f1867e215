// The node's parts start in order and stop in reverse; a failed start stops what had started.

import t from 'tap';
import { type Service, ServiceStack } from '../../src/service.js';

function part(name: string, log: string[], fail: { start?: boolean; stop?: boolean } = {}): Service {
  return {
    name,
    start: async () => {
      log.push(`start ${name}`);
      if (fail.start) throw new Error(`${name} cannot start`);
    },
    stop: async () => {
      log.push(`stop ${name}`);
      if (fail.stop) throw new Error(`${name} cannot stop`);
    },
  };
}

t.test('started in order, stopped in reverse', async (t) => {
  const log: string[] = [];
  const stack = new ServiceStack([part('mesh', log), part('group', log), part('edge', log)]);
  await stack.start();
  await stack.stop();
  t.same(log, ['start mesh', 'start group', 'start edge', 'stop edge', 'stop group', 'stop mesh']);
  await stack.stop();
  t.equal(log.length, 6, 'a second stop stops nothing again');
});

t.test('a failed start stops the parts already started, and rejects with its error', async (t) => {
  const log: string[] = [];
  const stack = new ServiceStack([part('mesh', log), part('group', log, { start: true }), part('edge', log)]);
  await t.rejects(stack.start(), /group cannot start/);
  t.same(log, ['start mesh', 'start group', 'stop mesh']);
});

t.test('a failed stop still stops the rest, then rejects with the first failure', async (t) => {
  const log: string[] = [];
  const failures: string[] = [];
  const stack = new ServiceStack(
    [part('mesh', log), part('group', log, { stop: true }), part('edge', log, { stop: true })],
    (service) => failures.push(service.name),
  );
  await stack.start();
  await t.rejects(stack.stop(), /edge cannot stop/);
  t.same(log.slice(3), ['stop edge', 'stop group', 'stop mesh']);
  t.same(failures, ['edge', 'group']);
});
