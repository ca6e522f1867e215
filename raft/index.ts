// The raft core's public surface.

export { RAFT_DEFAULTS, type RaftConfig, type RaftConfigInput, validateRaftConfig } from './config.js';
export * from './errors.js';
export type { LogStorage } from './log-storage.js';
export * from './membership-change.js';
export { MemoryStorage } from './memory-storage.js';
export { type Prng, SeededPrng } from './prng.js';
export { ProgressState } from './progress.js';
export { type ProgressStatus, type RaftStatus, RawNode } from './raw-node.js';
export * from './spare-policy.js';
export * from './types.js';
