// Renders a run's report as plain-text tables: faults by kind with write unavailability, operation counts, verdicts.

import { FAULT_KINDS } from './faults.js';
import type { RunReport } from './run.js';

const ms = (value: number): string => (Number.isFinite(value) ? `${(value / 1000).toFixed(2)}s` : 'never');

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

export function formatReport(report: RunReport): string {
  const lines: string[] = [];
  lines.push(
    `nemesis summary: seed ${report.seed}, ${report.nodes} nodes, ${report.faults.length} faults, ` +
      `${report.reads} reads, wall ${ms(report.wallMs)}`,
  );
  lines.push('');
  const byKind = new Map(report.availability.map((a) => [a.kind, a]));
  lines.push(
    ...table(
      [
        'fault',
        'applied',
        'not in force',
        'skipped',
        'longest write gap med/max',
        'first write after fault',
        'after heal',
      ],
      FAULT_KINDS.map((kind) => {
        const a = byKind.get(kind);
        const skipped = report.skipped.filter((s) => s.kind === kind).length;
        return [
          kind,
          String(a?.count ?? 0),
          String(report.faults.filter((f) => f.kind === kind && f.problem !== undefined).length),
          String(skipped),
          a ? `${ms(a.maxGapMedianMs)} / ${ms(a.maxGapMaxMs)}` : '-',
          a ? `${ms(a.firstWriteMedianMs)} / ${ms(a.firstWriteMaxMs)}` : '-',
          a ? `${ms(a.afterHealMedianMs)} / ${ms(a.afterHealMaxMs)}` : '-',
        ];
      }),
    ),
  );
  lines.push(
    `(longest write gap: from a fault's start to the next fault's; first write: after the fault was in force, ` +
      `or after its heal; no fault: longest write gap ${ms(report.baselineGapMs)})`,
  );
  lines.push('');
  lines.push(
    ...table(
      ['op', 'ok', 'fail', 'indeterminate'],
      [
        ...(['get', 'put', 'del', 'cas'] as const).map((op) => {
          const c = report.counts[op];
          return [op, String(c.ok), String(c.fail), String(c.indeterminate)];
        }),
        ['total', String(report.total.ok), String(report.total.fail), String(report.total.indeterminate)],
      ],
    ),
  );
  const reasons = [...report.reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  if (reasons.length > 0) lines.push(`failure reasons: ${reasons.map(([r, n]) => `${r}=${n}`).join(' ')}`);
  lines.push('');
  const h = report.history;
  lines.push(
    `linearizability: ${h.result} (${h.operations} ops; ${h.droppedUnseen} unseen indeterminate writes dropped, ` +
      `${h.keptOpen} kept open${h.fullHistory ? '; verdict on the full history' : ''}; ${ms(h.elapsedMs)})`,
  );
  const c = report.convergence;
  lines.push(
    c.converged
      ? `convergence: ok (${c.nodes.length} members at applied index ${c.appliedIndex}, revision ${c.revision}, ` +
          `${c.documents} documents, after ${ms(c.elapsedMs)})`
      : `convergence: FAILED after ${ms(c.elapsedMs)}: ${c.detail}`,
  );
  lines.push(
    report.violations.length === 0 ? 'verdict: PASS' : `verdict: FAIL (${report.violations.length})`,
  );
  for (const v of report.violations) lines.push(`  - ${abridged(v)}`);
  if (report.keptDir !== '')
    lines.push(`node logs, data, history.json and linearizability.txt: ${report.keptDir}`);
  return lines.join('\n');
}

/** A long checker report cut to its head and its last lines (the full one is in linearizability.txt). */
function abridged(text: string): string {
  const lines = text.split('\n');
  if (lines.length <= 40) return text;
  return [...lines.slice(0, 4), `    ... ${lines.length - 34} lines ...`, ...lines.slice(-30)].join('\n');
}

/** The faults in order, one line each, for a log. */
export function formatFaults(report: RunReport): string {
  return report.faults
    .map(
      (f, i) =>
        `${String(i + 1).padStart(3)} ${f.kind.padEnd(16)} ${ms(f.healed - f.start).padStart(7)}  ${f.detail}`,
    )
    .join('\n');
}
