// The client API's HTTP routes on a real uWS edge, backed by the real realm state machine on the memory engine.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Edge } from '../../net/index.js';
import { EntryType } from '../../raft/types.js';
import { ERROR_TABLE } from '../../src/error-codes.js';
import { buildHttpRoutes } from '../../src/http-api.js';
import type { Consistency, KvService, NodeStatus, ServedRead, WriteRoute } from '../../src/kv-service.js';
import {
  COMMAND_VERSION,
  type CommandLimits,
  type CommandResult,
  type Document,
  encodeCommand,
  type GroupStorage,
  type ListOptions,
  MemoryVolume,
  NodeStorage,
  type Operation,
  type ReadResult,
  type SessionRef,
} from '../../storage/index.js';
import { type RecordingLogger, recordingLogger } from '../net/helpers.js';
import { ONE } from '../storage/helpers.js';
import { singleNodeStatus } from './ws-harness.js';

/** Small limits, so that "too large" and "too deep" are cheap to reach. Storage and routes share them. */
const LIMITS: CommandLimits & { listMaxLimit: number } = {
  keyMaxBytes: 64,
  valueMaxBytes: 4096,
  commandMaxBytes: 64 * 1024,
  txnMaxOps: 8,
  jsonMaxDepth: 8,
  listMaxLimit: 50,
};

/** An error as the node's driver throws it: a stable code, maybe the leader, maybe an unknown fate. */
class ServiceError extends Error {
  constructor(
    readonly code: string,
    readonly leader = '',
    readonly indeterminate = false,
  ) {
    super(`${code}: from the test service`);
  }
}

/**
 * A KvService that executes every command for real: each write becomes the next log entry of
 * one group and is applied by storage's state machine. Records what reached it, and can be told
 * to fail or to answer the next read with a given result.
 */
class StorageKvService implements KvService {
  readonly writes: Operation[] = [];
  /** The route of each write (HA and scaled mode), undefined where none was given. */
  readonly routes: (WriteRoute | undefined)[] = [];
  readonly reads: { what: string; consistency: Consistency }[] = [];
  readiness: { ready: boolean; reason?: string } = { ready: true };
  /** How many entries the pretend leader has committed beyond what this node applied (stale reads). */
  lagEntries = 0;
  private readonly failures: unknown[] = [];
  private readonly readAnswers: ReadResult<never>[] = [];
  private statusFailure: unknown;
  private nextIndex: number;

  constructor(readonly group: GroupStorage) {
    this.nextIndex = group.state.appliedIndex + 1;
  }

  /** The next call (write or read) throws `error` instead of running. */
  failNext(error: unknown): void {
    this.failures.push(error);
  }

  /** The next read answers `result` instead of reading. */
  answerNextRead(result: ReadResult<never>): void {
    this.readAnswers.push(result);
  }

  failStatus(error: unknown): void {
    this.statusFailure = error;
  }

  async write(op: Operation, _session?: SessionRef, route?: WriteRoute): Promise<CommandResult> {
    this.takeFailure();
    this.writes.push(op);
    this.routes.push(route);
    const index = this.nextIndex++;
    const data = encodeCommand({ v: COMMAND_VERSION, time: 1_000 + index, op });
    const [outcome] = await this.group.apply([{ index, term: 1, type: EntryType.Normal, data }]);
    if (outcome?.kind !== 'command') throw new Error(`entry ${index} applied as ${outcome?.kind}`);
    return outcome.result;
  }

  async get(realm: string, key: string, consistency: Consistency): Promise<ServedRead<Document>> {
    return this.read('get', consistency, () => this.group.state.get(realm, key));
  }

  async list(
    realm: string,
    options: ListOptions,
    consistency: Consistency,
  ): Promise<ServedRead<{ documents: Document[]; more: boolean }>> {
    return this.read('list', consistency, () => this.group.state.list(realm, options));
  }

  async definition(): Promise<never> {
    throw Object.assign(new Error('no definition in this fake'), { code: 'UNAVAILABLE' });
  }

  async realms(consistency: Consistency): Promise<ServedRead<string[]>> {
    return this.read('realms', consistency, async () => ({
      ok: true,
      revision: this.group.state.revision,
      value: this.group.state.realms(),
    }));
  }

  status(): NodeStatus {
    if (this.statusFailure !== undefined) throw this.statusFailure;
    return singleNodeStatus(this.group);
  }

  ready(): { ready: boolean; reason?: string } {
    return this.readiness;
  }

  private async read<T>(
    what: string,
    consistency: Consistency,
    run: () => Promise<ReadResult<T>>,
  ): Promise<ServedRead<T>> {
    this.takeFailure();
    this.reads.push({ what, consistency });
    const result = this.readAnswers.shift() ?? (await run());
    if (consistency === 'linearizable') return result;
    const appliedIndex = this.group.state.appliedIndex;
    return { ...result, stale: { appliedIndex, leaderCommitIndex: appliedIndex + this.lagEntries } };
  }

  private takeFailure(): void {
    if (this.failures.length > 0) throw this.failures.shift();
  }
}

interface Api {
  readonly base: string;
  readonly service: StorageKvService;
  readonly logger: RecordingLogger;
}

/** Storage on the memory engine, a founder's group, the routes on an edge at 127.0.0.1:0; all stopped at teardown. */
async function startApi(t: Test): Promise<Api> {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-http-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const storage = await NodeStorage.open({
    dataDir: dir,
    clusterId: 'http-test',
    storageEngine: 'memory',
    memoryVolume: new MemoryVolume(),
    ...LIMITS,
  });
  t.teardown(() => storage.close());
  const service = new StorageKvService(await storage.bootstrapGroup(1, ONE));
  const logger = recordingLogger();
  const edge = new Edge({
    errors: ERROR_TABLE,
    host: '127.0.0.1',
    port: 0,
    routes: buildHttpRoutes(service, { limits: storage.config, logger }),
  });
  await edge.start();
  t.teardown(() => edge.stop());
  return { base: `http://127.0.0.1:${edge.port}`, service, logger };
}

interface Answer {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  readonly body: any;
  readonly headers: Headers;
}

/** One request; `body` is sent as JSON unless `raw` gives the exact bytes and content type. */
async function call(
  api: Api,
  method: string,
  path: string,
  body?: unknown,
  raw?: { text: string; contentType: string },
): Promise<Answer> {
  const init: RequestInit = { method };
  if (raw !== undefined) {
    init.body = raw.text;
    init.headers = { 'content-type': raw.contentType };
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const response = await fetch(api.base + path, init);
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? undefined : JSON.parse(text),
    headers: response.headers,
  };
}

const kv = (key: string, realm = 'default') => `/v1/realms/${realm}/kv/${encodeURIComponent(key)}`;

/** The error code of an answer, in the API's flat shape or the edge's own {"error": {...}} shape. */
function errorCode(answer: Answer): unknown {
  return answer.body?.code ?? answer.body?.error?.code;
}

/** Asserts a flat error answer with this status and code. */
function isError(t: Test, answer: Answer, status: number, code: string, what: string): void {
  t.equal(answer.status, status, `${what}: status ${status}`);
  t.match(answer.body, { code, message: String, retryable: Boolean }, `${what}: ${code}`);
}

t.test('PUT, GET, PATCH and DELETE answer the documented shapes and revisions', async (t) => {
  const api = await startApi(t);
  const put = await call(api, 'PUT', kv('user'), { name: 'ada', n: { p: 1, q: 1 } });
  t.equal(put.status, 200);
  t.same(put.body, { revision: 2 }, 'PUT answers exactly {"revision": N}; bootstrap was revision 1');
  t.match(put.headers.get('content-type'), /application\/json/);

  const got = await call(api, 'GET', kv('user'));
  t.equal(got.status, 200);
  t.same(got.body, {
    key: 'user',
    value: { name: 'ada', n: { p: 1, q: 1 } },
    createRevision: 2,
    modRevision: 2,
    version: 1,
  });

  const patched = await call(api, 'PATCH', kv('user'), { n: { p: null, r: 2 }, admin: true });
  t.same([patched.status, patched.body], [200, { revision: 3 }]);
  t.same((await call(api, 'GET', kv('user'))).body, {
    key: 'user',
    value: { name: 'ada', n: { q: 1, r: 2 }, admin: true },
    createRevision: 2,
    modRevision: 3,
    version: 2,
  });

  for (const value of [null, [1, 'two'], 'text', 0]) {
    const answer = await call(api, 'PUT', kv('any-json'), value);
    t.equal(answer.status, 200, `a ${JSON.stringify(value)} document is stored`);
    t.same((await call(api, 'GET', kv('any-json'))).body.value, value);
  }

  const deleted = await call(api, 'DELETE', kv('user'));
  t.same([deleted.status, deleted.body], [200, { revision: 8 }]);
  const missing = await call(api, 'GET', kv('user'));
  isError(t, missing, 404, 'NOT_FOUND', 'GET after DELETE');
  t.equal(missing.body.retryable, false);
  isError(t, await call(api, 'DELETE', kv('user')), 404, 'NOT_FOUND', 'DELETE of a missing key');
  isError(t, await call(api, 'PATCH', kv('user'), { a: 1 }), 404, 'NOT_FOUND', 'PATCH of a missing key');
});

t.test(
  'conditional writes: ifAbsent and ifRevision pass or answer 409 CONFLICT and change nothing',
  async (t) => {
    const api = await startApi(t);
    t.same((await call(api, 'PUT', `${kv('a')}?ifAbsent=true`, 1)).body, { revision: 2 });
    const exists = await call(api, 'PUT', `${kv('a')}?ifAbsent=true`, 2);
    isError(t, exists, 409, 'CONFLICT', 'ifAbsent on an existing key');
    t.match(exists.body.message, /exists/);
    t.same((await call(api, 'PUT', `${kv('a')}?ifRevision=2`, 3)).body, { revision: 3 });
    isError(t, await call(api, 'PUT', `${kv('a')}?ifRevision=2`, 4), 409, 'CONFLICT', 'a stale ifRevision');
    isError(
      t,
      await call(api, 'PUT', `${kv('a')}?ifRevision=0`, 4),
      409,
      'CONFLICT',
      'ifRevision=0 on a key',
    );
    t.same(
      (await call(api, 'PUT', `${kv('b')}?ifRevision=0`, 1)).body,
      { revision: 4 },
      'ifRevision=0: absent',
    );
    t.same((await call(api, 'PUT', `${kv('a')}?ifAbsent=false`, 5)).body, { revision: 5 }, 'ifAbsent=false');
    isError(t, await call(api, 'PATCH', `${kv('a')}?ifRevision=3`, { x: 1 }), 409, 'CONFLICT', 'PATCH');
    isError(t, await call(api, 'DELETE', `${kv('a')}?ifRevision=3`), 409, 'CONFLICT', 'DELETE');
    t.same((await call(api, 'GET', kv('a'))).body, {
      key: 'a',
      value: 5,
      createRevision: 2,
      modRevision: 5,
      version: 3,
    });
    t.same((await call(api, 'DELETE', `${kv('a')}?ifRevision=5`)).body, { revision: 6 });
    isError(t, await call(api, 'GET', kv('a')), 404, 'NOT_FOUND', 'deleted at the right revision');
  },
);

t.test('concurrent ifAbsent puts of one key: exactly one wins', async (t) => {
  const api = await startApi(t);
  const answers = await Promise.all(
    Array.from({ length: 12 }, (_, i) => call(api, 'PUT', `${kv('lock')}?ifAbsent=true`, { owner: i })),
  );
  const won = answers.filter((a) => a.status === 200);
  t.equal(won.length, 1, 'one 200');
  t.equal(answers.filter((a) => a.status === 409 && a.body.code === 'CONFLICT').length, 11, 'eleven 409s');
  const owner = (await call(api, 'GET', kv('lock'))).body;
  t.equal(owner.modRevision, won[0]!.body.revision, 'the stored document is the winner');
});

t.test('reads are linearizable by default; consistency=stale says how far behind it may be', async (t) => {
  const api = await startApi(t);
  await call(api, 'PUT', kv('k'), 'v');
  const strong = await call(api, 'GET', kv('k'));
  t.equal(strong.headers.get('conclave-consistency'), 'linearizable');
  t.equal(strong.headers.get('conclave-revision'), '2');
  t.equal(strong.headers.get('conclave-lag-entries'), null, 'no staleness on a linearizable read');
  t.same(
    api.service.reads.at(-1),
    { what: 'get', consistency: 'linearizable' },
    'the default reached the node',
  );

  api.service.lagEntries = 4;
  const stale = await call(api, 'GET', `${kv('k')}?consistency=stale`);
  t.equal(stale.status, 200);
  t.same(stale.body.value, 'v', 'the body keeps its shape');
  t.same(api.service.reads.at(-1), { what: 'get', consistency: 'stale' });
  const applied = String(api.service.group.state.appliedIndex);
  t.equal(stale.headers.get('conclave-consistency'), 'stale');
  t.equal(stale.headers.get('conclave-applied-index'), applied);
  t.equal(stale.headers.get('conclave-leader-commit-index'), String(Number(applied) + 4));
  t.equal(stale.headers.get('conclave-lag-entries'), '4');

  const list = await call(api, 'GET', '/v1/realms/default/kv?consistency=stale');
  t.equal(list.headers.get('conclave-lag-entries'), '4', 'lists say it too');
  t.same(api.service.reads.at(-1), { what: 'list', consistency: 'stale' });
  const realms = await call(api, 'GET', '/v1/realms?consistency=stale');
  t.equal(realms.headers.get('conclave-consistency'), 'stale', 'and realm lists');
  t.same(api.service.reads.at(-1), { what: 'realms', consistency: 'stale' });

  isError(t, await call(api, 'GET', `${kv('k')}?consistency=eventual`), 400, 'INVALID_ARGUMENT', 'unknown');
  isError(t, await call(api, 'GET', '/v1/realms/default/kv?consistency=x'), 400, 'INVALID_ARGUMENT', 'list');
  isError(t, await call(api, 'GET', '/v1/realms?consistency='), 400, 'INVALID_ARGUMENT', 'realms');
});

t.test('list: pages in key order with the key to continue after', async (t) => {
  const api = await startApi(t);
  const inside = ['p/00', 'p/01', 'p/02', 'p/03', 'p/04', 'p/05', 'p/06'];
  for (const key of ['q', ...[...inside].reverse(), 'o']) await call(api, 'PUT', kv(key), { key });

  const seen: string[] = [];
  let after: string | null = null;
  const pages: boolean[] = [];
  for (let page = 0; page < 5; page++) {
    const query: string = `prefix=p%2F&limit=3${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const answer = await call(api, 'GET', `/v1/realms/default/kv?${query}`);
    t.equal(answer.status, 200);
    t.equal(answer.body.revision, 10, 'the revision the page was served at');
    seen.push(...answer.body.documents.map((d: { key: string }) => d.key));
    pages.push(answer.body.more);
    if (!answer.body.more) {
      t.equal(answer.body.next, null, 'no next key on the last page');
      break;
    }
    t.equal(answer.body.next, seen.at(-1), 'next is the last key of the page');
    after = answer.body.next;
  }
  t.same(seen, inside, 'every key under the prefix, once, in order');
  t.same(pages, [true, true, false]);

  const all = await call(api, 'GET', '/v1/realms/default/kv');
  t.same(
    all.body.documents.map((d: { key: string }) => d.key),
    ['o', ...inside, 'q'],
    'no prefix: every key, in order',
  );
  t.match(all.body.documents[0], { key: 'o', value: { key: 'o' }, createRevision: 10, version: 1 });
  t.same((await call(api, 'GET', '/v1/realms/default/kv?prefix=')).body.documents.length, 9, 'empty prefix');
  const end = await call(api, 'GET', '/v1/realms/default/kv?after=q');
  t.same([end.body.documents, end.body.more, end.body.next], [[], false, null], 'after the last key');

  for (const query of [
    'limit=0',
    'limit=51',
    'limit=abc',
    'limit=-1',
    'after=',
    'prefx=p',
    'limit=1&limit=2',
  ]) {
    isError(t, await call(api, 'GET', `/v1/realms/default/kv?${query}`), 400, 'INVALID_ARGUMENT', query);
  }
  isError(t, await call(api, 'GET', '/v1/realms/nope/kv'), 404, 'NOT_FOUND', 'an unknown realm');
});

t.test('keys with slashes, unicode, spaces and URL characters round-trip exactly', async (t) => {
  const api = await startApi(t);
  const keys = [
    'a/b/c',
    'dir/../x',
    './dot',
    '/leading',
    'trailing/',
    'x//y',
    'ü € 😀',
    'with space',
    'plus+sign',
    'percent%41',
    'q?x=1&y#frag',
  ];
  for (const key of keys) {
    const put = await call(api, 'PUT', kv(key), { key });
    t.equal(put.status, 200, `PUT ${JSON.stringify(key)}`);
    const got = await call(api, 'GET', kv(key));
    t.same([got.status, got.body.key, got.body.value], [200, key, { key }], `GET ${JSON.stringify(key)}`);
  }
  const listed = await call(api, 'GET', '/v1/realms/default/kv');
  const byteOrder = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  t.same(
    listed.body.documents.map((d: { key: string }) => d.key),
    byteOrder,
    'listed exactly, in UTF-8 byte order',
  );

  const raw = await call(api, 'GET', '/v1/realms/default/kv/a/b/c');
  t.same([raw.status, raw.body.key], [200, 'a/b/c'], 'slashes may also be sent unencoded');
  const mixed = await call(api, 'GET', '/v1/realms/default/kv/x//y');
  t.same([mixed.status, mixed.body.key], [200, 'x//y'], 'an empty segment is kept');
  const prefixed = await call(api, 'GET', '/v1/realms/default/kv?prefix=plus%2B');
  t.same(
    prefixed.body.documents.map((d: { key: string }) => d.key),
    ['plus+sign'],
    'a + in a prefix, sent as %2B',
  );
  const spaced = await call(api, 'GET', '/v1/realms/default/kv?prefix=with+sp');
  t.same(
    spaced.body.documents.map((d: { key: string }) => d.key),
    ['with space'],
    'a + in a query is a space',
  );

  isError(t, await call(api, 'PUT', '/v1/realms/default/kv/', 1), 400, 'INVALID_ARGUMENT', 'an empty key');
  isError(t, await call(api, 'GET', '/v1/realms/default/kv/'), 400, 'INVALID_ARGUMENT', 'GET an empty key');
  isError(t, await call(api, 'PUT', '/v1/realms/default/kv/100%', 1), 400, 'INVALID_ARGUMENT', 'a lone %');
  isError(
    t,
    await call(api, 'PUT', '/v1/realms/default/kv/%ED%A0%80', 1),
    400,
    'INVALID_ARGUMENT',
    'surrogate',
  );
  const long = 'k'.repeat(LIMITS.keyMaxBytes + 1);
  isError(t, await call(api, 'PUT', kv(long), 1), 413, 'TOO_LARGE', 'a key over keyMaxBytes');
  isError(t, await call(api, 'GET', kv(long)), 413, 'TOO_LARGE', 'GET a key over keyMaxBytes');
  t.equal((await call(api, 'PUT', kv('é'.repeat(32)), 1)).status, 200, 'a key of exactly keyMaxBytes bytes');
});

t.test('bad query values and bodies answer 400 and never reach the node', async (t) => {
  const api = await startApi(t);
  await call(api, 'PUT', kv('a'), 'original');
  const writes = api.service.writes.length;
  const bad: [string, string, unknown][] = [
    ['PUT', `${kv('a')}?ifRevision=abc`, 1],
    ['PUT', `${kv('a')}?ifRevision=-1`, 1],
    ['PUT', `${kv('a')}?ifRevision=1.5`, 1],
    ['PUT', `${kv('a')}?ifRevision=`, 1],
    ['PUT', `${kv('a')}?ifRevision=2&ifAbsent=true`, 1],
    ['PUT', `${kv('a')}?ifRevision=2&ifRevision=2`, 1],
    ['PUT', `${kv('a')}?ifAbsent=yes`, 1],
    ['PUT', `${kv('a')}?ifAbsent`, 1],
    ['PUT', `${kv('a')}?ifrevision=2`, 1],
    ['PUT', `${kv('a')}?consistency=stale`, 1],
    ['PATCH', `${kv('a')}?ifRevision=x`, { a: 1 }],
    ['PATCH', `${kv('a')}?ifAbsent=true`, { a: 1 }],
    ['DELETE', `${kv('a')}?ifRevision=1e2`, undefined],
    ['DELETE', `${kv('a')}?force=true`, undefined],
    ['GET', `${kv('a')}?ifRevision=2`, undefined],
    ['PUT', '/v1/realms/UPPER/kv/a', 1],
  ];
  for (const [method, path, body] of bad) {
    const answer = await call(api, method, path, body);
    isError(t, answer, 400, 'INVALID_ARGUMENT', `${method} ${path}`);
  }
  const both = await call(api, 'PUT', `${kv('a')}?ifRevision=2&ifAbsent=true`, 1);
  t.match(both.body.message, /not both/, 'the message says what is wrong');

  let deep: unknown = 1;
  for (let i = 0; i < LIMITS.jsonMaxDepth + 1; i++) deep = [deep];
  isError(t, await call(api, 'PUT', kv('a'), deep), 413, 'TOO_LARGE', 'a document nested too deep');
  const big = 'x'.repeat(LIMITS.valueMaxBytes);
  isError(t, await call(api, 'PUT', kv('a'), big), 413, 'TOO_LARGE', 'a document over valueMaxBytes');

  const malformed = await call(api, 'PUT', kv('a'), undefined, {
    text: '{"a":',
    contentType: 'application/json',
  });
  t.same([malformed.status, errorCode(malformed)], [400, 'INVALID_ARGUMENT'], 'malformed JSON');
  const text = await call(api, 'PUT', kv('a'), undefined, { text: '1', contentType: 'text/plain' });
  t.same([text.status, errorCode(text)], [400, 'INVALID_ARGUMENT'], 'not application/json');

  t.equal(api.service.writes.length, writes, 'no refused request was proposed');
  t.same((await call(api, 'GET', kv('a'))).body, {
    key: 'a',
    value: 'original',
    createRevision: 2,
    modRevision: 2,
    version: 1,
  });
});

t.test('txn: compares then the success or the failure branch, atomically', async (t) => {
  const api = await startApi(t);
  await call(api, 'PUT', kv('a'), { n: 1 });
  await call(api, 'PUT', kv('gone'), true);

  const won = await call(api, 'POST', '/v1/realms/default/txn', {
    compares: [
      { key: 'a', target: 'modRevision', op: 'eq', value: 2 },
      { key: 'a', target: 'value', op: 'eq', value: { n: 1 } },
      { key: 'b', target: 'exists', op: 'eq', value: false },
      { key: 'a', target: 'version', op: 'lt', value: 2 },
    ],
    success: [
      { type: 'put', key: 'b', value: 'made', ifAbsent: true },
      { type: 'patch', key: 'a', patch: { n: 2 } },
      { type: 'delete', key: 'gone' },
    ],
    failure: [{ type: 'put', key: 'lost', value: 1 }],
  });
  t.equal(won.status, 200);
  t.same(won.body, {
    succeeded: true,
    revision: 4,
    results: [
      { type: 'put', key: 'b', createRevision: 4, modRevision: 4, version: 1 },
      { type: 'put', key: 'a', createRevision: 2, modRevision: 4, version: 2 },
      { type: 'delete', key: 'gone', prevModRevision: 3 },
    ],
  });
  t.same((await call(api, 'GET', kv('a'))).body.value, { n: 2 });
  t.equal((await call(api, 'GET', kv('b'))).body.modRevision, 4, 'one revision for the whole branch');
  t.equal((await call(api, 'GET', kv('gone'))).status, 404);
  t.equal((await call(api, 'GET', kv('lost'))).status, 404, 'the failure branch did not run');

  const lost = await call(api, 'POST', '/v1/realms/default/txn', {
    compares: [{ key: 'a', target: 'value', op: 'eq', value: { n: 1 } }],
    success: [{ type: 'put', key: 'never', value: 1 }],
    failure: [{ type: 'put', key: 'fallback', value: 1 }],
  });
  t.same(
    [lost.status, lost.body.succeeded, lost.body.revision],
    [200, false, 5],
    'a failed compare is no error',
  );
  t.equal((await call(api, 'GET', kv('never'))).status, 404);
  t.equal((await call(api, 'GET', kv('fallback'))).status, 200, 'the failure branch ran');

  const nothing = await call(api, 'POST', '/v1/realms/default/txn', {
    compares: [{ key: 'a', target: 'exists', op: 'eq', value: false }],
    success: [{ type: 'delete', key: 'a' }],
  });
  t.same(nothing.body, { succeeded: false, revision: 5, results: [] }, 'no failure branch: nothing changes');

  const conflict = await call(api, 'POST', '/v1/realms/default/txn', {
    compares: [],
    success: [
      { type: 'put', key: 'first', value: 1 },
      { type: 'put', key: 'a', value: 1, ifRevision: 2 },
    ],
  });
  isError(t, conflict, 409, 'CONFLICT', "a branch op's condition fails");
  t.equal((await call(api, 'GET', kv('first'))).status, 404, 'so no op of the branch applied');
  isError(
    t,
    await call(api, 'POST', '/v1/realms/nope/txn', { compares: [], success: [] }),
    404,
    'NOT_FOUND',
    'an unknown realm',
  );
});

t.test('txn: bad shapes answer 400 (or 413 over txnMaxOps) and never reach the node', async (t) => {
  const api = await startApi(t);
  const writes = api.service.writes.length;
  const put = { type: 'put', key: 'k', value: 1 };
  const bad: [unknown, RegExp][] = [
    [[], /must be a JSON object/],
    ['text', /must be a JSON object/],
    [{ compares: [], success: [], extra: 1 }, /unknown field "extra"/],
    [{ compares: [], success: [], realm: 'default' }, /unknown field "realm"/],
    [{ compares: [] }, /txn.success must be an array/],
    [{ success: [] }, /txn.compares must be an array/],
    [{ compares: {}, success: [] }, /txn.compares must be an array/],
    [{ compares: [{ key: 'k', target: 'rev', op: 'eq', value: 1 }], success: [] }, /target must be one of/],
    [{ compares: [{ key: 'k', target: 'version', op: 'le', value: 1 }], success: [] }, /op must be one of/],
    [{ compares: [{ key: 'k', target: 'value', op: 'lt', value: 1 }], success: [] }, /takes op eq or ne/],
    [{ compares: [{ key: 'k', target: 'exists', op: 'eq', value: 1 }], success: [] }, /must be a boolean/],
    [{ compares: [{ key: 'k', target: 'version', op: 'eq', value: -1 }], success: [] }, /integer >= 0/],
    [{ compares: [{ key: 'k', target: 'version', op: 'eq' }], success: [] }, /needs a value/],
    [{ compares: [{ key: '', target: 'exists', op: 'eq', value: true }], success: [] }, /non-empty/],
    [{ compares: [], success: [{ type: 'get', key: 'k' }] }, /type must be put, patch or delete/],
    [{ compares: [], success: [{ ...put, realm: 'default' }] }, /unknown field "realm"/],
    [{ compares: [], success: [{ type: 'put', key: 'k' }] }, /needs a value/],
    [{ compares: [], success: [put, put] }, /more than once/],
    [{ compares: [], success: [], failure: 'no' }, /txn.failure must be an array/],
  ];
  for (const [body, message] of bad) {
    const answer = await call(api, 'POST', '/v1/realms/default/txn', body);
    isError(t, answer, 400, 'INVALID_ARGUMENT', JSON.stringify(body));
    t.match(answer.body.message, message, `says ${message}`);
  }
  const many = Array.from({ length: LIMITS.txnMaxOps + 1 }, (_, i) => ({ type: 'delete', key: `k${i}` }));
  isError(
    t,
    await call(api, 'POST', '/v1/realms/default/txn', { compares: [], success: many }),
    413,
    'TOO_LARGE',
    'more ops than txnMaxOps',
  );
  isError(
    t,
    await call(api, 'POST', '/v1/realms/default/txn?ifRevision=1', { compares: [], success: [] }),
    400,
    'INVALID_ARGUMENT',
    'a query parameter',
  );
  t.equal(api.service.writes.length, writes, 'nothing was proposed');
});

t.test('realms: default from bootstrap, POST creates, duplicates and bad names refused', async (t) => {
  const api = await startApi(t);
  const initial = await call(api, 'GET', '/v1/realms');
  t.same([initial.status, initial.body], [200, { realms: ['default'], revision: 1 }]);
  t.equal(initial.headers.get('conclave-consistency'), 'linearizable');

  const created = await call(api, 'POST', '/v1/realms', { name: 'chat' });
  t.same([created.status, created.body], [201, { name: 'chat', revision: 2 }]);
  t.same((await call(api, 'GET', '/v1/realms')).body, { realms: ['chat', 'default'], revision: 2 });
  isError(t, await call(api, 'POST', '/v1/realms', { name: 'chat' }), 409, 'CONFLICT', 'an existing realm');

  t.same((await call(api, 'PUT', kv('k', 'chat'), 'hi')).body, { revision: 3 }, 'the new realm takes writes');
  t.equal((await call(api, 'GET', kv('k', 'chat'))).body.value, 'hi');
  isError(t, await call(api, 'GET', kv('k')), 404, 'NOT_FOUND', 'realms are separate namespaces');
  isError(t, await call(api, 'PUT', kv('k', 'nope'), 1), 404, 'NOT_FOUND', 'PUT into an unknown realm');
  isError(t, await call(api, 'GET', kv('k', 'nope')), 404, 'NOT_FOUND', 'GET from an unknown realm');
  isError(
    t,
    await call(api, 'GET', kv('k', 'Bad%20Realm')),
    400,
    'INVALID_ARGUMENT',
    'GET from a bad realm name',
  );

  const writes = api.service.writes.length;
  for (const body of [
    { name: 'Bad Name' },
    { name: '' },
    { name: 7 },
    {},
    { name: 'x', owner: 'me' },
    ['x'],
    null,
  ]) {
    isError(t, await call(api, 'POST', '/v1/realms', body), 400, 'INVALID_ARGUMENT', JSON.stringify(body));
  }
  t.equal(api.service.writes.length, writes, 'no bad realm reached the node');
  t.same((await call(api, 'GET', '/v1/realms')).body.realms, ['chat', 'default']);
});

t.test('status, healthz and readyz', async (t) => {
  const api = await startApi(t);
  await call(api, 'PUT', kv('a'), 1);
  const status = await call(api, 'GET', '/v1/status');
  t.equal(status.status, 200);
  t.same(status.body, api.service.status(), 'the node status as the service reports it');
  t.match(status.body, {
    name: 'n1',
    id: String,
    role: 'voter',
    state: 'leader',
    leader: 'n1',
    term: 1,
    commitIndex: 2,
    appliedIndex: 2,
    members: [{ name: 'n1', role: 'voter' }],
  });

  t.same(await call(api, 'GET', '/healthz').then((a) => [a.status, a.body]), [200, { status: 'ok' }]);
  t.same(await call(api, 'GET', '/readyz').then((a) => [a.status, a.body]), [200, { ready: true }]);
  api.service.readiness = { ready: false, reason: 'no leader known' };
  const unready = await call(api, 'GET', '/readyz');
  isError(t, unready, 503, 'UNAVAILABLE', 'not ready');
  t.match(unready.body, { ready: false, reason: 'no leader known', retryable: true });
  t.equal((await call(api, 'GET', '/healthz')).status, 200, 'an unready node is still healthy');
  isError(
    t,
    await call(api, 'GET', '/v1/status?verbose=1'),
    400,
    'INVALID_ARGUMENT',
    'status takes no query',
  );
});

t.test("the service's thrown errors answer their stable codes, with leader and retryable", async (t) => {
  const api = await startApi(t);
  await call(api, 'PUT', kv('a'), 1);
  const cases: [string, string, unknown, unknown, number, Record<string, unknown>][] = [
    [
      'PUT',
      kv('a'),
      2,
      new ServiceError('NOT_LEADER', 'n2'),
      503,
      { code: 'NOT_LEADER', leader: 'n2', retryable: true },
    ],
    ['GET', kv('a'), undefined, new ServiceError('NO_LEADER'), 503, { code: 'NO_LEADER', retryable: true }],
    [
      'PATCH',
      kv('a'),
      { b: 1 },
      new ServiceError('TIMEOUT', 'n1', true),
      504,
      { code: 'TIMEOUT', retryable: true, indeterminate: true, leader: 'n1' },
    ],
    [
      'GET',
      '/v1/realms/default/kv',
      undefined,
      new ServiceError('UNAVAILABLE'),
      503,
      { code: 'UNAVAILABLE' },
    ],
    [
      'GET',
      '/v1/realms',
      undefined,
      new ServiceError('STOPPED'),
      503,
      { code: 'UNAVAILABLE', retryable: true },
    ],
    [
      'DELETE',
      kv('a'),
      undefined,
      new ServiceError('TOO_LARGE'),
      413,
      { code: 'TOO_LARGE', retryable: false },
    ],
    ['POST', '/v1/realms', { name: 'r' }, new ServiceError('NOT_LEADER'), 503, { code: 'NOT_LEADER' }],
    ['GET', kv('a'), undefined, new Error('disk on fire'), 500, { code: 'INTERNAL', retryable: false }],
    [
      'GET',
      kv('a'),
      undefined,
      new ServiceError('WEIRD'),
      500,
      { code: 'INTERNAL', message: 'internal error' },
    ],
  ];
  for (const [method, path, body, error, status, expected] of cases) {
    api.service.failNext(error);
    const answer = await call(api, method, path, body);
    const what = `${method} ${path} throwing ${(error as Error).message}`;
    t.equal(answer.status, status, `${what}: ${status}`);
    t.match(answer.body, { message: String, ...expected }, what);
  }
  const noLeader = await (async () => {
    api.service.failNext(new ServiceError('NO_LEADER'));
    return call(api, 'GET', kv('a'));
  })();
  t.notOk('leader' in noLeader.body, 'no leader field when none is known');
  const internal = await (async () => {
    api.service.failNext(new Error('disk on fire'));
    return call(api, 'GET', kv('a'));
  })();
  t.equal(internal.body.message, 'internal error', 'an unexpected failure does not leak its message');
  t.match(
    api.logger.events('http_route_failed').at(-1),
    { method: 'GET', error: /disk on fire/ },
    'but logs it',
  );
  api.service.failStatus(new Error('status broke'));
  isError(t, await call(api, 'GET', '/v1/status'), 500, 'INTERNAL', 'status throwing');
  t.same((await call(api, 'GET', kv('a'))).body.value, 1, 'the failed writes changed nothing');
});

t.test('a COMPACTED read answers 410 with the current revision', async (t) => {
  const api = await startApi(t);
  api.service.answerNextRead({
    ok: false,
    revision: 77,
    error: { code: 'COMPACTED', message: 'revision 3 is compacted; current revision 77' },
  });
  const answer = await call(api, 'GET', '/v1/realms/default/kv');
  isError(t, answer, 410, 'COMPACTED', 'compacted');
  t.equal(answer.body.revision, 77);
  t.equal(answer.body.retryable, false);
});

t.test(
  "POST /v1/sessions?realm= opens the session in that realm's group; a bad query is refused",
  async (t) => {
    const api = await startApi(t);
    const plain = await call(api, 'POST', '/v1/sessions');
    t.equal(plain.status, 200);
    const scoped = await call(api, 'POST', '/v1/sessions?realm=shop');
    t.equal(scoped.status, 200);
    t.same(
      api.service.routes.slice(-2),
      [undefined, { realm: 'shop' }],
      'the realm reaches the service as the route',
    );
    const bad = await call(api, 'POST', '/v1/sessions?realm=Bad%20Name');
    isError(t, bad, 400, 'INVALID_ARGUMENT', 'a realm name the rules refuse');
    const unknown = await call(api, 'POST', '/v1/sessions?group=2');
    isError(t, unknown, 400, 'INVALID_ARGUMENT', 'an unknown query parameter');
    const id = (scoped.body as { session: number }).session;
    // This fake service drops sessions, so only the routing of the close is checked here.
    await call(api, 'DELETE', `/v1/sessions/${id}?seq=1&realm=shop`);
    t.same(api.service.routes.at(-1), { realm: 'shop' }, 'the close carries its realm to the service');
  },
);
