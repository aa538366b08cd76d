//! `warmer demo` (the demo site plus a daemon warming it) and `warmer demo-site`.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::output::{print_session, set_mode, write_private};
use super::shutdown_signal;
use crate::config::{Config, TargetConfig};
use crate::export;
use crate::session::now_ms;

/// `warmer demo-site`: the demo site alone, until SIGINT or SIGTERM.
pub(super) async fn demo_site(listen: std::net::SocketAddr) -> Result<ExitCode> {
    use crate::demo::{DemoConfig, DemoSite};
    let stop = CancellationToken::new();
    let site = DemoSite::start_on(DemoConfig::default(), listen, stop.clone())
        .await
        .with_context(|| format!("starting the demo site on {listen}"))?;
    let shown = if listen.ip().is_unspecified() {
        format!("port {} on every interface", site.addr().port())
    } else {
        site.base_url()
    };
    eprintln!("demo site   {shown}");
    eprintln!(
        "events      {} (pages at /event/ID)",
        crate::demo::demo_events().join(" ")
    );
    shutdown_signal().await;
    stop.cancel();
    Ok(ExitCode::SUCCESS)
}

/// The options of `warmer demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the demo site (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Sessions to warm.
    #[arg(long, default_value_t = 3)]
    pub sessions: usize,
    /// Store directory of the demo (emptied on each run: the demo site forgets its
    /// visitors when it stops, so old demo sessions would not work).
    #[arg(long, default_value = "data/demo.sled")]
    pub store: PathBuf,
    /// Warm-up dwell after load.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// API address of the demo daemon (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: std::net::SocketAddr,
    /// Wait for the sessions, print them, and exit instead of serving until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

/// The built-in config of `warmer demo`: one target on the demo site.
pub(super) fn demo_config(base: &Config, site: &crate::demo::DemoSite, o: &DemoArgs) -> Config {
    let mut target = TargetConfig::ad_hoc("demo", &site.event_url_template());
    target.events = crate::demo::demo_events();
    target.warmup = o.warmup;
    target.pool_size = o.sessions.max(1);
    target.rotate_every = Duration::from_secs(600);
    target.validate_every = Duration::from_secs(60);
    target.validate = Some(crate::config::ValidateConfig {
        url: format!("{}/api/event/{{event}}", site.base_url()),
        expect_status: 200,
        require_cookies: vec!["visitor".into(), "challenge".into()],
    });
    let mut config = base.clone();
    config.store.path = o.store.clone();
    config.server.listen = o.listen;
    config.server.token_file = None;
    config.targets = vec![target];
    config
}

/// `warmer demo`: a self-contained tour needing no real site.
///
/// Starts the bundled demo site and a daemon warming `o.sessions` sessions against it,
/// waits for them (at most 2 minutes), writes each session's headers to a 0600 file in a
/// 0700 `demo-headers` directory beside the store and prints `curl` lines using them. Then
/// serves until Ctrl-C, or returns at once with `--once`.
///
/// An existing demo store is emptied first (a stale pool would mix in old sessions); a taken
/// `--listen` port falls back to a free one.
///
/// # Errors
///
/// When the site or daemon cannot start, the store cannot be emptied, files cannot be
/// written, or the sessions do not warm in time (both are shut down first).
pub(super) async fn demo(base: &Config, o: DemoArgs) -> Result<ExitCode> {
    use crate::demo::{DemoConfig, DemoSite};
    let site_stop = CancellationToken::new();
    let site = DemoSite::start(DemoConfig::default(), o.port, site_stop.clone())
        .await
        .context("starting the demo site")?;
    eprintln!("demo site   {}", site.base_url());
    if o.store.join("db").exists() || o.store.join("conf").exists() {
        std::fs::remove_dir_all(&o.store)
            .with_context(|| format!("emptying the demo store {}", o.store.display()))?;
    }
    let config = demo_config(base, &site, &o);
    let listener = match tokio::net::TcpListener::bind(o.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{} is taken ({e}); using a free port", o.listen);
            tokio::net::TcpListener::bind((o.listen.ip(), 0)).await?
        }
    };
    let daemon = crate::daemon::Daemon::start(config, Some(listener))
        .await
        .context("starting the demo daemon")?;
    let api = format!("http://{}", daemon.addr);
    eprintln!("API         {api}");
    eprintln!("warming {} sessions against the demo site...", o.sessions);
    let started = std::time::Instant::now();
    let mut shown = 0;
    let deadline = started + Duration::from_secs(120);
    let ready = loop {
        let n = daemon.pool.ready_count();
        if n > shown {
            eprintln!(
                "[{:>5.1}s] {n}/{} sessions ready",
                started.elapsed().as_secs_f64(),
                o.sessions
            );
            shown = n;
        }
        if n >= o.sessions {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if !ready {
        daemon.shutdown().await;
        site_stop.cancel();
        bail!("the demo sessions did not warm within 2 minutes (see the log above)");
    }
    let files_dir = o
        .store
        .parent()
        .unwrap_or(Path::new("."))
        .join("demo-headers");
    std::fs::create_dir_all(&files_dir)?;
    set_mode(&files_dir, 0o700)?;
    println!();
    let mut sessions: Vec<_> = daemon
        .pool
        .list()
        .into_iter()
        .filter(|(s, _)| s.state == crate::session::SessionState::Ready)
        .map(|(s, _)| s)
        .collect();
    sessions.sort_by_key(|s| s.created_at);
    for s in sessions.iter().rev().take(o.sessions) {
        print_session(s);
        let file = files_dir.join(format!("{}.headers", s.id));
        let body: String = export::headers(s, now_ms())
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        write_private(&file, body.as_bytes())?;
        println!(
            "try       curl -sS -H @{} {}/api/event/{}\n",
            file.display(),
            site.base_url(),
            s.event.as_deref().unwrap_or("1001")
        );
    }
    println!("A scraper takes a session, ready to send, from the daemon:");
    println!("          curl -sS {api}/api/sessions/event/1001");
    println!("and reports how it went:");
    println!("          curl -sS -X POST -H 'Content-Type: application/json' -d '{{\"success\":true,\"status\":200}}' {api}/api/sessions/<session_id>/usage");
    println!("Dashboard {api}/   ·   metrics {api}/metrics");
    if !o.once {
        println!(
            "\nThe daemon keeps the pool warm (rotation, validation, refresh). Ctrl-C to stop."
        );
        shutdown_signal().await;
    }
    daemon.shutdown().await;
    site_stop.cancel();
    Ok(ExitCode::SUCCESS)
}
