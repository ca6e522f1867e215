// The Dockerfile, docker-compose.yml and the Kubernetes manifests: every flag they pass exists, the probes and the non-root user are there, and the image's build steps, run in a copy of what it copies, give an entrypoint that serves and a health check that tells.

/*
 * No container runtime runs here (the docker client finds no daemon, and base images cannot be
 * pulled), so the image itself is not built. Instead: the Dockerfile's build-stage COPY lines
 * decide which files go into a clean directory; its build RUN step is run there (without the
 * npm rebuild and prune that would change the shared node_modules, which is linked, as npm ci
 * would have installed it); the final stage's ENTRYPOINT and CMD are started from that build
 * (listening on 127.0.0.1 instead of 0.0.0.0), and its HEALTHCHECK command is run against it.
 */

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { freePort } from '../../scripts/local-cluster.js';
import { envName, SETTINGS } from '../../src/config.js';
import { waitFor } from './process-helpers.js';

const ROOT = process.cwd();
const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/** The flags of `conclave start --help`. */
function startFlags(): Set<string> {
  const help = execFileSync(process.execPath, [CLI, 'start', '--help'], { encoding: 'utf8' });
  return new Set([...help.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => `--${m[1]}`));
}

/** The `--flags` of a `conclave start …` argument list. */
function flagsOf(args: readonly string[]): string[] {
  return args.filter((arg) => arg.startsWith('--'));
}

interface Instruction {
  readonly line: number;
  readonly keyword: string;
  readonly rest: string;
}

/** The Dockerfile's instructions, `\` continuations joined, comments dropped. */
function dockerfile(): Instruction[] {
  const lines = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n');
  const out: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    let text = lines[i]!;
    const line = i + 1;
    if (text.trim() === '' || text.trimStart().startsWith('#')) continue;
    while (text.endsWith('\\') && i + 1 < lines.length) text = `${text.slice(0, -1)} ${lines[++i]!.trim()}`;
    const match = /^(\S+)\s+(.*)$/.exec(text.trim())!;
    out.push({ line, keyword: match[1]!.toUpperCase(), rest: match[2]! });
  }
  return out;
}

t.test('the Dockerfile', async (t) => {
  const flags = startFlags();
  const all = dockerfile();
  const stages = all.filter((i) => i.keyword === 'FROM');
  t.equal(stages.length, 2, 'two stages: build, run');
  for (const stage of stages) t.match(stage.rest, /^node:20-[a-z]+-slim\b/, `Node 20 slim: ${stage.rest}`);
  const finalAt = all.indexOf(stages[1]!);
  const build = all.slice(0, finalAt);
  const final = all.slice(finalAt);
  const one = (keyword: string) => final.filter((i) => i.keyword === keyword);
  t.same(
    one('USER').map((i) => i.rest),
    ['conclave'],
    'runs as the conclave user',
  );
  t.match(
    one('RUN')
      .map((i) => i.rest)
      .join(' '),
    /useradd --system --uid 10001/,
    'a non-root uid',
  );
  t.same(
    one('VOLUME').map((i) => i.rest),
    ['/var/lib/conclave'],
    'data in a volume',
  );
  const health = one('HEALTHCHECK')[0]!;
  t.match(health.rest, /CMD \[.*\/readyz/, 'HEALTHCHECK on /readyz');
  const entrypoint = JSON.parse(one('ENTRYPOINT')[0]!.rest) as string[];
  const cmd = JSON.parse(one('CMD')[0]!.rest) as string[];
  t.same(entrypoint, ['node', '/app/dist/src/cli.js'], 'conclave is the entrypoint');
  t.equal(cmd[0], 'start');
  for (const flag of flagsOf(cmd)) t.ok(flags.has(flag), `CMD: ${flag} exists`);

  // The build stage, run in a clean copy of what it copies.
  const dir = mkdtempSync(join(tmpdir(), 'conclave-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const copy of build.filter((i) => i.keyword === 'COPY')) {
    const parts = copy.rest.split(/\s+/);
    const target = parts.pop()!;
    for (const source of parts) {
      const to = target === './' ? join(dir, source) : join(dir, target);
      mkdirSync(dirname(to), { recursive: true });
      cpSync(join(ROOT, source), to, { recursive: true });
    }
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const buildRun = build.find((i) => i.keyword === 'RUN' && i.rest.includes('npm run build'))!;
  const steps = buildRun.rest
    .split('&&')
    .map((step) => step.trim())
    .filter((step) => !/^npm (rebuild|prune)\b/.test(step));
  t.same(steps, ['npm run build', 'rm -rf dist/test dist/scripts'], 'the build steps run here');
  const built = spawnSync('sh', ['-c', steps.join(' && ')], { cwd: dir, encoding: 'utf8', timeout: 180_000 });
  t.equal(built.status, 0, `the build steps succeed in a copy of what the Dockerfile copies ${built.stderr}`);

  const port = await freePort();
  const dataDir = join(dir, 'data');
  const args = cmd.map((arg) =>
    arg === '/var/lib/conclave' ? dataDir : arg === '0.0.0.0:8080' ? `127.0.0.1:${port}` : arg,
  );
  const node = spawn(process.execPath, [join(dir, 'dist', 'src', 'cli.js'), ...args], { stdio: 'ignore' });
  t.teardown(() => {
    if (node.exitCode === null && node.signalCode === null && node.pid) process.kill(node.pid, 'SIGKILL');
  });
  const healthArgs = JSON.parse(health.rest.replace(/^.*CMD\s+/, '')) as string[];
  t.equal(healthArgs[0], 'node');
  const healthCheck = () =>
    spawnSync(
      process.execPath,
      healthArgs.slice(1).map((arg) => arg.replace('127.0.0.1:8080', `127.0.0.1:${port}`)),
      {
        timeout: 10_000,
      },
    ).status;
  await waitFor(
    'the entrypoint serves and its health check passes',
    () => (healthCheck() === 0 ? true : undefined),
    60_000,
  );
  t.pass('the HEALTHCHECK passes against the started entrypoint');
  node.kill('SIGKILL');
  await new Promise((resolve) => node.once('exit', resolve));
  t.equal(healthCheck(), 1, 'and fails once the node is gone');
});

t.test('docker-compose.yml', async (t) => {
  const flags = startFlags();
  const compose = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<
      string,
      { command?: string[]; ports?: string[]; volumes?: string[]; healthcheck?: { test: string[] } }
    >;
  };
  const nodes = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'start');
  t.same(
    nodes.map(([name]) => name),
    ['n1', 'n2', 'n3'],
    'three nodes',
  );
  const clusters = new Set<string>();
  for (const [name, service] of nodes) {
    const command = service.command!;
    for (const flag of flagsOf(command)) t.ok(flags.has(flag), `${name}: ${flag} exists`);
    t.equal(command[command.indexOf('--name') + 1], name, `${name}: named as its service`);
    clusters.add(command[command.indexOf('--initial-cluster') + 1]!);
    t.ok(
      service.ports?.every((port) => port.startsWith('127.0.0.1:')),
      `${name}: published on this machine's loopback only`,
    );
    t.match(service.healthcheck?.test.join(' '), /\/readyz/, `${name}: health on /readyz`);
    t.ok(service.volumes?.includes('cluster-secret:/run/conclave:ro'), `${name}: the secret read-only`);
  }
  t.equal(clusters.size, 1, 'one --initial-cluster for all');
  t.same(
    [...clusters][0]!.split(',').map((member) => member.split('=')[0]),
    ['n1', 'n2', 'n3'],
  );
});

t.test('the Kubernetes manifests', async (t) => {
  const flags = startFlags();
  const envNames = new Set(SETTINGS.map((setting) => envName(setting.flag)));
  const docs = parseAllDocuments(
    readFileSync(join(ROOT, 'deploy', 'kubernetes', 'conclave.yaml'), 'utf8'),
  ).map((doc) => {
    t.same(doc.errors, [], 'valid YAML');
    return doc.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> };
  });
  const of = (kind: string) => docs.filter((doc) => doc.kind === kind);
  const set = of('StatefulSet')[0]!.spec as {
    serviceName: string;
    replicas: number;
    template: {
      spec: {
        securityContext: { runAsNonRoot: boolean; runAsUser: number };
        containers: {
          args: string[];
          env: { name: string }[];
          readinessProbe: { httpGet: { path: string } };
          livenessProbe: { httpGet: { path: string } };
        }[];
      };
    };
  };
  const container = set.template.spec.containers[0]!;
  for (const flag of flagsOf(container.args)) t.ok(flags.has(flag), `StatefulSet: ${flag} exists`);
  for (const { name } of container.env) t.ok(envNames.has(name), `StatefulSet: ${name} is a setting`);
  t.equal(container.readinessProbe.httpGet.path, '/readyz');
  t.equal(container.livenessProbe.httpGet.path, '/healthz');
  t.equal(set.template.spec.securityContext.runAsNonRoot, true);
  t.equal(set.template.spec.securityContext.runAsUser, 10001, 'the image user');
  const headless = of('Service').find((s) => s.metadata.name === set.serviceName)!;
  t.equal(headless.spec.clusterIP, 'None', 'the peers Service is headless');
  t.equal(headless.spec.publishNotReadyAddresses, true, 'founders find each other before they are ready');
  t.ok(
    of('Service').some((s) => s.spec.clusterIP !== 'None'),
    'a Service for clients',
  );
  t.equal(of('PodDisruptionBudget').length, 1, 'a PodDisruptionBudget');
  const initial = container.args[container.args.indexOf('--initial-cluster') + 1]!.split(',');
  t.same(
    initial.map((member) => member.split('=')[0]),
    Array.from({ length: set.replicas }, (_, i) => `conclave-${i}`),
    'the founders are the pods, by their stable names',
  );
  for (const member of initial) {
    t.match(
      member.split('=')[1],
      new RegExp(`^/dns4/conclave-\\d\\.${set.serviceName}/tcp/7000$`),
      'dialled by pod DNS',
    );
  }
});
