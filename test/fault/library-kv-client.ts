// A workload client using the project's client library (WebSocket, failover, sessions with exactly-once retries).

import { Client, ConclaveError } from '../../src/client/index.js';
import type { KvClient, Outcome } from './kv-client.js';

const REALM = 'default';

/** Believes the library's `indeterminate` flag: false means the write did not apply. */
export class LibraryKvClient implements KvClient {
  private readonly client: Client;

  constructor(
    private readonly endpoints: readonly string[],
    timeoutMs: number,
    private readonly consistency: 'linearizable' | 'stale' = 'linearizable',
  ) {
    this.client = new Client({
      endpoints,
      requestTimeoutMs: timeoutMs,
      connectTimeoutMs: 1000,
      backoff: { baseMs: 20, maxMs: 500 },
    });
  }

  get label(): string {
    return `library(${this.endpoints.join(',')})`;
  }

  async get(key: string): Promise<Outcome<string | null>> {
    try {
      const doc = await this.client.get(REALM, key, { consistency: this.consistency });
      return { kind: 'ok', value: typeof doc.value === 'string' ? doc.value : JSON.stringify(doc.value) };
    } catch (error) {
      if (error instanceof ConclaveError && error.code === 'NOT_FOUND') return { kind: 'ok', value: null };
      return { kind: 'fail', reason: reasonOf(error) };
    }
  }

  async put(key: string, value: string): Promise<Outcome<true>> {
    try {
      await this.client.put(REALM, key, value);
      return { kind: 'ok', value: true };
    } catch (error) {
      return writeFailure(error);
    }
  }

  async del(key: string): Promise<Outcome<true>> {
    try {
      await this.client.delete(REALM, key);
      return { kind: 'ok', value: true };
    } catch (error) {
      return writeFailure(error);
    }
  }

  async cas(key: string, expected: string | null, value: string): Promise<Outcome<boolean>> {
    try {
      const result = await this.client.txn(REALM, {
        compares: [
          expected === null
            ? { key, target: 'exists', op: 'eq', value: false }
            : { key, target: 'value', op: 'eq', value: expected },
        ],
        success: [{ type: 'put', key, value }],
      });
      return { kind: 'ok', value: result.succeeded };
    } catch (error) {
      return writeFailure(error);
    }
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

function writeFailure(error: unknown): Outcome<never> {
  const indeterminate = !(error instanceof ConclaveError) || error.indeterminate;
  return indeterminate
    ? { kind: 'unknown', reason: reasonOf(error) }
    : { kind: 'fail', reason: reasonOf(error) };
}

function reasonOf(error: unknown): string {
  return error instanceof ConclaveError ? error.code : (error as Error).name;
}
