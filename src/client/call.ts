// One call's deadline and cancellation: an AbortSignal that fires at the deadline or when the client closes.

import { ConclaveError, closedError } from './errors.js';

/** Why a call's signal fired. */
export type AbortCause = 'deadline' | 'closed';

/**
 * The life of one client call (every attempt, sleep and wait inside it shares this signal).
 * finish() must be called when the call settles: it clears the deadline timer.
 */
export class CallContext {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private abortCause: AbortCause | undefined;
  /** The last retryable failure seen, reported when the deadline passes. */
  lastError: ConclaveError | undefined;

  constructor(
    readonly timeoutMs: number,
    private readonly registry: Set<CallContext>,
  ) {
    this.timer = setTimeout(() => this.abort('deadline'), timeoutMs);
    registry.add(this);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.abortCause !== undefined;
  }

  abort(cause: AbortCause): void {
    if (this.abortCause !== undefined) return;
    this.abortCause = cause;
    clearTimeout(this.timer);
    this.controller.abort(new ConclaveError(cause === 'closed' ? 'CLOSED' : 'TIMEOUT', 'aborted'));
  }

  finish(): void {
    clearTimeout(this.timer);
    this.registry.delete(this);
  }

  /**
   * The error an aborted call throws: CLOSED, or TIMEOUT naming the last failure.
   * `indeterminate`: whether a write may have reached the cluster.
   */
  abortError(indeterminate: boolean): ConclaveError {
    if (this.abortCause === 'closed') {
      const closed = closedError();
      return new ConclaveError(closed.code, closed.message, { indeterminate });
    }
    const last = this.lastError;
    const because = last === undefined ? '' : ` (last failure: ${last.code}: ${last.message})`;
    return new ConclaveError('TIMEOUT', `no answer within ${this.timeoutMs} ms${because}`, {
      indeterminate,
      ...(last === undefined ? {} : { cause: last }),
    });
  }
}
