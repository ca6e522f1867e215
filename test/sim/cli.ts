// The simulator's command line: `npm run sim -- --seeds N [--seed S] [--steps K] [--verbose]`.

import { runSimulation, SIMULATION_DEFAULTS } from './simulation.js';

interface CliOptions {
  seeds: number;
  seed: number;
  steps: number;
  verbose: boolean;
}

function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { seeds: 1, seed: 1, steps: SIMULATION_DEFAULTS.steps, verbose: false };
  let seedsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--verbose') {
      options.verbose = true;
      continue;
    }
    const value = argv[++i];
    const number = Number(value);
    if (value === undefined || !Number.isSafeInteger(number) || number < 0) {
      throw new Error(
        `${flag} needs a non-negative integer, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`,
      );
    }
    if (flag === '--seeds') {
      if (number < 1) throw new Error('--seeds must be at least 1');
      options.seeds = number;
      seedsGiven = true;
    } else if (flag === '--seed') {
      options.seed = number;
      if (!seedsGiven) options.seeds = 1;
    } else if (flag === '--steps') {
      if (number < 1) throw new Error('--steps must be at least 1');
      options.steps = number;
    } else {
      throw new Error(`unknown flag ${flag} (use --seeds N, --seed S, --steps K, --verbose)`);
    }
  }
  return options;
}

function main(): number {
  let options: CliOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`sim: ${(error as Error).message}`);
    return 2;
  }
  let violations = 0;
  const started = performance.now();
  for (let seed = options.seed; seed < options.seed + options.seeds; seed++) {
    const result = runSimulation({ seed, steps: options.steps, verbose: options.verbose });
    if (options.verbose || options.seeds === 1) console.log(`seed ${seed}: ${JSON.stringify(result.stats)}`);
    if (result.violations.length > 0) {
      violations += result.violations.length;
      console.log(`seed ${seed} FAILED:`);
      for (const violation of result.violations) console.log(`  ${violation}`);
      console.log(`  replay: npm run sim -- --seed ${seed} --steps ${options.steps} --verbose`);
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (options.seeds > 1) console.log(`(${seconds} s)`);
  console.log(`sim: ${options.seeds} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

process.exitCode = main();
