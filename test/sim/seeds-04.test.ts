// Simulator seeds 301–400 (CI runs seeds 1–1000 over ten files, so they run in parallel).

import { testSeedRange } from './seed-range.js';

testSeedRange(301, 400);
