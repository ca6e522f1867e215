// Runs the interaction scripts in test/raft/scenarios/*.txt (etcd raft "datadriven" style) against the harness.
//
// Each block is a command line, a `----` line, and the expected output up to a blank line.
// Set RAFT_SCENARIO_REWRITE=1 to write the actual outputs back into the scripts (then read them!).

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { type Message, MessageType } from '../../raft/types.js';
import { dec, describe, Network, type NodeConfig } from './harness.js';

/** test/raft/scenarios, found from the compiled file (dist/test/raft/) or the source. */
function scenarioDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'test', 'raft', 'scenarios');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`test/raft/scenarios not found above ${import.meta.url}`);
    dir = parent;
  }
}

interface Block {
  command: string;
  expected: string;
  /** Line numbers (0-based) of the expected output: [first, end). */
  outStart: number;
  outEnd: number;
}

function parse(lines: string[]): Block[] {
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (lines[i + 1]?.trim() !== '----') throw new Error(`line ${i + 1}: "${line}" is not followed by ----`);
    const outStart = i + 2;
    for (i = outStart; i < lines.length && lines[i]!.trim() !== ''; i++) {}
    blocks.push({ command: line, expected: lines.slice(outStart, i).join('\n'), outStart, outEnd: i });
  }
  return blocks;
}

/** `key=value` arguments after the positional ones. */
function options(args: string[]): { positional: string[]; opts: Record<string, string> } {
  const positional: string[] = [];
  const opts: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq < 0) positional.push(arg);
    else opts[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return { positional, opts };
}

function messageFilter(opts: Record<string, string>): (m: Message) => boolean {
  return (m) =>
    (opts.type === undefined || MessageType[m.type] === opts.type) &&
    (opts.from === undefined || m.from === opts.from) &&
    (opts.to === undefined || m.to === opts.to);
}

class Interpreter {
  private net: Network | undefined;

  private get network(): Network {
    if (this.net === undefined) throw new Error('add-nodes first');
    return this.net;
  }

  /** Runs one command line; returns its output. */
  run(line: string): string {
    const [command, ...args] = line.split(/\s+/);
    const { positional, opts } = options(args);
    switch (command) {
      case 'add-nodes': {
        const n = Number(positional[0]);
        const voters = Array.from({ length: n }, (_, i) => String(i + 1));
        const config: NodeConfig = {};
        if (opts.preVote !== undefined) (config as { preVote?: boolean }).preVote = opts.preVote === 'true';
        if (opts.checkQuorum !== undefined)
          (config as { checkQuorum?: boolean }).checkQuorum = opts.checkQuorum === 'true';
        this.net = new Network({ voters, config });
        return `voters ${voters.join(',')}`;
      }
      case 'campaign':
        this.network.campaign(positional[0]!);
        return this.mailbox();
      case 'propose': {
        const result = this.network.propose(positional[0]!, positional[1]!);
        return result.ok ? `ok index=${result.value.index} term=${result.value.term}` : result.error.code;
      }
      case 'deliver-msgs': {
        const filter = messageFilter(opts);
        if (opts.drop === 'true')
          return this.network
            .take(filter)
            .map((m) => `dropped ${describe(m)}`)
            .join('\n');
        return this.network.deliver(filter).map(describe).join('\n');
      }
      case 'stabilize': {
        const before = this.network.delivered.length;
        this.network.stabilize();
        return this.network.delivered.slice(before).map(describe).join('\n');
      }
      case 'tick': {
        this.network.tick(positional[0]!, Number(positional[1] ?? 1));
        return this.status(positional[0]!);
      }
      case 'tick-all':
        this.network.tickAll(Number(positional[0] ?? 1));
        return this.statusAll();
      case 'isolate':
        this.network.isolate(positional[0]!);
        return 'ok';
      case 'heal':
        this.network.heal();
        return 'ok';
      case 'compact':
        return `snapshot at ${this.network.compact(positional[0]!)}`;
      case 'status':
        return positional.length > 0 ? positional.map((id) => this.status(id)).join('\n') : this.statusAll();
      case 'log': {
        const snap = this.network.node(positional[0]!).storage.snapshot().metadata;
        const head = snap.index > 0 ? [`snapshot ${snap.index}@${snap.term}`] : [];
        const entries = this.network
          .log(positional[0]!)
          .map((e) => `${e.index}@${e.term}${e.data.length > 0 ? ` ${dec(e.data)}` : ''}`);
        return [...head, ...entries].join('\n');
      }
      case 'mailbox':
        return this.mailbox();
      default:
        throw new Error(`unknown command ${command}`);
    }
  }

  private mailbox(): string {
    return this.network.mailbox.map(describe).join('\n');
  }

  private status(id: string): string {
    const s = this.network.status(id);
    const values = this.network.values(id);
    return `${id}: ${s.role} term=${s.term} vote=${s.vote || '-'} leader=${s.leader || '-'} commit=${s.commitIndex} last=${s.lastIndex} applied=[${values.join(' ')}]`;
  }

  private statusAll(): string {
    return [...this.network.nodes.keys()].map((id) => this.status(id)).join('\n');
  }
}

const dir = scenarioDir();
const rewrite = process.env.RAFT_SCENARIO_REWRITE === '1';
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort()) {
  t.test(`scenario ${file}`, (t) => {
    const path = join(dir, file);
    const lines = readFileSync(path, 'utf8').split('\n');
    const interpreter = new Interpreter();
    const blocks = parse(lines);
    const actuals = blocks.map((block) => interpreter.run(block.command));
    if (rewrite) {
      for (let b = blocks.length - 1; b >= 0; b--) {
        const { outStart, outEnd } = blocks[b]!;
        lines.splice(outStart, outEnd - outStart, ...(actuals[b] === '' ? [] : actuals[b]!.split('\n')));
      }
      writeFileSync(path, lines.join('\n'));
    } else {
      for (const [b, block] of blocks.entries()) t.equal(actuals[b], block.expected, block.command);
    }
    t.ok(blocks.length > 0, `${blocks.length} commands`);
    t.end();
  });
}
