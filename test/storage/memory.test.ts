// The storage suite on the memory engine.

import { storageSuite } from './suite.js';

storageSuite('memory');
