//! Reliability drills, one subcommand each; each prints what it measured, checks it against
//! its limits (exit status 1 when one is missed) and, with `--record FILE`, writes its section
//! of RELIABILITY.md. Driven at full size by `scripts/chaos`, `scripts/kill-restart` and
//! `scripts/soak`; `tests/reliability.rs` includes this file as a module and runs each drill
//! scaled down.
//!
//! - `chaos --kills N`: the demo site and a `Daemon` in this process, second-scale schedules;
//!   Chromium is SIGKILLed N times (each 200–1500 ms after it came back up) while warms,
//!   rotations and cookie refreshes run, and a task polls `GET /api/sessions/event/:id`.
//! - `kill-restart --rounds N --warmer PATH`: the real `warmer serve` against the demo site in
//!   this process, SIGKILLed N times at random points while sessions are written
//!   (`POST /api/v1/sessions`, takes and usage reports); after each kill the store is opened and
//!   every acknowledged session looked up, on disk and through the restarted daemon's API.
//! - `soak --cycles N`: `Warmer::warm` N times (warm-up 0–50 ms), sampling the PSS of the
//!   browser's process tree and this process's RSS at start, middle and end.
//!
//! Every Chromium of a drill lives under this process's `TMPDIR`: the supervisor makes its
//! profile dir there (`$TMPDIR/warmer-chromium-*`) and gives Chromium a TMPDIR inside it, which
//! every Chromium process inherits. So a drill tells its own browsers and directories from
//! anyone else's on the machine by that prefix alone. When `TMPDIR` is not already private
//! (the scripts make one), `main` makes a private one and removes it at the end.
//!
//! ```text
//! cargo run --release --example reliability -- chaos --kills 50
//! cargo run --release --example reliability -- kill-restart --rounds 20 --warmer target/release/warmer
//! cargo run --release --example reliability -- soak --cycles 2000
//! ```

use anyhow::{anyhow, bail, Context as _};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use session_warmer::config::{BrowserConfig, Config, TargetConfig, ValidateConfig};
use session_warmer::daemon::Daemon;
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use session_warmer::fingerprint::FingerprintSource;
use session_warmer::session::{now_ms, SessionState};
use session_warmer::store::SledStore;
use session_warmer::warm::{WarmRequest, Warmer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ---------------------------------------------------------------------------------------------
// Processes, memory, directories

/// Parent pid of `pid`, from `/proc/<pid>/stat`.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `root` and every process below it.
pub fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, Option<u32>)> = all_pids().into_iter().map(|p| (p, ppid(p))).collect();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for (c, pp) in &parents {
            if *pp == Some(p) && !out.contains(c) {
                out.push(*c);
            }
        }
        i += 1;
    }
    out
}

/// A `kB` field of a `/proc` file (`Pss:` of smaps_rollup, `VmRSS:` of status).
fn kib_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process's resident set in KiB.
pub fn own_rss_kib() -> u64 {
    kib_field("/proc/self/status", "VmRSS:").unwrap_or(0)
}

/// Live Chromium processes of the browsers under `root`, each with its browser dir
/// (`root/warmer-chromium-*`). A process is one when its environment has its `TMPDIR` in such a
/// dir, or its command line has `--user-data-dir` there: Chromium's zygote rewrites its
/// argument and environment area (for its process title), so the zygotes and the renderers they
/// fork have no `TMPDIR` left, and the crashpad handlers (reparented to init) have no
/// `--user-data-dir`.
/// Zombies have neither and are not counted.
pub fn browser_processes(root: &Path) -> Vec<(u32, PathBuf)> {
    let base = format!("{}/warmer-chromium-", root.display());
    let dir_of = |value: &str| -> PathBuf {
        let rest = &value[base.len()..];
        let name = rest.split('/').next().unwrap_or(rest);
        root.join(format!("warmer-chromium-{name}"))
    };
    let mut found = Vec::new();
    for pid in all_pids() {
        let mut dir = None;
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            dir = env.split(|b| *b == 0).find_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.strip_prefix("TMPDIR=")
                    .filter(|v| v.starts_with(&base))
                    .map(dir_of)
            });
        }
        if dir.is_none() {
            // Split on spaces too: the zygote's children have their command line rewritten
            // as one string (process title).
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                dir = cmd.split_whitespace().find_map(|a| {
                    a.strip_prefix("--user-data-dir=")
                        .filter(|v| v.starts_with(&base))
                        .map(dir_of)
                });
            }
        }
        if let Some(d) = dir {
            found.push((pid, d));
        }
    }
    found
}

/// The processes of one browser: its process tree plus every process of its dir (the zygote
/// is reparented to init, and the renderers are its children), each with its PSS in KiB and
/// its kind (`browser`, `renderer`, `zygote`, `gpu-process`, `utility:<sub-type>`, `crashpad`).
pub fn browser_processes_pss(root: &Path, dir: &Path, pid: u32) -> Vec<(u32, String, u64)> {
    let mut pids: BTreeSet<u32> = process_tree(pid).into_iter().collect();
    pids.extend(
        browser_processes(root)
            .into_iter()
            .filter(|(_, d)| d == dir)
            .map(|(p, _)| p),
    );
    pids.into_iter()
        .filter_map(|p| {
            let pss = kib_field(&format!("/proc/{p}/smaps_rollup"), "Pss:")?;
            // The zygote's children have their command line rewritten as one string (process
            // title), so split on spaces too.
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let args: Vec<&str> = cmd.split_whitespace().collect();
            let flag = |name: &str| args.iter().find_map(|a| a.strip_prefix(name));
            let exe = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
            let kind = if exe.is_some_and(|e| e.contains("crashpad")) {
                "crashpad".to_string()
            } else {
                match (flag("--type="), flag("--utility-sub-type=")) {
                    (Some(t), Some(sub)) => format!("{t}:{}", sub.trim_end_matches(".mojom")),
                    (Some(t), None) => t.to_string(),
                    (None, _) => "browser".to_string(),
                }
            };
            Some((p, kind, pss))
        })
        .collect()
}

/// The processes of one browser: its process tree plus the reparented ones of its dir.
fn browser_pids(root: &Path, dir: &Path, pid: u32) -> BTreeSet<u32> {
    let mut pids: BTreeSet<u32> = process_tree(pid).into_iter().collect();
    pids.extend(
        browser_processes(root)
            .into_iter()
            .filter(|(_, d)| d == dir)
            .map(|(p, _)| p),
    );
    pids
}

/// PSS in KiB and process count of one browser (see [`browser_processes_pss`]).
pub fn browser_pss_kib(root: &Path, dir: &Path, pid: u32) -> (u64, usize) {
    let pids = browser_pids(root, dir, pid);
    let pss = pids
        .iter()
        .filter_map(|p| kib_field(&format!("/proc/{p}/smaps_rollup"), "Pss:"))
        .sum();
    (pss, pids.len())
}

/// Private memory (USS: Private_Clean + Private_Dirty) in KiB of one browser. Unlike PSS it
/// does not shrink when other Chromium processes on the machine share the same pages.
pub fn browser_uss_kib(root: &Path, dir: &Path, pid: u32) -> u64 {
    browser_pids(root, dir, pid)
        .iter()
        .map(|p| {
            let f = format!("/proc/{p}/smaps_rollup");
            kib_field(&f, "Private_Clean:").unwrap_or(0)
                + kib_field(&f, "Private_Dirty:").unwrap_or(0)
        })
        .sum()
}

/// Chromium processes on the machine that are not this browser's: they share its code pages
/// and so lower its PSS while they run.
pub fn other_chromium_processes(root: &Path, dir: &Path, pid: u32) -> usize {
    let ours = browser_pids(root, dir, pid);
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| !ours.contains(p))
                .filter(|p| {
                    std::fs::read_link(format!("/proc/{p}/exe"))
                        .is_ok_and(|x| x.to_string_lossy().contains("chromium"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Browser profile dirs (`warmer-chromium-*`) directly under `root`.
pub fn browser_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("warmer-chromium-")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// SIGKILLs every browser process under `root` and removes the browser dirs; returns
/// (processes killed, dirs removed).
pub fn reap_browsers(root: &Path) -> (usize, usize) {
    let procs = browser_processes(root);
    for (pid, _) in &procs {
        // SAFETY: kill(2) on pids whose environment marks them as browsers of this drill.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    let end = Instant::now() + Duration::from_secs(5);
    while !browser_processes(root).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let dirs = browser_dirs(root);
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    (procs.len(), dirs.len())
}

// ---------------------------------------------------------------------------------------------
// Logging: stderr, plus a count of the "tick overran its timeout" warnings (a hung worker)

/// Warnings "tick overran its timeout" seen so far in this process.
pub static OVERRAN: AtomicU64 = AtomicU64::new(0);

struct CountOverruns;

struct Message(bool);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains("tick overran its timeout") {
            self.0 = true;
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountOverruns {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            OVERRAN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Logs to stderr at `level` (chromiumoxide capped as the daemon does) and counts overruns.
pub fn init_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(session_warmer::logging::filter(level));
    let count = CountOverruns.with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(count)
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

fn rand_ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(lo..=hi))
}

/// Polls `f` every 20 ms until it returns `Some`, or gives up after `deadline`.
async fn poll<T, F, Fut>(deadline: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sleeps `d` unless `stop` fires first; false when it fired.
async fn nap(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// The counters of a Prometheus text rendering, by their full series name.
fn counters(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn counter(c: &BTreeMap<String, u64>, series: &str) -> u64 {
    c.get(series).copied().unwrap_or(0)
}

/// The `label="..."` values of the series of `metric` whose labels include `fixed`, with counts.
fn by_label(
    c: &BTreeMap<String, u64>,
    metric: &str,
    fixed: &str,
    label: &str,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for (series, v) in c {
        if !series.starts_with(&format!("{metric}{{")) || !series.contains(fixed) {
            continue;
        }
        if let Some(i) = series.find(&key) {
            let rest = &series[i + key.len()..];
            if let Some(j) = rest.find('"') {
                *out.entry(rest[..j].to_string()).or_default() += *v;
            }
        }
    }
    out
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn median(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(from: u64, to: u64) -> f64 {
    if from == 0 {
        return 0.0;
    }
    ((to as f64 - from as f64) / from as f64 * 1000.0).round() / 10.0
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// A demo target with the given pool size and second-scale schedules.
fn demo_target(site: &DemoSite, pool_size: usize) -> TargetConfig {
    let mut t = TargetConfig::ad_hoc("demo", &site.event_url_template());
    t.events = demo_events();
    t.warmup = Duration::from_millis(500);
    t.pool_size = pool_size;
    t.max_concurrent_warms = 2;
    t.validate = Some(ValidateConfig {
        url: format!("{}/api/event/{{event}}", site.base_url()),
        expect_status: 200,
        require_cookies: vec!["visitor".into()],
    });
    t
}

fn browser_config() -> BrowserConfig {
    BrowserConfig {
        navigation_timeout: Duration::from_secs(10),
        ..BrowserConfig::default()
    }
}

/// Waits (bounded) for the browser processes under `root` to exit, then for their dirs to go.
async fn settle_leftovers(root: &Path) {
    poll(Duration::from_secs(10), || async {
        browser_processes(root).is_empty().then_some(())
    })
    .await;
    poll(Duration::from_secs(2), || async {
        browser_dirs(root).is_empty().then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// chaos: SIGKILL Chromium under load, in-process daemon

/// Sizes of a chaos run.
#[derive(Debug, Clone)]
pub struct ChaosOpts {
    /// Chromium kills.
    pub kills: usize,
    /// Pause between a browser coming up and the next kill, ms (uniform).
    pub gap_ms: (u64, u64),
    pub pool_size: usize,
    /// For the pool to fill at the start.
    pub fill_deadline: Duration,
    /// For the relaunch after the last kill plus fresh warms, refreshes and validations.
    pub progress_deadline: Duration,
    /// For the pool to be full again after two sessions were retired.
    pub refill_deadline: Duration,
}

impl ChaosOpts {
    pub fn new(kills: usize) -> Self {
        Self {
            kills,
            gap_ms: (200, 1500),
            pool_size: 4,
            fill_deadline: Duration::from_secs(90),
            progress_deadline: Duration::from_secs(120),
            refill_deadline: Duration::from_secs(60),
        }
    }
}

/// One kill.
#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    /// Seconds since the pool was filled.
    pub at_s: f64,
    pub generation: u64,
    /// Live browser contexts (warms, rotations, refreshes) at the kill.
    pub live_contexts: usize,
    /// Warms of new sessions under way at the kill.
    pub warming: usize,
    /// From the kill to the next browser up.
    pub relaunch_ms: Option<u64>,
}

/// What a chaos run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    pub kills_requested: usize,
    pub pool_size: usize,
    pub kills: Vec<Kill>,
    pub kills_with_live_contexts: usize,
    pub browser_launches: u64,
    pub relaunch_ms_median: u64,
    pub relaunch_ms_max: u64,
    pub fill_s: f64,
    pub chaos_s: f64,
    pub total_s: f64,
    /// Polls of `GET /api/sessions/event/:id` once the pool was filled.
    pub polls: u64,
    pub non_200: u64,
    pub non_200_by_status: BTreeMap<String, u64>,
    pub first_errors: Vec<String>,
    /// Distinct session ids the API served (200).
    pub acked: usize,
    /// Distinct ready session ids seen in the pool (sampled every 250 ms).
    pub seen_ready: usize,
    /// Of those, neither in the pool nor in the store.
    pub lost: Vec<String>,
    /// Of those, retired without a recorded reason.
    pub retired_without_reason: Vec<String>,
    pub retired_by_reason: BTreeMap<String, usize>,
    pub still_ready: usize,
    pub warms: BTreeMap<String, u64>,
    pub cookie_refreshes: BTreeMap<String, u64>,
    pub validations: BTreeMap<String, u64>,
    /// After the last kill: the browser back, then `pool_size` warms, a cookie refresh and a
    /// validation succeeded — no worker hung.
    pub progress_after_s: Option<f64>,
    /// After that, two sessions reported blocked (403): until the pool is full again.
    pub refill_s: Option<f64>,
    /// `POST /api/v1/fetch` of the demo API in a context revived from a session stored before
    /// the last kill, in the relaunched browser: (HTTP status, page status).
    pub revived_fetch: Option<(u16, Option<u64>)>,
    /// Chromium processes and browser dirs other than the current browser's, after the run
    /// settled (at most 15 s).
    pub extra_processes: usize,
    pub extra_dirs: usize,
    /// Chromium processes and browser dirs left after the daemon's shutdown (at most 10 s).
    pub left_processes: usize,
    pub left_dirs: usize,
    pub shutdown_s: f64,
    /// "tick overran its timeout" warnings logged.
    pub overran: u64,
}

impl ChaosReport {
    /// The limits missed, in words; empty when all are met.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.kills.len() < self.kills_requested {
            f.push(format!(
                "only {} of {} kills happened",
                self.kills.len(),
                self.kills_requested
            ));
        }
        if self.polls == 0 {
            f.push("no poll was answered after the pool filled".into());
        }
        if self.non_200 > 0 {
            f.push(format!(
                "{} of {} polls after the pool filled were not 200: {:?} {:?}",
                self.non_200, self.polls, self.non_200_by_status, self.first_errors
            ));
        }
        if !self.lost.is_empty() {
            f.push(format!(
                "{} sessions lost: {:?}",
                self.lost.len(),
                self.lost
            ));
        }
        if !self.retired_without_reason.is_empty() {
            f.push(format!(
                "{} sessions retired without a reason: {:?}",
                self.retired_without_reason.len(),
                self.retired_without_reason
            ));
        }
        if self.progress_after_s.is_none() {
            f.push("no progress after the last kill (warms, refresh, validation)".into());
        }
        if self.progress_after_s.is_some() && self.refill_s.is_none() {
            f.push("the pool did not refill after two sessions were retired".into());
        }
        match self.revived_fetch {
            Some((200, Some(200))) | None => {}
            Some(other) => f.push(format!(
                "fetch in a context revived from stored cookies: {other:?}"
            )),
        }
        if self.extra_processes + self.extra_dirs > 0 {
            f.push(format!(
                "{} Chromium processes and {} browser dirs beyond the current browser's",
                self.extra_processes, self.extra_dirs
            ));
        }
        if self.left_processes + self.left_dirs > 0 {
            f.push(format!(
                "{} Chromium processes and {} browser dirs left after shutdown",
                self.left_processes, self.left_dirs
            ));
        }
        if self.overran > 0 {
            f.push(format!(
                "{} worker ticks overran their timeout",
                self.overran
            ));
        }
        f
    }

    fn summary(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        use std::fmt::Write;
        let _ = writeln!(
            w,
            "kills: {} of {} ({} with live contexts); launches {}; relaunch after a kill: median {} ms, max {} ms",
            self.kills.len(),
            self.kills_requested,
            self.kills_with_live_contexts,
            self.browser_launches,
            self.relaunch_ms_median,
            self.relaunch_ms_max
        );
        let _ = writeln!(
            w,
            "time: pool filled in {} s, chaos {} s, total {} s",
            self.fill_s, self.chaos_s, self.total_s
        );
        let _ = writeln!(
            w,
            "serving: {} polls after fill, {} non-200 {:?}",
            self.polls, self.non_200, self.non_200_by_status
        );
        let _ = writeln!(
            w,
            "sessions: {} acked by the API, {} seen ready, {} lost, {} retired without reason, {} still ready; retired: {:?}",
            self.acked,
            self.seen_ready,
            self.lost.len(),
            self.retired_without_reason.len(),
            self.still_ready,
            self.retired_by_reason
        );
        let _ = writeln!(
            w,
            "warms {:?}; cookie refreshes {:?}; validations {:?}",
            self.warms, self.cookie_refreshes, self.validations
        );
        let _ = writeln!(
            w,
            "after the last kill: progress in {:?} s; revived fetch {:?}; refill after 2 retirements {:?} s",
            self.progress_after_s, self.revived_fetch, self.refill_s
        );
        let _ = writeln!(
            w,
            "leftovers: {} processes / {} dirs beyond the current browser; after shutdown ({} s): {} processes / {} dirs; overran ticks: {}",
            self.extra_processes,
            self.extra_dirs,
            self.shutdown_s,
            self.left_processes,
            self.left_dirs,
            self.overran
        );
        s
    }

    fn markdown(&self) -> String {
        let f = self.failures();
        let mut out = Vec::new();
        out.push(format!(
            "| Chromium SIGKILLs | {} ({} with live contexts: warms, rotations, refreshes) |",
            self.kills.len(),
            self.kills_with_live_contexts
        ));
        out.push(format!(
            "| browser launches | {} (relaunch after a kill: median {} ms, max {} ms) |",
            self.browser_launches, self.relaunch_ms_median, self.relaunch_ms_max
        ));
        out.push(format!(
            "| duration | pool filled in {} s; chaos {} s; whole run {} s |",
            self.fill_s, self.chaos_s, self.total_s
        ));
        out.push(format!(
            "| `GET /api/sessions/event/:id` after the pool filled | {} polls, **{} non-200** |",
            self.polls, self.non_200
        ));
        out.push(format!(
            "| sessions acknowledged (served 200) / seen ready | {} / {} |",
            self.acked, self.seen_ready
        ));
        out.push(format!(
            "| **sessions lost** / retired without a reason | **{}** / {} |",
            self.lost.len(),
            self.retired_without_reason.len()
        ));
        out.push(format!(
            "| retired, by recorded reason | {} |",
            fmt_map(&self.retired_by_reason)
        ));
        out.push(format!("| warms, by outcome | {} |", fmt_map(&self.warms)));
        out.push(format!(
            "| cookie refreshes (context revived from stored cookies) | {} |",
            fmt_map(&self.cookie_refreshes)
        ));
        out.push(format!("| validations | {} |", fmt_map(&self.validations)));
        out.push(format!(
            "| progress after the last kill (browser up, {} warms, a refresh and a validation ok) | {} |",
            self.pool_size,
            self.progress_after_s
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "**none**".into())
        ));
        out.push(format!(
            "| then two sessions reported blocked (403): pool full again after | {} |",
            self.refill_s
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "**never**".into())
        ));
        out.push(format!(
            "| `POST /api/v1/fetch` with a session stored before the last kill | {} |",
            match self.revived_fetch {
                Some((h, p)) => format!(
                    "HTTP {h}, demo API answered {}",
                    p.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
                ),
                None => "not run (no such session)".into(),
            }
        ));
        out.push(format!(
            "| Chromium processes / browser dirs beyond the current browser's | {} / {} |",
            self.extra_processes, self.extra_dirs
        ));
        out.push(format!(
            "| left after shutdown ({} s) | {} processes / {} dirs |",
            self.shutdown_s, self.left_processes, self.left_dirs
        ));
        out.push(format!(
            "| \"tick overran its timeout\" log lines | {} |",
            self.overran
        ));
        let mut s = String::from("| | |\n|---|---|\n");
        s.push_str(&out.join("\n"));
        s.push('\n');
        s.push_str(&verdict(&f));
        s
    }
}

fn fmt_kinds(m: &BTreeMap<String, (usize, u64)>) -> String {
    m.iter()
        .map(|(k, (n, p))| format!("{k} {n}× {} MiB", mib(*p)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_map<V: std::fmt::Display>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "—".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(f: &[String]) -> String {
    if f.is_empty() {
        "\nAll checks passed.\n".into()
    } else {
        let mut s = String::from("\n**Checks missed:**\n\n");
        for x in f {
            s.push_str(&format!("- {x}\n"));
        }
        s
    }
}

#[derive(Default)]
struct Polls {
    polls: u64,
    non_200: u64,
    by_status: BTreeMap<String, u64>,
    first_errors: Vec<String>,
    acked: BTreeSet<String>,
}

/// Runs the chaos drill. Chromium and its dirs live under `std::env::temp_dir()`.
///
/// # Errors
/// When the demo site or the daemon cannot start; missed limits are in the report.
pub async fn chaos(opts: &ChaosOpts) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    let root = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("chaos-store-")
        .tempdir_in(&root)?;
    let site_stop = CancellationToken::new();
    let site = DemoSite::start(DemoConfig::default(), 0, site_stop.clone()).await?;
    let mut t = demo_target(&site, opts.pool_size);
    t.rotate_every = Duration::from_secs(3);
    t.cookie_refresh_every = Duration::from_secs(2);
    t.validate_every = Duration::from_secs(2);
    let mut config = Config::default();
    config.store.path = dir.path().join("store");
    config.browser = browser_config();
    config.schedule.top_up_every = Duration::from_millis(300);
    config.schedule.persist_every = Duration::from_millis(500);
    config.targets = vec![t];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let overran0 = OVERRAN.load(Ordering::Relaxed);
    let daemon = Daemon::start(config, Some(listener))
        .await
        .map_err(|e| anyhow!("daemon: {e}"))?;
    let base = format!("http://{}", daemon.addr);
    let pool = daemon.pool.clone();
    let sup = pool.warmer().supervisor().clone();
    let mut report = ChaosReport {
        kills_requested: opts.kills,
        pool_size: opts.pool_size,
        ..Default::default()
    };

    // The poller: counts every non-200 once the pool was filled; collects served ids.
    let filled = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(Mutex::new(Polls::default()));
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    {
        let (filled, polls, stop, base) =
            (filled.clone(), polls.clone(), stop.clone(), base.clone());
        tasks.spawn(async move {
            let client = http();
            let events = demo_events();
            let mut i = 0usize;
            loop {
                let counted = filled.load(Ordering::SeqCst);
                let ev = &events[i % events.len()];
                i += 1;
                let r = client
                    .get(format!("{base}/api/sessions/event/{ev}"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let (status, body) = match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (
                            s.to_string(),
                            r.json::<Value>().await.unwrap_or(Value::Null),
                        )
                    }
                    Err(e) => ("transport error".to_string(), json!(e.to_string())),
                };
                {
                    let mut p = polls.lock().unwrap();
                    if status == "200" {
                        if let Some(id) = body["session_id"].as_str() {
                            p.acked.insert(id.to_string());
                        }
                    }
                    if counted {
                        p.polls += 1;
                        if status != "200" {
                            p.non_200 += 1;
                            *p.by_status.entry(status).or_default() += 1;
                            if p.first_errors.len() < 5 {
                                p.first_errors.push(body.to_string());
                            }
                        }
                    }
                }
                if !nap(Duration::from_millis(20), &stop).await {
                    break;
                }
            }
        });
    }
    // Ready ids as the pool holds them, sampled.
    let seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    {
        let (seen, stop, pool) = (seen.clone(), stop.clone(), pool.clone());
        tasks.spawn(async move {
            loop {
                {
                    let mut s = seen.lock().unwrap();
                    for (sess, _) in pool.list() {
                        if sess.state == SessionState::Ready {
                            s.insert(sess.id.clone());
                        }
                    }
                }
                if !nap(Duration::from_millis(250), &stop).await {
                    break;
                }
            }
        });
    }

    let fill = poll(opts.fill_deadline, || async {
        (pool.ready_count() >= opts.pool_size).then_some(())
    })
    .await;
    report.fill_s = secs(started.elapsed());
    let result = if fill.is_none() {
        Err(anyhow!(
            "the pool did not fill ({} of {} ready) within {:?}",
            pool.ready_count(),
            opts.pool_size,
            opts.fill_deadline
        ))
    } else {
        filled.store(true, Ordering::SeqCst);
        chaos_kills(opts, &daemon, &site, &base, &mut report).await
    };

    stop.cancel();
    tasks.close();
    tasks.wait().await;
    {
        let all: BTreeSet<String> = {
            let p = polls.lock().unwrap();
            report.polls = p.polls;
            report.non_200 = p.non_200;
            report.non_200_by_status = p.by_status.clone();
            report.first_errors = p.first_errors.clone();
            report.acked = p.acked.len();
            let seen = seen.lock().unwrap();
            report.seen_ready = seen.len();
            p.acked.union(&seen).cloned().collect()
        };
        for id in all {
            let s = match pool.get(&id) {
                Some(s) => Some((*s).clone()),
                None => pool.store().get_session(&id).await.ok().flatten(),
            };
            match s {
                None => report.lost.push(id),
                Some(s) if s.state == SessionState::Retired => {
                    match s.health.retired_reason.as_deref() {
                        Some(r) if !r.is_empty() => {
                            let label = r.split(':').next().unwrap_or(r).to_string();
                            *report.retired_by_reason.entry(label).or_default() += 1;
                        }
                        _ => report.retired_without_reason.push(id),
                    }
                }
                Some(_) => report.still_ready += 1,
            }
        }
    }
    let c = counters(&pool.metrics.render(&[]));
    report.warms = by_label(&c, "warmer_warms_total", "", "outcome");
    report.cookie_refreshes = by_label(
        &c,
        "warmer_worker_events_total",
        "worker=\"cookie_refresh\"",
        "outcome",
    );
    report.validations = by_label(
        &c,
        "warmer_worker_events_total",
        "worker=\"validate\"",
        "outcome",
    );
    report.browser_launches = sup.launches();

    let t = Instant::now();
    daemon.shutdown().await;
    report.shutdown_s = secs(t.elapsed());
    site_stop.cancel();
    settle_leftovers(&root).await;
    report.left_processes = browser_processes(&root).len();
    report.left_dirs = browser_dirs(&root).len();
    report.overran = OVERRAN.load(Ordering::Relaxed) - overran0;
    report.total_s = secs(started.elapsed());
    result.map(|()| report)
}

async fn chaos_kills(
    opts: &ChaosOpts,
    daemon: &Daemon,
    site: &DemoSite,
    base: &str,
    report: &mut ChaosReport,
) -> anyhow::Result<()> {
    let pool = &daemon.pool;
    let sup = pool.warmer().supervisor();
    let root = std::env::temp_dir();
    let target = &pool.targets()[0];
    let chaos_started = Instant::now();
    let mut last_kill: Option<(Instant, UnixMs)> = None;
    let mut metrics_at_last_kill = BTreeMap::new();
    while report.kills.len() < opts.kills {
        // A browser must be up (after a kill the supervisor backs off before relaunching).
        let up = poll(Duration::from_secs(120), || async { sup.current() }).await;
        let Some(info) = up else {
            bail!(
                "no browser came up within 120 s after kill {}",
                report.kills.len()
            );
        };
        if let (Some(k), Some((at, _))) = (report.kills.last_mut(), last_kill) {
            if k.relaunch_ms.is_none() {
                k.relaunch_ms = Some(at.elapsed().as_millis() as u64);
            }
        }
        tokio::time::sleep(rand_ms(opts.gap_ms.0, opts.gap_ms.1)).await;
        let live = sup.live_contexts();
        let warming = target.warming();
        let Some(pid) = sup.kill_for_test() else {
            continue;
        };
        let now = Instant::now();
        metrics_at_last_kill = counters(&pool.metrics.render(&[]));
        last_kill = Some((now, now_ms()));
        tracing::info!(
            pid,
            generation = info.generation,
            live,
            warming,
            "chaos: killed Chromium"
        );
        report.kills.push(Kill {
            at_s: secs(chaos_started.elapsed()),
            generation: info.generation,
            live_contexts: live,
            warming,
            relaunch_ms: None,
        });
        // Until the supervisor has noticed, so the next kill hits the next browser.
        poll(Duration::from_secs(30), || async {
            match sup.current() {
                Some(i) if i.generation == info.generation => None,
                _ => Some(()),
            }
        })
        .await;
    }
    report.chaos_s = secs(chaos_started.elapsed());
    report.kills_with_live_contexts = report.kills.iter().filter(|k| k.live_contexts > 0).count();

    // Progress after the last kill: the browser back, fresh warms, a refresh and a validation.
    let (killed_at, killed_ms) = last_kill.ok_or_else(|| anyhow!("no kill happened"))?;
    let ok = counter;
    let warm_ok = "warmer_warms_total{target=\"demo\",outcome=\"ok\"}";
    let refresh_ok = "warmer_worker_events_total{worker=\"cookie_refresh\",outcome=\"ok\"}";
    let validate_ok = "warmer_worker_events_total{worker=\"validate\",outcome=\"ok\"}";
    let m0 = metrics_at_last_kill;
    let up = poll(opts.progress_deadline, || async { sup.current() }).await;
    if let (Some(_), Some(k)) = (&up, report.kills.last_mut()) {
        k.relaunch_ms = Some(killed_at.elapsed().as_millis() as u64);
    }
    // A session stored before the last kill, loaded in a context revived from its stored
    // cookies in the relaunched browser.
    if up.is_some() {
        let old = pool
            .list()
            .into_iter()
            .filter(|(s, _)| s.state == SessionState::Ready && s.created_at < killed_ms)
            .map(|(s, _)| s)
            .next();
        if let Some(s) = old {
            let event = s.event.clone().unwrap_or_else(|| "1001".into());
            let r = http()
                .post(format!("{base}/api/v1/fetch"))
                .header("X-Session-ID", &s.id)
                .json(&json!({"url": format!("{}/api/event/{event}", site.base_url())}))
                .send()
                .await;
            report.revived_fetch = Some(match r {
                Ok(r) => {
                    let st = r.status().as_u16();
                    let v = r.json::<Value>().await.unwrap_or(Value::Null);
                    (st, v["status"].as_u64())
                }
                Err(_) => (0, None),
            });
        }
    }
    let progressed = poll(opts.progress_deadline, || async {
        let c = counters(&pool.metrics.render(&[]));
        let done = sup.current().is_some()
            && ok(&c, warm_ok) >= ok(&m0, warm_ok) + opts.pool_size as u64
            && ok(&c, refresh_ok) > ok(&m0, refresh_ok)
            && ok(&c, validate_ok) > ok(&m0, validate_ok);
        done.then_some(())
    })
    .await;
    if progressed.is_some() {
        report.progress_after_s = Some(secs(killed_at.elapsed()));
    }
    // The pool refills after the chaos: two sessions reported blocked (403) are replaced.
    let victims: Vec<String> = pool
        .list()
        .into_iter()
        .filter(|(s, _)| s.state == SessionState::Ready)
        .map(|(s, _)| s.id.clone())
        .take(2)
        .collect();
    let client = http();
    for id in &victims {
        let _ = client
            .post(format!("{base}/api/sessions/{id}/usage"))
            .json(&json!({"success": false, "status": 403}))
            .send()
            .await;
    }
    let t = Instant::now();
    let refilled = poll(opts.refill_deadline, || async {
        let ready = pool
            .list()
            .into_iter()
            .filter(|(s, _)| s.state == SessionState::Ready && !victims.contains(&s.id))
            .count();
        (ready >= opts.pool_size).then_some(())
    })
    .await;
    report.refill_s = refilled.map(|()| secs(t.elapsed()));

    let mut relaunch: Vec<u64> = report.kills.iter().filter_map(|k| k.relaunch_ms).collect();
    report.relaunch_ms_max = relaunch.iter().copied().max().unwrap_or(0);
    report.relaunch_ms_median = median(&mut relaunch);

    // Nothing but the current browser's processes and dir.
    let extras = || {
        let current = sup.current();
        let dir = current.as_ref().map(|i| i.profile_dir.clone());
        let procs = browser_processes(&root)
            .into_iter()
            .filter(|(_, d)| Some(d) != dir.as_ref())
            .count();
        let dirs = browser_dirs(&root)
            .into_iter()
            .filter(|d| Some(d) != dir.as_ref())
            .count();
        (procs, dirs)
    };
    // Processes first (a dead browser's children exit a little after it), then its dir.
    poll(Duration::from_secs(15), || async {
        (extras().0 == 0).then_some(())
    })
    .await;
    poll(Duration::from_secs(2), || async {
        (extras() == (0, 0)).then_some(())
    })
    .await;
    (report.extra_processes, report.extra_dirs) = extras();
    Ok(())
}

type UnixMs = u64;

// ---------------------------------------------------------------------------------------------
// kill-restart: SIGKILL the real `warmer serve` while sessions are written

/// Sizes of a kill-restart run.
#[derive(Debug, Clone)]
pub struct KillRestartOpts {
    pub rounds: usize,
    /// The `warmer` binary.
    pub warmer: PathBuf,
    /// How long the daemon runs under load before the kill, ms (uniform), counted from when
    /// its API answers.
    pub run_ms: (u64, u64),
    pub pool_size: usize,
}

impl KillRestartOpts {
    pub fn new(rounds: usize, warmer: PathBuf) -> Self {
        Self {
            rounds,
            warmer,
            run_ms: (1000, 6000),
            pool_size: 3,
        }
    }
}

/// One kill and restart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    /// From the API answering to the kill.
    pub ran_ms: u64,
    /// `POST /api/v1/sessions` in flight at the kill.
    pub creates_in_flight: usize,
    /// Sessions acknowledged so far (all rounds).
    pub acked_total: usize,
    /// Chromium processes (and their browser dirs) of the killed daemon still alive 5 s after
    /// its SIGKILL (polled: the round goes on as soon as none is left).
    pub orphan_processes: usize,
    pub orphan_browsers: usize,
    /// From the SIGKILL until no Chromium process of the killed daemon was left (within 5 s).
    pub chromium_gone_ms: Option<u64>,
    /// Browser dirs of the killed daemon, and how long after the restarted daemon's API
    /// answered they were gone (its start-up sweep removes them; within 10 s).
    pub killed_dirs: usize,
    pub swept_ms: Option<u64>,
    pub unswept_dirs: usize,
    /// Opening the store in this process after the kill.
    pub store_open_ms: Option<u64>,
    pub store_error: Option<String>,
    pub missing_in_store: usize,
    /// The restarted daemon's API answering.
    pub restart_ms: Option<u64>,
    pub restart_error: Option<String>,
    pub missing_via_api: usize,
}

/// What a kill-restart run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KillRestartReport {
    pub rounds_requested: usize,
    pub rounds: Vec<Round>,
    pub acked: usize,
    pub acked_by_create: usize,
    pub acked_by_take: usize,
    pub creates_ok: u64,
    pub takes_ok: u64,
    pub reports_ok: u64,
    pub requests_failed: u64,
    pub missing_in_store: usize,
    pub missing_via_api: usize,
    pub store_errors: usize,
    pub restart_errors: usize,
    pub restart_ms_median: u64,
    pub restart_ms_max: u64,
    /// Rounds after which Chromium processes outlived the daemon by 5 s.
    pub rounds_with_orphans: usize,
    pub orphan_processes_total: usize,
    /// Orphans still alive at the end of the run, and their PSS.
    pub orphans_alive_at_end: usize,
    pub orphan_pss_kib_at_end: u64,
    /// The slowest exit of a killed daemon's Chromium (SIGKILL until none left), ms.
    pub chromium_gone_ms_max: u64,
    /// Browser dirs of killed daemons: removed by the next daemon's start-up sweep (within
    /// 10 s of its API answering), not removed, and the slowest removal.
    pub dirs_swept: usize,
    pub dirs_unswept: usize,
    pub swept_ms_max: u64,
    /// Killed and removed by the drill at the end.
    pub cleanup_killed: usize,
    pub cleanup_dirs_removed: usize,
    /// After the cleanup.
    pub left_processes: usize,
    pub left_dirs: usize,
    /// The last daemon stopped by SIGTERM with exit status 0, and left no Chromium process of
    /// its own (within 10 s).
    pub final_sigterm_ok: bool,
    pub sigterm_left_processes: usize,
    pub final_stop_s: f64,
    /// "tick overran its timeout" lines in the daemons' log.
    pub overran: usize,
    pub total_s: f64,
}

impl KillRestartReport {
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.rounds.len() < self.rounds_requested {
            f.push(format!(
                "only {} of {} rounds ran",
                self.rounds.len(),
                self.rounds_requested
            ));
        }
        if self.acked == 0 {
            f.push("no session was acknowledged".into());
        }
        if self.missing_in_store > 0 {
            f.push(format!(
                "{} acknowledged sessions missing from the store after a kill",
                self.missing_in_store
            ));
        }
        if self.missing_via_api > 0 {
            f.push(format!(
                "{} acknowledged sessions not served by the restarted daemon",
                self.missing_via_api
            ));
        }
        if self.store_errors > 0 {
            f.push(format!(
                "the store did not open after {} kills",
                self.store_errors
            ));
        }
        if self.restart_errors > 0 {
            f.push(format!("{} restarts failed", self.restart_errors));
        }
        if self.rounds_with_orphans > 0 {
            f.push(format!(
                "{} of {} kills orphaned Chromium ({} processes alive 5 s after the kill)",
                self.rounds_with_orphans,
                self.rounds.len(),
                self.orphan_processes_total
            ));
        }
        if self.dirs_unswept > 0 {
            f.push(format!(
                "{} browser dirs of killed daemons not removed by the next start",
                self.dirs_unswept
            ));
        }
        if !self.final_sigterm_ok {
            f.push("the last daemon did not stop cleanly on SIGTERM".into());
        }
        if self.sigterm_left_processes > 0 {
            f.push(format!(
                "{} Chromium processes of the SIGTERMed daemon left",
                self.sigterm_left_processes
            ));
        }
        if self.left_processes + self.left_dirs > 0 {
            f.push(format!(
                "{} Chromium processes and {} browser dirs left after the cleanup",
                self.left_processes, self.left_dirs
            ));
        }
        if self.overran > 0 {
            f.push(format!(
                "{} worker ticks overran their timeout",
                self.overran
            ));
        }
        f
    }

    fn summary(&self) -> String {
        format!(
            "rounds: {} of {}; acknowledged sessions: {} (create {}, take {}); requests ok: creates {}, takes {}, reports {}; failed/cut by kills: {}\n\
             missing after kills: in store {}, via API {}; store open errors {}; restart errors {}; restart to API: median {} ms, max {} ms\n\
             orphans: {} of {} kills left Chromium running ({} processes in all, {} still alive at the end, PSS {} MiB); Chromium gone after a kill within {} ms (max)\n\
             browser dirs of killed daemons: {} swept by the next start (max {} ms after its API answered), {} not; cleanup killed {} and removed {} dirs; left {} / {}\n\
             final SIGTERM ok: {} ({} s, {} of its Chromium processes left); overran ticks: {}; total {} s\n",
            self.rounds.len(),
            self.rounds_requested,
            self.acked,
            self.acked_by_create,
            self.acked_by_take,
            self.creates_ok,
            self.takes_ok,
            self.reports_ok,
            self.requests_failed,
            self.missing_in_store,
            self.missing_via_api,
            self.store_errors,
            self.restart_errors,
            self.restart_ms_median,
            self.restart_ms_max,
            self.rounds_with_orphans,
            self.rounds.len(),
            self.orphan_processes_total,
            self.orphans_alive_at_end,
            mib(self.orphan_pss_kib_at_end),
            self.chromium_gone_ms_max,
            self.dirs_swept,
            self.swept_ms_max,
            self.dirs_unswept,
            self.cleanup_killed,
            self.cleanup_dirs_removed,
            self.left_processes,
            self.left_dirs,
            self.final_sigterm_ok,
            self.final_stop_s,
            self.sigterm_left_processes,
            self.overran,
            self.total_s
        )
    }

    fn markdown(&self) -> String {
        let rows = [
            format!(
                "| `warmer serve` SIGKILLs (each followed by a restart) | {} |",
                self.rounds.len()
            ),
            format!("| duration | {} s |", self.total_s),
            format!(
                "| sessions acknowledged (201 from `POST /api/v1/sessions` / 200 from `GET /api/sessions/event/:id`) | {} ({} / {}) |",
                self.acked, self.acked_by_create, self.acked_by_take
            ),
            format!(
                "| requests answered | {} creates, {} takes, {} usage reports; {} failed or cut by a kill |",
                self.creates_ok, self.takes_ok, self.reports_ok, self.requests_failed
            ),
            format!(
                "| **acknowledged sessions missing** after a kill: in the store / via the restarted API | **{} / {}** |",
                self.missing_in_store, self.missing_via_api
            ),
            format!(
                "| store failed to open / daemon failed to restart | {} / {} |",
                self.store_errors, self.restart_errors
            ),
            format!(
                "| restart until the API answers | median {} ms, max {} ms |",
                self.restart_ms_median, self.restart_ms_max
            ),
            format!(
                "| **kills that orphaned Chromium** (a process of the killed daemon's browser alive 5 s after the kill) | **{} of {}** ({} processes in all; {} still alive at the end of the run, {} MiB PSS together) |",
                self.rounds_with_orphans,
                self.rounds.len(),
                self.orphan_processes_total,
                self.orphans_alive_at_end,
                mib(self.orphan_pss_kib_at_end)
            ),
            format!(
                "| killed daemon's Chromium gone (SIGKILL until no process of its browser left) | within {} ms (slowest of {} kills) |",
                self.chromium_gone_ms_max,
                self.rounds.len()
            ),
            format!(
                "| **browser dirs of killed daemons** removed by the next start's sweep / not removed | **{} / {}** (slowest {} ms after the restarted API answered) |",
                self.dirs_swept, self.dirs_unswept, self.swept_ms_max
            ),
            format!(
                "| cleaned up by the script (by TMPDIR) | {} processes killed, {} browser dirs removed; left after: {} / {} |",
                self.cleanup_killed, self.cleanup_dirs_removed, self.left_processes, self.left_dirs
            ),
            format!(
                "| last daemon stopped by SIGTERM | {} in {} s; {} of its Chromium processes left |",
                if self.final_sigterm_ok { "exit 0" } else { "**failed**" },
                self.final_stop_s,
                self.sigterm_left_processes
            ),
            format!("| \"tick overran its timeout\" log lines | {} |", self.overran),
        ];
        let mut s = String::from("| | |\n|---|---|\n");
        s.push_str(&rows.join("\n"));
        s.push('\n');
        s.push_str(&verdict(&self.failures()));
        s
    }
}

#[derive(Default)]
struct Load {
    acked: Mutex<HashMap<String, &'static str>>,
    creates_ok: AtomicU64,
    takes_ok: AtomicU64,
    reports_ok: AtomicU64,
    failed: AtomicU64,
    creates_in_flight: AtomicUsize,
}

fn kill_restart_toml(site: &DemoSite, port: u16, store: &Path, pool_size: usize) -> String {
    let events: Vec<String> = demo_events().iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[browser]
navigation_timeout = "10s"

[store]
path = "{store}"

[schedule]
top_up_every = "300ms"
persist_every = "500ms"

[[targets]]
name = "demo"
event_url = "{url}"
events = [{events}]
warmup = "500ms"
pool_size = {pool_size}
max_concurrent_warms = 2
rotate_every = "5s"

[targets.validate]
url = "{base}/api/event/{{event}}"
expect_status = 200
require_cookies = ["visitor"]
"#,
        store = store.display(),
        url = site.event_url_template(),
        events = events.join(", "),
        base = site.base_url(),
    )
}

fn spawn_daemon(
    warmer: &Path,
    config: &Path,
    root: &Path,
    log: &Path,
) -> anyhow::Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    std::process::Command::new(warmer)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("TMPDIR", root)
        .env("RUST_LOG", "info")
        .env_remove("WARMER_TOKEN")
        .env_remove("WARMER_KEY")
        .env_remove("WARMER_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", warmer.display()))
}

/// Waits for `GET /healthz` (or the daemon's exit); the time it took.
async fn wait_api(
    child: &mut std::process::Child,
    base: &str,
    deadline: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let client = http();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the daemon exited: {status}"));
        }
        if let Ok(r) = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            if r.status().is_success() {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > deadline {
            return Err(format!("the API did not answer within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writers while the daemon runs: creates sessions, takes sessions and reports on them.
fn start_load(base: &str, load: &Arc<Load>, stop: &CancellationToken, tasks: &TaskTracker) {
    {
        let (base, load, stop) = (base.to_string(), load.clone(), stop.clone());
        tasks.spawn(async move {
            let client = http();
            let events = demo_events();
            while !stop.is_cancelled() {
                let ev = events[rand::thread_rng().gen_range(0..events.len())].clone();
                load.creates_in_flight.fetch_add(1, Ordering::SeqCst);
                let r = client
                    .post(format!("{base}/api/v1/sessions"))
                    .json(&json!({"event": ev}))
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v = r.json::<Value>().await.unwrap_or(Value::Null);
                        v["session_id"].as_str().map(str::to_string)
                    }
                    _ => None,
                };
                load.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
                match ok {
                    Some(id) => {
                        load.acked.lock().unwrap().entry(id).or_insert("create");
                        load.creates_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                        nap(Duration::from_millis(100), &stop).await;
                    }
                }
            }
        });
    }
    {
        let (base, load, stop) = (base.to_string(), load.clone(), stop.clone());
        tasks.spawn(async move {
            let client = http();
            let events = demo_events();
            let mut i = 0usize;
            while !stop.is_cancelled() {
                let ev = &events[i % events.len()];
                i += 1;
                let r = client
                    .get(format!("{base}/api/sessions/event/{ev}"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let id = match r {
                    Ok(r) if r.status().as_u16() == 200 => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["session_id"].as_str().map(str::to_string)),
                    _ => None,
                };
                let Some(id) = id else {
                    nap(Duration::from_millis(100), &stop).await;
                    continue;
                };
                load.acked
                    .lock()
                    .unwrap()
                    .entry(id.clone())
                    .or_insert("take");
                load.takes_ok.fetch_add(1, Ordering::Relaxed);
                // Mostly successes; some rate limits and server errors (neither retires).
                let roll: u32 = rand::thread_rng().gen_range(0..100);
                let body = match roll {
                    0..=84 => json!({"success": true, "status": 200}),
                    85..=94 => json!({"success": false, "status": 429}),
                    _ => json!({"success": false, "status": 500}),
                };
                let r = client
                    .post(format!("{base}/api/sessions/{id}/usage"))
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        load.reports_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !nap(Duration::from_millis(30), &stop).await {
                    break;
                }
            }
        });
    }
}

fn sigkill(child: &mut std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Runs the kill-restart drill. The daemons get `TMPDIR` = `std::env::temp_dir()`.
///
/// # Errors
/// When the demo site or the first daemon cannot start; missed limits are in the report.
pub async fn kill_restart(opts: &KillRestartOpts) -> anyhow::Result<KillRestartReport> {
    let started = Instant::now();
    let root = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("kill-restart-")
        .tempdir_in(&root)?;
    let site_stop = CancellationToken::new();
    let site = DemoSite::start(DemoConfig::default(), 0, site_stop.clone()).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let store = dir.path().join("store");
    let config = dir.path().join("warmer.toml");
    std::fs::write(
        &config,
        kill_restart_toml(&site, port, &store, opts.pool_size),
    )?;
    let log = dir.path().join("daemon.log");
    let base = format!("http://127.0.0.1:{port}");
    let load = Arc::new(Load::default());
    let mut report = KillRestartReport {
        rounds_requested: opts.rounds,
        ..Default::default()
    };
    let mut child = spawn_daemon(&opts.warmer, &config, &root, &log)?;
    if let Err(e) = wait_api(&mut child, &base, Duration::from_secs(60)).await {
        sigkill(&mut child);
        bail!("the first daemon did not start: {e}; log: {}", tail(&log));
    }
    let mut alive = true;
    let mut orphan_dirs = BTreeSet::new();
    let mut unswept: BTreeSet<PathBuf> = BTreeSet::new();
    for _ in 0..opts.rounds {
        let mut round = Round::default();
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        start_load(&base, &load, &stop, &tasks);
        let ran = Instant::now();
        tokio::time::sleep(rand_ms(opts.run_ms.0, opts.run_ms.1)).await;
        round.creates_in_flight = load.creates_in_flight.load(Ordering::SeqCst);
        sigkill(&mut child);
        round.ran_ms = ran.elapsed().as_millis() as u64;
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        let acked: Vec<String> = load.acked.lock().unwrap().keys().cloned().collect();
        round.acked_total = acked.len();

        // Chromium of this daemon still alive 5 s after its SIGKILL (polled; orphans of earlier
        // rounds are not counted again). Its browser dirs are the ones there now: the dirs of
        // earlier rounds were swept when this daemon started (or are counted unswept).
        let killed_at = Instant::now();
        let killed_dirs: BTreeSet<PathBuf> = browser_dirs(&root)
            .into_iter()
            .filter(|d| !orphan_dirs.contains(d) && !unswept.contains(d))
            .collect();
        round.killed_dirs = killed_dirs.len();
        let of_killed = || -> Vec<(u32, PathBuf)> {
            browser_processes(&root)
                .into_iter()
                .filter(|(_, t)| !orphan_dirs.contains(t))
                .collect()
        };
        let gone = poll(Duration::from_secs(5), || async {
            of_killed().is_empty().then_some(())
        })
        .await;
        round.chromium_gone_ms = gone.map(|()| killed_at.elapsed().as_millis() as u64);
        let orphans = of_killed();
        round.orphan_processes = orphans.len();
        let new: BTreeSet<PathBuf> = orphans.into_iter().map(|(_, t)| t).collect();
        round.orphan_browsers = new.len();
        orphan_dirs.extend(new);

        // The store opens, and holds every acknowledged session.
        let t = Instant::now();
        let (path, ids) = (store.clone(), acked.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let s = SledStore::open(&path)?;
            let mut missing = 0;
            for id in &ids {
                if s.get_session(id)?.is_none() {
                    missing += 1;
                }
            }
            Ok::<_, session_warmer::store::StoreError>(missing)
        })
        .await?;
        match opened {
            Ok(missing) => {
                round.store_open_ms = Some(t.elapsed().as_millis() as u64);
                round.missing_in_store = missing;
            }
            Err(e) => round.store_error = Some(e.to_string()),
        }

        // The restarted daemon serves every acknowledged session.
        child = spawn_daemon(&opts.warmer, &config, &root, &log)?;
        match wait_api(&mut child, &base, Duration::from_secs(60)).await {
            Ok(d) => {
                round.restart_ms = Some(d.as_millis() as u64);
                // The restarted daemon's start-up sweep removes the killed daemon's dirs.
                let answered = Instant::now();
                let swept = poll(Duration::from_secs(10), || async {
                    killed_dirs.iter().all(|d| !d.exists()).then_some(())
                })
                .await;
                round.swept_ms = swept.map(|()| answered.elapsed().as_millis() as u64);
                let left: Vec<PathBuf> =
                    killed_dirs.iter().filter(|d| d.exists()).cloned().collect();
                round.unswept_dirs = left.len();
                unswept.extend(left);
                let client = http();
                for id in &acked {
                    let ok = client
                        .get(format!("{base}/api/v1/sessions/{id}"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 200);
                    if !ok {
                        round.missing_via_api += 1;
                    }
                }
            }
            Err(e) => {
                round.restart_error = Some(format!("{e}; log: {}", tail(&log)));
                alive = false;
            }
        }
        tracing::info!(?round, "kill-restart round");
        report.rounds.push(round);
        if !alive {
            break;
        }
    }

    // The last daemon stops on SIGTERM.
    if alive {
        let t = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = poll(Duration::from_secs(15), || {
            let s = child.try_wait().ok().flatten();
            async move { s }
        })
        .await;
        report.final_stop_s = secs(t.elapsed());
        report.final_sigterm_ok = status.is_some_and(|s| s.success());
        if status.is_none() {
            sigkill(&mut child);
        }
    } else {
        sigkill(&mut child);
    }
    site_stop.cancel();

    // The SIGTERMed daemon's own browser goes; the orphans of the SIGKILLed ones stay.
    let own = || {
        browser_processes(&root)
            .into_iter()
            .filter(|(_, d)| !orphan_dirs.contains(d))
            .count()
    };
    poll(Duration::from_secs(10), || async {
        (own() == 0).then_some(())
    })
    .await;
    report.sigterm_left_processes = own();
    let orphans: Vec<(u32, PathBuf)> = browser_processes(&root)
        .into_iter()
        .filter(|(_, d)| orphan_dirs.contains(d))
        .collect();
    report.orphans_alive_at_end = orphans.len();
    report.orphan_pss_kib_at_end = orphans
        .iter()
        .filter_map(|(p, _)| kib_field(&format!("/proc/{p}/smaps_rollup"), "Pss:"))
        .sum();
    (report.cleanup_killed, report.cleanup_dirs_removed) = reap_browsers(&root);
    report.left_processes = browser_processes(&root).len();
    report.left_dirs = browser_dirs(&root).len();

    let acked = load.acked.lock().unwrap();
    report.acked = acked.len();
    report.acked_by_create = acked.values().filter(|v| **v == "create").count();
    report.acked_by_take = acked.values().filter(|v| **v == "take").count();
    report.creates_ok = load.creates_ok.load(Ordering::Relaxed);
    report.takes_ok = load.takes_ok.load(Ordering::Relaxed);
    report.reports_ok = load.reports_ok.load(Ordering::Relaxed);
    report.requests_failed = load.failed.load(Ordering::Relaxed);
    for r in &report.rounds {
        report.missing_in_store += r.missing_in_store;
        report.missing_via_api += r.missing_via_api;
        report.store_errors += usize::from(r.store_error.is_some());
        report.restart_errors += usize::from(r.restart_error.is_some());
        report.rounds_with_orphans += usize::from(r.orphan_processes > 0);
        report.orphan_processes_total += r.orphan_processes;
        report.chromium_gone_ms_max = report
            .chromium_gone_ms_max
            .max(r.chromium_gone_ms.unwrap_or(5000));
        if r.restart_ms.is_some() {
            report.dirs_swept += r.killed_dirs - r.unswept_dirs;
            report.dirs_unswept += r.unswept_dirs;
        }
        report.swept_ms_max = report.swept_ms_max.max(r.swept_ms.unwrap_or(0));
    }
    let mut restarts: Vec<u64> = report.rounds.iter().filter_map(|r| r.restart_ms).collect();
    report.restart_ms_max = restarts.iter().copied().max().unwrap_or(0);
    report.restart_ms_median = median(&mut restarts);
    report.overran = std::fs::read_to_string(&log)
        .map(|t| t.matches("tick overran its timeout").count())
        .unwrap_or(0);
    report.total_s = secs(started.elapsed());
    Ok(report)
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

// ---------------------------------------------------------------------------------------------
// soak: warm/dispose cycles, memory sampled

/// Sizes of a soak run.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    pub cycles: usize,
    /// The start sample is taken after this many cycles: Chromium's memory grows over its first
    /// few dozen pages (lazily started processes, caches) before it levels off. The middle
    /// sample is halfway between the start sample and the end.
    pub start_after: usize,
    /// Warm-up dwell of each warm: uniform in 0..=this, ms.
    pub warmup_max_ms: u64,
    /// Growth allowed from the start sample, percent.
    pub limit_pct: f64,
}

impl SoakOpts {
    pub fn new(cycles: usize, limit_pct: f64) -> Self {
        Self {
            cycles,
            start_after: (cycles / 40).clamp(10, 50),
            warmup_max_ms: 50,
            limit_pct,
        }
    }
}

/// One memory sample.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub after_cycles: usize,
    /// Chromium's PSS, summed over the browser's processes.
    pub chromium_pss_kib: u64,
    /// Chromium's private memory (USS), summed likewise.
    pub chromium_uss_kib: u64,
    /// Chromium processes of other browsers on the machine at the time (they lower PSS).
    pub other_chromium: usize,
    pub chromium_processes: usize,
    /// This process's VmRSS.
    pub own_rss_kib: u64,
    /// Chromium's processes by kind: (count, PSS KiB), at the last of the three reads.
    pub by_kind: BTreeMap<String, (usize, u64)>,
}

/// What a soak run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub cycles: usize,
    pub limit_pct: f64,
    pub ok: usize,
    pub failed: BTreeMap<String, usize>,
    pub samples: Vec<Sample>,
    pub pss_growth_pct: f64,
    pub rss_growth_pct: f64,
    pub cycle_ms_mean: f64,
    pub cycle_ms_p50: u64,
    pub cycle_ms_p95: u64,
    pub browser_launches: u64,
    pub total_s: f64,
    /// Chromium processes and dirs left after the browser's shutdown.
    pub left_processes: usize,
    pub left_dirs: usize,
}

impl SoakReport {
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.samples.len() < 3 {
            f.push(format!("only {} memory samples", self.samples.len()));
        }
        if self.pss_growth_pct > self.limit_pct {
            f.push(format!(
                "Chromium PSS grew {}% (limit {}%)",
                self.pss_growth_pct, self.limit_pct
            ));
        }
        if self.rss_growth_pct > self.limit_pct {
            f.push(format!(
                "own RSS grew {}% (limit {}%)",
                self.rss_growth_pct, self.limit_pct
            ));
        }
        let failed: usize = self.failed.values().sum();
        if failed * 100 > self.cycles {
            f.push(format!("{failed} warms failed: {:?}", self.failed));
        }
        if self.browser_launches != 1 {
            f.push(format!(
                "{} browser launches (a crash mid-soak invalidates the PSS comparison)",
                self.browser_launches
            ));
        }
        if self.left_processes + self.left_dirs > 0 {
            f.push(format!(
                "{} Chromium processes and {} dirs left after shutdown",
                self.left_processes, self.left_dirs
            ));
        }
        f
    }

    fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cycles: {} ({} ok, failed {:?}); per cycle: mean {:.0} ms, p50 {} ms, p95 {} ms; total {} s",
            self.cycles,
            self.ok,
            self.failed,
            self.cycle_ms_mean,
            self.cycle_ms_p50,
            self.cycle_ms_p95,
            self.total_s
        );
        for x in &self.samples {
            let _ = writeln!(
                s,
                "after {:>5} cycles: Chromium PSS {:>7.1} MiB in {} processes; own RSS {:>6.1} MiB\n    {}",
                x.after_cycles,
                mib(x.chromium_pss_kib),
                x.chromium_processes,
                mib(x.own_rss_kib),
                fmt_kinds(&x.by_kind)
            );
        }
        let _ = writeln!(
            s,
            "growth from the start sample (largest of middle and end): Chromium PSS {}%, own RSS {}% (limit {}%)",
            self.pss_growth_pct, self.rss_growth_pct, self.limit_pct
        );
        s
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} warm/dispose cycles ({} ok{}), {} s in all: {:.0} ms per cycle on average (p50 {} ms, p95 {} ms).\n\n",
            self.cycles,
            self.ok,
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(", failed: {}", fmt_map(&self.failed))
            },
            self.total_s,
            self.cycle_ms_mean,
            self.cycle_ms_p50,
            self.cycle_ms_p95
        ));
        s.push_str("| sample | after cycles | Chromium PSS (MiB) | Chromium private, USS (MiB) | Chromium processes | other Chromium processes on the machine | own RSS (MiB) |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (name, x) in ["start", "middle", "end"].iter().zip(&self.samples) {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} |\n",
                x.after_cycles,
                mib(x.chromium_pss_kib),
                mib(x.chromium_uss_kib),
                x.chromium_processes,
                x.other_chromium,
                mib(x.own_rss_kib)
            ));
        }
        s.push_str(&format!(
            "\nGrowth from the start sample (the larger of middle and end): **Chromium PSS {:+}%**, **own RSS {:+}%** (limit {}%). \
             Browser launches: {} (no crash). Left after shutdown: {} processes, {} dirs.\n",
            self.pss_growth_pct,
            self.rss_growth_pct,
            self.limit_pct,
            self.browser_launches,
            self.left_processes,
            self.left_dirs
        ));
        if let (Some(first), Some(max_uss)) = (
            self.samples.first(),
            self.samples
                .iter()
                .skip(1)
                .map(|x| x.chromium_uss_kib)
                .max(),
        ) {
            s.push_str(&format!(
                "Chromium's private memory (USS) from the start sample: {:+}%.\n",
                pct(first.chromium_uss_kib, max_uss)
            ));
        }
        if self.samples.iter().any(|x| x.other_chromium > 0) {
            s.push_str(
                "\nOther Chromium processes ran on the machine during this run: they share code \
                 pages with this browser and lower its PSS while they run, so the PSS samples are \
                 not comparable; USS is. Rerun on a quiet machine.\n",
            );
        }
        s.push('\n');
        s.push_str(&verdict(&self.failures()));
        s
    }
}

/// Memory once the browser has settled: waits until the tree's process count is stable (a
/// disposed context's renderer exits a little after the dispose), then the median of three
/// reads.
async fn sample(root: &Path, dir: &Path, pid: u32, after_cycles: usize) -> Sample {
    let measure = || browser_pss_kib(root, dir, pid);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last = measure().1;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = measure().1;
        if n == last {
            break;
        }
        last = n;
    }
    let mut pss = Vec::new();
    let mut procs = 0;
    for _ in 0..3 {
        let (p, n) = measure();
        pss.push(p);
        procs = n;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut by_kind: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (_, kind, p) in browser_processes_pss(root, dir, pid) {
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += p;
    }
    Sample {
        after_cycles,
        chromium_pss_kib: median(&mut pss),
        chromium_uss_kib: browser_uss_kib(root, dir, pid),
        other_chromium: other_chromium_processes(root, dir, pid),
        chromium_processes: procs,
        own_rss_kib: own_rss_kib(),
        by_kind,
    }
}

/// Runs the soak. Chromium and its dirs live under `std::env::temp_dir()`.
///
/// # Errors
/// When the demo site or Chromium cannot start.
pub async fn soak(opts: &SoakOpts) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let root = std::env::temp_dir();
    let site_stop = CancellationToken::new();
    let site = DemoSite::start(
        DemoConfig {
            js_delay: Duration::ZERO,
            ..DemoConfig::default()
        },
        0,
        site_stop.clone(),
    )
    .await?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sup =
        session_warmer::browser::Supervisor::start(browser_config(), shutdown.clone(), &tracker);
    let warmer = Warmer::new(sup.clone(), Arc::new(FingerprintSource::embedded()));
    let target = TargetConfig::ad_hoc("demo", &site.event_url_template());
    let events = demo_events();
    let mut report = SoakReport {
        cycles: opts.cycles,
        limit_pct: opts.limit_pct,
        ..Default::default()
    };
    let result = async {
        let info = sup
            .ready()
            .await
            .map_err(|e| anyhow!("Chromium did not start: {e}"))?;
        let pid = info.pid.ok_or_else(|| anyhow!("no browser pid"))?;
        let marks = [
            opts.start_after,
            (opts.start_after + opts.cycles) / 2,
            opts.cycles,
        ];
        let mut times = Vec::with_capacity(opts.cycles);
        for i in 1..=opts.cycles {
            let event = &events[i % events.len()];
            let req = WarmRequest {
                target: "demo".into(),
                event: Some(event.clone()),
                url: target.event_page(event).map_err(|e| anyhow!(e))?,
                proxy: None,
                warmup: rand_ms(0, opts.warmup_max_ms),
                navigation_timeout: Duration::from_secs(10),
                max_age: Duration::from_secs(7200),
                seed: None,
                viewport: None,
                turn: None,
                ready_when: None,
                warm_steps: Vec::new(),
                block: Vec::new(),
            };
            let t = Instant::now();
            match warmer.warm(&req, &|_| {}).await {
                Ok(_) => report.ok += 1,
                Err(e) => *report.failed.entry(e.kind().to_string()).or_default() += 1,
            }
            times.push(t.elapsed().as_millis() as u64);
            if marks.contains(&i) && report.samples.iter().all(|s| s.after_cycles != i) {
                let s = sample(&root, &info.profile_dir, pid, i).await;
                tracing::info!(?s, "soak sample");
                report.samples.push(s);
            }
            if i % 100 == 0 {
                tracing::info!(cycles = i, ok = report.ok, "soak progress");
            }
        }
        report.cycle_ms_mean = times.iter().sum::<u64>() as f64 / times.len().max(1) as f64;
        report.cycle_ms_p50 = median(&mut times.clone());
        times.sort_unstable();
        report.cycle_ms_p95 = times
            .get(times.len() * 95 / 100)
            .copied()
            .unwrap_or_default();
        Ok::<_, anyhow::Error>(())
    }
    .await;
    report.browser_launches = sup.launches();
    if let Some(first) = report.samples.first().cloned() {
        let later = &report.samples[1..];
        let max_pss = later.iter().map(|s| s.chromium_pss_kib).max().unwrap_or(0);
        let max_rss = later.iter().map(|s| s.own_rss_kib).max().unwrap_or(0);
        report.pss_growth_pct = pct(first.chromium_pss_kib, max_pss);
        report.rss_growth_pct = pct(first.own_rss_kib, max_rss);
    }
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(15), tracker.wait()).await;
    site_stop.cancel();
    settle_leftovers(&root).await;
    report.left_processes = browser_processes(&root).len();
    report.left_dirs = browser_dirs(&root).len();
    report.total_s = secs(started.elapsed());
    result.map(|()| report)
}

// ---------------------------------------------------------------------------------------------
// RELIABILITY.md

const HEADER: &str = "# Reliability\n\nWritten by `scripts/chaos`, `scripts/kill-restart` and `scripts/soak` (each replaces its own section\nwhen rerun; other sections are kept).\n";

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = kib_field("/proc/meminfo", "MemTotal:").unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let chromium = std::process::Command::new(BrowserConfig::default().resolved_executable())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{nproc} cores (`nproc`), {cpu}, {:.0} GiB, Linux {}; {chromium}",
        mem as f64 / 1_048_576.0,
        kernel.trim()
    )
}

fn shell(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Replaces (or appends) the `## name` section of `file`.
fn record(file: &Path, name: &str, command: &str, body: &str) -> anyhow::Result<()> {
    let section = format!(
        "## {name}\n\nCommand: `{command}` — {} (commit {}).\nMachine: {}.\n\n{}",
        shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        shell("git", &["rev-parse", "--short", "HEAD"]),
        machine(),
        body.trim_end()
    );
    let md = std::fs::read_to_string(file).unwrap_or_else(|_| HEADER.to_string());
    let mut lines: Vec<String> = md.lines().map(str::to_string).collect();
    let heading = format!("## {name}");
    let new: Vec<String> = section.lines().map(str::to_string).collect();
    if let Some(start) = lines.iter().position(|l| l.trim() == heading) {
        let end = lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .find(|(_, l)| l.starts_with("## "))
            .map(|(i, _)| i)
            .unwrap_or(lines.len());
        let mut tail = lines.split_off(end);
        lines.truncate(start);
        lines.extend(new);
        if !tail.is_empty() {
            lines.push(String::new());
        }
        lines.append(&mut tail);
    } else {
        // Before a `## Findings` section written by hand, if any; else at the end.
        let at = lines
            .iter()
            .position(|l| l.trim() == "## Findings")
            .unwrap_or(lines.len());
        let mut tail = lines.split_off(at);
        lines.push(String::new());
        lines.extend(new);
        lines.push(String::new());
        lines.append(&mut tail);
    }
    let mut out = lines.join("\n");
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    std::fs::write(file, out.trim_end().to_string() + "\n")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// main

#[derive(Debug, clap::Parser)]
#[command(
    about = "Reliability drills of session-warmer (see scripts/chaos, scripts/kill-restart, scripts/soak)"
)]
struct Cli {
    #[command(subcommand)]
    drill: Drill,
    /// Writes the drill's section of this file (RELIABILITY.md).
    #[arg(long, global = true)]
    record: Option<PathBuf>,
    /// The command shown in the recorded section.
    #[arg(long, global = true)]
    command: Option<String>,
    /// Log filter (stderr).
    #[arg(long, global = true, default_value = "info")]
    log: String,
}

#[derive(Debug, clap::Subcommand)]
enum Drill {
    /// SIGKILL Chromium under load while the API is polled.
    Chaos {
        #[arg(long, default_value_t = 50)]
        kills: usize,
    },
    /// SIGKILL `warmer serve` while sessions are written; restart and check.
    KillRestart {
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// The `warmer` binary.
        #[arg(long, default_value = "target/release/warmer")]
        warmer: PathBuf,
    },
    /// Warm/dispose cycles with memory sampled at start, middle and end.
    Soak {
        #[arg(long, default_value_t = 2000)]
        cycles: usize,
        /// Growth limit, percent.
        #[arg(long, default_value_t = 10.0)]
        limit: f64,
    },
}

pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    // A private TMPDIR unless the caller made one (the scripts do): browsers of this drill are
    // told from anyone else's by it. Set before any thread starts.
    let own_tmp = if std::env::var_os("WARMER_RELIABILITY_RUN").is_none() {
        let d = tempfile::Builder::new()
            .prefix("warmer-reliability-")
            .tempdir()
            .expect("temp dir");
        std::env::set_var("TMPDIR", d.path());
        Some(d)
    } else {
        None
    };
    init_logging(&cli.log);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (name, outcome) = rt.block_on(async {
        match &cli.drill {
            Drill::Chaos { kills } => (
                "chaos",
                chaos(&ChaosOpts::new(*kills))
                    .await
                    .map(|r| (r.summary(), r.markdown(), r.failures(), json!(r))),
            ),
            Drill::KillRestart { rounds, warmer } => (
                "kill-restart",
                kill_restart(&KillRestartOpts::new(*rounds, warmer.clone()))
                    .await
                    .map(|r| (r.summary(), r.markdown(), r.failures(), json!(r))),
            ),
            Drill::Soak { cycles, limit } => (
                "soak",
                soak(&SoakOpts::new(*cycles, *limit))
                    .await
                    .map(|r| (r.summary(), r.markdown(), r.failures(), json!(r))),
            ),
        }
    });
    drop(rt);
    let code = match outcome {
        Ok((summary, markdown, failures, json)) => {
            println!("{name}:\n{summary}");
            println!("{json}");
            if let Some(file) = &cli.record {
                let command = cli
                    .command
                    .clone()
                    .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
                match record(file, name, &command, &markdown) {
                    Ok(()) => eprintln!(
                        "reliability: wrote the ## {name} section of {}",
                        file.display()
                    ),
                    Err(e) => eprintln!("reliability: writing {}: {e}", file.display()),
                }
            }
            if failures.is_empty() {
                println!("{name}: all checks passed");
                std::process::ExitCode::SUCCESS
            } else {
                for f in &failures {
                    println!("{name}: MISSED: {f}");
                }
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            println!("{name}: ERROR: {e:#}");
            std::process::ExitCode::from(2)
        }
    };
    if let Some(d) = own_tmp {
        let (killed, dirs) = reap_browsers(d.path());
        if killed + dirs > 0 {
            eprintln!("reliability: removed {killed} leftover Chromium processes and {dirs} dirs");
        }
    }
    code
}
