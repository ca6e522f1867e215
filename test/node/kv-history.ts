// Test helper: concurrent HTTP clients doing get, put and compare-and-set through random nodes, recorded as a history for the linearizability checker.

import type { ClusterNode } from '../../scripts/local-cluster.js';
import type { HistoryRecorder, KvInput, KvOutput } from '../lib/linearizability.js';

const json = { 'content-type': 'application/json' };

export interface KvClientsOptions {
  /** Nodes to send each operation to, one picked at random per operation (read at each pick). */
  readonly nodes: () => readonly ClusterNode[];
  /** Realms the operations spread over; a history key is `realm/key`. */
  readonly realms: readonly string[];
  readonly keys: readonly string[];
  readonly clients: number;
  readonly durationMs: number;
  readonly history: HistoryRecorder<KvInput, KvOutput>;
}

/**
 * Runs `clients` loops until `durationMs` passed: 40 % linearizable gets, 35 % puts, 25 %
 * compare-and-sets (a txn), each through a random node with a 2 s deadline. A failed read is
 * discarded (it constrains nothing); a write refused before it was proposed is discarded; a
 * write whose fate is unknown (no answer, TIMEOUT, or `indeterminate`) is left open and its
 * client retired (its next operation counts as another process). Throws on a bug in the loop.
 */
export async function runKvClients(options: KvClientsOptions): Promise<void> {
  const { history, realms, keys } = options;
  let counter = 0;
  const deadline = Date.now() + options.durationMs;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;
  const client = async (clientId: number): Promise<void> => {
    let id = clientId;
    while (Date.now() < deadline) {
      const node = pick(options.nodes());
      const realm = pick(realms);
      const key = pick(keys);
      const name = `${realm}/${key}`;
      const url = `${node.url}/v1/realms/${realm}/kv/${key}`;
      const choice = Math.random();
      if (choice < 0.4) {
        const op = history.invoke(id, { op: 'get', key: name });
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        if (response?.status === 200)
          history.complete(op, ((await response.json()) as { value: string }).value);
        else if (response?.status === 404) history.complete(op, null);
        else history.discard(op);
        continue;
      }
      const value = `v${++counter}`;
      const isCas = choice >= 0.75;
      const expected = isCas
        ? Math.random() < 0.3
          ? null
          : `v${Math.max(1, Math.floor(Math.random() * counter))}`
        : null;
      const op = history.invoke(
        id,
        isCas ? { op: 'cas', key: name, expected, value } : { op: 'put', key: name, value },
      );
      const request = isCas
        ? fetch(`${node.url}/v1/realms/${realm}/txn`, {
            method: 'POST',
            headers: json,
            signal: AbortSignal.timeout(2000),
            body: JSON.stringify({
              compares:
                expected === null
                  ? [{ key, target: 'exists', op: 'eq', value: false }]
                  : [{ key, target: 'value', op: 'eq', value: expected }],
              success: [{ type: 'put', key, value }],
            }),
          })
        : fetch(url, {
            method: 'PUT',
            headers: json,
            body: JSON.stringify(value),
            signal: AbortSignal.timeout(2000),
          });
      const response = await request.catch(() => undefined);
      if (response?.status === 200) {
        const body = (await response.json()) as { succeeded?: boolean };
        history.complete(op, isCas ? body.succeeded === true : true);
        continue;
      }
      const body = response
        ? ((await response.json().catch(() => ({}))) as { indeterminate?: boolean; code?: string })
        : {};
      if (response === undefined || body.indeterminate || body.code === 'TIMEOUT') {
        history.completeUnknown(op);
        id += 1000;
      } else {
        history.discard(op);
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
}
