// Running one write under the session: seq, resend on failure, exactly-once, and an honest verdict on its fate.

import type { SessionRef } from '../ws-protocol.js';
import type { CallContext } from './call.js';
import { SESSION_RENEWALS_MAX } from './constants.js';
import { ConclaveError, errorFromWire, TooLargeError, withIndeterminate } from './errors.js';
import { exchange, type Transport } from './retry.js';
import type { RequestBody } from './rpc.js';
import type { Session, Sessions } from './session.js';
import { readResult } from './wire.js';

/**
 * Runs one write: waits for a write slot, takes the session (opening one if needed) and the
 * next seq, and sends the request `build(ref)` makes until it is answered. A lost connection
 * or a retryable answer resends the same (session, seq) — the cluster answers a retried seq
 * with the first attempt's result, so the write applies at most once.
 *
 * Throws ConclaveError:
 *  - the node's definite refusal (CONFLICT, NOT_FOUND, INVALID_ARGUMENT, TOO_LARGE, …):
 *    indeterminate false (the write did not apply);
 *  - SESSION_EXPIRED, indeterminate true, when a resend found its session gone (its first
 *    attempt may have applied). An expired session met on the first attempt is replaced
 *    and the write sent again under the new one, since the write cannot have applied;
 *  - TOO_LARGE, indeterminate false, for a request over maxRequestBytes (never sent) or one
 *    a node refused unread by closing the connection with 1009 on its first sending; true if
 *    an earlier sending may have been read by another node;
 *  - TLS_ERROR when no endpoint can be reached over TLS, indeterminate iff the write was sent;
 *  - TIMEOUT at the deadline or CLOSED on close, indeterminate iff the write was ever sent.
 */
export async function runWrite<T>(
  transport: Transport,
  sessions: Sessions,
  ctx: CallContext,
  build: (ref: SessionRef) => RequestBody,
  read: (result: unknown) => T,
  scope = '',
): Promise<T> {
  let slot = false;
  let pending: { session: Session; seq: number; sends: number } | undefined;
  try {
    await sessions.acquire(ctx.signal);
    slot = true;
    for (let renewals = 0; ; renewals++) {
      const session = await sessions.session(ctx.signal, scope);
      const attempt = { session, seq: session.take(), sends: 0 };
      pending = attempt;
      const answer = await exchange(transport, ctx, () => build(session.ref(attempt.seq)), {
        onSent: () => {
          attempt.sends += 1;
        },
      });
      pending = undefined;
      session.settle(attempt.seq);
      if (answer.ok) return readResult(answer.result, read, true);
      const error = errorFromWire(answer.error);
      if (error.code !== 'SESSION_EXPIRED') throw error;
      sessions.retire(session);
      const resent = attempt.sends > 1;
      if (resent || renewals >= SESSION_RENEWALS_MAX) {
        throw withIndeterminate(new ConclaveError('SESSION_EXPIRED', error.message), resent);
      }
    }
  } catch (error) {
    // Refused for its size before any sending, or unread on its only one: it never reached the cluster.
    const refusedUnread = error instanceof TooLargeError && (pending?.sends ?? 0) === (error.sent ? 1 : 0);
    const sent = pending !== undefined && pending.sends > 0 && !refusedUnread;
    if (pending !== undefined) abandon(sessions, pending.session, pending.seq, sent);
    if (ctx.aborted) throw ctx.abortError(sent);
    if (
      error instanceof ConclaveError &&
      !refusedUnread &&
      (error.code === 'TOO_LARGE' || error.code === 'TLS_ERROR')
    ) {
      throw withIndeterminate(error, sent);
    }
    throw error;
  } finally {
    if (slot) sessions.release();
  }
}

/** A seq given up on: one never sent frees the ack; one sent may still apply, so its session is retired. */
function abandon(sessions: Sessions, session: Session, seq: number, sent: boolean): void {
  if (sent) {
    sessions.retire(session);
  } else {
    session.settle(seq);
  }
}
