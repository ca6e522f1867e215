// The attempt loop shared by every call: send, and on a lost connection or a retryable answer, send again.

import type { WsAnswer } from '../ws-protocol.js';
import type { CallContext } from './call.js';
import { ERRORS_BEFORE_ROTATE } from './constants.js';
import { type ConclaveError, ConnectionLostError, errorFromWire } from './errors.js';
import type { Link } from './link.js';
import type { CallHooks, RequestBody } from './rpc.js';

/** What the attempt loop needs from the client: a link, a way to send on it, backoff. */
export interface Transport {
  open(signal: AbortSignal): Promise<Link>;
  call(link: Link, body: RequestBody, signal: AbortSignal, hooks?: CallHooks): Promise<WsAnswer>;
  /** Gives up on `link` for another node. */
  drop(link: Link): void;
  /** Why the last connection attempt failed, if it did. */
  connectFailure(): ConclaveError | undefined;
  /** Backoff before the `round`-th retry after retryable answers. */
  backoffMs(round: number): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * Sends the request `body()` builds (rebuilt per attempt) until an answer that is not a
 * retryable error: resolves with that answer (ok, or a definite error for the caller to
 * judge). A lost connection is retried at once on the next one (the Connection paces
 * dialing); a retryable error answer after a jittered backoff, and after ERRORS_BEFORE_ROTATE
 * of them in a row from one connection the client moves to another node. Rejects with the
 * context's abort reason at its deadline or on close (the caller maps it with abortError),
 * and with anything unexpected. ctx.lastError records the last retryable failure.
 */
export async function exchange(
  transport: Transport,
  ctx: CallContext,
  body: () => RequestBody,
  hooks: CallHooks = {},
): Promise<WsAnswer> {
  let errorAnswers = 0;
  let errorLink: Link | undefined;
  let errorsOnLink = 0;
  for (;;) {
    let link: Link;
    try {
      link = await transport.open(ctx.signal);
    } catch (error) {
      ctx.lastError ??= transport.connectFailure();
      throw error;
    }
    let answer: WsAnswer;
    try {
      answer = await transport.call(link, body(), ctx.signal, hooks);
    } catch (error) {
      if (!(error instanceof ConnectionLostError) || ctx.aborted) throw error;
      ctx.lastError = error;
      // The link may not have reported its close yet; never hand it out again.
      transport.drop(link);
      continue;
    }
    if (answer.ok) return answer;
    const error = errorFromWire(answer.error);
    if (!error.retryable) return answer;
    ctx.lastError = error;
    errorAnswers += 1;
    errorsOnLink = link === errorLink ? errorsOnLink + 1 : 1;
    errorLink = link;
    if (error.code === 'REMOVED') {
      // That node is out of the cluster for good: go to another at once.
      errorsOnLink = 0;
      transport.drop(link);
      continue;
    }
    if (errorsOnLink >= ERRORS_BEFORE_ROTATE) {
      errorsOnLink = 0;
      transport.drop(link);
    }
    await transport.sleep(transport.backoffMs(errorAnswers), ctx.signal);
  }
}
