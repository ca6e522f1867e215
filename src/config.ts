// The node's configuration: flags over CONCLAVE_* environment over a config file over defaults, validated at start.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { LogLevel } from '../net/log.js';
import {
  MEMBER_ROLES,
  type MemberRole,
  ROCKS_SYNCED_WRITES,
  type RocksSyncedWrites,
} from '../storage/index.js';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** What a node may be told to run. A node never guesses: it needs --services or --single. */
export const SERVICES = ['raft', 'api', 'admin', 'backup'] as const;
export type Service = (typeof SERVICES)[number];

export const STORAGE_ENGINES = ['rocksdb', 'leveldb'] as const;
export type StorageEngineName = (typeof STORAGE_ENGINES)[number];

export interface ClusterMember {
  readonly name: string;
  /** The member's mesh address, a multiaddr such as /ip4/10.0.0.1/tcp/7001 (optionally with /p2p/<id>). */
  readonly address: string;
}

export interface NodeConfig {
  readonly name: string;
  /** A member's data; a stateless proxy keeps only its node key there (see ephemeralKey). */
  readonly dataDir: string;
  /**
   * A stateless proxy (services without raft) started without --data-dir: its node key lives in
   * memory and it writes no file at all.
   */
  readonly ephemeralKey: boolean;
  /** The mesh's listen address; '' for a satellite that only dials (listens nowhere). */
  readonly peerListen: string;
  readonly clientHost: string;
  readonly clientPort: number;
  /** Founding members; empty for a node that joins an existing cluster (see `join`). */
  readonly initialCluster: readonly ClusterMember[];
  /** Mesh addresses of members of an existing cluster this node joins (added with `conclave members add`). */
  readonly join: readonly string[];
  /**
   * With --join: the role this node asks the cluster to add it in (a voter is added as a
   * learner, then promoted once caught up). Undefined: it waits for `conclave members add`.
   */
  readonly role: MemberRole | undefined;
  readonly clusterSecretFile: string | undefined;
  readonly services: readonly Service[];
  readonly single: boolean;
  readonly storageEngine: StorageEngineName;
  /** Where RocksDB's synced writes run: inline on the event loop (default) or on a worker thread. */
  readonly rocksdbSyncedWrites: RocksSyncedWrites;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly requestTimeoutMs: number;
  /** A voter the leader has not heard from for this long is replaced by a caught-up spare, if there is one. */
  readonly sparePromoteAfterMs: number;
  /** With the backup service: where its scheduled backups go, how often, how many are kept. */
  readonly backupDir: string | undefined;
  readonly backupIntervalMs: number;
  /**
   * On SIGTERM or a drain request: how long the node reports not ready while still serving,
   * before it hands leadership over and stops (load balancers stop sending meanwhile).
   */
  readonly drainDelayMs: number;
  readonly backupKeep: number;
  readonly maxRequestBytes: number;
  /** Entries applied past the log's first index before the node snapshots and compacts. */
  readonly snapshotEntries: number;
  /** Entries kept before the snapshot point, so followers that lag a little catch up from the log. */
  readonly logRetainEntries: number;
  readonly logLevel: LogLevel;
  readonly tlsKeyFile: string | undefined;
  readonly tlsCertFile: string | undefined;
  /** --auth: this node requires tokens, and a founder turns auth on for the cluster with its first admin token. */
  readonly auth: boolean;
  /** --insecure-no-auth: serve without tokens on a client address beyond loopback (unless the cluster turned auth on). */
  readonly insecureNoAuth: boolean;
}

/** Whether a client host is a loopback address (only this machine can reach it). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Whether this node requires a token of every client whatever the cluster says: with --auth, or
 * listening beyond loopback without --insecure-no-auth. (The cluster's definition may also
 * turn auth on: then every node requires one.)
 */
export function nodeRequiresAuth(
  config: Pick<NodeConfig, 'auth' | 'insecureNoAuth' | 'clientHost'>,
): boolean {
  return config.auth || (!isLoopbackHost(config.clientHost) && !config.insecureNoAuth);
}

/** A refused setting: `setting` is the flag name, `source` where the value came from. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(
    readonly setting: string,
    readonly source: string,
    detail: string,
  ) {
    super(`invalid ${setting} (from ${source}): ${detail}`);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'integer' | 'boolean' | 'list';

interface Setting {
  /** The key in NodeConfig and in config files. */
  readonly key: keyof NodeConfig;
  /** The command-line flag without dashes; the environment variable is CONCLAVE_ + its upper snake case. */
  readonly flag: string;
  readonly kind: Kind;
  readonly describe: string;
}

/** Every setting, once: the CLI, the environment and config files are all read through this table. */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'name',
    flag: 'name',
    kind: 'string',
    describe: 'this node’s name in the cluster (letters, digits, -, _)',
  },
  { key: 'dataDir', flag: 'data-dir', kind: 'string', describe: 'where this node keeps its data and key' },
  {
    key: 'peerListen',
    flag: 'peer-listen',
    kind: 'string',
    describe: 'mesh listen multiaddr, e.g. /ip4/127.0.0.1/tcp/7001',
  },
  {
    key: 'clientHost',
    flag: 'client-host',
    kind: 'string',
    describe: 'client edge host (see also --client-listen)',
  },
  {
    key: 'clientPort',
    flag: 'client-port',
    kind: 'integer',
    describe: 'client edge port (see also --client-listen)',
  },
  {
    key: 'initialCluster',
    flag: 'initial-cluster',
    kind: 'list',
    describe: 'founding members: name=multiaddr,...',
  },
  {
    key: 'join',
    flag: 'join',
    kind: 'list',
    describe: 'join an existing cluster through these members: multiaddr,... (instead of --initial-cluster)',
  },
  {
    key: 'role',
    flag: 'role',
    kind: 'string',
    describe: `with --join: ask to be added in this role, one of ${MEMBER_ROLES.join(', ')} (without it, wait for \`conclave members add\`)`,
  },
  {
    key: 'sparePromoteAfterMs',
    flag: 'spare-promote-after',
    kind: 'integer',
    describe:
      'ms: the leader replaces a voter it has not heard from for this long with a caught-up spare, if there is one (default 30000)',
  },
  {
    key: 'backupDir',
    flag: 'backup-dir',
    kind: 'string',
    describe:
      'with the backup service: the directory scheduled backups are written to (one per interval for the cluster)',
  },
  {
    key: 'drainDelayMs',
    flag: 'drain-delay',
    kind: 'string',
    describe:
      'on SIGTERM or `conclave drain`: how long to report not ready while still serving before stopping, e.g. 5s (default 0)',
  },
  {
    key: 'backupIntervalMs',
    flag: 'backup-interval',
    kind: 'string',
    describe:
      'with the backup service: how often, e.g. 1h, 30m, 90s or milliseconds (default 1h, at least 1s)',
  },
  {
    key: 'backupKeep',
    flag: 'backup-keep',
    kind: 'integer',
    describe: 'with the backup service: how many of this cluster’s backups the directory keeps (default 24)',
  },
  {
    key: 'clusterSecretFile',
    flag: 'cluster-secret-file',
    kind: 'string',
    describe: 'file holding the cluster secret',
  },
  {
    key: 'services',
    flag: 'services',
    kind: 'list',
    describe:
      `what this node runs, of ${SERVICES.join(',')}: raft holds a replica and stores data; api serves clients ` +
      'over HTTP and WebSocket (without it no client port is opened); admin accepts membership and leadership ' +
      'commands on the client port. Without raft the node is a stateless proxy: it serves the client API by ' +
      'forwarding to the members it finds from --join (or --initial-cluster) and stores nothing',
  },
  { key: 'single', flag: 'single', kind: 'boolean', describe: 'one node with every service (laptop mode)' },
  {
    key: 'auth',
    flag: 'auth',
    kind: 'boolean',
    describe:
      'require a token of every client; a founder turns auth on for the whole cluster and writes the first ' +
      'cluster-admin token to DATA_DIR/admin.token (0600)',
  },
  {
    key: 'insecureNoAuth',
    flag: 'insecure-no-auth',
    kind: 'boolean',
    describe:
      'serve clients without tokens even on a non-loopback --client-host (unless the cluster turned auth on)',
  },
  { key: 'storageEngine', flag: 'storage-engine', kind: 'string', describe: STORAGE_ENGINES.join(' or ') },
  {
    key: 'rocksdbSyncedWrites',
    flag: 'rocksdb-synced-writes',
    kind: 'string',
    describe: `${ROCKS_SYNCED_WRITES.join(' or ')}: fsync RocksDB's log on the event loop (default), or on a worker thread`,
  },
  {
    key: 'electionTimeoutMs',
    flag: 'election-timeout-ms',
    kind: 'integer',
    describe: 'leader loss detection, ms',
  },
  {
    key: 'heartbeatIntervalMs',
    flag: 'heartbeat-interval-ms',
    kind: 'integer',
    describe: 'leader heartbeat, ms',
  },
  {
    key: 'requestTimeoutMs',
    flag: 'request-timeout-ms',
    kind: 'integer',
    describe: 'client request deadline, ms',
  },
  {
    key: 'maxRequestBytes',
    flag: 'max-request-bytes',
    kind: 'integer',
    describe: 'largest client request body',
  },
  {
    key: 'snapshotEntries',
    flag: 'snapshot-entries',
    kind: 'integer',
    describe: 'applied entries between snapshots',
  },
  {
    key: 'logRetainEntries',
    flag: 'log-retain-entries',
    kind: 'integer',
    describe: 'log entries kept behind a snapshot',
  },
  { key: 'logLevel', flag: 'log-level', kind: 'string', describe: LOG_LEVELS.join(', ') },
  { key: 'tlsKeyFile', flag: 'tls-key-file', kind: 'string', describe: 'TLS key for the client edge' },
  {
    key: 'tlsCertFile',
    flag: 'tls-cert-file',
    kind: 'string',
    describe: 'TLS certificate for the client edge',
  },
];

export const CONFIG_DEFAULTS = {
  dataDir: './data',
  peerListen: '/ip4/127.0.0.1/tcp/7000',
  clientHost: '127.0.0.1',
  clientPort: 8080,
  storageEngine: 'rocksdb',
  rocksdbSyncedWrites: 'inline',
  // A dead leader is noticed after 300–600 ms (randomised), heartbeats every 50 ms.
  electionTimeoutMs: 300,
  heartbeatIntervalMs: 50,
  requestTimeoutMs: 5000,
  sparePromoteAfterMs: 30_000,
  backupIntervalMs: 3_600_000,
  backupKeep: 24,
  maxRequestBytes: 1024 * 1024,
  // etcd's default (snapshot-count) too. Taking a snapshot walks the whole state on every node at
  // about the same index, which stalls writes for tens of ms: at 10,000, under 2,500 writes/s,
  // that happened every 4 s and set p99 (76-81 ms against 58-67 ms at 100,000, 64 writers).
  // The price is a longer log on disk and up to 100,000 entries to replay at restart (about 1 s).
  snapshotEntries: 100_000,
  logRetainEntries: 1_000,
  logLevel: 'warn',
} as const;

export function envName(flag: string): string {
  return `CONCLAVE_${flag.toUpperCase().replaceAll('-', '_')}`;
}

type Raw = Partial<Record<keyof NodeConfig | 'clientListen', { value: unknown; source: string }>>;

/**
 * Builds the configuration from, in rising precedence: defaults, the config file named by
 * `--config` / CONCLAVE_CONFIG (YAML or JSON, keys as in NodeConfig), CONCLAVE_* variables,
 * and flags. Throws ConfigError naming the first bad setting and where it came from.
 */
export function resolveConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): NodeConfig {
  const raw: Raw = {};
  const configPath = (flags.config as string | undefined) ?? env.CONCLAVE_CONFIG;
  if (configPath !== undefined) readConfigFile(configPath, raw);
  for (const setting of SETTINGS) {
    const fromEnv = env[envName(setting.flag)];
    if (fromEnv !== undefined) raw[setting.key] = { value: fromEnv, source: envName(setting.flag) };
  }
  if (env.CONCLAVE_CLIENT_LISTEN !== undefined)
    raw.clientListen = { value: env.CONCLAVE_CLIENT_LISTEN, source: 'CONCLAVE_CLIENT_LISTEN' };
  for (const setting of SETTINGS) {
    const fromFlag = flags[setting.flag];
    if (fromFlag !== undefined) raw[setting.key] = { value: fromFlag, source: `--${setting.flag}` };
  }
  if (flags['client-listen'] !== undefined)
    raw.clientListen = { value: flags['client-listen'], source: '--client-listen' };
  return validate(raw);
}

function readConfigFile(path: string, raw: Raw): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('config', path, `cannot read it: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      'config',
      path,
      `not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('config', path, 'must hold a mapping of settings');
  }
  const known = new Set<string>([...SETTINGS.map((s) => s.key), 'clientListen']);
  for (const [key, value] of Object.entries(parsed)) {
    if (!known.has(key))
      throw new ConfigError(key, path, `unknown setting (known: ${[...known].join(', ')})`);
    raw[key as keyof Raw] = { value, source: path };
  }
}

/** A mesh address: a TCP multiaddr, optionally pinning the peer id. */
const TCP_MULTIADDR = /^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/[A-Za-z0-9]+)?$/;

/** A node name: what raft, the membership and the CLI call a node. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function validate(raw: Raw): NodeConfig {
  const single = toBoolean(raw, 'single', 'single') ?? false;
  const name = toText(raw, 'name', 'name') ?? (single ? 'node1' : undefined);
  if (name === undefined)
    throw new ConfigError(
      'name',
      'nothing',
      'every node needs a name (--name), or start a single node on this machine with --single',
    );
  if (!NAME_PATTERN.test(name)) {
    throw new ConfigError(
      'name',
      raw.name?.source ?? 'default',
      `${JSON.stringify(name)} must be 1–64 letters, digits, - or _`,
    );
  }

  let clientHost = toText(raw, 'clientHost', 'client-host') ?? CONFIG_DEFAULTS.clientHost;
  let clientPort = toInteger(raw, 'clientPort', 'client-port', 0, 65535) ?? CONFIG_DEFAULTS.clientPort;
  if (raw.clientListen !== undefined) {
    const { value, source } = raw.clientListen;
    const match = typeof value === 'string' ? /^(.+):(\d{1,5})$/.exec(value) : null;
    const port = match ? Number(match[2]) : Number.NaN;
    if (!match || port > 65535)
      throw new ConfigError('client-listen', source, `${JSON.stringify(value)} is not HOST:PORT`);
    clientHost = match[1]!;
    clientPort = port;
  }

  const servicesRaw = toList(raw, 'services', 'services');
  let services: Service[];
  if (servicesRaw !== undefined) {
    for (const service of servicesRaw) {
      if (!(SERVICES as readonly string[]).includes(service)) {
        throw new ConfigError(
          'services',
          raw.services!.source,
          `unknown service ${JSON.stringify(service)} (known: ${SERVICES.join(', ')})`,
        );
      }
    }
    if (servicesRaw.length === 0) throw new ConfigError('services', raw.services!.source, 'names no service');
    services = [...new Set(servicesRaw as Service[])];
    if (!services.includes('raft') && !services.includes('api')) {
      throw new ConfigError(
        'services',
        raw.services!.source,
        `${JSON.stringify(servicesRaw.join(','))} has neither raft nor api: a node without raft is a stateless ` +
          'proxy and must serve clients (api)',
      );
    }
  } else if (single) {
    services = ['raft', 'api', 'admin', ...(raw.backupDir === undefined ? [] : (['backup'] as const))];
  } else {
    throw new ConfigError(
      'services',
      'nothing',
      'a node never guesses its job: start it with --single (one laptop node with every service) or --services ' +
        `${SERVICES.join(',')} (or a subset)`,
    );
  }

  // A proxy only dials members (they never dial it), so by default it takes any free port. A
  // satellite dials the members too (they never dial it): without --peer-listen it listens
  // nowhere, as behind a firewall in another site.
  const satellite = toText(raw, 'role', 'role') === 'satellite';
  const peerListen =
    toText(raw, 'peerListen', 'peer-listen') ??
    (satellite ? '' : services.includes('raft') ? CONFIG_DEFAULTS.peerListen : '/ip4/127.0.0.1/tcp/0');
  if (peerListen !== '' && !TCP_MULTIADDR.test(peerListen)) {
    throw new ConfigError(
      'peer-listen',
      raw.peerListen?.source ?? 'default',
      `${JSON.stringify(peerListen)} is not a TCP multiaddr like /ip4/127.0.0.1/tcp/7001`,
    );
  }
  const proxy = !services.includes('raft');
  const join = toList(raw, 'join', 'join') ?? [];
  if (proxy && join.length === 0 && raw.initialCluster === undefined) {
    throw new ConfigError(
      'join',
      'nothing',
      'a stateless proxy (services without raft) needs the mesh addresses of members: --join /ip4/…/tcp/7001,…',
    );
  }
  if (join.length > 0) {
    if (single) throw new ConfigError('join', raw.join!.source, 'a --single node does not join a cluster');
    if (raw.initialCluster !== undefined) {
      throw new ConfigError(
        'join',
        raw.join!.source,
        'give --join (a node added to a running cluster) or --initial-cluster (a founder), not both',
      );
    }
    for (const address of join) {
      if (!TCP_MULTIADDR.test(address)) {
        throw new ConfigError(
          'join',
          raw.join!.source,
          `${JSON.stringify(address)} is not a TCP multiaddr like /ip4/10.0.0.1/tcp/7001`,
        );
      }
    }
  }
  const initialCluster = join.length > 0 ? [] : parseInitialCluster(raw, name, peerListen, single, proxy);
  const role = toText(raw, 'role', 'role') as MemberRole | undefined;
  if (role !== undefined) {
    if (!(MEMBER_ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(
        'role',
        raw.role!.source,
        `${JSON.stringify(role)} is not one of ${MEMBER_ROLES.join(', ')}`,
      );
    }
    if (join.length === 0 || proxy) {
      throw new ConfigError(
        'role',
        raw.role!.source,
        proxy
          ? 'a stateless proxy is no member and has no role'
          : 'only a node that joins (--join) asks for a role; founders (--initial-cluster) are voters',
      );
    }
    if (/^\/ip[46]\/(0\.0\.0\.0|::)\//.test(peerListen)) {
      throw new ConfigError(
        'peer-listen',
        raw.peerListen?.source ?? 'default',
        `${peerListen} is no address members can dial, and a node joining with --role tells them this one: listen on the node's own address`,
      );
    }
  }

  const storageEngine = toChoice(
    raw,
    'storageEngine',
    'storage-engine',
    STORAGE_ENGINES,
    CONFIG_DEFAULTS.storageEngine,
  );
  const rocksdbSyncedWrites = toChoice(
    raw,
    'rocksdbSyncedWrites',
    'rocksdb-synced-writes',
    ROCKS_SYNCED_WRITES,
    CONFIG_DEFAULTS.rocksdbSyncedWrites,
  );
  const logLevel = toChoice(raw, 'logLevel', 'log-level', LOG_LEVELS, CONFIG_DEFAULTS.logLevel);
  const heartbeatIntervalMs =
    toInteger(raw, 'heartbeatIntervalMs', 'heartbeat-interval-ms', 5, 10_000) ??
    CONFIG_DEFAULTS.heartbeatIntervalMs;
  const electionTimeoutMs =
    toInteger(raw, 'electionTimeoutMs', 'election-timeout-ms', 20, 120_000) ??
    CONFIG_DEFAULTS.electionTimeoutMs;
  if (electionTimeoutMs < 3 * heartbeatIntervalMs) {
    throw new ConfigError(
      'election-timeout-ms',
      raw.electionTimeoutMs?.source ?? 'default',
      `${electionTimeoutMs} must be at least 3 heartbeat intervals (${3 * heartbeatIntervalMs}), or followers time out between heartbeats`,
    );
  }
  const sparePromoteAfterMs =
    toInteger(raw, 'sparePromoteAfterMs', 'spare-promote-after', 1000, 86_400_000) ??
    CONFIG_DEFAULTS.sparePromoteAfterMs;
  if (sparePromoteAfterMs < 3 * electionTimeoutMs) {
    throw new ConfigError(
      'spare-promote-after',
      raw.sparePromoteAfterMs?.source ?? 'default',
      `${sparePromoteAfterMs} must be at least 3 election timeouts (${3 * electionTimeoutMs}): a voter is only replaced once it is surely gone`,
    );
  }
  const backup = parseBackupSettings(raw, services);
  const tlsKeyFile = toText(raw, 'tlsKeyFile', 'tls-key-file');
  const tlsCertFile = toText(raw, 'tlsCertFile', 'tls-cert-file');
  if ((tlsKeyFile === undefined) !== (tlsCertFile === undefined)) {
    throw new ConfigError(
      tlsKeyFile ? 'tls-cert-file' : 'tls-key-file',
      'nothing',
      'TLS needs both a key and a certificate',
    );
  }
  let drainDelayMs = 0;
  if (raw.drainDelayMs !== undefined) {
    const parsed = parseDuration(raw.drainDelayMs.value);
    if (parsed === undefined || parsed > 300_000) {
      throw new ConfigError(
        'drain-delay',
        raw.drainDelayMs.source,
        `${JSON.stringify(raw.drainDelayMs.value)} is not a duration from 0 to 5m (such as 5s or 1500ms)`,
      );
    }
    drainDelayMs = parsed;
  }
  const auth = toBoolean(raw, 'auth', 'auth') ?? false;
  const insecureNoAuth = toBoolean(raw, 'insecureNoAuth', 'insecure-no-auth') ?? false;
  if (auth && insecureNoAuth) {
    throw new ConfigError(
      'insecure-no-auth',
      raw.insecureNoAuth!.source,
      'contradicts --auth: give one of them',
    );
  }
  const clusterSecretFile = toText(raw, 'clusterSecretFile', 'cluster-secret-file');
  if ((initialCluster.length > 1 || join.length > 0 || proxy) && clusterSecretFile === undefined) {
    throw new ConfigError(
      'cluster-secret-file',
      'nothing',
      'a cluster of several nodes needs a shared secret (conclave secret new > FILE)',
    );
  }
  return {
    name,
    dataDir: resolve(toText(raw, 'dataDir', 'data-dir') ?? CONFIG_DEFAULTS.dataDir),
    ephemeralKey: proxy && raw.dataDir === undefined,
    peerListen,
    clientHost,
    clientPort,
    initialCluster,
    join,
    role,
    clusterSecretFile: clusterSecretFile === undefined ? undefined : resolve(clusterSecretFile),
    services,
    single,
    storageEngine,
    rocksdbSyncedWrites,
    electionTimeoutMs,
    heartbeatIntervalMs,
    requestTimeoutMs:
      toInteger(raw, 'requestTimeoutMs', 'request-timeout-ms', 10, 600_000) ??
      CONFIG_DEFAULTS.requestTimeoutMs,
    sparePromoteAfterMs,
    ...backup,
    maxRequestBytes:
      toInteger(raw, 'maxRequestBytes', 'max-request-bytes', 1024, 64 * 1024 * 1024) ??
      CONFIG_DEFAULTS.maxRequestBytes,
    snapshotEntries:
      toInteger(raw, 'snapshotEntries', 'snapshot-entries', 10, 100_000_000) ??
      CONFIG_DEFAULTS.snapshotEntries,
    logRetainEntries:
      toInteger(raw, 'logRetainEntries', 'log-retain-entries', 0, 100_000_000) ??
      CONFIG_DEFAULTS.logRetainEntries,
    logLevel,
    tlsKeyFile,
    tlsCertFile,
    auth,
    insecureNoAuth,
    drainDelayMs,
  };
}

/** --backup-dir, --backup-interval and --backup-keep: only with the backup service, which needs raft and a directory. */
function parseBackupSettings(
  raw: Raw,
  services: readonly Service[],
): Pick<NodeConfig, 'backupDir' | 'backupIntervalMs' | 'backupKeep'> {
  const backupDir = toText(raw, 'backupDir', 'backup-dir');
  const interval = raw.backupIntervalMs;
  const keep = toInteger(raw, 'backupKeep', 'backup-keep', 1, 100_000);
  if (!services.includes('backup')) {
    const given = (['backupDir', 'backupIntervalMs', 'backupKeep'] as const).find(
      (key) => raw[key] !== undefined,
    );
    if (given !== undefined) {
      const flag = {
        backupDir: 'backup-dir',
        backupIntervalMs: 'backup-interval',
        backupKeep: 'backup-keep',
      }[given];
      throw new ConfigError(flag, raw[given]!.source, 'is for the backup service: add backup to --services');
    }
    return {
      backupDir: undefined,
      backupIntervalMs: CONFIG_DEFAULTS.backupIntervalMs,
      backupKeep: CONFIG_DEFAULTS.backupKeep,
    };
  }
  if (!services.includes('raft')) {
    throw new ConfigError(
      'services',
      raw.services?.source ?? 'default',
      'the backup service backs up this node’s replica: it needs raft',
    );
  }
  if (backupDir === undefined || backupDir === '') {
    throw new ConfigError(
      'backup-dir',
      'nothing',
      'the backup service needs --backup-dir, the directory its backups go to',
    );
  }
  let backupIntervalMs: number = CONFIG_DEFAULTS.backupIntervalMs;
  if (interval !== undefined) {
    const parsed = parseDuration(interval.value);
    if (parsed === undefined || parsed < 1000 || parsed > 30 * 86_400_000) {
      throw new ConfigError(
        'backup-interval',
        interval.source,
        `${JSON.stringify(interval.value)} is not a duration from 1s to 30d (such as 1h, 30m, 90s, 1500ms, or milliseconds)`,
      );
    }
    backupIntervalMs = parsed;
  }
  return { backupDir: resolve(backupDir), backupIntervalMs, backupKeep: keep ?? CONFIG_DEFAULTS.backupKeep };
}

/** `1h`, `30m`, `90s`, `1500ms`, `2d`, or a whole number of milliseconds; undefined if none of those. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  if (match === null) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  const ms = Number(match[1]) * unit;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The founding members; a proxy (`proxy`) takes them as addresses of members and is not among them. */
function parseInitialCluster(
  raw: Raw,
  name: string,
  peerListen: string,
  single: boolean,
  proxy: boolean,
): ClusterMember[] {
  const entries = toList(raw, 'initialCluster', 'initial-cluster');
  if (entries === undefined) {
    if (single) return [{ name, address: peerListen }];
    throw new ConfigError(
      'initial-cluster',
      'nothing',
      'name the founding members: --initial-cluster n1=/ip4/…/tcp/7001,n2=…',
    );
  }
  const source = raw.initialCluster!.source;
  const members: ClusterMember[] = [];
  for (const entry of entries) {
    const at = entry.indexOf('=');
    const memberName = entry.slice(0, at);
    const address = entry.slice(at + 1);
    if (at <= 0 || !NAME_PATTERN.test(memberName) || !address.startsWith('/')) {
      throw new ConfigError('initial-cluster', source, `${JSON.stringify(entry)} is not NAME=MULTIADDR`);
    }
    if (members.some((m) => m.name === memberName))
      throw new ConfigError('initial-cluster', source, `${memberName} is listed twice`);
    members.push({ name: memberName, address });
  }
  if (!proxy && !members.some((m) => m.name === name)) {
    throw new ConfigError(
      'initial-cluster',
      source,
      `does not list this node (${name}); list every founding member, this one included`,
    );
  }
  if (members.length > 9)
    throw new ConfigError(
      'initial-cluster',
      source,
      `${members.length} founding voters; at most 9 (add learners later)`,
    );
  return members;
}

function toText(raw: Raw, key: keyof NodeConfig, flag: string): string | undefined {
  const entry = raw[key];
  if (entry === undefined) return undefined;
  if (typeof entry.value !== 'string' || entry.value.length === 0) {
    throw new ConfigError(flag, entry.source, `${JSON.stringify(entry.value)} must be a non-empty string`);
  }
  return entry.value;
}

/** One of `choices`, or `fallback` if not given; anything else is refused naming the flag. */
function toChoice<T extends string>(
  raw: Raw,
  key: keyof NodeConfig,
  flag: string,
  choices: readonly T[],
  fallback: T,
): T {
  const value = toText(raw, key, flag);
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw new ConfigError(
      flag,
      raw[key]!.source,
      `${JSON.stringify(value)} is not one of ${choices.join(', ')}`,
    );
  }
  return value as T;
}

function toInteger(
  raw: Raw,
  key: keyof NodeConfig,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  const entry = raw[key];
  if (entry === undefined) return undefined;
  const value =
    typeof entry.value === 'string' && /^-?\d+$/.test(entry.value.trim()) ? Number(entry.value) : entry.value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      flag,
      entry.source,
      `${JSON.stringify(entry.value)} must be an integer in [${min}, ${max}]`,
    );
  }
  return value;
}

function toBoolean(raw: Raw, key: keyof NodeConfig, flag: string): boolean | undefined {
  const entry = raw[key];
  if (entry === undefined) return undefined;
  if (typeof entry.value === 'boolean') return entry.value;
  if (entry.value === 'true' || entry.value === '1') return true;
  if (entry.value === 'false' || entry.value === '0') return false;
  throw new ConfigError(flag, entry.source, `${JSON.stringify(entry.value)} must be true or false`);
}

function toList(raw: Raw, key: keyof NodeConfig, flag: string): string[] | undefined {
  const entry = raw[key];
  if (entry === undefined) return undefined;
  const items = Array.isArray(entry.value)
    ? entry.value
    : typeof entry.value === 'string'
      ? entry.value.split(',')
      : undefined;
  if (items === undefined || !items.every((item) => typeof item === 'string')) {
    throw new ConfigError(
      flag,
      entry.source,
      `${JSON.stringify(entry.value)} must be a comma-separated list`,
    );
  }
  return (items as string[]).map((item) => item.trim()).filter((item) => item.length > 0);
}
