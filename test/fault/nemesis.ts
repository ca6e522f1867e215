// The nemesis: every few seconds one fault, chosen by a seeded PRNG (each kind once per shuffled round), held, then healed.

import { applyFault, FAULT_KINDS, type FaultContext, type FaultKind } from './faults.js';

/** One fault as it happened; times are Date.now(). */
export interface FaultRecord {
  readonly kind: FaultKind;
  readonly detail: string;
  /** When applying began. */
  readonly start: number;
  /** When it was in force (for membership changes: when the change finished). */
  readonly applied: number;
  readonly healed: number;
  /** Undefined when the fault was seen in force just before its heal; else what was wrong. */
  readonly problem: string | undefined;
  /** When the next fault began, or the run's final heal. */
  end: number;
}

export interface NemesisOptions {
  /** Stop starting faults after this long; the first round of every kind always completes. */
  readonly durationMs: number;
  /** A fault is held for a time uniform in [min, max] ms. */
  readonly faultMs: readonly [number, number];
  /** Quiet time between a heal and the next fault, uniform in [min, max] ms. */
  readonly quietMs: readonly [number, number];
  readonly log: (line: string) => void;
}

export interface NemesisResult {
  readonly faults: FaultRecord[];
  /** Kinds that could not be applied when drawn, with why. */
  readonly skipped: { kind: FaultKind; reason: string }[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Draws kinds from a bag holding every kind once, reshuffled with the seeded PRNG whenever it
 * empties, so that each kind is applied about equally often and every run of at least one
 * round covers them all. A kind that cannot be applied now goes back into the bag.
 */
export async function runNemesis(ctx: FaultContext, options: NemesisOptions): Promise<NemesisResult> {
  const started = Date.now();
  const faults: FaultRecord[] = [];
  const skipped: NemesisResult['skipped'] = [];
  const seenKinds = new Set<FaultKind>();
  let bag: FaultKind[] = [];
  const elapsed = () => ((Date.now() - started) / 1000).toFixed(1);
  while (Date.now() - started < options.durationMs || seenKinds.size < FAULT_KINDS.length) {
    await sleep(ctx.prng.between(...options.quietMs));
    // Each fault starts on a cluster with a leader, so that its unavailability is its own.
    await ctx.cluster.waitForLeader(15_000);
    if (bag.length === 0) bag = ctx.prng.shuffle(FAULT_KINDS);
    const kind = bag.shift()!;
    const start = Date.now();
    const fault = await applyFault(kind, ctx);
    if (typeof fault === 'string') {
      skipped.push({ kind, reason: fault });
      options.log(`nemesis t=${elapsed()}s skip ${kind}: ${fault}`);
      bag.push(kind);
      if (skipped.length > 50 * (faults.length + 1)) throw new Error('the nemesis cannot apply any fault');
      continue;
    }
    const applied = Date.now();
    options.log(`nemesis t=${elapsed()}s ${kind}: ${fault.detail}`);
    await sleep(ctx.prng.between(...options.faultMs));
    const problem = fault.check();
    if (problem) options.log(`nemesis t=${elapsed()}s ${kind} was not in force: ${problem}`);
    await fault.heal();
    const healed = Date.now();
    options.log(`nemesis t=${elapsed()}s healed ${kind}`);
    const previous = faults[faults.length - 1];
    if (previous) previous.end = start;
    faults.push({ kind, detail: fault.detail, start, applied, healed, problem, end: healed });
    seenKinds.add(kind);
  }
  return { faults, skipped };
}
