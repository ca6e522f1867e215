// `conclave status`: the members and the cluster's term and commit index, from the leader's view when the admin route answers.

import type { Argv } from 'yargs';
import { type ConnectionArgs, clientOf, positiveInteger, runCommand, withConnection } from './common.js';
import { type ApiClient, ApiError } from './http.js';
import {
  fetchMembers,
  type MembersView,
  membersFromStatus,
  type NodeStatusBody,
  renderBackups,
  renderClusterLine,
  renderMembers,
} from './membership.js';
import { printJson, printLine } from './output.js';

const STATUS_TIMEOUT_MS = 10_000;
/** The admin view gets this long (at most) before status settles for the nodes' own views. */
const MEMBERS_TIMEOUT_MS_MAX = 3000;
/** How long status waits, after the members view, for the endpoints to say whether they are proxies. */
const PROXY_CHECK_MS = 1000;

/** A stateless proxy among the endpoints, and the member it forwards to ('' when none is reachable). */
export interface ProxyView {
  readonly name: string;
  readonly member: string;
}

/** What `status --json` prints: the membership, where it came from, and any proxies asked. */
export type StatusDocument = { readonly proxies?: readonly ProxyView[] } & (
  | ({ readonly source: 'members' } & MembersView)
  | ({
      readonly source: 'status';
      /** The node whose view this is, and why the admin view was not used. */
      readonly node: { name: string; state: string; appliedIndex: number; revision: number };
      readonly adminError: { code: string; message: string };
    } & MembersView)
);

export function statusCommand<T>(cli: Argv<T>): Argv<T> {
  return cli.command(
    'status',
    'show the members, the leader, the term and the commit index',
    (y) =>
      withConnection(y, STATUS_TIMEOUT_MS)
        .example('$0 status', 'a table of the members')
        .example('$0 status --json --endpoints http://10.0.0.1:8080', 'as JSON, from that node'),
    (argv) => runCommand(() => status(argv as unknown as ConnectionArgs)),
  );
}

async function status(args: ConnectionArgs): Promise<void> {
  const client = clientOf(args);
  const document = await readStatus(client, args);
  if (args.json) {
    printJson(document);
    return;
  }
  printLine(renderClusterLine(document));
  printLine(renderMembers(document, { address: false }));
  const backups = renderBackups(document.backups);
  if (backups !== undefined) printLine(backups);
  for (const proxy of document.proxies ?? []) {
    printLine(
      `${proxy.name} is a stateless proxy, forwarding to ${proxy.member === '' ? 'no member (none is reachable)' : proxy.member}`,
    );
  }
  if (document.source === 'status') {
    const { node } = document;
    printLine(
      `(from ${node.name}'s own status, ${node.state}: the admin view answered ${document.adminError.code}; ` +
        `run the admin service for match indexes of every member and contact times)`,
    );
  }
}

/**
 * The admin route's view if it answers; else the nodes' own /v1/status, the leader's if one of
 * the endpoints leads (only the leader knows the others' match indexes).
 */
async function readStatus(client: ApiClient, args: ConnectionArgs): Promise<StatusDocument> {
  const timeoutMs = positiveInteger(args.timeout, '--timeout')!;
  const quick = client.fork(Math.min(timeoutMs, MEMBERS_TIMEOUT_MS_MAX));
  // Each endpoint's own status, asked meanwhile, says which endpoints are proxies.
  const own = quick.each<NodeStatusBody>('/v1/status');
  let adminError: ApiError;
  try {
    const view = await fetchMembers(quick, { elsewhereCodes: ['PERMISSION_DENIED', 'NOT_FOUND'] });
    // An endpoint slow to say whether it is a proxy does not hold the members view up for long.
    const late = new Promise<[]>((resolve) => setTimeout(() => resolve([]), PROXY_CHECK_MS).unref());
    return { source: 'members', ...view, ...proxiesIn(await Promise.race([own, late])) };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // No endpoint speaks TLS we trust: their own status would fail the same way.
    if (error.code === 'TLS_ERROR') throw error;
    // A token the nodes refuse: another route or endpoint would refuse it too.
    if (error.code === 'UNAUTHENTICATED') throw error;
    adminError = error;
  }
  const answers = await client.each<NodeStatusBody>('/v1/status');
  const statuses = answers.flatMap((a) => ('body' in a ? [a.body] : []));
  const chosen =
    statuses.find((s) => s.state === 'leader') ?? statuses.find((s) => s.role !== 'proxy') ?? statuses[0];
  if (chosen === undefined) {
    const failures = answers.map((a) => ('error' in a ? `${a.endpoint}: ${a.error.message}` : ''));
    throw new ApiError('UNAVAILABLE', `no endpoint answered (${failures.join('; ')})`);
  }
  return {
    source: 'status',
    node: {
      name: chosen.name,
      state: chosen.state,
      appliedIndex: chosen.appliedIndex,
      revision: chosen.revision,
    },
    adminError: { code: adminError.code, message: adminError.message },
    ...membersFromStatus(chosen),
    ...proxiesIn(answers),
  };
}

/** The proxies among the endpoints' own statuses, if any. */
function proxiesIn(answers: readonly ({ body: NodeStatusBody } | object)[]): { proxies?: ProxyView[] } {
  const proxies = answers.flatMap((a) =>
    'body' in a && a.body.role === 'proxy' ? [{ name: a.body.name, member: a.body.member ?? '' }] : [],
  );
  return proxies.length > 0 ? { proxies } : {};
}
