// Benchmark of the raft core alone: a 3-node cluster in one process, in-memory logs, no network delay.
//
// N concurrent proposers each keep one 256-byte proposal outstanding at the leader; when it
// is applied there, the proposer sends the next. Prints committed entries per second and CPU
// time per entry, medians over several runs, for several N side by side.

import { MemoryStorage, type Message, RawNode, Role, SeededPrng } from '../raft/index.js';

interface Options {
  proposers: number[];
  seconds: number;
  runs: number;
  payloadBytes: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { proposers: [1, 16, 256, 1024], seconds: 2, runs: 3, payloadBytes: 256 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--proposers') options.proposers = value.split(',').map(Number);
    else if (flag === '--seconds') options.seconds = Number(value);
    else if (flag === '--runs') options.runs = Number(value);
    else if (flag === '--payload') options.payloadBytes = Number(value);
    else throw new Error(`unknown flag ${flag} (--proposers 1,16,256 --seconds S --runs R --payload B)`);
  }
  for (const n of options.proposers)
    if (!Number.isInteger(n) || n < 1) throw new Error(`bad --proposers value ${n}`);
  if (!(options.seconds > 0) || !Number.isInteger(options.runs) || options.runs < 1)
    throw new Error('bad --seconds/--runs');
  return options;
}

interface Sample {
  entriesPerSecond: number;
  cpuMicrosPerEntry: number;
  entriesPerReady: number;
}

function runOnce(proposers: number, seconds: number, payloadBytes: number): Sample {
  const ids = ['n1', 'n2', 'n3'];
  const nodes = new Map<string, { raft: RawNode; storage: MemoryStorage }>();
  for (const [i, id] of ids.entries()) {
    const storage = MemoryStorage.bootstrap({ voters: ids, learners: [] });
    const raft = new RawNode({
      id,
      storage,
      prng: new SeededPrng(i + 1),
      maxInflightMessages: 256,
      maxUncommittedBytes: 1024 * 1024 * 1024,
    });
    nodes.set(id, { raft, storage });
  }
  const inbox: Message[] = [];
  let appliedAtLeader = 0;
  let leaderReadies = 0;
  const leader = nodes.get('n1')!;
  const waiting = new Map<number, number>(); // index -> proposer count waiting on it
  const payload = new Uint8Array(payloadBytes).fill(7);

  const pump = (): void => {
    let progressed = true;
    while (progressed) {
      progressed = false;
      for (const message of inbox.splice(0)) {
        nodes.get(message.to)!.raft.step(message);
        progressed = true;
      }
      for (const [id, { raft, storage }] of nodes) {
        if (!raft.hasReady()) continue;
        progressed = true;
        const rd = raft.ready();
        inbox.push(...rd.messages);
        if (rd.snapshot) storage.applySnapshot(rd.snapshot);
        storage.append(rd.entries);
        if (rd.hardState) storage.setHardState(rd.hardState);
        inbox.push(...rd.messagesAfterPersist);
        if (id === 'n1') {
          leaderReadies++;
          for (const entry of rd.committedEntries) {
            if (entry.data.length === 0) continue;
            appliedAtLeader++;
            const count = waiting.get(entry.index);
            if (count !== undefined) waiting.delete(entry.index);
          }
        }
        raft.advance(rd);
      }
    }
  };

  leader.raft.campaign();
  pump();
  if (leader.raft.status().role !== Role.Leader) throw new Error('n1 did not become leader');

  const propose = (): void => {
    const result = leader.raft.propose(payload);
    if (!result.ok) throw new Error(`proposal refused: ${result.error.message}`);
    waiting.set(result.value.index, 1);
  };
  // Warm up the JIT.
  for (let i = 0; i < proposers; i++) propose();
  pump();

  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const appliedStart = appliedAtLeader;
  const readiesStart = leaderReadies;
  const deadline = started + seconds * 1000;
  let iterations = 0;
  while (true) {
    // Every proposer whose previous proposal was applied proposes again.
    const outstanding = waiting.size;
    for (let i = outstanding; i < proposers; i++) propose();
    pump();
    // Compact now and then so the in-memory log stays bounded.
    if (++iterations % 64 === 0) {
      for (const { raft, storage } of nodes.values()) {
        const applied = raft.status().appliedIndex;
        if (applied > storage.firstIndex() + 1000) storage.compact(applied - 1000);
      }
      if (performance.now() >= deadline) break;
    }
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const entries = appliedAtLeader - appliedStart;
  return {
    entriesPerSecond: entries / elapsedSeconds,
    cpuMicrosPerEntry: (cpu.user + cpu.system) / entries,
    entriesPerReady: entries / Math.max(1, leaderReadies - readiesStart),
  };
}

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  console.log(
    `bench:raft — 3 voters in one process, in-memory storage, no network delay, ${options.payloadBytes}-byte proposals, ` +
      `${options.runs} runs of ${options.seconds} s each, medians (node ${process.version})`,
  );
  const rows: string[][] = [
    ['proposers', 'entries/s', 'CPU µs/entry', 'entries/leader Ready', 'vs 1 proposer'],
  ];
  let baseline = 0;
  for (const proposers of options.proposers) {
    const samples = Array.from({ length: options.runs }, () =>
      runOnce(proposers, options.seconds, options.payloadBytes),
    );
    const rate = median(samples.map((s) => s.entriesPerSecond));
    if (baseline === 0) baseline = rate;
    rows.push([
      String(proposers),
      Math.round(rate).toLocaleString('en-US'),
      median(samples.map((s) => s.cpuMicrosPerEntry)).toFixed(2),
      median(samples.map((s) => s.entriesPerReady)).toFixed(1),
      `${(rate / baseline).toFixed(2)}x`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
  console.log(
    'CPU is the whole process (all three nodes), so it is the cost per committed entry of a 3-node cluster.',
  );
}

main();
