// Simulator seeds 201–300 (CI runs seeds 1–1000 over ten files, so they run in parallel).

import { testSeedRange } from './seed-range.js';

testSeedRange(201, 300);
