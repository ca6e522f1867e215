// One fault-tier run end to end: network, nodes, clients, nemesis, final heal, convergence and the linearizability check.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availabilityByKind, type KindAvailability, longestGap } from './availability.js';
import { onCleanup } from './cleanup.js';
import { FaultCluster } from './cluster.js';
import { type Convergence, waitForConvergence } from './convergence.js';
import { settle } from './faults.js';
import { checkHistory, type HistoryVerdict } from './history-check.js';
import { HttpKvClient } from './http-kv-client.js';
import type { KvClient } from './kv-client.js';
import { LibraryKvClient } from './library-kv-client.js';
import { type FaultRecord, runNemesis } from './nemesis.js';
import { FaultNetwork } from './network.js';
import { Prng } from './prng.js';
import { type OpCounts, type OpKind, Workload } from './workload.js';

export interface RunOptions {
  readonly seed: number;
  /** Voters; one more namespace is made for membership churn. */
  readonly nodes: number;
  readonly durationMs: number;
  readonly faultMs: readonly [number, number];
  readonly quietMs: readonly [number, number];
  readonly keys: number;
  /** Raw HTTP clients per node slot (spare included). */
  readonly httpClientsPerNode: number;
  /** Clients of the project's client library, each with every endpoint. */
  readonly libraryClients: number;
  readonly thinkMs: readonly [number, number];
  readonly checkTimeoutMs: number;
  /**
   * The workload's reads: 'linearizable' (the real test), or 'stale' to check that the tier
   * catches violations (stale reads under partitions are not linearizable, so it should fail).
   */
  readonly reads?: 'linearizable' | 'stale';
  /** Keep the data directories and node logs even when nothing failed. */
  readonly keep?: boolean;
  readonly log: (line: string) => void;
}

export const DEFAULT_RUN: Omit<RunOptions, 'seed' | 'nodes' | 'durationMs' | 'log'> = {
  faultMs: [2500, 5000],
  quietMs: [1500, 3000],
  keys: 5,
  httpClientsPerNode: 2,
  libraryClients: 2,
  thinkMs: [20, 80],
  checkTimeoutMs: 120_000,
};

export interface RunReport {
  readonly seed: number;
  readonly nodes: number;
  readonly reads: 'linearizable' | 'stale';
  readonly wallMs: number;
  readonly faults: readonly FaultRecord[];
  readonly skipped: readonly { kind: string; reason: string }[];
  readonly counts: Readonly<Record<OpKind, OpCounts>>;
  readonly total: OpCounts;
  readonly reasons: ReadonlyMap<string, number>;
  readonly availability: readonly KindAvailability[];
  /** The longest stretch without a successful write before the first fault, ms. */
  readonly baselineGapMs: number;
  readonly history: HistoryVerdict;
  readonly convergence: Convergence;
  /** Leftover iptables rules or down links after the final heal (should be none). */
  readonly unhealed: readonly string[];
  /** Everything that makes the run fail; empty when it passed. */
  readonly violations: readonly string[];
  /**
   * Where node logs, data, the checker's full report and the history (JSON) are: kept when the
   * run failed, a fault was not in force, or `keep` was set; else ''.
   */
  readonly keptDir: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const WARMUP_MS = 3000;
const AFTER_HEAL_MS = 3000;

/** Runs the tier once; the caller has checked preflight(). Always removes namespaces and processes. */
export async function runFaultTier(options: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'conclave-fault-'));
  // Interrupted (SIGINT, SIGTERM), the data and logs go too; a finished run decides below.
  const removeRoot = onCleanup(() => rmSync(root, { recursive: true, force: true }));
  const network = FaultNetwork.create(options.nodes + 1);
  const cluster = new FaultCluster(network, root, options.nodes);
  let keptDir = '';
  try {
    options.log(
      `fault: seed=${options.seed} nodes=${options.nodes} subnet=${network.hostIp}/24 bridge=${network.bridge} dir=${root}`,
    );
    cluster.startFounders();
    if (!(await cluster.waitForLeader(30_000))) throw new Error('the founders elected no leader within 30 s');
    const keys = Array.from({ length: options.keys }, (_, i) => `k${i}`);
    const clients: KvClient[] = [];
    for (const slot of cluster.slots) {
      for (let i = 0; i < options.httpClientsPerNode; i++) {
        clients.push(new HttpKvClient(slot.url, 3000, options.reads));
      }
    }
    const urls = cluster.slots.map((s) => s.url);
    for (let i = 0; i < options.libraryClients; i++) {
      clients.push(
        new LibraryKvClient([...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)], 4000),
      );
    }
    const workload = new Workload(clients, { keys, thinkMs: options.thinkMs, seed: options.seed });
    workload.start();
    const workloadStart = Date.now();
    await sleep(WARMUP_MS);

    const prng = new Prng(options.seed);
    const nemesis = await runNemesis(
      { cluster, network, prng },
      {
        durationMs: options.durationMs,
        faultMs: options.faultMs,
        quietMs: options.quietMs,
        log: options.log,
      },
    );

    // Final heal: no rules, every link up, every process running and resumed, slots agreeing with the membership.
    network.healAll();
    for (const slot of cluster.members) {
      cluster.resume(slot);
      cluster.start(slot);
    }
    await settle(cluster);
    await sleep(AFTER_HEAL_MS);
    const lastFault = nemesis.faults[nemesis.faults.length - 1];
    if (lastFault) lastFault.end = Date.now();
    await workload.stop();
    options.log(`fault: workload stopped; ${JSON.stringify(workload.total)}; waiting for convergence`);

    const convergence = await waitForConvergence(cluster, 60_000);
    const finalReads = await readEveryKey(cluster, workload, keys, clients.length);
    const unhealed = network.nodes.flatMap((n) =>
      network.ruleCount(n) > 0 ? [`${n.ns}: iptables rules left`] : [],
    );
    options.log(`fault: checking ${workload.history.operations().length} operations for linearizability`);
    const history = checkHistory(workload.history.operations(), options.checkTimeoutMs);

    const violations: string[] = [];
    if (history.result === 'illegal') violations.push(`not linearizable:\n${history.report}`);
    if (history.result === 'unknown')
      violations.push(`linearizability not decided within ${options.checkTimeoutMs} ms`);
    if (!convergence.converged) violations.push(`members did not converge: ${convergence.detail}`);
    if (finalReads !== keys.length)
      violations.push(`final reads: only ${finalReads} of ${keys.length} keys read`);
    if (workload.writeSuccesses.length === 0) violations.push('no write succeeded');
    violations.push(...unhealed);
    const firstFault = nemesis.faults[0]?.start ?? Date.now();
    const unapplied = nemesis.faults.some((f) => f.problem !== undefined);
    if (violations.length > 0 || unapplied || options.keep) {
      keptDir = root;
      writeFileSync(join(root, 'linearizability.txt'), `${history.report}\n`);
      writeFileSync(join(root, 'history.json'), JSON.stringify(workload.history.operations()));
    }
    return {
      seed: options.seed,
      nodes: options.nodes,
      reads: options.reads ?? 'linearizable',
      wallMs: Date.now() - started,
      faults: nemesis.faults,
      skipped: nemesis.skipped,
      counts: workload.counts,
      total: workload.total,
      reasons: workload.reasons,
      availability: availabilityByKind(nemesis.faults, workload.writeSuccesses),
      baselineGapMs: longestGap(workload.writeSuccesses, workloadStart + 1000, firstFault),
      history,
      convergence,
      unhealed,
      violations,
      keptDir,
    };
  } catch (error) {
    keptDir = root;
    throw error;
  } finally {
    await cluster.stop();
    network.destroy();
    if (keptDir === '') removeRoot.run();
    else removeRoot.cancel();
    if (keptDir !== '') options.log(`fault: node logs and data kept in ${keptDir}`);
  }
}

/** A linearizable read of every key through the leader, recorded in the history; returns how many succeeded. */
async function readEveryKey(
  cluster: FaultCluster,
  workload: Workload,
  keys: readonly string[],
  clientId: number,
): Promise<number> {
  let read = 0;
  for (const key of keys) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const leader = await cluster.waitForLeader(10_000);
      if (!leader) continue;
      const outcome = await workload.readOnce(new HttpKvClient(leader.url, 3000), clientId, key);
      if (outcome.kind === 'ok') {
        read++;
        break;
      }
      await sleep(250);
    }
  }
  return read;
}
