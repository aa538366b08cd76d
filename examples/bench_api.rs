//! Benchmark of the HTTP API's hot path and of restart time, run by `scripts/bench api`.
//!
//! No Chromium is started: `browser.executable` points at a path that does not exist and the
//! only target's event pages are on 127.0.0.1:9 (a closed port), so nothing can be warmed; the
//! pool is pre-filled with synthetic ready sessions (the `tests/fixtures/session_v1.json` record
//! with new ids) written through `SledStore` + `Store::put_session`, exactly as a warm stores
//! them, and `pool_size` equals their number so the top-up never tries to warm.
//!
//! - `serve-pool --sessions 100 --port P`: a temp store with the sessions, a `Daemon` on
//!   127.0.0.1:P (0 = any free port). Prints `ready http://127.0.0.1:P` on stdout and serves
//!   until stdin closes, SIGTERM or SIGINT; then shuts the daemon down and removes the store.
//!   With `--backend redis --redis-url URL [--prefix P]` the sessions are written into (and the
//!   daemon serves from) a Redis store under prefix P instead; `--no-fill` writes nothing (a
//!   second or third daemon joining the same pool, `scripts/bench cluster`).
//! - `restart --sessions 10000 [--runs 3]`: writes the sessions into a temp store (in a child
//!   process, which then exits, as a daemon before a restart would), then per run, each in a
//!   fresh child process: `SledStore::open` + `list_sessions` alone, and the time from
//!   `Daemon::start` being called until `GET /api/sessions/event/1003` answers 200 over HTTP
//!   (polled in a tight loop on a raw socket). Prints one JSON line.
//!
//! ```text
//! cargo run --release --example bench_api -- serve-pool --sessions 100 --port 0
//! cargo run --release --example bench_api -- restart --sessions 10000
//! ```

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use session_warmer::config::{Config, SecretUrl, StoreBackend, StoreConfig, TargetConfig};
use session_warmer::daemon::Daemon;
use session_warmer::session::{now_ms, Session, SessionState};
use session_warmer::store::SledStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The only target; its event pages are on a closed port so no warm can succeed.
const TARGET: &str = "bench";
const EVENT_URL: &str = "http://127.0.0.1:9/event/{event}";
/// Nothing is launched: the supervisor's launches fail at once (and back off).
const NO_CHROMIUM: &str = "/nonexistent/session-warmer-bench/chromium";
/// The route measured; its event is one of the sessions' events.
const PROBE_PATH: &str = "/api/sessions/event/1003";
/// The fixture's proxy, also configured on the target so restore adopts it.
const PROXY: &str = "http://proxy.example:8080";

#[derive(Debug, Parser)]
#[command(about = "Benchmark of session-warmer's API hot path and restart (see scripts/bench api)")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve a daemon with N ready sessions until stdin closes or SIGTERM.
    ServePool {
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Port on 127.0.0.1; 0 picks a free one (printed with `ready`).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Distinct event ids the sessions are spread over (1000, 1001, ...).
        #[arg(long, default_value_t = 10)]
        events: usize,
        /// Override `schedule.persist_every` (e.g. `1h`), for diagnosis; default: the product's.
        #[arg(long, value_parser = humantime::parse_duration)]
        persist_every: Option<Duration>,
        /// Where the sessions are stored and served from.
        #[arg(long, value_enum, default_value_t = BenchBackend::Sled)]
        backend: BenchBackend,
        /// The Redis URL (`--backend redis`).
        #[arg(long)]
        redis_url: Option<String>,
        /// The Redis key prefix (`--backend redis`).
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// Write no sessions: another daemon of the same Redis pool wrote them.
        #[arg(long)]
        no_fill: bool,
    },
    /// Restart time with N stored sessions.
    Restart {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        #[arg(long, default_value_t = 10)]
        events: usize,
        /// Measurements, each in a fresh process; the median is reported too.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// (internal) Write N sessions into the store at DIR and exit.
    #[command(hide = true)]
    WriteStore {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        sessions: usize,
        #[arg(long)]
        events: usize,
    },
    /// (internal) Time `SledStore::open` + `list_sessions` of the store at DIR.
    #[command(hide = true)]
    OpenList {
        #[arg(long)]
        dir: PathBuf,
    },
    /// (internal) Time `Daemon::start` until the first session is served, store at DIR.
    #[command(hide = true)]
    StartOnce {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        sessions: usize,
        #[arg(long)]
        events: usize,
    },
}

/// The store `serve-pool` serves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchBackend {
    /// A temp sled store (the default).
    Sled,
    /// A Redis store (`--redis-url`, `--prefix`).
    Redis,
}

fn event_ids(n: usize) -> Vec<String> {
    (0..n.max(1)).map(|i| (1000 + i).to_string()).collect()
}

/// `n` ready sessions of [`TARGET`]: the fixture record with new ids, spread over `events`,
/// created now and expiring in three hours.
fn synthetic_sessions(n: usize, events: &[String]) -> anyhow::Result<Vec<Session>> {
    let fixture: Session = serde_json::from_str(include_str!("../tests/fixtures/session_v1.json"))?;
    let now = now_ms();
    Ok((0..n)
        .map(|i| {
            let mut s = fixture.clone();
            let event = &events[i % events.len()];
            s.id = uuid::Uuid::new_v4().simple().to_string();
            s.target = TARGET.into();
            s.event = Some(event.clone());
            s.account = None;
            s.url = EVENT_URL.replace("{event}", event);
            s.state = SessionState::Ready;
            s.proxy = Some(PROXY.into());
            for c in &mut s.cookies {
                c.domain = "127.0.0.1".into();
            }
            for o in &mut s.origins {
                o.origin = "http://127.0.0.1:9".into();
            }
            s.created_at = now;
            s.refreshed_at = now;
            s.expires_at = now + 3 * 3600 * 1000;
            s.health = Default::default();
            s.health.last_validated_at = Some(now);
            s
        })
        .collect())
}

/// Writes the sessions one `put_session` at a time (each flushed, as the daemon does).
fn write_store(dir: &Path, n: usize, events: usize) -> anyhow::Result<Value> {
    let sessions = synthetic_sessions(n, &event_ids(events))?;
    let t = Instant::now();
    let store = SledStore::open(dir)?;
    for s in &sessions {
        store.put_session(s)?;
    }
    store.flush()?;
    drop(store);
    Ok(json!({ "written": n, "write_ms": ms(t.elapsed()) }))
}

/// A config whose single target is [`TARGET`], with `pool_size` = the sessions stored, so the
/// top-up never starts a warm, and a browser that cannot launch.
fn config(store: &Path, listen: SocketAddr, sessions: usize, events: usize) -> Config {
    let mut t = TargetConfig::ad_hoc(TARGET, EVENT_URL);
    t.events = event_ids(events);
    t.pool_size = sessions.max(1);
    t.proxies = vec![PROXY.into()];
    t.max_age = Duration::from_secs(4 * 3600);
    let mut c = Config::default();
    c.server.listen = listen;
    c.store.path = store.to_path_buf();
    c.browser.executable = Some(PathBuf::from(NO_CHROMIUM));
    c.targets = vec![t];
    c
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Status code of `GET path` on a fresh connection (`Connection: close`).
async fn get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let mut have = 0;
    while have < 12 {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            break;
        }
        have += n;
    }
    std::str::from_utf8(&buf[..have])
        .ok()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))
}

/// A Redis store for `serve-pool`: where, and whether this daemon writes the sessions.
struct RedisPool {
    url: String,
    prefix: String,
    fill: bool,
}

impl RedisPool {
    fn store_config(&self) -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Redis,
            url: Some(SecretUrl::new(self.url.clone())),
            prefix: self.prefix.clone(),
            ..StoreConfig::default()
        }
    }

    /// Writes the sessions one `put_session` at a time (as warms store them), unless `fill`
    /// is off.
    async fn fill(&self, n: usize, events: usize) -> anyhow::Result<Value> {
        if !self.fill {
            return Ok(json!({ "written": 0 }));
        }
        let sessions = synthetic_sessions(n, &event_ids(events))?;
        let t = Instant::now();
        let store = session_warmer::store::open(&self.store_config(), None).await?;
        for s in &sessions {
            store.records.put_session(s).await?;
        }
        Ok(json!({ "written": n, "write_ms": ms(t.elapsed()), "backend": "redis" }))
    }
}

async fn serve_pool(
    sessions: usize,
    port: u16,
    events: usize,
    persist_every: Option<Duration>,
    redis: Option<RedisPool>,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("bench-api-").tempdir()?;
    let store_path = dir.path().join("store");
    let written = match &redis {
        Some(r) => r.fill(sessions, events).await?,
        None => {
            let p = store_path.clone();
            tokio::task::spawn_blocking(move || write_store(&p, sessions, events)).await??
        }
    };
    eprintln!("bench_api: {written}");
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    let mut config = config(&store_path, addr, sessions, events);
    if let Some(d) = persist_every {
        config.schedule.persist_every = d;
    }
    if let Some(r) = &redis {
        config.store = r.store_config();
    }
    let daemon = Daemon::start(config, Some(listener)).await?;
    let ready = daemon.pool.ready_count();
    anyhow::ensure!(
        ready == sessions,
        "{ready} of {sessions} sessions restored as ready"
    );
    anyhow::ensure!(
        get_status(addr, PROBE_PATH).await? == 200,
        "{PROBE_PATH} does not answer 200"
    );
    println!("ready http://{addr}");

    // Until stdin reaches EOF (a plain thread: a blocked read must not hold up exit), SIGTERM
    // or SIGINT.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let why = tokio::select! {
        _ = rx => "stdin closed",
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    eprintln!("bench_api: {why}; shutting down");
    daemon.shutdown().await;
    dir.close()?;
    Ok(())
}

/// One fresh-process measurement of `SledStore::open` + `list_sessions`.
fn open_list(dir: &Path) -> anyhow::Result<Value> {
    let t = Instant::now();
    let store = SledStore::open(dir)?;
    let opened = t.elapsed();
    let sessions = store.list_sessions()?;
    let listed = t.elapsed();
    let n = sessions.len();
    drop(sessions);
    drop(store);
    Ok(json!({
        "sessions": n,
        "open_ms": ms(opened),
        "open_list_ms": ms(listed),
    }))
}

/// One fresh-process measurement: `Daemon::start` called → first 200 on the probe route.
async fn start_once(dir: &Path, sessions: usize, events: usize) -> anyhow::Result<Value> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = config(dir, addr, sessions, events);
    // The listener is bound, so connections queue in its backlog until axum accepts them; the
    // poller runs concurrently from the instant `start` is called and retries at once on
    // anything but 200.
    let t0 = Instant::now();
    let poller = tokio::spawn(async move {
        let mut attempts = 0u64;
        let mut last = None;
        loop {
            attempts += 1;
            match get_status(addr, PROBE_PATH).await {
                Ok(200) => return (t0.elapsed(), attempts, last),
                Ok(code) => last = Some(code.to_string()),
                Err(e) => last = Some(e.to_string()),
            }
            tokio::task::yield_now().await;
        }
    });
    let daemon = Daemon::start(config, Some(listener)).await?;
    let started = t0.elapsed();
    let ready = daemon.pool.ready_count();
    let (first_200, attempts, last_error) =
        tokio::time::timeout(Duration::from_secs(30), poller).await??;
    daemon.shutdown().await;
    Ok(json!({
        "sessions_ready": ready,
        "start_returned_ms": ms(started),
        "first_200_ms": ms(first_200),
        "poll_attempts": attempts,
        "last_non_200": last_error,
    }))
}

/// Runs this example again with `args`; returns its JSON line.
fn child(args: &[String]) -> anyhow::Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "{args:?} failed: {}", out.status);
    let text = String::from_utf8(out.stdout)?;
    let line = text
        .lines()
        .last()
        .ok_or_else(|| anyhow::anyhow!("{args:?} printed nothing"))?;
    Ok(serde_json::from_str(line)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn restart(sessions: usize, events: usize, runs: usize) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("bench-api-restart-")
        .tempdir()?;
    let store = dir.path().join("store");
    let store_arg = store.display().to_string();
    let (n, e) = (sessions.to_string(), events.to_string());
    let written = child(&[
        "write-store".into(),
        "--dir".into(),
        store_arg.clone(),
        "--sessions".into(),
        n.clone(),
        "--events".into(),
        e.clone(),
    ])?;
    let bytes = dir_size(&store);
    let mut open_runs = Vec::new();
    let mut start_runs = Vec::new();
    for _ in 0..runs.max(1) {
        open_runs.push(child(&[
            "open-list".into(),
            "--dir".into(),
            store_arg.clone(),
        ])?);
        start_runs.push(child(&[
            "start-once".into(),
            "--dir".into(),
            store_arg.clone(),
            "--sessions".into(),
            n.clone(),
            "--events".into(),
            e.clone(),
        ])?);
    }
    let col = |runs: &[Value], k: &str| -> Vec<f64> {
        runs.iter().filter_map(|r| r[k].as_f64()).collect()
    };
    let out = json!({
        "sessions": sessions,
        "store_bytes": bytes,
        "write": written,
        "open_list_ms_median": median(col(&open_runs, "open_list_ms")),
        "open_ms_median": median(col(&open_runs, "open_ms")),
        "start_returned_ms_median": median(col(&start_runs, "start_returned_ms")),
        "first_200_ms_median": median(col(&start_runs, "first_200_ms")),
        "open_list_runs": open_runs,
        "start_runs": start_runs,
    });
    dir.close()?;
    Ok(out)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    // Like `warmer serve`: a subscriber is installed (debug events on the hot path are
    // filtered by it), quieter by default.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,chromiumoxide=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // The runtime `warmer serve` runs on.
    let rt = session_warmer::daemon::runtime;
    match Args::parse().mode {
        Mode::ServePool {
            sessions,
            port,
            events,
            persist_every,
            backend,
            redis_url,
            prefix,
            no_fill,
        } => {
            let redis = match backend {
                BenchBackend::Sled => None,
                BenchBackend::Redis => Some(RedisPool {
                    url: redis_url
                        .ok_or_else(|| anyhow::anyhow!("--backend redis needs --redis-url"))?,
                    prefix,
                    fill: !no_fill,
                }),
            };
            rt()?.block_on(serve_pool(sessions, port, events, persist_every, redis))?
        }
        Mode::Restart {
            sessions,
            events,
            runs,
        } => println!("{}", restart(sessions, events, runs)?),
        Mode::WriteStore {
            dir,
            sessions,
            events,
        } => println!("{}", write_store(&dir, sessions, events)?),
        Mode::OpenList { dir } => println!("{}", open_list(&dir)?),
        Mode::StartOnce {
            dir,
            sessions,
            events,
        } => println!("{}", rt()?.block_on(start_once(&dir, sessions, events))?),
    }
    Ok(())
}
