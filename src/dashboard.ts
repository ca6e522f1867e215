// The dashboard's routes: GET / (the page) and GET /v1/dashboard (this node's panel and every other member's, asked over the mesh at once, each within a deadline).

import type { EdgeRoute } from '../net/index.js';
import { NEEDS_USER } from './auth.js';
import type { ClientApi } from './client-api.js';
import { DASHBOARD_PAGE } from './dashboard-page.js';
import type { NodePanel } from './dashboard-panel.js';
import { guardedRoute } from './http-api.js';
import { integerParam, parseQuery } from './http-query.js';

/** A node that did not answer in time, or whose answer was unusable. */
export interface UnreachablePanel {
  readonly name: string;
  readonly unreachable: string;
}

/** GET /v1/dashboard's answer. */
export interface DashboardView {
  /** The node that answered. */
  readonly servedBy: string;
  /** When, ms since the epoch (the serving node's clock). */
  readonly at: number;
  /** The serving node first, then the other members in the order its status lists them. */
  readonly nodes: readonly (NodePanel | UnreachablePanel)[];
}

export interface DashboardInit {
  /** This node's panel with the seconds of activity after `since`. */
  readonly self: (since: number) => NodePanel;
  /** The other members to show, by name, with their mesh peer id if connected. */
  readonly others: () => readonly { readonly name: string; readonly peer: string | undefined }[];
  /** Asks a member for its panel over the mesh. */
  readonly ask: (peer: string, name: string, since: number, timeoutMs: number) => Promise<unknown>;
  /** How long a member may take to answer before it is shown unreachable. */
  readonly timeoutMs: number;
}

/** Gathers the view: every member asked at once; one that fails is shown with why. */
export async function collectDashboard(init: DashboardInit, since: number): Promise<DashboardView> {
  const self = init.self(since);
  const others = await Promise.all(
    init.others().map(async ({ name, peer }): Promise<NodePanel | UnreachablePanel> => {
      if (peer === undefined) return { name, unreachable: 'not connected' };
      try {
        const answer = await init.ask(peer, name, since, init.timeoutMs);
        if (!isPanel(answer) || answer.name !== name)
          return { name, unreachable: 'answered in an unknown shape' };
        return answer;
      } catch (error) {
        return { name, unreachable: (error as Error).message || 'no answer' };
      }
    }),
  );
  return { servedBy: self.name, at: Date.now(), nodes: [self, ...others] };
}

function isPanel(value: unknown): value is NodePanel {
  if (typeof value !== 'object' || value === null) return false;
  const panel = value as Record<string, unknown>;
  return (
    typeof panel.name === 'string' &&
    typeof panel.state === 'string' &&
    Number.isSafeInteger(panel.term) &&
    Array.isArray(panel.members) &&
    Array.isArray(panel.activity) &&
    Array.isArray(panel.leaderChanges)
  );
}

/**
 * GET / answers the dashboard page to anyone (it holds no data; it asks for a token when the
 * node requires one); GET /v1/dashboard[?since=MS] needs any valid token where tokens are
 * required, and answers the DashboardView with the seconds of activity after `since`.
 */
export function dashboardRoutes(
  api: ClientApi,
  view: (since: number) => Promise<DashboardView>,
): EdgeRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/',
      body: 'none',
      handler: () => ({
        status: 200,
        headers: {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          // Nothing but this page's own inline script and style, and requests to its own origin.
          'content-security-policy':
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          'x-content-type-options': 'nosniff',
        },
        text: DASHBOARD_PAGE,
      }),
    },
    guardedRoute(api, 'GET', '/v1/dashboard', 'none', NEEDS_USER, async (request) => {
      const since = integerParam(parseQuery(request.query, ['since']), 'since') ?? -1;
      return { status: 200, headers: { 'cache-control': 'no-store' }, body: await view(since) };
    }),
  ];
}
