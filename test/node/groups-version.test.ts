// Raft groups wait for every member to run a version that has them (issue 20): with a member that answers as an older build, groups add and realm placement are refused, naming it; once it runs this version they go through.

import t from 'tap';
import type { ClusterNode } from '../../scripts/local-cluster.js';
import { runningCluster } from './running-cluster.js';
import { waitFor } from './watch-delivery.js';

async function post(
  node: ClusterNode,
  path: string,
  body: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${node.url}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: await response.json() };
}

t.test('a member of an older version blocks groups add until it is upgraded', async (t) => {
  const cluster = await runningCluster(t, 3);
  const [a, , c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  t.equal((await post(a, '/v1/groups', {})).status, 201, 'all on this version: group 2');

  // c comes back as an "older build": its identify answer names no features. (While it is down
  // the leader goes by what it said last, so a group may still be added then: the README's
  // rollback caveat.)
  await cluster.kill(c, 'SIGKILL');
  cluster.start(c, { CONCLAVE_FAULT_FEATURES: 'none' });
  let refused: { status: number; body: unknown } | undefined;
  await waitFor(
    'the leader to learn that c answers as an older build',
    async () => {
      // Until c answers identify, the refusal names it as not heard from: wait for its answer.
      refused = await post(a, '/v1/groups', {});
      return refused.status === 409 && /an older version/.test(JSON.stringify(refused.body));
    },
    30_000,
  );
  t.match(
    refused?.body,
    {
      code: 'CONFLICT',
      message: new RegExp(
        `every member must run a version with groups first.*${c.name} \\(an older version\\)`,
      ),
    },
    'groups add is refused, naming the member',
  );
  const groupCount = async () =>
    ((await (await fetch(`${a.url}/v1/groups`)).json()) as { groups: unknown[] }).groups.length;
  const before = await groupCount();
  t.equal((await post(a, '/v1/groups', {})).status, 409, 'refused again while c answers as an older build');
  const placed = await post(a, '/v1/realms', { name: 'shop', group: 2 });
  t.equal(placed.status, 409, 'and so is placing a realm');
  t.match(placed.body, { code: 'CONFLICT', message: /an older version/ });
  t.equal(await groupCount(), before, 'nothing was added meanwhile');

  // Upgraded: c restarts as this build; the next attempts go through.
  await cluster.kill(c, 'SIGKILL');
  cluster.start(c);
  await waitFor(
    'groups add to go through once c runs this version',
    async () => (await post(a, '/v1/groups', {})).status === 201,
    30_000,
  );
  const ok = await post(a, '/v1/realms', { name: 'shop', group: 2 });
  t.equal(ok.status, 201, `the realm is placed (${JSON.stringify(ok.body)})`);

  // A build with groups but without group membership changes: groups add goes through, groups
  // members add is refused naming c, and nothing changes in group 2.
  await cluster.kill(c, 'SIGKILL');
  cluster.start(c, { CONCLAVE_FAULT_FEATURES: 'groups' });
  let memberRefused: { status: number; body: unknown } | undefined;
  await waitFor(
    'the leader to learn that c answers without groupMembers',
    async () => {
      memberRefused = await post(a, '/v1/groups/2/members', { node: a.name });
      return memberRefused.status === 409 && /an older version/.test(JSON.stringify(memberRefused.body));
    },
    30_000,
  );
  t.match(
    memberRefused?.body,
    { code: 'CONFLICT', message: new RegExp(`with groupMembers first.*${c.name} \\(an older version\\)`) },
    'groups members add is refused, naming c',
  );
  t.equal((await post(a, '/v1/groups', {})).status, 201, 'while groups add goes through');
});
