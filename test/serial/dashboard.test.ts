// The dashboard in a real browser: Debian's headless chromium, driven by puppeteer-core, shows a 3-node cluster's members and leader, follows the leader's death, asks for a token where one is needed, and saves a screenshot.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import t, { type Test } from 'tap';
import { waitFor } from '../node/process-helpers.js';
import { runningCluster } from '../node/running-cluster.js';
import { startSingleNode } from '../node/start-single.js';

const CHROMIUM = process.env.CONCLAVE_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = join(process.cwd(), '.tap', 'screenshots');
const missing = existsSync(CHROMIUM)
  ? false
  : `no browser at ${CHROMIUM}: .ci/run installs Debian's chromium (apt-get install chromium); set CONCLAVE_CHROMIUM to another one`;

async function launch(t: Test): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'conclave-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a sandbox without network: no sandbox, and none of chromium's own requests out.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
    ],
  });
  t.teardown(async () => {
    const pid = browser.process()?.pid;
    await browser.close().catch(() => undefined);
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(profile, { recursive: true, force: true });
  });
  return browser;
}

/** A page that records every request it makes and every error its script throws. */
async function open(browser: Browser): Promise<{ page: Page; requests: string[]; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => errors.push(String(error)));
  return { page, requests, errors };
}

// The page's own state, read in the browser (expressions as text: this program has no DOM types).
interface Row {
  readonly name: string;
  readonly state: string;
  readonly leader: boolean;
  readonly cells: string[];
}
const rows = (page: Page): Promise<Row[]> =>
  page.evaluate(`Array.from(document.querySelectorAll('tr[data-member]')).map((tr) => ({
    name: tr.getAttribute('data-member'),
    state: tr.getAttribute('data-state'),
    leader: tr.classList.contains('leader'),
    cells: Array.from(tr.querySelectorAll('td')).map((td) => td.textContent),
  }))`) as Promise<Row[]>;
const read = (page: Page, expression: string): Promise<unknown> => page.evaluate(expression);
const until = (page: Page, expression: string, timeout: number) =>
  page.waitForFunction(expression, { timeout });

t.test('the dashboard of a 3-node cluster follows the leader', { skip: missing }, async (t) => {
  const cluster = await runningCluster(t, 3);
  const leader = await cluster.waitForLeader();
  for (let i = 0; i < 40; i++) {
    const put = await fetch(`${leader.url}/v1/realms/default/kv/k${i}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(i),
    });
    if (put.status !== 200) t.fail(`a write answered ${put.status}: ${await put.text()}`);
  }
  const follower = cluster.nodes.find((node) => node.name !== leader.name)!;
  const browser = await launch(t);
  const { page, requests, errors } = await open(browser);
  const response = await page.goto(`${follower.url}/`);
  t.equal(response?.status(), 200);
  t.match(response?.headers()['content-security-policy'], /connect-src 'self'/);

  await until(
    page,
    `document.body.dataset.leader === ${JSON.stringify(leader.name)} && document.querySelectorAll('tr[data-member]').length === 3`,
    10_000,
  );
  const before = await rows(page);
  t.same(before.map((r) => r.name).sort(), cluster.nodes.map((n) => n.name).sort(), 'three members');
  t.same(
    before.filter((r) => r.leader).map((r) => r.name),
    [leader.name],
    'the leader is marked',
  );
  t.ok(
    before.every((r) => r.state !== 'unreachable'),
    'every member answers',
  );
  // Lag and last contact come from the leader's panel, although a follower serves the page.
  for (const row of before) {
    t.match(row.cells[6], /^\d+$/, `${row.name}: lag in entries`);
    t.match(row.cells[7], /^\d+ ms$/, `${row.name}: last contact`);
  }
  t.equal(await read(page, 'document.body.dataset.servedBy'), follower.name);
  await until(
    page,
    `Number(document.querySelector('[data-series="writes"]')?.getAttribute('data-max')) > 0`,
    5_000,
  );
  t.pass('the writes chart shows the writes');

  mkdirSync(SCREENSHOTS, { recursive: true });
  const shot = join(SCREENSHOTS, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  const png = readFileSync(shot);
  t.equal(png.subarray(1, 4).toString('latin1'), 'PNG', `screenshot saved: ${shot}`);
  t.ok(png.length > 20_000, `and not blank (${png.length} bytes)`);

  const killedAt = performance.now();
  await cluster.kill(leader);
  const old = JSON.stringify(leader.name);
  await until(
    page,
    `(document.body.dataset.leader || ${old}) !== ${old} &&
     document.querySelector('tr[data-member=' + JSON.stringify(${old}) + ']')?.getAttribute('data-state') === 'unreachable'`,
    15_000,
  );
  const followedMs = Math.round(performance.now() - killedAt);
  const after = await rows(page);
  const newLeader = after.find((r) => r.leader)?.name;
  t.not(
    newLeader,
    leader.name,
    `the page shows the new leader ${newLeader} (${followedMs} ms after the kill)`,
  );
  t.match(
    after.find((r) => r.name === leader.name)?.cells[2],
    /^unreachable: /,
    'and why the old one is missing',
  );
  const changes = (await read(
    page,
    `Array.from(document.querySelectorAll('#leaders tr[data-leader]')).map((tr) => tr.getAttribute('data-leader'))`,
  )) as string[];
  t.ok(
    changes.includes(newLeader ?? '') && changes.includes(leader.name),
    `leader changes listed: ${changes.join(', ')}`,
  );
  await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-after-failover.png'), fullPage: true });

  const origin = new URL(follower.url).origin;
  t.same(
    requests.filter((url) => new URL(url).origin !== origin),
    [],
    'no request to any other host',
  );
  t.same(errors, [], 'no script error');
});

t.test('where tokens are required the page asks for one', { skip: missing }, async (t) => {
  const node = await startSingleNode(t, ['--auth']);
  const tokenFile = join(node.dataDir, 'admin.token');
  const token = await waitFor(
    'the admin token',
    () => (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : undefined),
    10_000,
  );
  const data = await fetch(`${node.url}/v1/dashboard`);
  t.equal(data.status, 401, 'the data needs a token');
  const browser = await launch(t);
  const { page, errors } = await open(browser);
  await page.goto(`${node.url}/`);
  await page.waitForSelector('#login.shown', { timeout: 5_000 });
  t.match(await read(page, `document.getElementById('login-why').textContent`), /requires a token/);
  t.equal(
    await read(page, `document.querySelectorAll('tr[data-member]').length`),
    0,
    'nothing shown without it',
  );

  await page.type('#token', 'cnc_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  await page.click('#login button');
  await until(page, `/refused/.test(document.getElementById('login-why').textContent)`, 5_000);
  t.pass('a wrong token is refused');

  await page.type('#token', token);
  await page.click('#login button');
  await until(page, `document.querySelectorAll('tr[data-member]').length === 1`, 5_000);
  t.equal(await read(page, `document.getElementById('login').className`), 'wide', 'the form is gone');
  t.notOk(
    await read(page, `document.documentElement.outerHTML.includes(${JSON.stringify(token)})`),
    'the token is not on the page',
  );
  t.same(errors, [], 'no script error');
});
