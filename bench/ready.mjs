// The playwright-core side of `scripts/bench warm`'s "ready" scenario (issue 13): from a cold
// browser to a full pool of POOL sessions on the demo's delayed-token page
// (`/event/{id}?token_delay=MS`: its script sets the UA-bound `challenge` cookie MS after it
// starts), waiting for that cookie with `page.waitForFunction` as a plain playwright-core loop
// would, CONCURRENCY warms at a time. Same browser, flags and fingerprints as
// bench/baseline.mjs. Each session is then tried against the demo's protected API (its cookies
// and User-Agent, as a scraper would send them): one that gets 200 is usable. Prints one JSON
// line (see `result` below), the same shape as examples/bench_warm.rs's `--mode ready`.
//
//   node bench/ready.mjs --site SITE.json --flags ours|default [--our-args FILE]
//     [--flavor chromium|headless-shell] [--concurrency N] [--pool N] [--token-delay MS]
//     [--cookie NAME] [--timeout-ms MS]
//
// SITE.json is the line printed by `bench_warm --mode serve`.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import {
  browserPid, cmdline, contextOptions, launchConfig, OBSERVE_JS, playwrightVersion,
  processTree, reapLaunch, round, STORAGE_JS,
} from './baseline.mjs';

function parseArgs(argv) {
  const o = {
    site: null, flags: 'ours', ourArgs: null, flavor: 'chromium', concurrency: 1, pool: 8,
    tokenDelay: 400, cookie: 'challenge', timeoutMs: 5000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    switch (k) {
      case '--site': o.site = v; break;
      case '--flags': o.flags = v; break;
      case '--our-args': o.ourArgs = v; break;
      case '--flavor': o.flavor = v; break;
      case '--concurrency': o.concurrency = Number(v); break;
      case '--pool': o.pool = Number(v); break;
      case '--token-delay': o.tokenDelay = v; break;
      case '--cookie': o.cookie = v; break;
      case '--timeout-ms': o.timeoutMs = Number(v); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!o.site) throw new Error('--site SITE.json is required');
  if (!['ours', 'default'].includes(o.flags)) throw new Error(`--flags ${o.flags}?`);
  if (o.flags === 'ours' && !o.ourArgs) throw new Error('--flags ours needs --our-args FILE');
  if (!(o.concurrency >= 1 && o.pool >= 1)) throw new Error('--concurrency and --pool must be >= 1');
  return o;
}

const mean = (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);
const pct = (sorted, q) => (sorted.length ? sorted[Math.round((sorted.length - 1) * q)] : 0);

// One warm: context with the fingerprint → event page until load → the token cookie
// (waitForFunction on document.cookie) → cookies + localStorage + navigator → close.
async function warm(browser, site, o, i) {
  const fp = site.fingerprints[i % site.fingerprints.length];
  const event = site.events[i % site.events.length];
  const url = `${site.base_url}/event/${event}?token_delay=${o.tokenDelay}`;
  const t0 = performance.now();
  const ctx = await browser.newContext(contextOptions(fp));
  try {
    await ctx.addInitScript(fp.initScript);
    const page = await ctx.newPage();
    const resp = await page.goto(url, { waitUntil: 'load', timeout: 10000 });
    if (!resp || resp.status() >= 400) throw new Error(`HTTP ${resp && resp.status()} for ${url}`);
    const loaded = performance.now();
    await page.waitForFunction(
      (name) => document.cookie.split('; ').some((c) => c.startsWith(`${name}=`)),
      o.cookie,
      { timeout: o.timeoutMs },
    );
    const ready = performance.now();
    const cookies = await ctx.cookies();
    await page.evaluate(STORAGE_JS);
    await page.evaluate(OBSERVE_JS);
    await ctx.close();
    const end = performance.now();
    return { event, userAgent: fp.userAgent, cookies, start: t0, loaded, ready, end };
  } finally {
    await ctx.close().catch(() => {});
  }
}

// Whether a session's cookies and User-Agent get 200 from the demo's protected API.
async function usable(site, s) {
  const cookie = s.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const r = await fetch(`${site.base_url}/api/event/${s.event}`, {
    headers: { cookie, 'user-agent': s.userAgent },
    signal: AbortSignal.timeout(5000),
  });
  await r.arrayBuffer();
  return r.status === 200;
}

async function fill(o, browser, site, coldStart) {
  const sessions = [];
  const errors = [];
  // Idle time of each worker between the end of one warm and the start of its next.
  const gaps = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    let lastEnd = null;
    for (;;) {
      const i = next++;
      if (i >= o.pool) return;
      const t = performance.now();
      if (lastEnd !== null) gaps.push(t - lastEnd);
      try {
        sessions.push(await warm(browser, site, o, i));
      } catch (e) {
        errors.push(String(e.message || e).split('\n')[0]);
      }
      lastEnd = performance.now();
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.pool) }, worker));
  const finished = performance.now();
  const fillS = (finished - started) / 1000;
  const coldS = (finished - coldStart) / 1000;
  let good = 0;
  for (const s of sessions) if (await usable(site, s)) good += 1;
  const warmMs = sessions.map((s) => s.end - s.start).sort((a, b) => a - b);
  return {
    mode: 'ready',
    concurrency: o.concurrency,
    pool: o.pool,
    token_delay_ms: o.tokenDelay,
    ok: sessions.length,
    failed: errors.length,
    errors: errors.slice(0, 3),
    usable: good,
    fill_s: round(fillS),
    s_per_usable_session: good ? round(fillS / good) : null,
    cold_fill_s: round(coldS),
    s_per_usable_session_cold: good ? round(coldS / good) : null,
    warm_ms: { mean: round(mean(warmMs)), p50: round(pct(warmMs, 0.5)), p95: round(pct(warmMs, 0.95)) },
    load_ms_mean: round(mean(sessions.map((s) => s.loaded - s.start))),
    ready_after_load_ms_mean: round(mean(sessions.map((s) => s.ready - s.loaded))),
    idle_between_warms_ms: {
      total: round(gaps.reduce((a, b) => a + b, 0)),
      max: round(gaps.length ? Math.max(...gaps) : 0),
      mean: round(mean(gaps)),
    },
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const site = JSON.parse(fs.readFileSync(o.site, 'utf8'));
  const { executable, launch, dirs } = launchConfig(o);
  // From a cold start: the launch is part of the fill.
  const coldStart = performance.now();
  const browser = await chromium.launch(launch);
  const launchMs = performance.now() - coldStart;
  let out;
  let pids = [];
  try {
    const root = browserPid(executable);
    const browserArgs = cmdline(root).slice(1);
    out = await fill(o, browser, site, coldStart);
    out.browser_args = browserArgs;
    pids = processTree(root);
  } finally {
    await browser.close();
  }
  const left = await reapLaunch(pids, out.browser_args, dirs);
  Object.assign(out, {
    impl: 'playwright-core',
    playwright_version: playwrightVersion(),
    flags: o.flags,
    flavor: o.flavor,
    executable,
    browser_version: browser.version(),
    launch_ms: round(launchMs),
    stopped_cleanly: left.length === 0,
    leftover_pids: left,
  });
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ready: ${e.stack || e}\n`);
  process.exit(1);
});
