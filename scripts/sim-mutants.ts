// Mutation check of the raft tests: plants known raft bugs in a copy of the build and reports what catches each.
//
// usage: npm run sim:mutants -- [--seeds N] [--steps K]
// For each planted bug: how many simulator seeds fail, and how many paper-test files fail.
// Tests that pass on the real code but catch none of these would be proving nothing. The
// simulator alone must catch each in at least 1 seed in 40 (5 of 200); the exit code says so.

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Mutant {
  readonly name: string;
  readonly file: string;
  readonly find: string;
  readonly replace: string;
  /** Run the simulator of several groups per node (test/sim/groups-simulation.ts), whose shapes this bug needs. */
  readonly groups?: boolean;
}

const MUTANTS: Mutant[] = [
  {
    name: 'vote for any candidate, up to date or not (§5.4.1)',
    file: 'raft/raft-log.js',
    find: 'return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());',
    replace: 'return true;',
  },
  {
    name: 'commit an earlier term’s entry by counting replicas (§5.4.2, Figure 8)',
    file: 'raft/raft-log.js',
    find: 'if (maxIndex > this.committed && this.term(maxIndex) === term) {',
    replace: 'if (maxIndex > this.committed) {',
  },
  {
    name: 'acknowledge appended entries before they are persisted',
    file: 'raft/raft.js',
    find: 'MessageType.AppendResponse,\n    MessageType.Vote,',
    replace: 'MessageType.Vote,',
  },
  {
    name: 'grant a vote before it is persisted',
    file: 'raft/raft.js',
    find: '    MessageType.VoteResponse,\n]);',
    replace: ']);',
  },
  {
    name: 'answer ReadIndex without a quorum round (§6.4)',
    file: 'raft/raft.js',
    find: 'if (this.membership.voters.length === 1 && this.isVoter(this.id)) {',
    replace: 'if (true) {',
  },
  {
    name: 'membership in effect only once applied, not once in the log (§4.1; seeds 1853, 961)',
    file: 'raft/raft.js',
    find: 'return this.memberships.current.membership;',
    replace: 'return this.memberships.at(Math.max(this.log.applied, this.memberships.baseIndex)).membership;',
  },
  {
    name: 'a leader that appended its own removal and lost its leadership never campaigns again (groups seed 20)',
    file: 'raft/raft.js',
    find: 'if (this.isVoter(this.id))\n            return true;\n        const current',
    replace: 'return this.isVoter(this.id);\n        const current',
    groups: true,
  },
  {
    name: 'a membership change truncated from the log stays in effect (§4.1)',
    file: 'raft/membership-log.js',
    find: 'this.history.pop();',
    replace: 'break;',
  },
  {
    name: 'a single voter leads before its new term and vote are durable (§5.1)',
    file: 'raft/raft.js',
    find: 'this.send({ type: MessageType.VoteResponse, to: this.id, term });',
    replace: "if (this.poll(this.id, true) === 'won') { this.becomeLeader(); return; }",
  },
  {
    name: 'follower accepts entries without checking the previous entry (§5.3)',
    file: 'raft/raft-log.js',
    find: 'if (!this.matchTerm(index, logTerm))',
    replace: 'if (false)',
  },
  {
    name: 'spare policy: replace a voter that still answers (silence not awaited)',
    file: 'raft/spare-policy.js',
    find: '.filter((v) => v.silentFor >= input.promoteAfter)',
    replace: '.filter((v) => v.silentFor >= 0)',
  },
  {
    name: 'spare policy: promote without a live quorum',
    file: 'raft/spare-policy.js',
    find: "if (liveCount(voters) < majority(voters.length))\n        return none('no live quorum');",
    replace: '',
  },
  {
    name: 'spare policy: remove the dead voter before promoting the spare',
    file: 'raft/spare-policy.js',
    find: "return { kind: 'promote', spare, replaces: dead[0].id };",
    replace: "return { kind: 'remove', voter: dead[0].id, replacedBy: spare };",
  },
  {
    name: 'spare policy: promote a spare that is behind',
    file: 'raft/spare-policy.js',
    find: '< input.maxSpareLag);',
    replace: '< Number.POSITIVE_INFINITY);',
  },
];

function parseArgs(argv: string[]): { seeds: number; steps: number } {
  const options = { seeds: 200, steps: 10000 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${argv[i]} needs a positive integer`);
    if (argv[i] === '--seeds') options.seeds = value;
    else if (argv[i] === '--steps') options.steps = value;
    else throw new Error(`unknown flag ${argv[i]} (--seeds N --steps K)`);
  }
  return options;
}

function main(): void {
  const { seeds, steps } = parseArgs(process.argv.slice(2));
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
  // Inside the project, so the copies resolve tap from its node_modules.
  const scratch = join(dist, '..', '.mutants');
  mkdirSync(scratch, { recursive: true });
  const paperTests = readdirSync(join(dist, 'test', 'raft')).filter((name) => name.endsWith('.test.js'));
  console.log(`sim:mutants — each planted bug against ${seeds} seeds of ${steps} steps`);
  let missed = 0;
  let weak = 0;
  const floor = Math.ceil(seeds / 40);
  for (const mutant of MUTANTS) {
    const workdir = mkdtempSync(join(scratch, 'mutant-'));
    try {
      cpSync(dist, join(workdir, 'dist'), { recursive: true });
      const target = join(workdir, 'dist', mutant.file);
      const source = readFileSync(target, 'utf8');
      if (!source.includes(mutant.find))
        throw new Error(`mutant "${mutant.name}": pattern not found in ${mutant.file}`);
      writeFileSync(target, source.replace(mutant.find, mutant.replace));
      const run = spawnSync(
        process.execPath,
        [
          join(workdir, 'dist', 'test', 'sim', 'cli.js'),
          '--seeds',
          String(seeds),
          ...(mutant.groups ? ['--groups'] : ['--steps', String(steps)]),
        ],
        { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
      );
      const failedSeeds = (run.stdout.match(/^seed \d+ FAILED:/gm) ?? []).length;
      let failedFiles = 0;
      for (const file of paperTests) {
        const test = spawnSync(process.execPath, [join(workdir, 'dist', 'test', 'raft', file)], {
          encoding: 'utf8',
          maxBuffer: 256 * 1024 * 1024,
        });
        if (test.status !== 0) failedFiles++;
      }
      const caught = failedSeeds > 0 || failedFiles > 0;
      if (!caught) missed++;
      if (failedSeeds < floor) weak++;
      const verdict = !caught ? 'MISSED' : failedSeeds < floor ? 'weak  ' : 'caught';
      console.log(
        `${verdict}  sim${mutant.groups ? ' (groups)' : ''} ${String(failedSeeds).padStart(4)}/${seeds} seeds  ` +
          `paper tests ${failedFiles}/${paperTests.length} files  ${mutant.name}`,
      );
    } finally {
      rmSync(workdir, { recursive: true, force: true });
    }
  }
  rmSync(scratch, { recursive: true, force: true });
  console.log(
    `sim:mutants: ${MUTANTS.length - missed} of ${MUTANTS.length} planted bugs caught; ` +
      `${MUTANTS.length - weak} by the simulator alone in at least ${floor} of ${seeds} seeds`,
  );
  process.exitCode = missed > 0 || weak > 0 ? 1 : 0;
}

main();
