// The package's main export: the Conclave client and its public types.

export { Client } from './client.js';
export { ConclaveError, type ConclaveErrorCode } from './errors.js';
export type { BackoffOptions, ClientOptions } from './options.js';
export type * from './types.js';
export type { Watch } from './watch.js';
