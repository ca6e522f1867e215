// Runs every shell command of README.md's code blocks as written, in order, in a copy of the checkout (issue 13).

/*
 * Which lines are commands:
 * - Every fenced block must name its language. Blocks fenced ```sh, ```bash or ```shell hold
 *   commands: each line is one, a line ending in `\` continues on the next, blank lines and lines
 *   starting with `#` are not commands. In ```console blocks, commands start with `$ ` and the
 *   lines up to the next `$ ` are their expected output. A block in any other language that holds
 *   a line looking like a command (npm, npx, curl, conclave, node, `$ `) fails this test.
 * - In a trailing comment, `→ TEXT` (after the comment's own words, if any) is the output the
 *   command prints on stdout: stdout, trimmed, must equal TEXT, where a standalone N stands for any
 *   whole number. Every command must exit 0.
 * - `<!-- readme-test: skip "COMMAND" (REASON) -->` on the lines directly above a block skips that
 *   command (written exactly as in the block, without its comment). A skip naming no command of
 *   the block below fails, as does any other `readme-test:` comment. So a command added to the
 *   README either runs here or is skipped with a reason written next to it.
 * - A command written `npm install && CMD` runs as CMD: the copy is installed already (below).
 * - Inline commands in prose and in the "Commands" table are not run (test tiers, benchmarks that
 *   take minutes, root); each `npm run NAME` there must name a script of package.json.
 *
 * How they run: with `sh -c`, from a temporary directory holding the checkout's tracked files (a
 * clone, uncommitted edits included), this checkout's dist/ (the build `npm install` makes) and a
 * link to its node_modules (what `npm install` fetches; a leading `npm install && ` is taken as done), with a
 * private npm cache (so `npx conclave` installs that directory afresh, as on a first contact, and
 * ~/.npm is left alone) and without the npm_* and NODE_OPTIONS variables of the test runner.
 * Ports: every port written after `localhost:`, `127.0.0.1:` or `/tcp/` is replaced, consistently
 * in commands and expected output, by a free port; the default port 8080, which `npm start` and
 * the client commands use without naming it, reaches them as CONCLAVE_CLIENT_LISTEN and
 * CONCLAVE_ENDPOINTS. Long-running commands (`npm start`, `npx conclave start`, `npx conclave
 * watch`, and any command ending in `&`) run in the background, as in another terminal or as the
 * shell runs `CMD &`; consecutive ones start together (the founders of a cluster wait for each
 * other), and before the next command the test waits until each serves: /readyz answers 200, or
 * /healthz for a node started with --join (it is not ready until `members add`), or for a watch
 * its first line of output. At the end each is stopped like Ctrl-C (SIGINT to its process group),
 * or like `kill %N` (SIGTERM) when started with `&`, and must exit within 15 s; everything started
 * is killed by process group in teardown, also on failure.
 *
 * Expect about a minute: the first `npx conclave` in a fresh checkout runs the package's `prepare`
 * (a tsc build) as npm links the checkout into its npx cache, and every npx start costs ~1.5 s.
 * (The founders' npx start-ups may drift apart under load: a late founder bootstraps and catches
 * up, src/founding-check.ts.)
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { freePort } from '../../scripts/local-cluster.js';

const SHELL_LANGUAGES = new Set(['sh', 'bash', 'shell', 'console']);
const OTHER_LANGUAGES = new Set(['ts', 'typescript', 'js', 'javascript', 'json', 'yaml', 'yml', 'text']);
const LOOKS_LIKE_COMMAND = /^\s*(\$ |npm |npx |curl |conclave |node )/;
const SKIP = /^<!-- readme-test: skip "([^"]+)" \(([^)]+)\) -->$/;
const DEFAULT_PORT = 8080;
const FOREGROUND_TIMEOUT_MS = 120_000;
const SERVE_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

/** One command of a README block. */
interface Command {
  readonly line: number;
  /** As written (continuations joined), comment included: what the shell runs. */
  readonly text: string;
  /** Without its trailing comment, for skips and messages. */
  readonly bare: string;
  readonly expected?: string;
  readonly skip?: string;
}

interface Parsed {
  readonly commands: Command[];
  readonly problems: string[];
}

/** Pulls the commands out of a README by the rules in the header. */
function parseReadme(markdown: string): Parsed {
  const lines = markdown.split('\n');
  const commands: Command[] = [];
  const problems: string[] = [];
  let pendingSkips: { command: string; reason: string; line: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.includes('readme-test:')) {
      const m = SKIP.exec(line.trim());
      if (m) pendingSkips.push({ command: m[1], reason: m[2], line: i + 1 });
      else
        problems.push(
          `line ${i + 1}: a readme-test comment not of the form <!-- readme-test: skip "CMD" (REASON) -->`,
        );
      continue;
    }
    const fence = /^```(.*)$/.exec(line);
    if (!fence) {
      if (pendingSkips.length > 0) {
        problems.push(`line ${pendingSkips[0].line}: a readme-test skip not directly above a code block`);
        pendingSkips = [];
      }
      continue;
    }
    const language = fence[1].trim();
    const at = `line ${i + 1}`;
    const body: { text: string; line: number }[] = [];
    let end = i + 1;
    while (end < lines.length && !lines[end].startsWith('```')) {
      body.push({ text: lines[end], line: end + 1 });
      end++;
    }
    if (end === lines.length) problems.push(`${at}: a code block that never closes`);
    const skips = pendingSkips;
    pendingSkips = [];
    i = end;
    if (language === '') {
      problems.push(`${at}: a code block without a language`);
      continue;
    }
    if (!SHELL_LANGUAGES.has(language)) {
      if (!OTHER_LANGUAGES.has(language)) problems.push(`${at}: code block language "${language}" unknown`);
      for (const b of body) {
        if (LOOKS_LIKE_COMMAND.test(b.text)) {
          problems.push(`line ${b.line}: a command in a \`\`\`${language} block (use sh): ${b.text.trim()}`);
        }
      }
      continue;
    }
    const blockCommands = language === 'console' ? consoleCommands(body) : shCommands(body);
    for (const skip of skips) {
      const target = blockCommands.find((c) => c.bare === skip.command);
      if (!target)
        problems.push(`line ${skip.line}: skip "${skip.command}" names no command of the block below`);
    }
    for (const c of blockCommands) {
      const skip = skips.find((s) => s.command === c.bare);
      commands.push(skip ? { ...c, skip: skip.reason } : c);
    }
  }
  return { commands, problems };
}

function joinContinuations(body: { text: string; line: number }[]): { text: string; line: number }[] {
  const joined: { text: string; line: number }[] = [];
  let current: { text: string; line: number } | undefined;
  for (const b of body) {
    if (current) current.text += `\n${b.text}`;
    else current = { text: b.text, line: b.line };
    if (!/\\$/.test(b.text)) {
      joined.push(current);
      current = undefined;
    }
  }
  if (current) joined.push(current);
  return joined;
}

function withoutComment(text: string): { bare: string; expected?: string } {
  const arrow = /\s#\s[^\n]*?→\s*(.*)$/.exec(text);
  const comment = /\s+#\s.*$/.exec(text);
  const bare = (comment ? text.slice(0, comment.index) : text).replace(/\\\n\s*/g, '').trim();
  return arrow ? { bare, expected: arrow[1].trim() } : { bare };
}

function shCommands(body: { text: string; line: number }[]): Command[] {
  return joinContinuations(body)
    .filter((b) => b.text.trim() !== '' && !b.text.trim().startsWith('#'))
    .map((b) => ({ line: b.line, text: b.text, ...withoutComment(b.text) }));
}

function consoleCommands(body: { text: string; line: number }[]): Command[] {
  const commands: Command[] = [];
  let current: { line: number; text: string; output: string[] } | undefined;
  const flush = () => {
    if (!current) return;
    const { bare } = withoutComment(current.text);
    const output = current.output.join('\n').trim();
    commands.push({ line: current.line, text: current.text, bare, ...(output ? { expected: output } : {}) });
  };
  for (const b of joinContinuations(body)) {
    if (b.text.startsWith('$ ')) {
      flush();
      current = { line: b.line, text: b.text.slice(2), output: [] };
    } else if (current) current.output.push(b.text);
  }
  flush();
  return commands;
}

/** A command the shell leaves running in the background, written with a trailing `&`. */
function ampersand(bare: string): boolean {
  return /\s&$/.test(bare);
}

/** Whether a command stays running (a server or a watch, or any `… &`) rather than ending by itself. */
function longRunning(bare: string): 'node' | 'watch' | 'other' | undefined {
  const command = bare.replace(/\s&$/, '');
  if (/^npm start\b/.test(command) || /^npx conclave start\b/.test(command)) return 'node';
  if (/^npx conclave watch\b/.test(command)) return 'watch';
  return ampersand(bare) ? 'other' : undefined;
}

/** Stdout matches an expected line where a standalone N is any whole number. */
function outputMatches(stdout: string, expected: string): boolean {
  const pattern = expected
    .split(/\bN\b/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('\\d+');
  return new RegExp(`^${pattern}$`).test(stdout.trim());
}

interface Started {
  readonly command: Command;
  readonly child: ChildProcess;
  output(): string;
  stdout(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {}
}

function startShell(command: Command, script: string, cwd: string, env: NodeJS.ProcessEnv): Started {
  // Its own process group: npm and npx run the node under further shells, all stopped together.
  const child = spawn('sh', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.push(child);
  let out = '';
  let all = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    all += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    all += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { command, child, output: () => all, stdout: () => out, exited };
}

async function status(url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

async function until(what: string, timeoutMs: number, done: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.setTimeout(400_000);

t.test('the README parser follows its rules', async (t) => {
  const { commands, problems } = parseReadme(
    [
      '<!-- readme-test: skip "npm install" (network) -->',
      '```sh',
      'npm install   # deps',
      'npm start     # starts → serving',
      'a --x \\',
      '  --y   # → N items',
      '# a comment',
      '```',
      '```console',
      '$ conclave status',
      'leader n1',
      '```',
      '```ts',
      'const x = 1;',
      '```',
    ].join('\n'),
  );
  t.same(problems, []);
  t.same(
    commands.map((c) => [c.bare, c.expected, c.skip]),
    [
      ['npm install', undefined, 'network'],
      ['npm start', 'serving', undefined],
      ['a --x --y', 'N items', undefined],
      ['conclave status', 'leader n1', undefined],
    ],
  );
  t.ok(outputMatches('12 items\n', 'N items'));
  t.notOk(outputMatches('x items', 'N items'));
  const bad = parseReadme(
    [
      '<!-- readme-test: skip "npm ci" (gone) -->',
      '```sh',
      'npm start',
      '```',
      '```',
      'npx conclave status',
      '```',
      '```ts',
      'npx conclave status',
      '```',
      '<!-- readme-test: run -->',
    ].join('\n'),
  ).problems;
  t.equal(bad.length, 4, bad.join('\n'));
});

t.test('README.md commands run as written', async (t) => {
  const root = process.cwd();
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const { commands, problems } = parseReadme(readme);
  t.same(problems, [], 'every code block follows the rules of test/readme/readme-commands.test.ts');
  t.ok(commands.length > 0, 'the README has commands');
  t.match(readme, /127\.0\.0\.1:8080/, `the README names the default port ${DEFAULT_PORT}`);

  const scripts = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts;
  for (const m of readme.matchAll(/`npm run ([\w:-]+)/g))
    t.ok(scripts[m[1]], `package.json has the script ${m[1]}`);

  t.ok(existsSync(join(root, 'dist', 'src', 'cli.js')), 'the checkout is built');
  const dir = mkdtempSync(join(tmpdir(), 'conclave-readme-'));
  t.teardown(() => {
    for (const child of children) killGroup(child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const tracked = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' });
  t.equal(tracked.status, 0, 'git ls-files');
  for (const file of tracked.stdout.split('\0')) {
    if (file === '' || !existsSync(join(root, file))) continue;
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(root, file), join(dir, file));
  }
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  symlinkSync(realpathSync(join(root, 'node_modules')), join(dir, 'node_modules'));
  const npmCache = join(dir, '.npm-cache');

  // Free ports for every port the README writes, the same one wherever the README repeats it.
  const ports = new Map<number, number>();
  const portPattern = /((?:localhost|127\.0\.0\.1):|\/tcp\/)(\d{2,5})\b/g;
  const used = new Set<number>();
  for (const p of [DEFAULT_PORT, ...[...readme.matchAll(portPattern)].map((m) => Number(m[2]))]) {
    if (ports.has(p)) continue;
    let free = await freePort();
    while (used.has(free)) free = await freePort();
    used.add(free);
    ports.set(p, free);
  }
  const substitute = (text: string) =>
    text.replace(portPattern, (_m, before: string, port: string) => `${before}${ports.get(Number(port))}`);
  t.comment(`ports: ${[...ports].map(([a, b]) => `${a}→${b}`).join(' ')}`);

  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'NODE_OPTIONS' || key === 'INIT_CWD' || key.startsWith('CONCLAVE_'))
      continue;
    env[key] = value;
  }
  env.npm_config_cache = npmCache;
  env.npm_config_update_notifier = 'false';
  env.CONCLAVE_CLIENT_LISTEN = `127.0.0.1:${ports.get(DEFAULT_PORT)}`;
  env.CONCLAVE_ENDPOINTS = `http://127.0.0.1:${ports.get(DEFAULT_PORT)}`;

  const background: Started[] = [];
  let pending: Started[] = [];
  const ran: string[] = [];
  const skipped: string[] = [];

  /** Waits until every background command started since the last foreground one serves. */
  const awaitPending = async () => {
    for (const started of pending) {
      const { bare } = started.command;
      const failed = started.exited.then(({ code, signal }) => {
        throw new Error(`exited (${code ?? signal}) before serving: ${bare}\n${started.output()}`);
      });
      failed.catch(() => undefined);
      let ready: Promise<void> = Promise.resolve();
      const kind = longRunning(bare);
      if (kind === 'watch') {
        ready = until(`output of ${bare}`, SERVE_TIMEOUT_MS, () => started.stdout().includes('\n'));
      } else if (kind === 'node') {
        const listen = /--client-listen (\S+)/.exec(substitute(started.command.text));
        const url = `http://${listen ? listen[1] : `127.0.0.1:${ports.get(DEFAULT_PORT)}`}`;
        const path = /--join\b/.test(bare) ? '/healthz' : '/readyz';
        ready = until(
          `${url}${path} of ${bare}`,
          SERVE_TIMEOUT_MS,
          async () => (await status(url + path)) === 200,
        );
      }
      const began = Date.now();
      await Promise.race([ready, failed]);
      t.comment(`serving after ${Date.now() - began} ms more: ${bare}`);
    }
    pending = [];
  };

  for (const written of commands) {
    // The copy is installed already: a leading `npm install && ` is taken as done (no registry here).
    const command = { ...written, text: afterInstall(written.text), bare: afterInstall(written.bare) };
    if (command.skip) {
      skipped.push(`${command.bare} (${command.skip})`);
      t.comment(`README.md:${command.line} skipped: ${command.bare} (${command.skip})`);
      continue;
    }
    ran.push(command.bare);
    const script = substitute(command.text);
    if (longRunning(command.bare)) {
      // `CMD &` runs CMD in the background, as the shell does: here without the shell, to see CMD's exit.
      const started = startShell(
        command,
        ampersand(command.bare) ? substitute(command.bare.replace(/\s&$/, '')) : script,
        dir,
        env,
      );
      background.push(started);
      pending.push(started);
      t.comment(`README.md:${command.line} started in the background: ${command.bare}`);
      continue;
    }
    await awaitPending();
    const began = Date.now();
    const run = startShell(command, script, dir, env);
    const timer = setTimeout(() => killGroup(run.child, 'SIGKILL'), FOREGROUND_TIMEOUT_MS);
    const { code, signal } = await run.exited;
    clearTimeout(timer);
    t.comment(
      `README.md:${command.line} exit ${code ?? signal} after ${Date.now() - began} ms: ${command.bare}`,
    );
    t.equal(code, 0, `README.md:${command.line} exits 0: ${command.bare}`, { output: run.output() });
    if (command.expected !== undefined) {
      const expected = substitute(command.expected);
      t.ok(outputMatches(run.stdout(), expected), `README.md:${command.line} prints ${expected}`, {
        found: run.stdout(),
      });
    }
    if (code !== 0) return; // The commands after it depend on it.
  }
  await awaitPending();
  t.equal(
    ran.length + skipped.length,
    commands.length,
    'every README command ran or was skipped with its reason',
  );
  t.comment(`ran ${ran.length}: ${ran.join(' | ')}`);
  t.comment(`skipped ${skipped.length}: ${skipped.join(' | ')}`);

  // What the README's comments claim beyond exit codes.
  const npxBins = readdirSync(join(npmCache, '_npx')).map((h) =>
    realpathSync(join(npmCache, '_npx', h, 'node_modules', '.bin', 'conclave')),
  );
  t.same(
    npxBins,
    [realpathSync(join(dir, 'dist', 'src', 'cli.js'))],
    'npx conclave runs the checkout’s dist/src/cli.js',
  );
  if (existsSync(join(dir, 'secret'))) {
    t.equal(
      statSync(join(dir, 'secret')).mode & 0o777,
      0o600,
      '`secret new > secret`: the file is private (0600)',
    );
  }
  for (const started of background) {
    if (longRunning(started.command.bare) !== 'watch') continue;
    const lines = started.stdout().trim().split('\n');
    t.ok(
      lines.every((l) => /^\{"type":"(put|delete)","key":"users\//.test(l)),
      'the watch prints one JSON line per change',
      { found: lines },
    );
  }
  for (const started of background) {
    const listen = /--client-listen (\S+)/.exec(substitute(started.command.text));
    if (listen && /--join\b/.test(started.command.bare)) {
      t.equal(await status(`http://${listen[1]}/readyz`), 200, 'the added node is ready');
    }
  }

  // Stopped as the README says: Ctrl-C (SIGINT to the process group, as a terminal sends it), or
  // `kill %N` (SIGTERM) for a command started with `&`. Only stopping counts, not the exit status:
  // the `sh -c` in front of each dies of the signal, where a user's interactive shell would not.
  const stopSignal = (started: Started): NodeJS.Signals =>
    ampersand(started.command.bare) ? 'SIGTERM' : 'SIGINT';
  for (const started of background) killGroup(started.child, stopSignal(started));
  for (const started of background) {
    const signal = stopSignal(started);
    const stopped = await Promise.race([
      started.exited,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), STOP_TIMEOUT_MS)),
    ]);
    t.ok(stopped, `stops on ${signal} within ${STOP_TIMEOUT_MS} ms: ${started.command.bare}`, {
      output: started.output(),
    });
  }
});

/** `npm install && CMD` → `CMD`: the checkout the commands run in is installed already. */
function afterInstall(command: string): string {
  return command.replace(/^npm install && /, '');
}
