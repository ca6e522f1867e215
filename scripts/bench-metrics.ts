// What monitoring costs: put throughput of 64 clients on a three-node cluster with every node's /metrics scraped and one dashboard open (GET /v1/dashboard on a follower) once a second, against neither, in pairs back to back in one run.
//
// usage: npm run bench:metrics -- [--seconds S] [--pairs N] [--clients N]
// One cluster of three node processes on 127.0.0.1. Each pair runs the same load twice, once
// while a scraper fetches /metrics from every node every second (as Prometheus would) and a
// dashboard page polls a follower every second (which asks every member), and once without, the
// first of each pair alternating; the ratio of each pair comes from one moment of the machine.
// Also printed: how long one scrape and one dashboard answer take and how big they are.

import { ascending, type LoadResult, loop, median } from './bench-stats.js';
import { LocalCluster } from './local-cluster.js';

interface Options {
  seconds: number;
  pairs: number;
  clients: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { seconds: 3, pairs: 11, clients: 64 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[++i]);
    if (!(value > 0)) throw new Error(`${flag} needs a positive number`);
    if (flag === '--seconds') options.seconds = value;
    else if (flag === '--pairs' && Number.isInteger(value)) options.pairs = value;
    else if (flag === '--clients' && Number.isInteger(value)) options.clients = value;
    else throw new Error(`bad flag ${flag} (--seconds S --pairs N --clients N)`);
  }
  return options;
}

const BODY = JSON.stringify({ payload: 'x'.repeat(240) });
const KEYS = 10_000;

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const cluster = new LocalCluster();
  try {
    await cluster.create(3);
    cluster.startAll();
    const leader = await cluster.waitForLeader(60_000);
    const urls = cluster.nodes.map((n) => n.url);
    const scrapeTimes: number[] = [];
    let scrapeBytes = 0;
    const follower = cluster.nodes.find((n) => n.name !== leader.name)!;
    const dashboardTimes: number[] = [];
    let dashboardBytes = 0;
    const scrapeAll = async () => {
      const started = performance.now();
      const view = await (await fetch(`${follower.url}/v1/dashboard?since=${Date.now() - 5000}`)).text();
      dashboardTimes.push(performance.now() - started);
      dashboardBytes = Math.max(dashboardBytes, view.length);
      await Promise.all(
        urls.map(async (url) => {
          const started = performance.now();
          const response = await fetch(`${url}/metrics`);
          const text = await response.text();
          scrapeTimes.push(performance.now() - started);
          scrapeBytes = Math.max(scrapeBytes, text.length);
        }),
      );
    };
    let monitorFailures = 0;
    let lastMonitorError = '';
    const monitor = () =>
      void scrapeAll().catch((error: unknown) => {
        monitorFailures++;
        lastMonitorError = String((error as Error).cause ?? error);
      });
    const load = (scraped: boolean): Promise<LoadResult> => {
      const timer = scraped ? setInterval(monitor, 1000) : undefined;
      if (scraped) monitor();
      return loop(options.clients, options.seconds, async (i) => {
        const response = await fetch(`${leader.url}/v1/realms/default/kv/k${i % KEYS}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: BODY,
        });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
      }).finally(() => clearInterval(timer));
    };
    await load(false); // warm up
    console.log(
      `3-node cluster; ${options.clients} clients putting to the leader; ${options.pairs} pairs of ${options.seconds} s`,
    );
    const off: LoadResult[] = [];
    const on: LoadResult[] = [];
    const ratios: number[] = [];
    for (let pair = 0; pair < options.pairs; pair++) {
      const first = pair % 2 === 0;
      const a = await load(!first);
      const b = await load(first);
      const [without, withScrape] = first ? [a, b] : [b, a];
      off.push(without);
      on.push(withScrape);
      ratios.push(withScrape.perSecond / without.perSecond);
    }
    const m = (list: LoadResult[], f: (r: LoadResult) => number) => median(list.map(f));
    const sorted = ascending(ratios);
    console.log(
      `no scrape:          ${m(off, (r) => r.perSecond).toFixed(0)} puts/s, p50 ${m(off, (r) => r.p50).toFixed(2)} ms, p99 ${m(off, (r) => r.p99).toFixed(2)} ms`,
    );
    console.log(
      `monitored:          ${m(on, (r) => r.perSecond).toFixed(0)} puts/s, p50 ${m(on, (r) => r.p50).toFixed(2)} ms, p99 ${m(on, (r) => r.p99).toFixed(2)} ms`,
    );
    console.log(
      `ratio (median of ${options.pairs} pairs): ${median(ratios).toFixed(3)} [${sorted[0]!.toFixed(2)}, ${sorted[sorted.length - 1]!.toFixed(2)}]`,
    );
    const times = ascending(scrapeTimes);
    console.log(
      `one scrape under load: median ${median(times).toFixed(1)} ms, max ${times[times.length - 1]!.toFixed(1)} ms, ${(scrapeBytes / 1024).toFixed(1)} KiB`,
    );
    if (monitorFailures > 0)
      console.log(`failed scrapes or dashboard polls: ${monitorFailures} (last: ${lastMonitorError})`);
    const views = ascending(dashboardTimes);
    console.log(
      `one dashboard answer (3 panels, last 5 s) under load: median ${median(views).toFixed(1)} ms, max ${views[views.length - 1]!.toFixed(1)} ms, ${(dashboardBytes / 1024).toFixed(1)} KiB`,
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
