// The storage suite on the rocksdb engine.

import { storageSuite } from './suite.js';

storageSuite('rocksdb');
