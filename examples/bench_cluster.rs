//! Benchmark of the scale-out on Redis (issue 12), run by `scripts/bench cluster`
//! (scripts/bench-cluster.sh) next to `bench_api serve-pool --backend redis` (the hot path).
//!
//! - `warm --backend sled|redis --warms N`: a real `Daemon` (its own local Chromium, launched by
//!   it) filling a pool of N on the demo site (in process on 127.0.0.1, 500 ms dwell, no
//!   jitter), its store a temp sled store or Redis under a fresh prefix. Warm throughput is
//!   (N − 1) / (time of the N-th ready session − time of the first), so the browser's launch
//!   is not in it. Prints one JSON line.
//! - `takeover --runs 10 --warmer BIN --endpoint http://127.0.0.1:P --lease-ttl 3s`: per run, two
//!   real `warmer serve` processes (the built binary) on Redis under a fresh prefix, attached to
//!   the remote Chromium at P, pool_size 1 with a 60 s dwell (the warm stays in flight); once
//!   one holds the warm's claim (`P:{t:T}:owner`) it gets SIGKILL, and the time until the other
//!   holds the same item is measured (Redis polled every 5 ms). Prints one JSON line with every
//!   run and the median.
//! - `join --runs 5 --warmer BIN --prefix P`: the pool under P is full (bench_api serve-pool
//!   wrote it, `pool_size` = its sessions); per run a `warmer serve` process joins it (attached to
//!   a browser nobody runs: it can warm nothing) and the time from spawning it to the first 200
//!   of its `GET /api/sessions/event/1003` is measured (polled every millisecond);
//!   the sessions stored before and after are counted (a joiner warms nothing new).
//!
//! ```text
//! cargo run --release --example bench_cluster -- warm --backend redis --redis-url redis://127.0.0.1:6379/0
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use session_warmer::config::{Config, SecretUrl, StoreBackend, StoreConfig, TargetConfig};
use session_warmer::daemon::Daemon;
use session_warmer::demo::{demo_events, DemoConfig, DemoSite};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The target of the takeover runs.
const TARGET: &str = "demo";

#[derive(Debug, Parser)]
#[command(about = "Benchmark of the scale-out on Redis (see scripts/bench cluster)")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sled,
    Redis,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Warm throughput of one daemon filling a pool, sled or Redis.
    Warm {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        redis_url: Option<String>,
        /// Sessions to warm (the pool's size).
        #[arg(long, default_value_t = 8)]
        warms: usize,
    },
    /// Takeover time after SIGKILL of the daemon holding a warm's claim.
    Takeover {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[command(flatten)]
        daemons: Daemons,
        /// The remote Chromium (`browser.endpoint`).
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
        lease_ttl: Duration,
    },
    /// Time for a daemon joining a full pool to serve.
    Join {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[command(flatten)]
        daemons: Daemons,
        /// The prefix of the full pool (written by `bench_api serve-pool --backend redis`).
        #[arg(long)]
        prefix: String,
        /// Its sessions (the pool's size).
        #[arg(long, default_value_t = 100)]
        sessions: usize,
    },
}

/// The `warmer serve` processes of a mode: which binary, on which Redis.
#[derive(Debug, clap::Args)]
struct Daemons {
    /// The Redis URL.
    #[arg(long)]
    redis_url: String,
    /// The `warmer` binary.
    #[arg(long)]
    warmer: PathBuf,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The middle value (of an even count, the mean of the two middle ones).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len().is_multiple_of(2) {
        f64::midpoint(v[mid - 1], v[mid])
    } else {
        v[mid]
    }
}

/// A fresh key prefix for one run.
fn fresh_prefix(what: &str) -> String {
    format!(
        "bench-{what}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

fn redis_store(url: &str, prefix: &str) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Redis,
        url: Some(SecretUrl::new(url.to_string())),
        prefix: prefix.to_string(),
        ..StoreConfig::default()
    }
}

async fn redis_conn(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    Ok(tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await??)
}

/// Deletes every key under `prefix:` (SCAN + DEL), so runs leave Redis as they found it.
async fn drop_prefix(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut r = redis_conn(url).await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut r)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<i64>(&mut r)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The demo site in this process, stopped on drop.
struct Site {
    site: DemoSite,
    stop: CancellationToken,
}

impl Site {
    async fn start() -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let site = DemoSite::start(DemoConfig::default(), 0, stop.clone()).await?;
        Ok(Self { site, stop })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One daemon filling a pool of `warms` sessions on the demo site, one warm at a time (the
/// politeness rule: one warm per host at once), no jitter.
async fn warm(backend: Backend, redis_url: Option<String>, warms: usize) -> anyhow::Result<Value> {
    let site = Site::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir()?;
    let mut t = TargetConfig::ad_hoc(TARGET, &site.site.event_url_template());
    t.events = demo_events();
    t.warmup = Duration::from_millis(500);
    t.warm_jitter = Duration::ZERO;
    t.pool_size = warms;
    let mut c = Config::default();
    c.store.path = dir.path().join("store");
    c.targets = vec![t];
    let prefix = fresh_prefix("warm");
    if backend == Backend::Redis {
        let url = redis_url.ok_or_else(|| anyhow::anyhow!("--backend redis needs --redis-url"))?;
        c.store = redis_store(&url, &prefix);
        c.cluster.node = Some("bench-warm".into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let out = fill(c, listener, warms).await;
        drop_prefix(&url, &prefix).await?;
        return out;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    fill(c, listener, warms).await
}

/// Starts the daemon, times its pool's fill, shuts it down.
async fn fill(c: Config, listener: tokio::net::TcpListener, warms: usize) -> anyhow::Result<Value> {
    let backend = format!("{:?}", c.store.backend).to_lowercase();
    let t0 = Instant::now();
    let daemon = Daemon::start(c, Some(listener)).await?;
    let mut at = Vec::new();
    let deadline = t0 + Duration::from_secs(60 + 10 * warms as u64);
    while at.len() < warms {
        anyhow::ensure!(Instant::now() < deadline, "{} of {warms} warmed", at.len());
        let n = daemon.pool.ready_count();
        while at.len() < n.min(warms) {
            at.push(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outcomes = daemon.pool.metrics.render(&[]);
    daemon.shutdown().await;
    let span = at[warms - 1].saturating_sub(at[0]);
    let failed: f64 = outcomes
        .lines()
        .filter(|l| l.starts_with("warmer_warms_total{") && !l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(json!({
        "backend": backend,
        "warms": warms,
        "first_ready_ms": ms(at[0]),
        "last_ready_ms": ms(at[warms - 1]),
        "warms_per_s": if span.is_zero() { 0.0 } else { (warms - 1) as f64 / span.as_secs_f64() },
        "failed_warms": failed.max(0.0) as u64,
    }))
}

/// A `warmer serve` process, SIGKILLed on drop if still running.
struct Serve {
    child: Option<Child>,
    node: String,
}

impl Serve {
    fn spawn(warmer: &Path, dir: &Path, node: &str, toml: &str) -> anyhow::Result<Self> {
        let cfg = dir.join(format!("{node}.toml"));
        std::fs::write(&cfg, toml)?;
        let log = std::fs::File::create(dir.join(format!("{node}.log")))?;
        let child = Command::new(warmer)
            .args(["serve", "--config"])
            .arg(&cfg)
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env("RUST_LOG", "warn")
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Self {
            child: Some(child),
            node: node.to_string(),
        })
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, SIGKILL after 10 s.
    async fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: signals a child this process started and still owns.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let exited = tokio::task::spawn_blocking(move || {
            for _ in 0..500 {
                match c.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    _ => return,
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        });
        let _ = exited.await;
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `warmer serve` config on Redis listening on a free port: `target` is the `[[targets]]`
/// body. Returns the config and the port.
fn serve_toml(
    node: &str,
    redis_url: &str,
    prefix: &str,
    cluster: &str,
    endpoint: &str,
    target: &str,
) -> anyhow::Result<(String, u16)> {
    let port = free_port()?;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\
         [store]\nbackend = \"redis\"\nurl = \"{redis_url}\"\nprefix = \"{prefix}\"\n\
         [cluster]\nnode = \"{node}\"\n{cluster}\n\
         [schedule]\ntop_up_every = \"300ms\"\n\
         [browser]\nendpoint = \"{endpoint}\"\n\
         [[targets]]\n{target}\n"
    );
    Ok((toml, port))
}

/// Claims held under `prefix`: item → node (from the token `<n>:<nonce>:<node>`).
async fn claims(
    r: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let owners: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:{{t:{TARGET}}}:owner"))
        .query_async(r)
        .await?;
    Ok(owners
        .into_iter()
        .map(|(item, tok)| (item, tok.splitn(3, ':').nth(2).unwrap_or_default().into()))
        .collect())
}

/// One takeover: two daemons, the claim holder killed, the other's claim of the same item.
async fn takeover_once(
    warmer: &Path,
    redis_url: &str,
    endpoint: &str,
    event_url: &str,
    ttl: Duration,
) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir()?;
    let prefix = fresh_prefix("takeover");
    let target = format!(
        "name = \"{TARGET}\"\nevent_url = \"{event_url}\"\nevents = [\"1001\"]\n\
         warmup = \"60s\"\npool_size = 1\n"
    );
    let cluster = format!("lease_ttl = \"{}ms\"", ttl.as_millis());
    let mut nodes = Vec::new();
    for node in ["a", "b"] {
        let (toml, _) = serve_toml(node, redis_url, &prefix, &cluster, endpoint, &target)?;
        nodes.push(Serve::spawn(warmer, dir.path(), node, &toml)?);
    }
    let mut r = redis_conn(redis_url).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (item, holder) = loop {
        if let Some(c) = claims(&mut r, &prefix).await?.into_iter().next() {
            break c;
        }
        anyhow::ensure!(Instant::now() < deadline, "no claim within 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let victim = nodes
        .iter_mut()
        .find(|n| n.node == holder)
        .ok_or_else(|| anyhow::anyhow!("claim held by unknown node {holder}"))?;
    victim.kill9();
    let killed = Instant::now();
    let deadline = killed + ttl * 4 + Duration::from_secs(10);
    let by = loop {
        let now = claims(&mut r, &prefix).await?;
        if let Some((_, n)) = now.iter().find(|(i, n)| i == &item && n != &holder) {
            break n.clone();
        }
        anyhow::ensure!(Instant::now() < deadline, "{item} not taken over");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = killed.elapsed();
    for n in &mut nodes {
        n.stop().await;
    }
    drop_prefix(redis_url, &prefix).await?;
    Ok(json!({ "item": item, "killed": holder, "taken_by": by, "takeover_ms": ms(took) }))
}

async fn takeover(
    runs: usize,
    redis_url: &str,
    warmer: &Path,
    endpoint: &str,
    ttl: Duration,
) -> anyhow::Result<Value> {
    let site = Site::start().await?;
    let event_url = site.site.event_url_template();
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        let run = takeover_once(warmer, redis_url, endpoint, &event_url, ttl).await?;
        eprintln!("bench_cluster: takeover {run}");
        all.push(run);
    }
    let times: Vec<f64> = all
        .iter()
        .filter_map(|r| r["takeover_ms"].as_f64())
        .collect();
    Ok(json!({
        "lease_ttl_ms": ttl.as_millis() as u64,
        "takeover_ms_median": median(times.clone()),
        "takeover_ms_min": times.iter().copied().fold(f64::INFINITY, f64::min),
        "takeover_ms_max": times.iter().copied().fold(0.0, f64::max),
        "runs": all,
    }))
}

/// Status code of `GET url`, or `None` when nothing answers yet.
async fn status_of(http: &reqwest::Client, url: &str) -> Option<u16> {
    Some(http.get(url).send().await.ok()?.status().as_u16())
}

async fn stored(r: &mut redis::aio::MultiplexedConnection, prefix: &str) -> anyhow::Result<u64> {
    Ok(redis::cmd("HLEN")
        .arg(format!("{prefix}:sessions"))
        .query_async(r)
        .await?)
}

/// Daemons joining the full pool under `prefix` (the target `bench_api` serves).
async fn join(
    runs: usize,
    redis_url: &str,
    warmer: &Path,
    prefix: &str,
    sessions: usize,
) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir()?;
    let closed = free_port()?;
    let events: Vec<String> = (0..10).map(|i| format!("\"{}\"", 1000 + i)).collect();
    // As examples/bench_api.rs configures its target, so the sessions are restored as ready.
    let target = format!(
        "name = \"bench\"\nevent_url = \"http://127.0.0.1:9/event/{{event}}\"\n\
         events = [{}]\npool_size = {sessions}\nproxies = [\"http://proxy.example:8080\"]\n\
         max_age = \"4h\"\n",
        events.join(", ")
    );
    let endpoint = format!("http://127.0.0.1:{closed}");
    let mut r = redis_conn(redis_url).await?;
    let before = stored(&mut r, prefix).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut all = Vec::new();
    for i in 0..runs.max(1) {
        let node = format!("join{i}");
        let (toml, port) = serve_toml(&node, redis_url, prefix, "", &endpoint, &target)?;
        let t0 = Instant::now();
        let mut serve = Serve::spawn(warmer, dir.path(), &node, &toml)?;
        let deadline = t0 + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{port}/api/sessions/event/1003");
        let mut first_answer = None;
        loop {
            match status_of(&http, &url).await {
                Some(200) => break,
                Some(code) => {
                    first_answer.get_or_insert(code);
                }
                None => {}
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the joining daemon did not serve"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let served = t0.elapsed();
        serve.stop().await;
        let run = json!({ "serve_ms": ms(served), "first_non_200": first_answer });
        eprintln!("bench_cluster: join {run}");
        all.push(run);
    }
    let after = stored(&mut r, prefix).await?;
    let times: Vec<f64> = all.iter().filter_map(|r| r["serve_ms"].as_f64()).collect();
    Ok(json!({
        "serve_ms_median": median(times),
        "stored_before": before,
        "stored_after": after,
        "runs": all,
    }))
}

fn main() -> anyhow::Result<()> {
    // Warnings and errors of the daemons (as `warmer serve` logs them by default, quieter).
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .init();
    let rt = session_warmer::daemon::runtime()?;
    let out = match Args::parse().mode {
        Mode::Warm {
            backend,
            redis_url,
            warms,
        } => rt.block_on(warm(backend, redis_url, warms))?,
        Mode::Takeover {
            runs,
            daemons: d,
            endpoint,
            lease_ttl,
        } => rt.block_on(takeover(
            runs,
            &d.redis_url,
            &d.warmer,
            &endpoint,
            lease_ttl,
        ))?,
        Mode::Join {
            runs,
            daemons: d,
            prefix,
            sessions,
        } => rt.block_on(join(runs, &d.redis_url, &d.warmer, &prefix, sessions))?,
    };
    println!("{out}");
    Ok(())
}
