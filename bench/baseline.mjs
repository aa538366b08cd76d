// The baseline of `scripts/bench warm`: the same warm as session-warmer's `Warmer::warm`, done
// with playwright-core against Debian's Chromium, measured the same way as
// examples/bench_warm.rs (warms/s, and PSS per live context summed over the browser's process
// tree). Prints one JSON line.
//
//   node bench/baseline.mjs --site SITE.json --flags ours|default --mode throughput|memory \
//     [--concurrency N] [--count N] [--contexts N] [--dwell-ms N] [--flavor chromium|headless-shell]
//     [--site-pid PID]   (the demo site's process, so its CPU counts with the driver's)
//     [--our-args FILE]  (required with --flags ours: session-warmer's argv, see below)
//     [--driver playwright|floor] [--window screen|default]   (see "The CDP floor" below)
//
// SITE.json is the line printed by `bench_warm --mode serve`: the demo site's base URL, its
// events, and fingerprints sampled by our own code (so both sides set the same kind of values).

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// "Identical flags" (`--flags ours`) launches with `--our-args FILE`: a JSON array, the argv of
// session-warmer's browser of the same flavour (what `launch_args` in src/browser/mod.rs gives
// plus what chromiumoxide adds), without its `--user-data-dir=` and `--remote-debugging-port=`,
// which are replaced by this launch's own dir and the `--remote-debugging-pipe` Playwright
// needs. scripts/bench writes it from session-warmer's result line of the same run.

// Playwright's defaults plus what keeps it off the network (no-sandbox is already a default
// when running without chromiumSandbox, as root must).
export const DEFAULT_EXTRA_ARGS = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

export const EXECUTABLES = {
  chromium: '/usr/lib/chromium/chromium',
  'headless-shell': '/usr/lib/chromium/chromium-headless-shell',
};

// The same scripts as warm's capture, from their one source (src/warm/*.js).
const script = (name) => fs.readFileSync(new URL(`../src/warm/${name}`, import.meta.url), 'utf8');
export const STORAGE_JS = script('storage.js');
export const OBSERVE_JS = script('observe.js');

function parseArgs(argv) {
  const o = {
    site: null, flags: 'ours', mode: 'throughput', concurrency: 1, count: 40, contexts: 10,
    dwellMs: 100, flavor: 'chromium', sitePid: null, ourArgs: null, driver: 'playwright',
    window: 'screen',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    switch (k) {
      case '--site': o.site = v; break;
      case '--flags': o.flags = v; break;
      case '--mode': o.mode = v; break;
      case '--concurrency': o.concurrency = Number(v); break;
      case '--count': o.count = Number(v); break;
      case '--contexts': o.contexts = Number(v); break;
      case '--dwell-ms': o.dwellMs = Number(v); break;
      case '--flavor': o.flavor = v; break;
      case '--site-pid': o.sitePid = Number(v); break;
      case '--our-args': o.ourArgs = v; break;
      case '--driver': o.driver = v; break;
      case '--window': o.window = v; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!o.site) throw new Error('--site SITE.json is required');
  if (!['ours', 'default'].includes(o.flags)) throw new Error(`--flags ${o.flags}?`);
  if (o.flags === 'ours' && !o.ourArgs) throw new Error('--flags ours needs --our-args FILE');
  if (!['throughput', 'memory'].includes(o.mode)) throw new Error(`--mode ${o.mode}?`);
  if (!EXECUTABLES[o.flavor]) throw new Error(`--flavor ${o.flavor}?`);
  if (!['playwright', 'floor'].includes(o.driver)) throw new Error(`--driver ${o.driver}?`);
  if (o.driver === 'floor' && o.flags !== 'ours') throw new Error('--driver floor needs --flags ours');
  if (!['screen', 'default'].includes(o.window)) throw new Error(`--window ${o.window}?`);
  return o;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const round = (v) => Math.round(v * 100) / 100;

// ---- /proc helpers (same method as examples/bench_warm.rs) ----

export function statOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 1).trim().split(/\s+/);
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

function allProcs() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = statOf(name);
    if (st && st.state !== 'Z') out.push({ pid: Number(name), ppid: st.ppid });
  }
  return out;
}

export function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/).filter(Boolean);
  } catch {
    return [];
  }
}

export function processTree(root) {
  const procs = allProcs();
  if (!procs.some((p) => p.pid === root)) return [];
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const p of procs) if (p.ppid === tree[i]) tree.push(p.pid);
  }
  return tree;
}

// The browser Playwright spawned: our child running the executable, without --type=.
export function browserPid(executable) {
  const mine = allProcs().filter((p) => p.ppid === process.pid);
  for (const p of mine) {
    const argv = cmdline(p.pid);
    if (argv[0] === executable && !argv.some((a) => a.startsWith('--type='))) return p.pid;
  }
  throw new Error(`no ${executable} child of ${process.pid}`);
}

// { pss, uss } of a process in KiB (uss = Private_Clean + Private_Dirty), null when gone.
function pssKib(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name) => {
      const m = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) : null;
    };
    const pss = field('Pss');
    if (pss === null) return null;
    return { pss, uss: (field('Private_Clean') ?? 0) + (field('Private_Dirty') ?? 0) };
  } catch {
    return null;
  }
}

function pssOfTree(root) {
  let kib = 0;
  let ussKib = 0;
  const byType = {};
  const pids = processTree(root);
  for (const pid of pids) {
    const mem = pssKib(pid);
    if (mem === null) continue;
    const k = mem.pss;
    kib += k;
    ussKib += mem.uss;
    const t = (cmdline(pid).find((a) => a.startsWith('--type=')) || '--type=browser').slice(7);
    byType[t] = (byType[t] || 0) + k;
  }
  return { kib, ussKib, processes: pids.length, byType };
}

async function settledPss(root) {
  await sleep(2000);
  const samples = [];
  for (let i = 0; i < 5; i++) {
    samples.push(pssOfTree(root));
    await sleep(300);
  }
  samples.sort((a, b) => a.kib - b.kib);
  return samples[2];
}

// CPU time (user + system, ms) per process type of the browser's tree, reaped children
// included (an exited renderer's time lands in its zygote's cutime). Clock ticks: 100/s.
function cpuOfTree(root) {
  const byType = {};
  for (const pid of processTree(root)) {
    let s;
    try {
      s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = s.slice(s.lastIndexOf(')') + 1).trim().split(/\s+/).slice(11, 15).map(Number);
    const ms = (f.reduce((a, b) => a + b, 0) / CLK_TCK) * 1000;
    const t = (cmdline(pid).find((a) => a.startsWith('--type=')) || '--type=browser').slice(7);
    byType[t] = (byType[t] || 0) + ms;
  }
  return byType;
}
const CLK_TCK = 100;

// utime + stime of one process (ms); 0 when not given or gone.
export function processCpuMs(pid) {
  if (!pid) return 0;
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 1).trim().split(/\s+/).slice(11, 13).map(Number);
    return ((f[0] + f[1]) / CLK_TCK) * 1000;
  } catch {
    return 0;
  }
}

function cpuPerWarm(before, after, driverMs, n) {
  const out = {};
  let total = 0;
  for (const [t, a] of Object.entries(after)) {
    const d = a - (before[t] || 0);
    total += d;
    out[t] = round(d / n);
  }
  out.chromium_total = round(total / n);
  out.driver = round(driverMs / n);
  return out;
}

const mib = (kib) => round(kib / 1024);
const byTypeMib = (t) => Object.fromEntries(Object.entries(t).sort().map(([k, v]) => [k, mib(v)]));

// ---- The CDP floor (`--driver floor`) ----
//
// The least a driver can make Chromium do for the same warm: the same browser (argv as ours,
// with `--remote-debugging-pipe`), the same CDP parameters session-warmer sends for the
// fingerprint (the site file's `cdp`, from `FingerprintOverrides`), and no domain enabled at all
// — no Page, Runtime, Network, Log or Performance events — with the load awaited by one
// `Runtime.evaluate` and the status read from the page's navigation timing. No real tool drives
// a browser this bare (it could not see redirects, dialogs, crashes or frames), so it bounds what
// any driver can reach on this machine. It has the playwright-core shapes `warm` and
// `openContext` use (newContext, addInitScript, newPage, goto, evaluate, cookies, close).
// `--window default` leaves each context's headless window at Chromium's default size (smaller
// than the emulated viewport) instead of sizing it to the screen.

class Cdp {
  constructor(child) {
    this.out = child.stdio[3];
    this.next = 0;
    this.pending = new Map();
    let buf = Buffer.alloc(0);
    const fail = (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    child.stdio[4].on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (let end; (end = buf.indexOf(0)) >= 0; buf = buf.subarray(end + 1)) {
        const msg = JSON.parse(buf.subarray(0, end).toString());
        const p = msg.id !== undefined && this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result);
      }
    });
    child.on('exit', () => fail(new Error('browser exited')));
  }

  send(method, params = {}, sessionId = undefined) {
    const id = ++this.next;
    this.out.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: timed out`)), 10000);
      this.pending.set(id, {
        method,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }
}

const LOADED_JS = `new Promise((done) => {
  const status = () => done(performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0);
  if (document.readyState === 'complete') status(); else addEventListener('load', status, { once: true });
})`;

class FloorPage {
  constructor(cdp, session) {
    this.cdp = cdp;
    this.session = session;
  }

  async goto(url) {
    const nav = await this.cdp.send('Page.navigate', { url }, this.session);
    if (nav.errorText) throw new Error(`${nav.errorText} for ${url}`);
    const status = await this.evaluate(LOADED_JS);
    return { status: () => status };
  }

  async evaluate(expression) {
    const r = await this.cdp.send('Runtime.evaluate',
      { expression, awaitPromise: true, returnByValue: true }, this.session);
    if (r.exceptionDetails) throw new Error(`evaluate: ${r.exceptionDetails.text}`);
    return r.result.value;
  }
}

class FloorContext {
  constructor(browser, id, fp) {
    this.browser = browser;
    this.id = id;
    this.fp = fp;
    this.closed = false;
  }

  async addInitScript() {} // the fingerprint's init script is in fp.cdp, sent by newPage

  async newPage() {
    const { cdp } = this.browser;
    const { targetId } = await cdp.send('Target.createTarget',
      { url: 'about:blank', browserContextId: this.id });
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    const o = this.fp.cdp;
    const sent = [
      cdp.send('Emulation.setUserAgentOverride', o.userAgent, sessionId),
      cdp.send('Emulation.setDeviceMetricsOverride', o.deviceMetrics, sessionId),
      cdp.send('Emulation.setTimezoneOverride', o.timezone, sessionId),
      cdp.send('Emulation.setLocaleOverride', o.locale, sessionId),
      cdp.send('Page.addScriptToEvaluateOnNewDocument', o.initScript, sessionId),
    ];
    if (this.browser.window === 'screen') {
      sent.push(cdp.send('Browser.getWindowForTarget', { targetId })
        .then(({ windowId }) => cdp.send('Browser.setWindowBounds', { windowId, bounds: o.window })));
    }
    await Promise.all(sent);
    return new FloorPage(cdp, sessionId);
  }

  async cookies() {
    return (await this.browser.cdp.send('Storage.getCookies', { browserContextId: this.id })).cookies;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.browser.cdp.send('Target.disposeBrowserContext', { browserContextId: this.id });
  }
}

class FloorBrowser {
  static async launch(executable, args, env, window) {
    const child = spawn(executable, args, { env, stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    const b = new FloorBrowser(child, window);
    b.versionString = (await b.cdp.send('Browser.getVersion')).product.replace(/^[^/]*\//, '');
    return b;
  }

  constructor(child, window) {
    this.child = child;
    this.cdp = new Cdp(child);
    this.window = window;
  }

  version() {
    return this.versionString;
  }

  async newContext(fp) {
    const { browserContextId } = await this.cdp.send('Target.createBrowserContext');
    return new FloorContext(this, browserContextId, fp);
  }

  async close() {
    const exited = new Promise((r) => (this.child.exitCode !== null ? r() : this.child.once('exit', r)));
    await this.cdp.send('Browser.close').catch(() => {});
    await Promise.race([exited, sleep(5000)]);
  }
}

// ---- the warm ----

// playwright-core takes the fingerprint as context options, the floor as CDP parameters.
function newContext(browser, fp) {
  return browser.newContext(browser instanceof FloorBrowser ? fp : contextOptions(fp));
}

export function contextOptions(fp) {
  return {
    userAgent: fp.userAgent,
    viewport: fp.viewport,
    screen: fp.screen,
    deviceScaleFactor: fp.deviceScaleFactor,
    locale: fp.locale,
    timezoneId: fp.timezoneId,
    extraHTTPHeaders: fp.extraHTTPHeaders,
  };
}

// A context with the fingerprint, a page, the event page until load: what our
// new_context + apply_fingerprint + navigate do.
async function openContext(browser, fp, url) {
  const ctx = await newContext(browser, fp);
  await ctx.addInitScript(fp.initScript);
  const page = await ctx.newPage();
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 10000 });
  if (!resp || resp.status() >= 400) throw new Error(`HTTP ${resp && resp.status()} for ${url}`);
  return { ctx, page };
}

async function warm(browser, site, i, dwellMs) {
  const fp = site.fingerprints[i % site.fingerprints.length];
  const url = `${site.base_url}/event/${site.events[i % site.events.length]}`;
  const t0 = performance.now();
  const ctx = await newContext(browser, fp);
  await ctx.addInitScript(fp.initScript);
  const page = await ctx.newPage();
  const t1 = performance.now();
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 10000 });
  const t2 = performance.now();
  try {
    if (!resp || resp.status() >= 400) throw new Error(`HTTP ${resp && resp.status()} for ${url}`);
    await sleep(dwellMs);
    const t3 = performance.now();
    const cookies = await ctx.cookies();
    const storage = await page.evaluate(STORAGE_JS);
    await page.evaluate(OBSERVE_JS);
    await ctx.close();
    const t4 = performance.now();
    return {
      latency: t4 - t0,
      phases: { context: t1 - t0, navigate: t2 - t1, dwell: t3 - t2, capture: t4 - t3 },
      cookies: cookies.length,
      storage: storage.items.length,
    };
  } finally {
    await ctx.close().catch(() => {});
  }
}

async function throughput(o, browser, site, root) {
  for (let i = 0; i < 2; i++) await warm(browser, site, i, o.dwellMs);
  const cpuBefore = cpuOfTree(root);
  const selfBefore = process.cpuUsage();
  const siteBefore = processCpuMs(o.sitePid);
  const results = [];
  const errors = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= o.count) return;
      try {
        results.push(await warm(browser, site, i, o.dwellMs));
      } catch (e) {
        errors.push(String(e.message || e).split('\n')[0]);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpuAfter = cpuOfTree(root);
  const self = process.cpuUsage(selfBefore);
  // The demo site runs in its own process here; bench_warm serves it in-process, so its CPU is
  // in the driver's figure on both sides.
  const siteMs = processCpuMs(o.sitePid) - siteBefore;
  const n = Math.max(1, results.length);
  const lat = results.map((r) => r.latency).sort((a, b) => a - b);
  const pct = (q) => (lat.length ? lat[Math.round((lat.length - 1) * q)] : 0);
  const mean = (f) => round(results.reduce((s, r) => s + f(r), 0) / n);
  return {
    mode: 'throughput',
    concurrency: o.concurrency,
    count: o.count,
    dwell_ms: o.dwellMs,
    ok: results.length,
    failed: errors.length,
    errors: errors.slice(0, 3),
    elapsed_s: round(elapsed),
    warms_per_s: round(results.length / elapsed),
    latency_ms: { mean: mean((r) => r.latency), p50: round(pct(0.5)), p95: round(pct(0.95)) },
    phases_ms: {
      context_fingerprint: mean((r) => r.phases.context),
      navigate: mean((r) => r.phases.navigate),
      dwell: mean((r) => r.phases.dwell),
      capture_close: mean((r) => r.phases.capture),
    },
    cookies_per_warm: mean((r) => r.cookies),
    storage_items_per_warm: mean((r) => r.storage),
    cpu_ms_per_warm: cpuPerWarm(cpuBefore, cpuAfter, (self.user + self.system) / 1000 + siteMs, Math.max(1, o.count)),
  };
}

async function memory(o, browser, site, root) {
  const url = (i) => `${site.base_url}/event/${site.events[i % site.events.length]}`;
  const fp = (i) => site.fingerprints[i % site.fingerprints.length];
  // One context opened, used and closed: the lazily started processes now exist.
  const first = await openContext(browser, fp(0), url(0));
  await first.ctx.close();
  const empty = await settledPss(root);
  const live = [];
  for (let i = 0; i < o.contexts; i++) live.push(await openContext(browser, fp(i), url(i)));
  const loaded = await settledPss(root);
  for (const { ctx } of live) await ctx.close();
  return {
    mode: 'memory',
    contexts: o.contexts,
    pss_per_context_mib: round((loaded.kib - empty.kib) / Math.max(1, o.contexts) / 1024),
    uss_per_context_mib: round((loaded.ussKib - empty.ussKib) / Math.max(1, o.contexts) / 1024),
    pss_empty_mib: mib(empty.kib),
    pss_loaded_mib: mib(loaded.kib),
    processes_empty: empty.processes,
    processes_loaded: loaded.processes,
    by_type_empty_mib: byTypeMib(empty.byType),
    by_type_loaded_mib: byTypeMib(loaded.byType),
  };
}

// The launch options of a run: one profile dir + TMPDIR per launch, as the supervisor does;
// with `flags` 'ours', session-warmer's argv from `ourArgs` (see "Identical flags" above).
// Returns { executable, launch, dirs, profile } (dirs: remove after the run).
export function launchConfig({ flavor, flags, ourArgs }) {
  const executable = EXECUTABLES[flavor];
  const dirs = fs.mkdtempSync(path.join(os.tmpdir(), 'warmer-bench-pw-'));
  const profile = path.join(dirs, 'profile');
  const tmp = path.join(dirs, 'tmp');
  fs.mkdirSync(profile);
  fs.mkdirSync(tmp);
  const launch = {
    executablePath: executable,
    headless: true,
    env: { ...process.env, TMPDIR: tmp },
    timeout: 20000,
  };
  if (flags === 'ours') {
    launch.ignoreDefaultArgs = true;
    const ours = JSON.parse(fs.readFileSync(ourArgs, 'utf8'));
    if (ours.some((a) => a.startsWith('--user-data-dir=') || a.startsWith('--remote-debugging-'))) {
      throw new Error(`${ourArgs} holds a per-launch flag`);
    }
    launch.args = [
      ...ours,
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
    ];
  } else {
    launch.args = DEFAULT_EXTRA_ARGS;
  }
  return { executable, launch, dirs, profile };
}

// Kills what is left of a launch (a pid counts only while its argv still names the launch's
// user-data-dir, from `browserArgs`), removes its dirs; returns the pids it had to kill.
export async function reapLaunch(pids, browserArgs, dirs) {
  await sleep(300);
  const udd = (browserArgs || []).find((a) => a.startsWith('--user-data-dir='));
  const left = pids.filter((p) => {
    const st = statOf(p);
    return st && st.state !== 'Z' && udd && cmdline(p).includes(udd);
  });
  for (const p of left) {
    try { process.kill(p, 'SIGKILL'); } catch {}
  }
  fs.rmSync(dirs, { recursive: true, force: true });
  return left;
}

export function playwrightVersion() {
  return JSON.parse(fs.readFileSync(new URL('./node_modules/playwright-core/package.json', import.meta.url))).version;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const site = JSON.parse(fs.readFileSync(o.site, 'utf8'));
  const { executable, launch, dirs } = launchConfig(o);
  const launched = performance.now();
  const browser = o.driver === 'floor'
    ? await FloorBrowser.launch(executable, launch.args, launch.env, o.window)
    : await chromium.launch(launch);
  const launchMs = performance.now() - launched;
  let root;
  let out;
  let pids = [];
  const version = browser.version();
  try {
    root = browserPid(executable);
    const browserArgs = cmdline(root).slice(1);
    out = o.mode === 'throughput' ? await throughput(o, browser, site, root) : await memory(o, browser, site, root);
    out.browser_args = browserArgs;
    pids = processTree(root);
  } finally {
    await browser.close();
  }
  const left = await reapLaunch(pids, out.browser_args, dirs);
  Object.assign(out, {
    impl: o.driver === 'floor' ? 'cdp-floor' : 'playwright-core',
    window: o.window,
    playwright_version: playwrightVersion(),
    flags: o.flags,
    flavor: o.flavor,
    executable,
    browser_version: version,
    launch_ms: round(launchMs),
    stopped_cleanly: left.length === 0,
    leftover_pids: left,
  });
  process.stdout.write(JSON.stringify(out) + '\n');
}

// Run as a program, not when bench/ready.mjs imports the helpers above.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    process.stderr.write(`baseline: ${e.stack || e}\n`);
    process.exit(1);
  });
}
