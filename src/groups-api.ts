// The admin HTTP routes of raft groups (HA and scaled mode): list them, create one.

/*
 * Routes (JSON; cluster-admin callers, on members that run the `admin` service):
 *
 *   GET  /v1/groups   -> GroupsView: group 1 and every group of its catalog, each with its
 *                        voters, leader, term, commit index, realms and each member's lag, as
 *                        the members report them (groups-view.ts); members that did not answer
 *                        in `unreachable`
 *   POST /v1/groups   body {"members"?: [names]} -> {"group", "members"}: group 1 records the
 *                        new group (the next id; without members, three voters in the fewest
 *                        groups), and each member starts it (group-host.ts). Answers once the
 *                        catalog entry is committed, before the new group has elected.
 *
 * Errors as the client API's: INVALID_ARGUMENT for a member that is not a voter of group 1, a
 * repeated or empty list, more than 7; TOO_LARGE past the group limit; the usual leader and
 * availability codes. A create whose answer is lost is indeterminate: `groups list` tells.
 */

import { EdgeError, type EdgeRoute } from '../net/index.js';
import { NEEDS_CLUSTER_ADMIN } from './auth.js';
import type { ClientApi } from './client-api.js';
import type { GroupsView } from './groups-view.js';
import { guardedRoute } from './http-api.js';
import { parseQuery } from './http-query.js';

/** What the routes need from the node. */
export interface GroupsService {
  list(): Promise<GroupsView>;
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
      parseQuery(request.query, []);
      return { status: 200, body: await groups.list() };
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
  ];
}
