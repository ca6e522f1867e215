// net/'s public surface for src/: the mesh between nodes, the client edge, and their building blocks.

import './polyfill.js';

export { type BackoffPolicy, backoffDelayMs } from './backoff.js';
export {
  DEFAULT_RAFT_CODEC_LIMITS,
  decodeRaftBatch,
  encodeRaftBatch,
  type RaftBatch,
  type RaftCodecLimits,
} from './codec.js';
export { MESH_DEFAULTS, type MeshLimits, validateMeshLimits } from './config.js';
export {
  EDGE_DEFAULTS,
  Edge,
  type EdgeCounters,
  EdgeError,
  type EdgeErrorCode,
  type EdgeErrorTable,
  type EdgeInit,
  type EdgeLimits,
  type EdgeRequest,
  type EdgeResponse,
  type EdgeRoute,
  type EdgeSocket,
  type EdgeWebSocketHandler,
  type HttpMethod,
  validateEdgeLimits,
} from './edge.js';
export {
  describeError,
  FrameTooLargeError,
  MalformedFrameError,
  NetConfigError,
  NetError,
  type NetErrorCode,
  RemoteError,
} from './errors.js';
export { HelloError } from './hello.js';
export { ephemeralNodeKey, loadOrCreateNodeKey, NODE_KEY_FILE, type NodeIdentity } from './identity.js';
export {
  type JsonLoggerInit,
  jsonLogger,
  type Logger,
  type LogLevel,
  silentLogger,
  withFields,
} from './log.js';
export {
  Mesh,
  type MeshCounters,
  type MeshHandlers,
  type MeshInit,
  type PeerStatus,
  PROTOCOLS,
} from './mesh.js';
export type { RequestContext, RequestHandler, RequestOptions } from './rpc.js';
export {
  type ClusterSecret,
  generateClusterSecret,
  parseClusterSecret,
  readClusterSecretFile,
  SECRET_FILE_HEADER,
} from './secret.js';
export type { IncomingSnapshot, SendSnapshotOptions, SnapshotHandler } from './snapshot.js';
export { loadUws, type UwsRuntime } from './uws.js';
