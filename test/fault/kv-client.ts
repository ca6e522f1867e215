// What a workload client does against the cluster, and the three ways an operation can end.

/** ok: answered; fail: definitely had no effect; unknown: may have taken effect, or may yet. */
export type Outcome<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'fail'; readonly reason: string }
  | { readonly kind: 'unknown'; readonly reason: string };

/** Single-key operations on string values in the `default` realm; `null` means absent. */
export interface KvClient {
  /** Where it sends requests, for logs. */
  readonly label: string;
  get(key: string): Promise<Outcome<string | null>>;
  put(key: string, value: string): Promise<Outcome<true>>;
  /** Deletes the key; a key that is absent fails (NOT_FOUND) without effect. */
  del(key: string): Promise<Outcome<true>>;
  /** Writes `value` iff the key holds `expected` (`null`: iff absent); ok(false) when it does not. */
  cas(key: string, expected: string | null, value: string): Promise<Outcome<boolean>>;
  close(): Promise<void>;
}
