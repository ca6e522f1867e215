// The storage suite on the leveldb engine.

import { storageSuite } from './suite.js';

storageSuite('leveldb');
