// The simulator's command line: `npm run sim -- --seeds N [--seed S] [--steps K] [--jobs J] [--groups] [--verbose]`.

import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GROUPS_SIMULATION_DEFAULTS, runGroupsSimulation } from './groups-simulation.js';
import { runSimulation, SIMULATION_DEFAULTS } from './simulation.js';

interface CliOptions {
  seeds: number;
  seed: number;
  steps: number;
  jobs: number;
  verbose: boolean;
  /** Several raft groups per node (groups-simulation.ts) instead of one. */
  groups: boolean;
}

const USAGE = 'use --seeds N, --seed S, --steps K, --jobs J, --groups, --verbose';

function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = {
    seeds: 1,
    seed: 1,
    steps: SIMULATION_DEFAULTS.steps,
    jobs: 1,
    verbose: false,
    groups: false,
  };
  let seedsGiven = false;
  let stepsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--verbose') {
      options.verbose = true;
      continue;
    }
    if (flag === '--groups') {
      options.groups = true;
      continue;
    }
    if (!['--seeds', '--seed', '--steps', '--jobs'].includes(flag))
      throw new Error(`unknown flag ${flag} (${USAGE})`);
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
      stepsGiven = true;
    } else {
      if (number < 1 || number > 64) throw new Error('--jobs must be between 1 and 64');
      options.jobs = number;
    }
  }
  if (options.jobs > 1 && options.verbose) throw new Error('--verbose runs in one process: drop --jobs');
  if (options.groups && !stepsGiven) options.steps = GROUPS_SIMULATION_DEFAULTS.steps;
  return options;
}

/** Runs the seeds in this process; returns the number of violations. */
function runHere(options: CliOptions): number {
  let violations = 0;
  for (let seed = options.seed; seed < options.seed + options.seeds; seed++) {
    const run = options.groups ? runGroupsSimulation : runSimulation;
    const result = run({ seed, steps: options.steps, verbose: options.verbose });
    if (options.verbose || options.seeds === 1) console.log(`seed ${seed}: ${JSON.stringify(result.stats)}`);
    if (result.violations.length > 0) {
      violations += result.violations.length;
      console.log(`seed ${seed} FAILED:`);
      for (const violation of result.violations) console.log(`  ${violation}`);
      console.log(
        `  replay: npm run sim -- --seed ${seed} --steps ${options.steps}${options.groups ? ' --groups' : ''} --verbose`,
      );
    }
  }
  return violations;
}

/** Splits the seeds over `jobs` child processes; their failures are printed as they come. */
async function runInJobs(options: CliOptions): Promise<number> {
  const script = fileURLToPath(import.meta.url);
  const share = Math.ceil(options.seeds / options.jobs);
  const children: Promise<number>[] = [];
  for (let first = options.seed; first < options.seed + options.seeds; first += share) {
    const count = Math.min(share, options.seed + options.seeds - first);
    const args = [
      script,
      '--seed',
      String(first),
      '--seeds',
      String(count),
      '--steps',
      String(options.steps),
      ...(options.groups ? ['--groups'] : []),
    ];
    children.push(
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        let buffered = '';
        let violations: number | undefined;
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          buffered += chunk;
          const lines = buffered.split('\n');
          buffered = lines.pop()!;
          for (const line of lines) {
            const total = /^sim: \d+ seeds, (\d+) violations$/.exec(line);
            if (total) violations = Number(total[1]);
            else if (!/^\(\d+(\.\d+)? s\)$/.test(line) && !/^seed \d+: \{/.test(line)) console.log(line);
          }
        });
        child.on('error', reject);
        child.on('close', (code) => {
          if (violations === undefined)
            reject(
              new Error(`seeds ${first}–${first + count - 1}: the worker exited ${code} without a total`),
            );
          else resolve(violations);
        });
      }),
    );
  }
  return (await Promise.all(children)).reduce((sum, v) => sum + v, 0);
}

async function main(): Promise<number> {
  let options: CliOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`sim: ${(error as Error).message}`);
    return 2;
  }
  if (options.jobs > availableParallelism())
    console.error(`sim: ${options.jobs} jobs on ${availableParallelism()} cores will not run faster`);
  const started = performance.now();
  const violations = options.jobs > 1 ? await runInJobs(options) : runHere(options);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (options.seeds > 1) console.log(`(${seconds} s)`);
  console.log(`sim: ${options.seeds} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

process.exitCode = await main();
