// Checks a recorded history for linearizability, first without the unknown-outcome writes that no read saw, then, only if that fails, with them.

import {
  checkOperations,
  formatCheckResult,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from '../lib/linearizability.js';

export interface HistoryVerdict {
  readonly result: 'ok' | 'illegal' | 'unknown';
  readonly operations: number;
  /** Unknown-outcome writes left out of the first check because no read returned their value. */
  readonly droppedUnseen: number;
  /** Unknown-outcome writes kept, open-ended, because a read returned their value. */
  readonly keptOpen: number;
  /** Whether the verdict needed the full history (the reduced one was not linearizable). */
  readonly fullHistory: boolean;
  readonly elapsedMs: number;
  /** The checker's report (with the failing partition when illegal). */
  readonly report: string;
}

type KvOp = Operation<KvInput, KvOutput>;

/**
 * Leaving out a write whose outcome is unknown can only make a history harder to linearize
 * (the write was optional), so an 'ok' on the reduced history is an 'ok' on the full one. It
 * is not the other way round: a failed compare-and-set may have seen an unread write. So an
 * 'illegal' reduced history is checked again in full, and that answer stands.
 */
export function checkHistory(ops: readonly KvOp[], timeoutMs: number): HistoryVerdict {
  const seen = new Set<string>();
  for (const op of ops) {
    if (op.input.op === 'get' && typeof op.output === 'string') seen.add(op.output);
  }
  const isUnseenUnknownWrite = (op: KvOp): boolean =>
    op.output === undefined &&
    (op.input.op === 'put' || op.input.op === 'cas') &&
    (op.input.value === null || !seen.has(op.input.value));
  const reduced = ops.filter((op) => !isUnseenUnknownWrite(op));
  const droppedUnseen = ops.length - reduced.length;
  const keptOpen = reduced.filter((op) => op.output === undefined && op.input.op !== 'get').length;
  const started = Date.now();
  let result = checkOperations(kvModel, reduced, { timeoutMs });
  let fullHistory = false;
  if (result.result === 'illegal' && droppedUnseen > 0) {
    fullHistory = true;
    result = checkOperations(kvModel, ops, { timeoutMs });
  }
  return {
    result: result.result,
    operations: ops.length,
    droppedUnseen,
    keptOpen,
    fullHistory,
    elapsedMs: Date.now() - started,
    report: formatCheckResult(kvModel, result),
  };
}
