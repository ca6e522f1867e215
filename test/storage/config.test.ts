// Storage configuration: defaults, and every out-of-bounds value refused naming its setting.

import t from 'tap';
import { STORAGE_DEFAULTS, type StorageConfigInput, validateStorageConfig } from '../../storage/config.js';
import { MemoryVolume } from '../../storage/engine.js';
import { StorageConfigError } from '../../storage/errors.js';

const base: StorageConfigInput = { dataDir: '/tmp/x', clusterId: 'c1' };

t.test('defaults fill what is not given; rocksdb is the default engine', async (t) => {
  const config = validateStorageConfig(base);
  t.equal(config.storageEngine, 'rocksdb');
  t.equal(
    config.rocksdbSyncedWrites,
    'inline',
    'synced writes on the event loop by default (measured faster)',
  );
  t.equal(config.historyMaxRevisions, STORAGE_DEFAULTS.historyMaxRevisions);
});

t.test('a bad value is refused with StorageConfigError naming the setting', async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ['dataDir', { dataDir: '' }],
    ['clusterId', { clusterId: '' }],
    ['clusterId', { clusterId: 'has space' }],
    ['clusterId', { clusterId: 'x'.repeat(129) }],
    ['storageEngine', { storageEngine: 'sqlite' }],
    ['rocksdbSyncedWrites', { rocksdbSyncedWrites: 'threaded' }],
    ['memoryVolume', { memoryVolume: new MemoryVolume() }],
    ['memoryVolume', { storageEngine: 'memory', memoryVolume: {} }],
    ['logCacheMaxEntries', { logCacheMaxEntries: -1 }],
    ['logCacheMaxBytes', { logCacheMaxBytes: 1.5 }],
    ['writeBatchMaxBytes', { writeBatchMaxBytes: 10 }],
    ['writeQueueMaxPendingBytes', { writeBatchMaxBytes: 1 << 20, writeQueueMaxPendingBytes: 1 << 19 }],
    ['historyMaxRevisions', { historyMaxRevisions: 0 }],
    ['historyMaxBytes', { historyMaxBytes: 10 }],
    ['sessionsMax', { sessionsMax: 0 }],
    ['sessionTtlMs', { sessionTtlMs: 999 }],
    ['sessionResponsesMax', { sessionResponsesMax: 0 }],
    ['keyMaxBytes', { keyMaxBytes: 0 }],
    ['valueMaxBytes', { valueMaxBytes: Number.NaN }],
    ['commandMaxBytes', { commandMaxBytes: 100 }],
    ['txnMaxOps', { txnMaxOps: 0 }],
    ['jsonMaxDepth', { jsonMaxDepth: 0 }],
    ['realmsMax', { realmsMax: 0 }],
    ['listMaxLimit', { listMaxLimit: 0 }],
    ['snapshotChunkBytes', { snapshotChunkBytes: 100 }],
    ['snapshotsRetained', { snapshotsRetained: 0 }],
    ['rocksdbCacheBytes', { rocksdbCacheBytes: 2 ** 32 }],
    ['docCacheBytes', { docCacheBytes: -1 }],
  ];
  for (const [setting, patch] of cases) {
    const error = (() => {
      try {
        validateStorageConfig({ ...base, ...patch } as StorageConfigInput);
        return undefined;
      } catch (caught) {
        return caught;
      }
    })();
    t.ok(error instanceof StorageConfigError, `${setting}: refused`);
    t.equal((error as StorageConfigError).setting, setting, `${setting}: named`);
    t.match((error as Error).message, setting);
  }
});
