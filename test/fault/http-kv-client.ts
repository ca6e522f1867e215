// A workload client speaking the HTTP API to one node, without sessions: a lost answer leaves the write's fate unknown.

import type { KvClient, Outcome } from './kv-client.js';

const REALM = 'default';

/**
 * Trusts the API's contract (http-api.ts): an error body without `"indeterminate": true` means
 * the write did not apply. A refused connection sent nothing; any other transport failure or
 * the deadline leaves the outcome unknown.
 */
export class HttpKvClient implements KvClient {
  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
    private readonly consistency: 'linearizable' | 'stale' = 'linearizable',
  ) {}

  get label(): string {
    return this.url;
  }

  async get(key: string): Promise<Outcome<string | null>> {
    return this.request(
      'GET',
      `/kv/${encodeURIComponent(key)}?consistency=${this.consistency}`,
      undefined,
      (status, body) => {
        if (status === 200) return { kind: 'ok', value: asValue((body as { value: unknown }).value) };
        if (status === 404 && codeOf(body) === 'NOT_FOUND') return { kind: 'ok', value: null };
        return undefined;
      },
    );
  }

  async put(key: string, value: string): Promise<Outcome<true>> {
    return this.request('PUT', `/kv/${encodeURIComponent(key)}`, value, (status) =>
      status === 200 ? { kind: 'ok', value: true } : undefined,
    );
  }

  async del(key: string): Promise<Outcome<true>> {
    return this.request('DELETE', `/kv/${encodeURIComponent(key)}`, undefined, (status) =>
      status === 200 ? { kind: 'ok', value: true } : undefined,
    );
  }

  async cas(key: string, expected: string | null, value: string): Promise<Outcome<boolean>> {
    const compare =
      expected === null
        ? { key, target: 'exists', op: 'eq', value: false }
        : { key, target: 'value', op: 'eq', value: expected };
    const txn = { compares: [compare], success: [{ type: 'put', key, value }] };
    return this.request('POST', '/txn', txn, (status, body) =>
      status === 200 ? { kind: 'ok', value: (body as { succeeded: unknown }).succeeded === true } : undefined,
    );
  }

  async close(): Promise<void> {}

  /** `answer` turns a response into an outcome, or undefined for an error body. */
  private async request<T>(
    method: string,
    path: string,
    body: unknown,
    answer: (status: number, body: unknown) => Outcome<T> | undefined,
  ): Promise<Outcome<T>> {
    let response: Response;
    let parsed: unknown;
    try {
      response = await fetch(`${this.url}/v1/realms/${REALM}${path}`, {
        method,
        signal: AbortSignal.timeout(this.timeoutMs),
        ...(body === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      parsed = await response.json().catch(() => undefined);
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'ECONNREFUSED') return { kind: 'fail', reason: 'ECONNREFUSED' };
      const name = (error as Error).name;
      return { kind: 'unknown', reason: name === 'TimeoutError' ? 'client-timeout' : (cause?.code ?? name) };
    }
    const outcome = answer(response.status, parsed);
    if (outcome) return outcome;
    const code = codeOf(parsed) ?? `HTTP_${response.status}`;
    const indeterminate = (parsed as { indeterminate?: unknown } | undefined)?.indeterminate === true;
    if (method === 'GET') return { kind: 'fail', reason: code };
    return indeterminate || codeOf(parsed) === undefined
      ? { kind: 'unknown', reason: code }
      : { kind: 'fail', reason: code };
  }
}

function codeOf(body: unknown): string | undefined {
  const code = (body as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function asValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
