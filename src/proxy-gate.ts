// A stateless proxy's gate: who a token belongs to, asked of a member and kept for half a second, so revocations reach the proxy's callers within a second.

import type { Gate, Principal } from './auth.js';

/** How long a member's answer about a token is kept. */
const KEEP_MS = 500;
/** Tokens whose answers are kept at once; beyond, the oldest is dropped. */
const MAX_KEPT = 10_000;

interface Kept {
  readonly at: number;
  readonly principal?: Principal;
  readonly error?: unknown;
}

/**
 * Asks `ask` (a member, over the mesh) who a token belongs to, and keeps the answer, a refusal
 * included, for KEEP_MS: a revoked token is refused here at most KEEP_MS after the member
 * applied the revocation. A failure to ask (no member reachable) is not kept.
 */
export class ProxyGate implements Gate {
  private readonly kept = new Map<string, Kept>();

  constructor(
    private readonly ask: (token: string | undefined, require: boolean) => Promise<Principal>,
    private readonly now: () => number = Date.now,
  ) {}

  async principal(token: string | undefined, require = false): Promise<Principal> {
    const key = `${require ? 1 : 0}${token ?? ''}`;
    const now = this.now();
    const hit = this.kept.get(key);
    if (hit !== undefined && now - hit.at < KEEP_MS) {
      if (hit.principal !== undefined) return hit.principal;
      throw hit.error;
    }
    try {
      const principal = await this.ask(token, require);
      this.keep(key, { at: now, principal });
      return principal;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'UNAUTHENTICATED') this.keep(key, { at: now, error });
      throw error;
    }
  }

  private keep(key: string, value: Kept): void {
    this.kept.delete(key);
    if (this.kept.size >= MAX_KEPT) {
      const oldest = this.kept.keys().next().value;
      if (oldest !== undefined) this.kept.delete(oldest);
    }
    this.kept.set(key, value);
  }
}
