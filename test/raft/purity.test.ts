// Keeps raft/ pure: no imports from outside it, no node: modules, timers, clock, global randomness or async.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const RAFT_DIR = join(process.cwd(), 'raft');

const FORBIDDEN: [RegExp, string][] = [
  [/\bfrom\s+['"](?!\.\/)[^'"]+['"]/, 'an import from outside raft/'],
  [/\bimport\s*\(/, 'a dynamic import'],
  [/\brequire\s*\(/, 'require()'],
  [/\bDate\b/, 'Date'],
  [/\bperformance\b/, 'performance'],
  [/Math\.random/, 'Math.random'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'a timer'],
  [/\b(async|await)\b/, 'async code'],
  [/\bprocess\./, 'process'],
  [/\bPromise\b/, 'a Promise'],
];

t.test('raft/ sources use nothing impure', async (t) => {
  const files = readdirSync(RAFT_DIR).filter((name) => name.endsWith('.ts'));
  t.ok(files.length >= 10, `found the raft sources (${files.length} files)`);
  const findings: string[] = [];
  for (const file of files) {
    const lines = readFileSync(join(RAFT_DIR, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
      for (const [pattern, what] of FORBIDDEN) {
        if (pattern.test(code)) findings.push(`raft/${file}:${i + 1}: ${what}: ${line.trim()}`);
      }
    });
  }
  t.same(findings, [], 'no impure construct in raft/');
});

t.test('the purity check itself catches an impure line', async (t) => {
  const impure = [
    "import { readFileSync } from 'node:fs';",
    'const now = Date.now();',
    'setTimeout(f, 1);',
    'async function f() {}',
  ];
  for (const line of impure) {
    t.ok(
      FORBIDDEN.some(([pattern]) => pattern.test(line)),
      `flags: ${line}`,
    );
  }
  t.notOk(
    FORBIDDEN.some(([pattern]) => pattern.test("import { Raft } from './raft.js';")),
    'a relative import inside raft/ is fine',
  );
});
