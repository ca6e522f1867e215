// Loads uWebSockets.js and reports whether its native binary or its slow ws-based fallback is active.

import { createRequire } from 'node:module';

export type Uws = typeof import('uWebSockets.js');

/** Which uWS implementation this process runs. */
export interface UwsRuntime {
  readonly uws: Uws;
  /** True if the native binary loaded; false means the package fell back to its `ws` shim. */
  readonly native: boolean;
  /** The native binary's path, when native. */
  readonly binary: string | undefined;
  /** A phrase for the start-up log line. */
  readonly description: string;
}

const require = createRequire(import.meta.url);
const NATIVE_BINARY = /uWebSockets\.js[\\/]binaries[\\/]uws_[^\\/]+\.node$/;
let runtime: UwsRuntime | undefined;

/**
 * Loads uWS once per process. The package (uws-js-unofficial, under the alias
 * uWebSockets.js) catches a failed native load and silently returns a `ws`-based fallback
 * (also forced by UWS_USE_FALLBACK); it is detected here by looking for the native binary in
 * the module cache, and by the native-only SSLApp export.
 */
export function loadUws(): UwsRuntime {
  if (runtime !== undefined) return runtime;
  const uws = require('uWebSockets.js') as Uws;
  const binary = Object.keys(require.cache).find((path) => NATIVE_BINARY.test(path));
  const native = binary !== undefined && typeof (uws as { SSLApp?: unknown }).SSLApp === 'function';
  runtime = {
    uws,
    native,
    binary: native ? binary : undefined,
    description: native
      ? `native uWebSockets.js (${binary})`
      : 'uWebSockets.js FALLBACK (ws-based shim, no TLS, much slower): the native binary did not load',
  };
  return runtime;
}
