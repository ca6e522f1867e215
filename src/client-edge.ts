// The client edge of a node, member or proxy: the HTTP routes, the admin routes and the WebSocket API over one KvService.

import { Edge, EdgeError, type EdgeRoute, type Logger } from '../net/index.js';
import type { CommandLimits } from '../storage/index.js';
import type { AdminService } from './admin-api.js';
import { adminRoutes } from './admin-api.js';
import type { Gate } from './auth.js';
import { NEEDS_CLUSTER_ADMIN, NEEDS_USER } from './auth.js';
import { type ClientApi, newClientApi } from './client-api.js';
import { type NodeConfig, nodeRequiresAuth } from './config.js';
import { type DashboardView, dashboardRoutes } from './dashboard.js';
import { definitionRoutes } from './definition-api.js';
import { ERROR_TABLE } from './error-codes.js';
import { type GroupsService, groupsRoutes } from './groups-api.js';
import { guardedRoute, httpRoutes } from './http-api.js';
import { parseQuery } from './http-query.js';
import type { KvService } from './kv-service.js';
import type { NodeMetrics } from './metrics.js';
import type { Watches } from './watch-hub.js';
import { webSocketApi } from './ws-api.js';

export interface ClientEdgeParts {
  readonly kv: KvService;
  /** Who a request's token belongs to (auth.ts). */
  readonly gate: Gate;
  /** Where requests are counted and timed, and what GET /metrics answers. */
  readonly metrics?: NodeMetrics;
  /** What GET /v1/dashboard answers (dashboard.ts); without it the node serves no dashboard. */
  readonly dashboard?: (since: number) => Promise<DashboardView>;
  /** Starts this node's drain and stop (POST /v1/drain); false if nothing would stop the process. */
  readonly drain?: () => boolean;
  readonly admin: AdminService;
  /** The raft groups' routes (members only; a proxy has none). */
  readonly groups?: GroupsService;
  readonly watches: Watches;
  /** What writes are checked against before they are proposed (or forwarded). */
  readonly limits: CommandLimits;
  readonly logger: Logger;
  /**
   * Why this node serves no clients now (a disaster-recovery replica), or undefined. While it
   * says so, every route but /healthz, /readyz, /v1/status, the dashboard, /v1/backup (admin, for taking
   * backups off the voters' site) and the definition's (shown read-only: edits answer
   * READ_ONLY), and every WebSocket upgrade,
   * answers 503 UNAVAILABLE with it: clients move on to another node.
   */
  readonly refusal?: () => string | undefined;
}

/** What a node answers even when it serves no clients. */
const ALWAYS_SERVED: ReadonlySet<string> = new Set([
  '/healthz',
  '/readyz',
  '/v1/status',
  '/v1/backup',
  '/',
  '/v1/dashboard',
]);

/**
 * The edge on the node's client port (not started): the client API on `kv`, the admin routes
 * (answering PERMISSION_DENIED without the admin service), watches from `watches`, with the
 * node's body and payload limits, request deadline and TLS.
 */
export function clientEdge(config: NodeConfig, parts: ClientEdgeParts): Edge {
  const api = newClientApi(parts.kv, {
    limits: parts.limits,
    logger: parts.logger,
    gate: parts.gate,
    requireToken: nodeRequiresAuth(config),
  });
  const refusal = parts.refusal;
  const definition = definitionRoutes(api, parts.kv, parts.limits);
  const definitionPatterns = new Set(definition.map((route) => route.pattern));
  const metrics = parts.metrics;
  const plain = [
    ...httpRoutes(api),
    ...adminRoutes(api, parts.admin, config.services.includes('admin')),
    ...(parts.groups === undefined ? [] : groupsRoutes(api, parts.groups, config.services.includes('admin'))),
    ...definition,
    ...(metrics === undefined ? [] : [metricsRoute(api, metrics)]),
    ...(parts.drain === undefined ? [] : [drainRoute(api, config, parts.drain)]),
    ...(parts.dashboard === undefined ? [] : dashboardRoutes(api, parts.dashboard)),
  ];
  const routes = metrics === undefined ? plain : plain.map((route) => timed(route, metrics));
  const websocket = webSocketApi(api, parts.watches, parts.logger, metrics);
  const refused = (): EdgeError | undefined => {
    const why = refusal?.();
    return why === undefined ? undefined : new EdgeError('UNAVAILABLE', why);
  };
  return new Edge({
    errors: ERROR_TABLE,
    host: config.clientHost,
    port: config.clientPort,
    routes:
      refusal === undefined
        ? routes
        : routes.map((route) =>
            ALWAYS_SERVED.has(route.pattern) || definitionPatterns.has(route.pattern)
              ? route
              : {
                  ...route,
                  handler: (request) => {
                    const error = refused();
                    if (error !== undefined) throw error;
                    return route.handler(request);
                  },
                },
          ),
    websocket: refusal === undefined ? websocket : { ...websocket, refuse: refused },
    logger: parts.logger,
    limits: {
      maxBodyBytes: config.maxRequestBytes,
      maxWsPayloadBytes: config.maxRequestBytes,
      requestTimeoutMs: config.requestTimeoutMs * 2,
    },
    ...(config.tlsKeyFile && config.tlsCertFile
      ? { tls: { keyFile: config.tlsKeyFile, certFile: config.tlsCertFile } }
      : {}),
  });
}

/**
 * GET /metrics: the Prometheus text exposition (metrics.ts). Needs any valid token where the node
 * requires tokens (a scrape config's bearer token).
 */
function metricsRoute(api: ClientApi, metrics: NodeMetrics): EdgeRoute {
  return guardedRoute(api, 'GET', '/metrics', 'none', NEEDS_USER, async (request) => {
    parseQuery(request.query, []);
    const { text, contentType } = await metrics.scrape();
    return { status: 200, headers: { 'content-type': contentType }, text };
  });
}

/**
 * POST /v1/drain (cluster-admin, nodes running `admin`): this node reports not ready, waits its
 * --drain-delay, hands leadership over, finishes what is in flight, closes WebSockets with 1001
 * and stops, as on SIGTERM. Answers 202 at once; the node is gone once /healthz stops answering.
 */
function drainRoute(api: ClientApi, config: NodeConfig, drain: () => boolean): EdgeRoute {
  return guardedRoute(api, 'POST', '/v1/drain', 'none', NEEDS_CLUSTER_ADMIN, async (request) => {
    parseQuery(request.query, []);
    if (!config.services.includes('admin')) {
      throw new EdgeError(
        'PERMISSION_DENIED',
        'this node does not run the admin service (start it with --services including admin)',
      );
    }
    if (!drain())
      throw new EdgeError('UNAVAILABLE', 'this node runs inside another program: it cannot stop itself');
    return { status: 202, body: { node: config.name, draining: true } };
  });
}

/** `route` with its answers counted and timed by route pattern, method and code. */
function timed(route: EdgeRoute, metrics: NodeMetrics): EdgeRoute {
  const { handler, pattern, method } = route;
  return {
    ...route,
    handler: async (request) => {
      const started = performance.now();
      let code = 'INTERNAL';
      try {
        const response = await handler(request);
        const body = response.body as { code?: unknown } | undefined;
        code =
          response.status < 400 ? 'OK' : typeof body?.code === 'string' ? body.code : String(response.status);
        return response;
      } catch (error) {
        const thrown = (error as { code?: unknown }).code;
        code = typeof thrown === 'string' ? thrown : 'INTERNAL';
        throw error;
      } finally {
        metrics.httpAnswered(pattern, method, code, (performance.now() - started) / 1000);
      }
    },
  };
}
