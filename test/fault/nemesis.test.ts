// The fault tier in CI: 3 node processes in network namespaces under one round of every fault kind; the history must be linearizable and the members must converge.

import t from 'tap';
import { FAULT_KINDS } from './faults.js';
import { preflight } from './preflight.js';
import { formatFaults, formatReport } from './report.js';
import { DEFAULT_RUN, runFaultTier } from './run.js';
import { tryRun } from './shell.js';

// The run takes about 55 s; tap's default of 120 s per file leaves too little room on a busy machine.
t.setTimeout(300_000);

const ready = preflight();
if (!ready.ok) {
  t.plan(0, `fault tier skipped: ${ready.reason}`);
} else {
  t.test('3 nodes under one round of every fault kind stay linearizable and converge', async (t) => {
    const seed = Number(process.env.CONCLAVE_NEMESIS_SEED ?? 20261122);
    const report = await runFaultTier({
      ...DEFAULT_RUN,
      seed,
      nodes: 3,
      // 0: exactly one shuffled round of the kinds, each applied once.
      durationMs: 0,
      faultMs: [1500, 2500],
      quietMs: [800, 1400],
      log: (line) => t.comment(line),
    });
    t.comment(formatFaults(report));
    t.comment(formatReport(report));

    const applied = new Set(report.faults.map((f) => f.kind));
    t.same(
      FAULT_KINDS.filter((k) => !applied.has(k)),
      [],
      'every fault kind was applied',
    );
    t.same(
      report.faults.filter((f) => f.problem !== undefined).map((f) => `${f.kind}: ${f.problem}`),
      [],
      'every fault was in force until its heal (membership changes carried out)',
    );
    t.equal(report.history.result, 'ok', `the history is linearizable (seed ${seed})`);
    t.ok(report.convergence.converged, `the members converged: ${report.convergence.detail}`);
    t.ok(report.convergence.nodes.length >= 3, 'at least three members compared');
    t.ok(report.counts.get.ok > 0, `reads succeeded (${report.counts.get.ok})`);
    t.ok(report.counts.put.ok + report.counts.cas.ok > 0, 'writes succeeded');
    t.ok(report.history.operations > 0, 'a history was checked');
    t.same(report.unhealed, [], 'no rule or down link left after the final heal');
    t.same(report.violations, [], 'no violation');

    const tag = String(process.pid);
    t.notMatch(tryRun('ip', ['netns', 'list']).stdout, `conclave-fault-${tag}-`, 'namespaces removed');
    t.notMatch(tryRun('ip', ['-o', 'link', 'show']).stdout, `cfb${tag}`, 'bridge removed');
  });
}
