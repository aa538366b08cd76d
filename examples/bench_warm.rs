//! Benchmark of the warm path, run by `scripts/bench warm` (one configuration per run; it prints
//! one JSON line on stdout).
//!
//! - `--mode throughput`: warms/s of `Warmer::warm` against the demo site on 127.0.0.1, with
//!   `--concurrency` warms in flight, `--count` warms counted (after two uncounted ones that
//!   start Chromium's lazily started processes), and the time split per warm step.
//! - `--mode memory`: PSS per live context: `--contexts` contexts, each with a fingerprint and
//!   navigated to an event page and kept alive, minus the same browser with none open, summed
//!   over the browser process and all its descendants.
//! - `--mode ready`: from a cold start (the browser's launch included) to a full pool of
//!   `--pool` sessions on the demo's delayed-token page (`?token_delay=--token-delay`), filled
//!   by the real pool and top-up (host slot, `warm_jitter`, `--concurrency` warms at a time)
//!   with `ready_when = { cookies = ["challenge"] }` and at most `--timeout-ms` to wait; each
//!   session tried on the demo's protected API; the idle time of each warm slot between one
//!   warm's end and the next one's start. Same JSON shape as `bench/ready.mjs`.
//! - `--mode serve`: only the demo site (same config) plus sampled fingerprints for the
//!   playwright-core baseline (`bench/baseline.mjs`); prints its JSON line and serves until
//!   SIGTERM or SIGINT.
//!
//! ```text
//! cargo run --release --example bench_warm -- --flavor chromium --mode throughput --concurrency 4 --count 40
//! ```

#[path = "../tests/common/timed.rs"]
mod timed;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use session_warmer::browser::{BrowserContext, FingerprintOverrides, Supervisor};
use session_warmer::config::{
    BrowserConfig, Flavor, ScheduleConfig, StoreBackend, StoreConfig, TargetConfig,
};
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use session_warmer::fingerprint::{BrowserVersion, FingerprintSource};
use session_warmer::metrics::Metrics;
use session_warmer::pool::Pool;
use session_warmer::schedule::topup;
use session_warmer::session::Session;
use session_warmer::warm::ready::ReadyWhen;
use session_warmer::warm::{WarmRequest, WarmStep, Warmer};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timed::Timed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Throughput,
    Memory,
    Ready,
    Serve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FlavorArg {
    Chromium,
    HeadlessShell,
}

impl FlavorArg {
    fn flavor(self) -> Flavor {
        match self {
            FlavorArg::Chromium => Flavor::Chromium,
            FlavorArg::HeadlessShell => Flavor::HeadlessShell,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FlavorArg::Chromium => "chromium",
            FlavorArg::HeadlessShell => "headless-shell",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Benchmark of session-warmer's warm path (see scripts/bench warm)")]
struct Args {
    /// Which Chromium build to launch.
    #[arg(long, value_enum, default_value = "chromium")]
    flavor: FlavorArg,
    #[arg(long, value_enum, default_value = "throughput")]
    mode: Mode,
    /// Warms in flight at once (throughput).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Warms counted (throughput).
    #[arg(long, default_value_t = 40)]
    count: usize,
    /// Live contexts to measure (memory).
    #[arg(long, default_value_t = 10)]
    contexts: usize,
    /// Warm-up dwell after load, in ms (the baseline uses the same).
    #[arg(long, default_value_t = 100)]
    dwell_ms: u64,
    /// Fingerprints to print (serve).
    #[arg(long, default_value_t = 16)]
    fingerprints: usize,
    /// Sessions to fill the pool with (ready).
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// `warm_jitter` of the pool's target (ready), in ms; its default (politeness) if not given.
    #[arg(long)]
    warm_jitter_ms: Option<u64>,
    /// The demo page's `token_delay` (ready): `MS` or `LO-HI`.
    #[arg(long, default_value = "400")]
    token_delay: String,
    /// The most a warm waits for its token (ready): the target's `warmup` with `ready_when`.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// `browser.spare_context` (throughput): keep a context open ahead of the next warm.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    spare_context: bool,
}

/// The demo site as every bench run serves it: the page's script sets its cookie and storage
/// at once (`js_delay` 0), so a short dwell still captures a complete session.
fn demo_config() -> DemoConfig {
    DemoConfig {
        js_delay: Duration::ZERO,
        ..DemoConfig::default()
    }
}

fn event_url(site: &DemoSite, i: usize) -> String {
    let events = demo_events();
    format!("{}/event/{}", site.base_url(), events[i % events.len()])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,chromiumoxide=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let site_shutdown = CancellationToken::new();
    let site = DemoSite::start(demo_config(), 0, site_shutdown.clone()).await?;
    let result = match args.mode {
        Mode::Serve => serve(&args, &site).await,
        Mode::Throughput | Mode::Memory | Mode::Ready => with_browser(&args, &site).await,
    };
    site_shutdown.cancel();
    let out = result?;
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// Starts a supervisor, runs the measurement, then stops the browser and checks that none of
/// its processes is left.
async fn with_browser(args: &Args, site: &DemoSite) -> anyhow::Result<Value> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let config = BrowserConfig {
        flavor: args.flavor.flavor(),
        max_contexts: 10.max(args.concurrency).max(args.contexts + 1),
        navigation_timeout: Duration::from_secs(10),
        spare_context: args.spare_context,
        ..BrowserConfig::default()
    };
    let executable = config.resolved_executable();
    let sup = Supervisor::start(config, shutdown.clone(), &tracker);
    let launched = Instant::now();
    let info = sup.ready().await?;
    let launch_ms = launched.elapsed().as_secs_f64() * 1000.0;
    let warmer = Warmer::new(sup.clone(), Arc::new(FingerprintSource::embedded()));
    let root_pid = info
        .pid
        .ok_or_else(|| anyhow::anyhow!("the supervisor reports no browser pid"))?;
    let root = cmdline(root_pid);

    let measured = match args.mode {
        Mode::Throughput => throughput(args, site, &warmer, root_pid).await,
        Mode::Memory => memory(args, site, &warmer, root_pid).await,
        Mode::Ready => ready(args, site, &warmer, launched).await,
        Mode::Serve => unreachable!("serve runs no browser"),
    };

    let launched_pids = process_tree(root_pid);
    shutdown.cancel();
    tracker.close();
    let stopped = tokio::time::timeout(Duration::from_secs(20), tracker.wait())
        .await
        .is_ok();
    // Give exiting children a moment, then look for any process of this launch still alive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A pid counts as ours only while its argv still names this launch's profile dir.
    let profile = info.profile_dir.display().to_string();
    let mut left: Vec<u32> = launched_pids
        .into_iter()
        .filter(|p| alive(*p) && cmdline(*p).iter().any(|a| a.contains(&profile)))
        .collect();
    for pid in &left {
        // Processes of the browser this run launched, should teardown have missed one.
        // SAFETY: plain kill(2) on a pid of our own launch.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    left.sort_unstable();

    let mut out = measured?;
    let o = out.as_object_mut().expect("an object");
    o.insert("impl".into(), json!("session-warmer"));
    o.insert("flavor".into(), json!(args.flavor.name()));
    o.insert("executable".into(), json!(executable.display().to_string()));
    o.insert("browser_version".into(), json!(info.version.full));
    o.insert("launch_ms".into(), json!(round(launch_ms)));
    // argv[1..] of the browser process, so the baseline's copy of our flags can be checked.
    o.insert(
        "browser_args".into(),
        json!(root.iter().skip(1).collect::<Vec<_>>()),
    );
    o.insert("stopped_cleanly".into(), json!(stopped && left.is_empty()));
    o.insert("leftover_pids".into(), json!(left));
    Ok(out)
}

/// CPU time (user + system, ms) per process type of the browser's tree, children that were
/// reaped included (an exited renderer's time lands in its zygote's `cutime`).
fn cpu_of_tree(root: u32) -> Vec<(String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut by_type: Vec<(String, f64)> = Vec::new();
    for pid in process_tree(root) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // After "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime ...
        let f: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse().ok())
            .collect();
        let ms = f.iter().sum::<f64>() / tick * 1000.0;
        let kind = process_type(pid);
        match by_type.iter_mut().find(|(t, _)| *t == kind) {
            Some((_, v)) => *v += ms,
            None => by_type.push((kind, ms)),
        }
    }
    by_type
}

/// CPU time of this process so far (ms): the driver, and the demo site it serves.
fn self_cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn cpu_per_warm(before: &[(String, f64)], after: &[(String, f64)], driver: f64, n: usize) -> Value {
    let n = n.max(1) as f64;
    let mut map = serde_json::Map::new();
    let mut browser_total = 0.0;
    for (t, a) in after {
        let b = before
            .iter()
            .find(|(bt, _)| bt == t)
            .map_or(0.0, |(_, v)| *v);
        browser_total += a - b;
        map.insert(t.clone(), json!(round((a - b) / n)));
    }
    map.insert("chromium_total".into(), json!(round(browser_total / n)));
    map.insert("driver".into(), json!(round(driver / n)));
    Value::Object(map)
}

/// What the progress callback saw of one warm.
#[derive(Default)]
struct Steps {
    context: Option<Instant>,
    fingerprint: Option<Instant>,
    navigate: Option<Instant>,
    loaded: Option<Instant>,
    capture: Option<Instant>,
}

/// Milliseconds each step took, summed over warms.
#[derive(Default, Clone, Copy)]
struct Phases {
    /// Supervisor ready + new context (createBrowserContext + createTarget) + sampling.
    context: f64,
    /// The five CDP overrides.
    fingerprint: f64,
    /// Page.navigate until the load event.
    navigate: f64,
    /// Dwell (the configured warm-up).
    dwell: f64,
    /// Cookies + localStorage + navigator reads, and dispose.
    capture: f64,
}

async fn throughput(
    args: &Args,
    site: &DemoSite,
    warmer: &Warmer,
    root: u32,
) -> anyhow::Result<Value> {
    let request = |i: usize| WarmRequest {
        target: "bench".into(),
        event: Some(demo_events()[i % 10].clone()),
        url: event_url(site, i),
        proxy: None,
        warmup: Duration::from_millis(args.dwell_ms),
        navigation_timeout: Duration::from_secs(10),
        max_age: Duration::from_secs(7200),
        seed: None,
        viewport: None,
        turn: None,
        ready_when: None,
        warm_steps: Vec::new(),
        block: Vec::new(),
    };
    // Two uncounted warms: the network service, storage and first renderer start lazily.
    for i in 0..2 {
        warmer.warm(&request(i), &|_| {}).await?;
    }

    let cpu_before = cpu_of_tree(root);
    let self_before = self_cpu_ms();
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let count = args.count;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (next, results, warmer) = (next.clone(), results.clone(), warmer.clone());
        let reqs: Vec<WarmRequest> = (0..count).map(request).collect();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let steps = Mutex::new(Steps::default());
                let progress = |s: WarmStep| {
                    let now = Some(Instant::now());
                    let mut st = steps.lock().unwrap();
                    match s {
                        WarmStep::Context => st.context = now,
                        WarmStep::Fingerprint(_) => st.fingerprint = now,
                        WarmStep::Navigate(_) => st.navigate = now,
                        WarmStep::Loaded { .. } => st.loaded = now,
                        WarmStep::Warmup(_) | WarmStep::WaitReady { .. } | WarmStep::Step(_) => {}
                        WarmStep::Capture => st.capture = now,
                    }
                };
                let t0 = Instant::now();
                let r = warmer.warm(&reqs[i], &progress).await;
                let end = Instant::now();
                let st = steps.into_inner().unwrap();
                let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
                    (Some(a), Some(b)) => (b - a).as_secs_f64() * 1000.0,
                    _ => 0.0,
                };
                let phases = Phases {
                    context: ms(st.context, st.fingerprint),
                    fingerprint: ms(st.fingerprint, st.navigate),
                    navigate: ms(st.navigate, st.loaded),
                    dwell: ms(st.loaded, st.capture),
                    capture: ms(st.capture, Some(end)),
                };
                let outcome = r.map(|s| {
                    (
                        s.cookies.len(),
                        s.origins
                            .iter()
                            .map(|o| o.local_storage.len())
                            .sum::<usize>(),
                    )
                });
                results
                    .lock()
                    .unwrap()
                    .push(((end - t0).as_secs_f64() * 1000.0, phases, outcome));
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_of_tree(root);
    let self_ms = self_cpu_ms() - self_before;
    let results = std::mem::take(&mut *results.lock().unwrap());

    let mut latencies: Vec<f64> = Vec::new();
    let mut sum = Phases::default();
    let (mut cookies, mut storage) = (0usize, 0usize);
    let mut errors: Vec<String> = Vec::new();
    for (lat, p, outcome) in &results {
        match outcome {
            Ok((c, s)) => {
                latencies.push(*lat);
                sum.context += p.context;
                sum.fingerprint += p.fingerprint;
                sum.navigate += p.navigate;
                sum.dwell += p.dwell;
                sum.capture += p.capture;
                cookies += c;
                storage += s;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let ok = latencies.len();
    let n = ok.max(1) as f64;
    latencies.sort_by(|a, b| a.total_cmp(b));
    errors.truncate(3);
    Ok(json!({
        "mode": "throughput",
        "concurrency": args.concurrency,
        "spare_context": args.spare_context,
        "count": count,
        "dwell_ms": args.dwell_ms,
        "ok": ok,
        "failed": results.len() - ok,
        "errors": errors,
        "elapsed_s": round(elapsed),
        "warms_per_s": round(ok as f64 / elapsed),
        "latency_ms": {
            "mean": round(latencies.iter().sum::<f64>() / n),
            "p50": round(percentile(&latencies, 0.50)),
            "p95": round(percentile(&latencies, 0.95)),
        },
        "phases_ms": {
            "context": round(sum.context / n),
            "fingerprint": round(sum.fingerprint / n),
            "navigate": round(sum.navigate / n),
            "dwell": round(sum.dwell / n),
            "capture_close": round(sum.capture / n),
        },
        "cookies_per_warm": round(cookies as f64 / n),
        "storage_items_per_warm": round(storage as f64 / n),
        "cpu_ms_per_warm": cpu_per_warm(&cpu_before, &cpu_after, self_ms, count),
    }))
}

/// `--mode ready`: the pool from cold to `--pool` sessions, through the real top-up.
async fn ready(
    args: &Args,
    site: &DemoSite,
    warmer: &Warmer,
    launched: Instant,
) -> anyhow::Result<Value> {
    let mut target = TargetConfig::ad_hoc(
        "bench",
        &format!(
            "{}?token_delay={}",
            site.event_url_template(),
            args.token_delay
        ),
    );
    target.events = demo_events();
    target.pool_size = args.pool;
    target.max_concurrent_warms = args.concurrency.max(1);
    target.warmup = Duration::from_millis(args.timeout_ms);
    target.ready_when = Some(ReadyWhen {
        cookies: vec!["challenge".into()],
        ..ReadyWhen::default()
    });
    if let Some(ms) = args.warm_jitter_ms {
        target.warm_jitter = Duration::from_millis(ms);
    }
    let jitter_ms = target.warm_jitter.as_millis() as u64;
    let store_config = StoreConfig {
        backend: StoreBackend::Memory,
        ..StoreConfig::default()
    };
    let backend = session_warmer::store::open(&store_config, None).await?;
    let spans = Arc::new(Mutex::new(Vec::new()));
    let timed = Timed {
        inner: warmer.clone(),
        spans: spans.clone(),
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let pool = Arc::new(Pool::new(
        &[target],
        backend,
        timed,
        Arc::new(Metrics::default()),
        shutdown.clone(),
        tracker.clone(),
    ));
    // The daemon's top-up worker with its default tick.
    let tick = ScheduleConfig::default().top_up_every;
    let started = Instant::now();
    let worker = tokio::spawn(topup::run(pool.clone(), tick, shutdown.clone()));
    let deadline = started + Duration::from_secs(120);
    while pool.ready_count() < args.pool {
        anyhow::ensure!(Instant::now() < deadline, "the pool did not fill in 120 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let finished = Instant::now();
    shutdown.cancel();
    let _ = worker.await;
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(20), tracker.wait()).await;
    let sessions: Vec<Arc<Session>> = pool.list().into_iter().map(|(s, _)| s).collect();
    let mut good = 0;
    for s in &sessions {
        let event = s.event.as_deref().unwrap_or_default();
        let mut req = reqwest::Client::new().get(format!("{}/api/event/{event}", site.base_url()));
        for (k, v) in session_warmer::export::headers(s, session_warmer::session::now_ms()) {
            req = req.header(k, v);
        }
        if req.send().await.is_ok_and(|r| r.status().as_u16() == 200) {
            good += 1;
        }
    }
    let spans = spans.lock().unwrap().clone();
    let ok = sessions.len();
    let failed = spans.len().saturating_sub(ok);
    let mut warm_ms: Vec<f64> = spans
        .iter()
        .map(|(a, b)| (*b - *a).as_secs_f64() * 1000.0)
        .collect();
    warm_ms.sort_by(|a, b| a.total_cmp(b));
    // The host's idle time between turns (a turn: from a warm's first navigation to its page
    // ready; the pool's next warm opens its context meanwhile), the jitter included.
    let turns = pool.targets()[0].host.recent();
    let gaps: Vec<f64> = turns
        .iter()
        .filter_map(|t| t.idle_before)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut host_ms: Vec<f64> = turns
        .iter()
        .map(|t| (t.left - t.entered).as_secs_f64() * 1000.0)
        .collect();
    host_ms.sort_by(|a, b| a.total_cmp(b));
    let fill_s = (finished - started).as_secs_f64();
    let cold_s = (finished - launched).as_secs_f64();
    let per = |s: f64| (good > 0).then(|| round(s / good as f64));
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Ok(json!({
        "mode": "ready",
        "concurrency": args.concurrency,
        "pool": args.pool,
        "token_delay_ms": args.token_delay,
        "warm_jitter_ms": jitter_ms,
        "ok": ok,
        "failed": failed,
        "errors": [],
        "usable": good,
        "fill_s": round(fill_s),
        "s_per_usable_session": per(fill_s),
        "cold_fill_s": round(cold_s),
        "s_per_usable_session_cold": per(cold_s),
        "warm_ms": {
            "mean": round(mean(&warm_ms)),
            "p50": round(percentile(&warm_ms, 0.50)),
            "p95": round(percentile(&warm_ms, 0.95)),
        },
        "host_ms": {
            "p50": round(percentile(&host_ms, 0.50)),
            "p95": round(percentile(&host_ms, 0.95)),
        },
        // From the pool's start to its first turn (the first context opened on a cold
        // browser), and from the last turn's end to a full pool (capture, store, serve).
        "first_turn_after_ms": turns.first().map(|t| round(ms(t.entered.into_std() - started))),
        "full_after_last_turn_ms": turns.last().map(|t| round(ms(finished - t.left.into_std()))),
        "idle_between_warms_ms": {
            "total": round(gaps.iter().sum()),
            "max": round(gaps.iter().copied().fold(0.0, f64::max)),
            "mean": round(mean(&gaps)),
        },
    }))
}

async fn memory(args: &Args, site: &DemoSite, warmer: &Warmer, root: u32) -> anyhow::Result<Value> {
    let sup = warmer.supervisor();
    let version = sup.ready().await?.version;
    let fingerprints = FingerprintSource::embedded();
    let mut rng = rand::thread_rng();

    // One context opened, used and disposed: the lazily started processes now exist.
    let first = open_context(sup, &fingerprints, &mut rng, &version, &event_url(site, 0)).await?;
    first.dispose().await;
    let empty = settled_pss(root).await;

    let mut live: Vec<BrowserContext> = Vec::new();
    for i in 0..args.contexts {
        let url = event_url(site, i);
        live.push(open_context(sup, &fingerprints, &mut rng, &version, &url).await?);
    }
    let loaded = settled_pss(root).await;
    let n = args.contexts.max(1) as f64;
    let per_context = (loaded.kib as f64 - empty.kib as f64) / n / 1024.0;
    let uss_per_context = (loaded.uss_kib as f64 - empty.uss_kib as f64) / n / 1024.0;
    // The same contexts parked, as an account's is between checks: page closed, cookies and
    // storage kept.
    let mut parked = Vec::new();
    for ctx in live {
        parked.push(ctx.park().await);
    }
    let parked_pss = settled_pss(root).await;
    for ctx in parked {
        ctx.dispose().await;
    }
    Ok(json!({
        "mode": "memory",
        "contexts": args.contexts,
        "pss_per_context_mib": round(per_context),
        "uss_per_context_mib": round(uss_per_context),
        "pss_per_parked_context_mib": round((parked_pss.kib as f64 - empty.kib as f64) / n / 1024.0),
        "uss_per_parked_context_mib": round((parked_pss.uss_kib as f64 - empty.uss_kib as f64) / n / 1024.0),
        "pss_empty_mib": round(empty.kib as f64 / 1024.0),
        "pss_loaded_mib": round(loaded.kib as f64 / 1024.0),
        "processes_empty": empty.processes,
        "processes_loaded": loaded.processes,
        "by_type_empty_mib": empty.by_type_mib(),
        "by_type_loaded_mib": loaded.by_type_mib(),
    }))
}

async fn open_context(
    sup: &Supervisor,
    fingerprints: &FingerprintSource,
    rng: &mut rand::rngs::ThreadRng,
    version: &BrowserVersion,
    url: &str,
) -> anyhow::Result<BrowserContext> {
    let ctx = sup.new_context(None).await?;
    ctx.apply_fingerprint(&fingerprints.sample(rng, version))
        .await?;
    ctx.navigate(url, Duration::from_secs(10)).await?;
    Ok(ctx)
}

/// PSS summed over a launch's processes.
struct Pss {
    kib: u64,
    /// Private (unshared) memory: Private_Clean + Private_Dirty.
    uss_kib: u64,
    processes: usize,
    /// Per `--type=` (the browser process is "browser").
    by_type: Vec<(String, u64)>,
}

impl Pss {
    fn by_type_mib(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .by_type
            .iter()
            .map(|(t, k)| (t.clone(), json!(round(*k as f64 / 1024.0))))
            .collect();
        Value::Object(map)
    }
}

/// Waits for the browser to settle (pages' scripts run, exited renderers gone), then takes the
/// median of five samples.
async fn settled_pss(root: u32) -> Pss {
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(pss_of_tree(root));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    samples.sort_by_key(|s| s.kib);
    samples.swap_remove(2)
}

fn pss_of_tree(root: u32) -> Pss {
    let mut total = 0;
    let mut uss = 0;
    let mut by_type: Vec<(String, u64)> = Vec::new();
    let pids = process_tree(root);
    for pid in &pids {
        let Some((kib, private)) = pss_kib(*pid) else {
            continue;
        };
        total += kib;
        uss += private;
        let kind = process_type(*pid);
        match by_type.iter_mut().find(|(t, _)| *t == kind) {
            Some((_, k)) => *k += kib,
            None => by_type.push((kind, kib)),
        }
    }
    by_type.sort();
    Pss {
        kib: total,
        uss_kib: uss,
        processes: pids.len(),
        by_type,
    }
}

/// (Pss, Private_Clean + Private_Dirty) of `pid`, in KiB.
fn pss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let private = field("Private_Clean:").unwrap_or(0) + field("Private_Dirty:").unwrap_or(0);
    Some((field("Pss:")?, private))
}

/// Chromium's `--type=` of `pid` ("browser" for the browser process itself).
fn process_type(pid: u32) -> String {
    cmdline(pid)
        .iter()
        .find_map(|a| a.strip_prefix("--type=").map(str::to_string))
        .unwrap_or_else(|| "browser".into())
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// argv of `pid`. Chromium's child processes rewrite theirs as one space-separated string.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0 || *c == b' ')
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The browser process and all its descendants (zygotes, renderers, GPU, utilities), by
/// `/proc/*/stat` ppid. Their environment is no help: the zygote rewrites its argv area, so
/// `/proc/<pid>/environ` of zygote-forked processes no longer shows `TMPDIR`.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("");
            if state == "Z" {
                continue;
            }
            if let Some(ppid) = fields.next().and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    if !parents.iter().any(|(pid, _)| *pid == root) {
        tree.remove(0);
    }
    tree
}

/// Serves the demo site for the baseline, with fingerprints sampled as our warms sample them
/// (for the version of the Chromium on this machine), until SIGTERM or SIGINT.
async fn serve(args: &Args, site: &DemoSite) -> anyhow::Result<Value> {
    let config = BrowserConfig {
        flavor: args.flavor.flavor(),
        ..BrowserConfig::default()
    };
    let version = installed_version(&config.resolved_executable())?;
    let source = FingerprintSource::embedded();
    let mut rng = rand::thread_rng();
    let fingerprints: Vec<Value> = (0..args.fingerprints)
        .map(|_| {
            let fp = source.sample(&mut rng, &version);
            let headers: serde_json::Map<String, Value> = fp
                .headers()
                .into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("user-agent"))
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({
                "userAgent": fp.user_agent,
                "viewport": { "width": fp.viewport.0, "height": fp.viewport.1 },
                "screen": { "width": fp.profile.screen.width, "height": fp.profile.screen.height },
                "deviceScaleFactor": fp.profile.screen.device_pixel_ratio,
                "locale": fp.locale,
                "timezoneId": fp.timezone,
                "extraHTTPHeaders": headers,
                "initScript": fp.init_script(),
                // What session-warmer sends, for the CDP floor (`--driver floor`).
                "cdp": FingerprintOverrides::of(&fp),
            })
        })
        .collect();
    let line = json!({
        "base_url": site.base_url(),
        "events": demo_events(),
        "fingerprints": fingerprints,
    });
    // Printed now, as the caller waits for it; `main` prints nothing more.
    println!("{}", serde_json::to_string(&line)?);
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    std::process::exit(0);
}

/// The version `chromium --version` reports ("Chromium 156.0.8078.108 ").
fn installed_version(executable: &Path) -> anyhow::Result<BrowserVersion> {
    let out = std::process::Command::new(executable)
        .arg("--version")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .split_whitespace()
        .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .ok_or_else(|| anyhow::anyhow!("no version in {text:?}"))?;
    BrowserVersion::from_product(token).map_err(|e| anyhow::anyhow!(e))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
