// The admin HTTP routes of raft groups (HA and scaled mode): list them, create one, add and remove members.

/*
 * Routes (JSON; cluster-admin callers, on members that run the `admin` service):
 *
 *   GET  /v1/groups[?detail=true] -> GroupsView: group 1 and every group of its catalog, each with its
 *                        voters, leader, term, commit index, realms and each member's lag, as
 *                        the members report them (groups-view.ts); members that did not answer
 *                        in `unreachable`
 *   POST /v1/groups   body {"members"?: [names]} -> {"group", "members"}: group 1 records the
 *                        new group (the next id; without members, three voters in the fewest
 *                        groups), and each member starts it (group-host.ts). Answers once the
 *                        catalog entry is committed, before the new group has elected.
 *
 *   POST   /v1/groups/:id/members          body {"node": name} -> {"group", "members"}: group 1's
 *                        catalog adds the node (a voter of group 1) to group :id; the node
 *                        creates the group empty, and the group's leader adds it as a learner
 *                        and promotes it once caught up (group-members.ts). Answers once the
 *                        catalog entry is committed; `groups list` shows the rest.
 *   DELETE /v1/groups/:id/members/:node   -> {"group", "members"}: the catalog removes it; the
 *                        group's leader removes it from the raft membership (handing leadership
 *                        away first if it is the one), and the node deletes its copy.
 *
 * Errors as the client API's: INVALID_ARGUMENT for a member that is not a voter of group 1, a
 * repeated or empty list, more than 7, a node removed from the group before (a node does not
 * rejoin a group; add another), a node that is not a member; NOT_FOUND for an unknown group;
 * CONFLICT for a group at 7 members or losing its last one, and (reason VERSION_SKEW) while
 * a member of group 1 runs a version without group membership changes; TOO_LARGE past the
 * group limit; the usual leader and availability codes. Adding or removing again what is
 * done already succeeds (a retried call). A call whose answer is lost is indeterminate:
 * `groups list` tells.
 */

import { EdgeError, type EdgeRoute } from '../net/index.js';
import { checkNodeName, objectBody } from './admin-api.js';
import { NEEDS_CLUSTER_ADMIN } from './auth.js';
import type { ClientApi } from './client-api.js';
import type { GroupsView } from './groups-view.js';
import { guardedRoute } from './http-api.js';
import { parseQuery } from './http-query.js';

/** What the routes need from the node. */
export interface GroupsService {
  /** With `detail`, each node's own report as well (`reports`: role, commit, applied, quiesced per group). */
  list(detail: boolean): Promise<GroupsView>;
}

export function groupsRoutes(api: ClientApi, groups: GroupsService, enabled: boolean): EdgeRoute[] {
  const checkEnabled = (): void => {
    if (!enabled) {
      throw new EdgeError(
        'PERMISSION_DENIED',
        'this node does not run the admin service (start it with --services including admin)',
      );
    }
  };
  return [
    guardedRoute(api, 'GET', '/v1/groups', 'none', NEEDS_CLUSTER_ADMIN, async (request) => {
      checkEnabled();
      const query = parseQuery(request.query, ['detail']);
      const detail = query.get('detail');
      if (detail !== undefined && detail !== 'true' && detail !== 'false') {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `detail must be true or false, got ${JSON.stringify(detail)}`,
        );
      }
      return { status: 200, body: await groups.list(detail === 'true') };
    }),
    guardedRoute(api, 'POST', '/v1/groups', 'json', NEEDS_CLUSTER_ADMIN, async (request) => {
      checkEnabled();
      parseQuery(request.query, []);
      const body = request.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new EdgeError('INVALID_ARGUMENT', 'the body must be a JSON object: {"members"?: [names]}');
      }
      const unknown = Object.keys(body).filter((key) => key !== 'members');
      if (unknown.length > 0) {
        throw new EdgeError(
          'INVALID_ARGUMENT',
          `unknown field ${JSON.stringify(unknown[0])}; only "members"`,
        );
      }
      const members = (body as { members?: unknown }).members;
      // The state machine checks the names (commands.ts, group-catalog.ts); propose() runs that check first.
      const result = await api.propose({
        type: 'createGroup',
        ...(members === undefined ? {} : { members: members as string[] }),
      });
      if (!result.ok) throw new EdgeError(result.error.code, result.error.message);
      if (result.result.type !== 'createGroup') throw new Error(`createGroup answered ${result.result.type}`);
      return { status: 201, body: { group: result.result.group, members: result.result.members } };
    }),
    guardedRoute(api, 'POST', '/v1/groups/:id/members', 'json', NEEDS_CLUSTER_ADMIN, async (request) => {
      checkEnabled();
      parseQuery(request.query, []);
      const node = checkNodeName(objectBody(request.body, ['node']).node, 'node');
      return { status: 200, body: await changeMember(api, groupParam(request.params.id), node, 'add') };
    }),
    guardedRoute(
      api,
      'DELETE',
      '/v1/groups/:id/members/:node',
      'none',
      NEEDS_CLUSTER_ADMIN,
      async (request) => {
        checkEnabled();
        parseQuery(request.query, []);
        const node = checkNodeName(request.params.node, 'the node name');
        return {
          status: 200,
          body: await changeMember(api, groupParam(request.params.id), node, 'remove'),
        };
      },
    ),
  ];
}

/** A group id from the path: an integer from 2 (group 1's membership is `conclave members`). */
function groupParam(value: string | undefined): number {
  const id = Number(value);
  if (value === undefined || !/^[0-9]{1,10}$/.test(value) || !Number.isSafeInteger(id) || id < 2) {
    throw new EdgeError(
      'INVALID_ARGUMENT',
      `the group must be a group id from 2 (group 1's members are changed with conclave members), got ${JSON.stringify(value)}`,
    );
  }
  return id;
}

async function changeMember(
  api: ClientApi,
  group: number,
  node: string,
  change: 'add' | 'remove',
): Promise<{ group: number; members: readonly string[] }> {
  const result = await api.propose({ type: 'groupMember', group, node, change });
  if (!result.ok) throw new EdgeError(result.error.code, result.error.message);
  if (result.result.type !== 'groupMember') throw new Error(`groupMember answered ${result.result.type}`);
  return { group, members: result.result.members };
}
