// The etcd comparison harness (scripts/bench.ts) end to end, tiny: it prints the table and the last line, writes JSON, and leaves no process behind.

/*
 * Runs the real script with a few cases and sub-second runs; etcd-server is installed with
 * apt-get if it is missing, as the script does for users. Every temporary directory the bench
 * makes (both clusters' data) lives under a TMPDIR of this test's own, so "no process left"
 * is checked by looking for any process whose command line names that directory.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'bench.js');

// The runs take about 20 s; installing etcd-server with apt-get on a machine without it takes
// up to a minute or two more (tap's default is 30 s per file).
t.setTimeout(300_000);

/** Pids of processes whose command line mentions `dir`. */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function startBench(args: readonly string[], tmp: string): Run {
  const child = spawn(process.execPath, [BENCH, ...args], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    run.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  return run;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function ownTmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
  t.teardown(() => {
    for (const pid of processesUnder(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

t.test('a tiny run prints the table and one last line, writes JSON, and stops everything', async (t) => {
  const tmp = ownTmp(t);
  const out = join(tmp, 'results');
  const run = startBench(
    ['--quick', '--cases', 'put1,http64,failover', '--seconds', '0.5', '--failovers', '1', '--out', out],
    tmp,
  );
  t.teardown(() => run.child.kill('SIGKILL'));
  const code = await run.exited;
  t.equal(code, 0, `exit 0 (stderr: ${run.stderr.slice(-500)})`);
  const lines = run.stdout.trimEnd().split('\n');
  t.ok(
    lines.some((line) => /^case\s+Conclave\/s\s+etcd\/s\s+ratio/.test(line)),
    'the table header',
  );
  t.ok(
    lines.some((line) => /^put, 1 client\s+\d+\s+\d+\s+\d+\.\d\d/.test(line)),
    'the put row, with both throughputs and a ratio',
  );
  const cells = (name: string) =>
    lines
      .find((line) => line.startsWith(name))
      ?.slice(name.length)
      .trim()
      .split(/\s+/);
  const put = cells('put, 1 client') ?? [];
  t.match(put[9], /^[1-9]\d*$/, "Conclave's server CPU per 1,000 puts (ms)");
  t.match(put[10], /^[1-9]\d*$/, "etcd's");
  t.match(put[11], /^\d+\.\d\d$/, 'and their ratio');
  const http = cells('put, 64 HTTP connections round-robin') ?? [];
  t.match(
    http.slice(0, 3).join(' '),
    /^\d+ \d+ \d+\.\d\d$/,
    'the round-robin HTTP row, both throughputs and a ratio',
  );
  t.ok(
    lines.some((line) =>
      /^failover, kill -9 leader\s+-\s+-\s+-\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d/.test(line),
    ),
    'the failover row, with both medians and a ratio',
  );
  t.match(
    lines.at(-1),
    /^bench: worst ratio \d+\.\d\d in (put, 1 client|put, 64 HTTP connections round-robin|failover, kill -9 leader) \(.+\)$/,
  );
  t.equal(lines.filter((line) => line.startsWith('bench: worst ratio')).length, 1, 'exactly one such line');

  const files = readdirSync(out);
  t.equal(files.length, 1, 'one JSON file');
  const json = JSON.parse(readFileSync(join(out, files[0]!), 'utf8')) as {
    machine: { cores: number };
    versions: Record<string, string>;
  };
  t.equal(json.machine.cores, cpus().length, 'with the core count');
  for (const name of ['conclave', 'etcd', 'etcd3', 'node']) {
    t.match(json.versions[name], /\d+\.\d+/, `and the ${name} version`);
  }
  t.same(processesUnder(tmp), [], 'no process left');
});

t.test('interrupted with SIGINT, it stops every process it started', async (t) => {
  const tmp = ownTmp(t);
  const run = startBench(['--quick', '--cases', 'put1', '--seconds', '30', '--out', join(tmp, 'out')], tmp);
  t.teardown(() => run.child.kill('SIGKILL'));
  // Both clusters are up once the first case is under way: three Conclave nodes and three etcd members.
  await waitFor(
    () => processesUnder(tmp).filter((pid) => pid !== run.child.pid).length >= 6,
    'both clusters to run',
    120_000,
  );
  const started = processesUnder(tmp).filter((pid) => pid !== run.child.pid);
  run.child.kill('SIGINT');
  t.equal(await run.exited, 130, 'exit code 130');
  t.match(run.stderr, /SIGINT; stopping every process it started/);
  await waitFor(() => processesUnder(tmp).length === 0, 'the processes to be gone', 5_000).catch(() => {});
  t.same(processesUnder(tmp), [], `none of the ${started.length} processes it started is left`);
});
