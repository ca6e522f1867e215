// Write unavailability during each fault: the longest stretch without a successful write, and the time to the first one.

import type { FaultKind } from './faults.js';
import type { FaultRecord } from './nemesis.js';

export interface FaultAvailability {
  /** The longest time in [fault start, next fault start] without a successful write, ms. */
  readonly maxGapMs: number;
  /** From the moment the fault was in force to the first successful write after it, ms (Infinity if none). */
  readonly firstWriteMs: number;
  /** From the heal to the first successful write after it, ms (Infinity if none). */
  readonly afterHealMs: number;
}

export interface KindAvailability {
  readonly kind: FaultKind;
  readonly count: number;
  readonly maxGapMedianMs: number;
  readonly maxGapMaxMs: number;
  readonly firstWriteMedianMs: number;
  readonly firstWriteMaxMs: number;
  readonly afterHealMedianMs: number;
  readonly afterHealMaxMs: number;
}

/** `successes` are the times of successful writes, ascending. */
export function faultAvailability(fault: FaultRecord, successes: readonly number[]): FaultAvailability {
  let previous = fault.start;
  let maxGap = 0;
  for (let i = lowerBound(successes, fault.start); i < successes.length && successes[i]! <= fault.end; i++) {
    const at = successes[i]!;
    maxGap = Math.max(maxGap, at - previous);
    previous = at;
  }
  maxGap = Math.max(maxGap, fault.end - previous);
  const firstAfter = (t: number): number => {
    const i = lowerBound(successes, t);
    return i < successes.length ? successes[i]! - t : Infinity;
  };
  return { maxGapMs: maxGap, firstWriteMs: firstAfter(fault.applied), afterHealMs: firstAfter(fault.healed) };
}

/** The longest stretch without a successful write in [from, to], ms: the baseline without faults. */
export function longestGap(successes: readonly number[], from: number, to: number): number {
  return faultAvailability({ start: from, applied: from, healed: to, end: to } as FaultRecord, successes)
    .maxGapMs;
}

export function availabilityByKind(
  faults: readonly FaultRecord[],
  successes: readonly number[],
): KindAvailability[] {
  const byKind = new Map<FaultKind, FaultAvailability[]>();
  for (const fault of faults) {
    const list = byKind.get(fault.kind) ?? [];
    list.push(faultAvailability(fault, successes));
    byKind.set(fault.kind, list);
  }
  return [...byKind.entries()].map(([kind, list]) => ({
    kind,
    count: list.length,
    maxGapMedianMs: median(list.map((a) => a.maxGapMs)),
    maxGapMaxMs: Math.max(...list.map((a) => a.maxGapMs)),
    firstWriteMedianMs: median(list.map((a) => a.firstWriteMs)),
    firstWriteMaxMs: Math.max(...list.map((a) => a.firstWriteMs)),
    afterHealMedianMs: median(list.map((a) => a.afterHealMs)),
    afterHealMaxMs: Math.max(...list.map((a) => a.afterHealMs)),
  }));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
