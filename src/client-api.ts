// The client API itself: runs one operation (api-ops.ts) against a KvService and answers a result or an error, for HTTP and WebSocket alike.

import { EdgeError, type Logger, silentLogger } from '../net/index.js';
import {
  COMMAND_VERSION,
  type Command,
  type CommandError,
  type CommandLimits,
  type CommandResult,
  checked as checkedValue,
  checkRealm,
  type DocResult,
  encodeCommand,
  type Operation,
  type SessionRef,
  validateCommand,
} from '../storage/index.js';
import { type ApiAnswer, type ApiOp, apiError, invalid } from './api-ops.js';
import {
  authorize,
  type Gate,
  NEEDS_CLUSTER_ADMIN,
  NEEDS_NOTHING,
  NEEDS_USER,
  type Need,
  OPEN,
  type Principal,
  seesRealm,
} from './auth.js';
import { type ErrorCode, errorStatus } from './error-codes.js';
import type { KvService, WriteRoute } from './kv-service.js';

/** A realm name as the state machine checks it; EdgeError INVALID_ARGUMENT otherwise. */
function checkedRealm(realm: string): string {
  const result = checkedValue(() => checkRealm(realm));
  if (!result.ok) throw new EdgeError(result.error.code, result.error.message);
  return result.value;
}

export interface ClientApiOptions {
  /**
   * The limits the node's state machine applies (pass the node's StorageConfig), so a bad or
   * oversized write is refused at the edge with the same code and message the state machine
   * would give, without taking a log entry.
   */
  readonly limits: CommandLimits;
  /** Where the transports log unexpected failures (answered INTERNAL); quiet by default. */
  readonly logger?: Logger;
  /** Who a token belongs to (auth.ts); without it every caller may do everything. */
  readonly gate?: Gate;
  /** This node requires a token whatever the gate's node says (a proxy beyond loopback). */
  readonly requireToken?: boolean;
}

const OPEN_GATE: Gate = { principal: () => OPEN };

/** What each operation needs of its caller (auth.ts). */
export function needOf(op: ApiOp): Need {
  switch (op.op) {
    case 'get':
    case 'list':
      return { kind: 'realm', realm: op.realm, level: 'read' };
    case 'put':
    case 'patch':
    case 'delete':
    case 'txn':
      return { kind: 'realm', realm: op.realm, level: 'write' };
    case 'createRealm':
      return NEEDS_CLUSTER_ADMIN;
    case 'realms':
    case 'openSession':
    case 'closeSession':
    case 'status':
    case 'route':
      return NEEDS_USER;
    case 'health':
    case 'ready':
      return NEEDS_NOTHING;
  }
}

/** Codes a service may throw that are no API codes, and the stable code each answers as. */
const SERVICE_CODE_ALIASES: Readonly<Record<string, ErrorCode>> = {
  STOPPED: 'UNAVAILABLE',
  OVERLOADED: 'UNAVAILABLE',
};

type OpOf<Name extends ApiOp['op']> = Extract<ApiOp, { readonly op: Name }>;

const HEALTH_OK: ApiAnswer = Object.freeze({ ok: true, result: Object.freeze({ status: 'ok' as const }) });
const READY_OK: ApiAnswer = Object.freeze({ ok: true, result: Object.freeze({ ready: true as const }) });
const SESSION_CLOSED: ApiAnswer = Object.freeze({ ok: true, result: Object.freeze({}) });

export function newClientApi(service: KvService, options: ClientApiOptions): ClientApi {
  return new ClientApi(
    service,
    options.limits,
    options.logger ?? silentLogger,
    options.gate ?? OPEN_GATE,
    options.requireToken ?? false,
  );
}

/**
 * The operations of the client API on a KvService. run() never throws: bad input, command
 * failures and the service's thrown errors all become error answers with their stable codes.
 */
export class ClientApi {
  constructor(
    private readonly service: KvService,
    private readonly limits: CommandLimits,
    /** Where the transports on this API log unexpected failures. */
    readonly logger: Logger,
    private readonly gate: Gate = OPEN_GATE,
    private readonly requireToken = false,
  ) {}

  /** The caller of a request that carries `token` (none: undefined). Throws EdgeError UNAUTHENTICATED. */
  caller(token: string | undefined): Principal | Promise<Principal> {
    return this.gate.principal(token, this.requireToken);
  }

  /**
   * Runs `op` for `principal`: PERMISSION_DENIED unless allowed; the realm list shows only the
   * realms the caller has a grant on. Never throws.
   */
  async runAs(principal: Principal, op: ApiOp): Promise<ApiAnswer> {
    try {
      authorize(principal, needOf(op));
    } catch (error) {
      return this.failure(error);
    }
    const answer = await this.run(op);
    if (op.op !== 'realms' || !answer.ok || principal.clusterAdmin) return answer;
    const result = answer.result as { realms: readonly string[]; revision: number };
    return {
      ...answer,
      result: { ...result, realms: result.realms.filter((realm) => seesRealm(principal, realm)) },
    };
  }

  async run(op: ApiOp): Promise<ApiAnswer> {
    try {
      switch (op.op) {
        case 'get':
          return await this.get(op);
        case 'list':
          return await this.list(op);
        case 'put':
        case 'patch':
        case 'delete':
          return await this.writeDocument(op);
        case 'txn':
          return await this.txn(op);
        case 'createRealm':
          return await this.createRealm(op);
        case 'realms':
          return await this.realms(op);
        case 'openSession':
          return await this.openSession(op);
        case 'closeSession':
          return await this.closeSession(op);
        case 'status':
          return { ok: true, result: this.service.status() };
        case 'route': {
          const route = (await this.service.route?.(op.realm)) ?? { group: 0, leader: '' };
          return { ok: true, result: { realm: op.realm, ...route } };
        }
        case 'health':
          return HEALTH_OK;
        case 'ready':
          return this.ready();
      }
    } catch (error) {
      return this.failure(error);
    }
  }

  /**
   * The answer to a thrown error: an EdgeError (a refused request) answers its code; a
   * service's error with a known `code` answers it, with `leader`, `indeterminate` and
   * `reason` when given; anything else answers INTERNAL and carries the error as `unexpected`.
   */
  failure(error: unknown): ApiAnswer & { readonly ok: false } {
    if (error instanceof EdgeError) {
      return { ok: false, error: apiError(error.code, error.message, error.details) };
    }
    const fields = (typeof error === 'object' && error !== null ? error : {}) as {
      code?: unknown;
      leader?: unknown;
      indeterminate?: unknown;
      reason?: unknown;
    };
    const raw = typeof fields.code === 'string' ? fields.code : undefined;
    const code = raw === undefined ? undefined : (SERVICE_CODE_ALIASES[raw] ?? raw);
    if (code === undefined || errorStatus(code) === undefined || code === 'INTERNAL') {
      return { ok: false, error: apiError('INTERNAL', 'internal error'), unexpected: error };
    }
    const details: Record<string, unknown> = {};
    if (typeof fields.leader === 'string' && fields.leader !== '') details.leader = fields.leader;
    if (fields.indeterminate === true) details.indeterminate = true;
    if (typeof fields.reason === 'string') details.reason = fields.reason;
    const message = error instanceof Error ? error.message : code;
    return { ok: false, error: apiError(code, message, details) };
  }

  // ---- Reads ----

  private async get(op: OpOf<'get'>): Promise<ApiAnswer> {
    const served = await this.service.get(op.realm, op.key, op.consistency);
    if (!served.ok) return commandFailure(served.error, served.revision);
    const { value } = served;
    return {
      ok: true,
      result: {
        key: value.key,
        value: value.value,
        createRevision: value.createRevision,
        modRevision: value.modRevision,
        version: value.version,
      },
      read: served,
    };
  }

  private async list(op: OpOf<'list'>): Promise<ApiAnswer> {
    const { prefix, after, limit } = op;
    const served = await this.service.list(
      op.realm,
      {
        ...(prefix === undefined || prefix === '' ? {} : { prefix }),
        ...(after === undefined ? {} : { after }),
        ...(limit === undefined ? {} : { limit }),
      },
      op.consistency,
    );
    if (!served.ok) return commandFailure(served.error, served.revision);
    const { documents, more } = served.value;
    const last = documents[documents.length - 1];
    return {
      ok: true,
      result: {
        documents,
        more,
        next: more && last !== undefined ? last.key : null,
        revision: served.revision,
      },
      read: served,
    };
  }

  private async realms(op: OpOf<'realms'>): Promise<ApiAnswer> {
    const served = await this.service.realms(op.consistency);
    if (!served.ok) return commandFailure(served.error, served.revision);
    return { ok: true, result: { realms: served.value, revision: served.revision }, read: served };
  }

  // ---- Writes ----

  private async writeDocument(op: OpOf<'put' | 'patch' | 'delete'>): Promise<ApiAnswer> {
    const result = await this.propose(documentOperation(op), op.session);
    if (!result.ok) return commandFailure(result.error, result.revision);
    return { ok: true, result: { revision: result.revision } };
  }

  private async txn(op: OpOf<'txn'>): Promise<ApiAnswer> {
    const operation: Operation = {
      type: 'txn',
      realm: op.realm,
      compares: op.compares,
      success: op.success,
      ...(op.failure === undefined ? {} : { failure: op.failure }),
    };
    const result = await this.propose(operation, op.session);
    if (!result.ok) return commandFailure(result.error, result.revision);
    const outcome = result.result;
    if (outcome.type !== 'txn') throw new Error(`a txn answered ${outcome.type}`);
    return {
      ok: true,
      result: {
        succeeded: outcome.succeeded,
        revision: result.revision,
        results: outcome.results.map(docResult),
      },
    };
  }

  private async createRealm(op: OpOf<'createRealm'>): Promise<ApiAnswer> {
    const operation = {
      type: 'createRealm',
      realm: op.realm,
      ...(op.settings === undefined ? {} : { settings: op.settings }),
    } as Operation;
    let route: WriteRoute | undefined;
    if (op.group !== undefined && op.group !== 1) {
      if (this.service.placeRealm === undefined) {
        throw new EdgeError('UNAVAILABLE', 'this node does not place realms in raft groups; ask a member');
      }
      const placed = await this.service.placeRealm(checkedRealm(op.realm), op.group);
      if (!placed.result.ok) return commandFailure(placed.result.error, placed.result.revision);
      route = { group: placed.group };
    }
    const result = await this.propose(operation, op.session, route);
    if (!result.ok) return commandFailure(result.error, result.revision);
    return { ok: true, result: { name: op.realm, revision: result.revision } };
  }

  private async openSession(op: OpOf<'openSession'>): Promise<ApiAnswer> {
    const result = await this.propose(
      { type: 'openSession' },
      undefined,
      op.realm === undefined ? undefined : { realm: checkedRealm(op.realm) },
    );
    if (!result.ok) return commandFailure(result.error, result.revision);
    if (result.result.type !== 'openSession') throw new Error(`openSession answered ${result.result.type}`);
    return { ok: true, result: { session: result.result.session } };
  }

  private async closeSession(op: OpOf<'closeSession'>): Promise<ApiAnswer> {
    const result = await this.propose(
      { type: 'closeSession' },
      op.session,
      op.realm === undefined ? undefined : { realm: checkedRealm(op.realm) },
    );
    if (!result.ok) return commandFailure(result.error, result.revision);
    return SESSION_CLOSED;
  }

  /**
   * Checks `operation` exactly as the state machine will, then proposes it (through the leader).
   * Throws EdgeError INVALID_ARGUMENT or TOO_LARGE for a bad one, and what the service throws.
   */
  async propose(operation: Operation, session?: SessionRef, route?: WriteRoute): Promise<CommandResult> {
    const command: Command = { v: COMMAND_VERSION, time: 0, ...(session ? { session } : {}), op: operation };
    const checked = validateCommand(command, this.limits);
    // Validation answers INVALID_ARGUMENT or TOO_LARGE, both edge codes.
    if (!checked.ok) throw new EdgeError(checked.error.code, checked.error.message);
    const bytes = encodeCommand(command).length;
    if (bytes > this.limits.commandMaxBytes) {
      throw new EdgeError(
        'TOO_LARGE',
        `the command would be ${bytes} bytes; the limit is ${this.limits.commandMaxBytes}`,
      );
    }
    // The command's JSON holds the document's, so only a command over the value limit can
    // hold a document over it: most puts need no second encoding.
    if (operation.type === 'put' && bytes > this.limits.valueMaxBytes) {
      const valueBytes = Buffer.byteLength(JSON.stringify(operation.value));
      if (valueBytes > this.limits.valueMaxBytes) {
        throw new EdgeError(
          'TOO_LARGE',
          `the document is ${valueBytes} bytes; the limit is ${this.limits.valueMaxBytes}`,
        );
      }
    }
    return this.service.write(checked.value.op, checked.value.session, route);
  }

  // ---- The node ----

  private ready(): ApiAnswer {
    const { ready, reason } = this.service.ready();
    if (ready) return READY_OK;
    const message = reason ?? 'not ready';
    return { ok: false, error: apiError('UNAVAILABLE', message, { ready: false, reason: message }) };
  }
}

/** The storage operation of a put, patch or delete. */
function documentOperation(op: OpOf<'put' | 'patch' | 'delete'>): Operation {
  const { realm, key, ifRevision } = op;
  const condition = ifRevision === undefined ? {} : { ifRevision };
  switch (op.op) {
    case 'put':
      if (ifRevision !== undefined && op.ifAbsent === true) {
        throw invalid(
          'give ifRevision or ifAbsent=true, not both (ifRevision=0 also means "only if absent")',
        );
      }
      return {
        type: 'put',
        realm,
        key,
        value: op.value,
        ...condition,
        ...(op.ifAbsent === true ? { ifAbsent: true } : {}),
      };
    case 'patch':
      return { type: 'patch', realm, key, patch: op.patch, ...condition };
    case 'delete':
      return { type: 'delete', realm, key, ...condition };
  }
}

/** The answer to a command's or a read's own failure. */
function commandFailure(error: CommandError, revision: number): ApiAnswer {
  const details = error.code === 'COMPACTED' ? { revision } : undefined;
  return { ok: false, error: apiError(error.code, error.message, details) };
}

function docResult(result: DocResult): DocResult {
  return result.type === 'put'
    ? {
        type: 'put',
        key: result.key,
        createRevision: result.createRevision,
        modRevision: result.modRevision,
        version: result.version,
      }
    : { type: 'delete', key: result.key, prevModRevision: result.prevModRevision };
}
