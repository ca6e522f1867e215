// npm run nemesis -- --duration S --seed N [--nodes 3|5]: a fault-tier soak; prints a summary and exits 1 on any violation.

import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { preflight } from '../test/fault/preflight.js';
import { formatFaults, formatReport } from '../test/fault/report.js';
import { DEFAULT_RUN, runFaultTier } from '../test/fault/run.js';

const argv = await yargs(hideBin(process.argv))
  .scriptName('nemesis')
  .option('duration', { type: 'number', default: 600, describe: 'seconds of faults' })
  .option('seed', {
    type: 'number',
    describe: 'PRNG seed of the fault schedule and clients (default: random)',
  })
  .option('nodes', { type: 'number', default: 3, choices: [3, 5], describe: 'voters' })
  .option('keep', {
    type: 'boolean',
    default: false,
    describe: 'keep node logs and data even when it passes',
  })
  .option('stale-reads', {
    type: 'boolean',
    default: false,
    describe: 'clients read stale: a check that the tier catches violations (the run should fail)',
  })
  .option('verbose', { type: 'boolean', default: false, describe: 'log every fault as it happens' })
  .strict()
  .parse();

const ready = preflight();
if (!ready.ok) {
  console.error(`nemesis: cannot run: ${ready.reason}`);
  process.exit(2);
}
const seed = argv.seed ?? Math.floor(Math.random() * 2 ** 31);
const report = await runFaultTier({
  ...DEFAULT_RUN,
  seed,
  nodes: argv.nodes,
  durationMs: argv.duration * 1000,
  keep: argv.keep,
  reads: argv.staleReads ? 'stale' : 'linearizable',
  log: (line) => {
    if (argv.verbose || !line.startsWith('nemesis ')) console.error(line);
  },
});
console.log(formatFaults(report));
console.log('');
console.log(formatReport(report));
if (report.violations.length > 0) {
  const stale = argv.staleReads ? ' --stale-reads' : '';
  console.log(
    `replay: npm run nemesis -- --duration ${argv.duration} --seed ${seed} --nodes ${argv.nodes}${stale}`,
  );
}
process.exit(report.violations.length === 0 ? 0 : 1);
