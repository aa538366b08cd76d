//! `warmer warm`: warm one session now, with progress (or ask a running daemon to).

use anyhow::{anyhow, bail, Result};
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

use super::daemon_client::{daemon_call, daemon_post};
use super::engine::Engine;
use super::output::print_session;
use super::target::{self, Kind, Unresolved};
use crate::config::{Config, TargetConfig};
use crate::session::Session;
use crate::store::Store;
use crate::warm::{WarmRequest, WarmStep};

/// The options of `warmer warm`.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Event id to warm on (random from the target's events when absent).
    #[arg(long)]
    pub event: Option<String>,
    /// Target from the config (defaults to the only one).
    #[arg(long)]
    pub target: Option<String>,
    /// Page URL to warm on (with `{event}` or literal); overrides the target's event_url.
    #[arg(long)]
    pub url: Option<String>,
    /// Proxy for this session (http://user:pass@host:port, socks5://...).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Print the session record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Warm-up dwell override (e.g. 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
}

/// `warmer warm`: warms one session with this process's own browser and stores it, or, when a
/// daemon holds the store (and no `--url`/`--proxy` asks for something only we can do), asks
/// the daemon to warm.
pub(super) async fn warm_cmd(config: &Config, args: WarmArgs) -> Result<ExitCode> {
    let WarmArgs {
        event,
        target,
        url,
        proxy,
        json,
        warmup,
    } = args;
    if let Some(e) = &event {
        crate::ids::check("event id", e).map_err(|e| anyhow!("--event: {e}"))?;
    }
    let backend = match super::backend::open_configured(&config.store).await {
        Ok(b) => b,
        // A locked store means a daemon owns it: let the daemon warm, unless `--url` or
        // `--proxy` ask for a session its configured targets cannot give.
        Err(e) if super::backend::is_locked(&e) && url.is_none() && proxy.is_none() => {
            return warm_via_daemon(config, target.as_deref(), event.as_deref(), json).await;
        }
        Err(e) => {
            return Err(e.context(format!(
                "opening store {}",
                super::backend::location(&config.store)
            )))
        }
    };
    let store = backend.records.as_ref();
    let target = warm_target(config, target.as_deref(), url.as_deref())?;
    let event = match event {
        Some(e) => e,
        None => random_event(store, &target).await?,
    };
    if let Some(p) = &proxy {
        crate::config::check_proxy(p).map_err(|m| anyhow!("--proxy: {m}"))?;
    }
    let engine = Engine::start(config.browser.clone())?;
    // Stop the browser before looking at the result, so a failed warm leaves no browser behind.
    let result = warm_one(&engine, store, &target, &event, proxy, warmup).await;
    engine.stop().await;
    let session = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&session)?);
    } else {
        print_session(&session);
    }
    Ok(ExitCode::SUCCESS)
}

/// The target `warmer warm` warms on: the one `--target` names (or the only one), with
/// `--url` as its page when given; with `--url` and no target to resolve, an ad-hoc target
/// on that URL.
fn warm_target(config: &Config, name: Option<&str>, url: Option<&str>) -> Result<TargetConfig> {
    match (target::resolve(config, name, Kind::Any), url) {
        (Ok(t), url) => {
            let mut t = t.clone();
            if let Some(u) = url {
                t.event_url = Some(u.to_string());
            }
            Ok(t)
        }
        (Err(Unresolved::NoneConfigured { .. } | Unresolved::Several { .. }), Some(u)) => {
            Ok(TargetConfig::ad_hoc("adhoc", u))
        }
        (Err(Unresolved::NoneConfigured { .. }), None) => {
            bail!("no target configured: pass --url URL or add a [[targets]] section to the config")
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// A random event of `target`: one stored for it or one listed in its config.
async fn random_event(store: &dyn Store, target: &TargetConfig) -> Result<String> {
    use rand::seq::SliceRandom;
    let mut ids: Vec<String> = store
        .list_events(Some(&target.name))
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.extend(target.events.iter().cloned());
    ids.choose(&mut rand::thread_rng()).cloned().ok_or_else(|| {
        anyhow!(
            "--event: target {:?} has no events; pass --event ID or run `warmer events add`",
            target.name
        )
    })
}

/// Warms one session with progress on stderr and stores it (flushed) before returning.
async fn warm_one(
    engine: &Engine,
    store: &dyn Store,
    target: &TargetConfig,
    event: &str,
    proxy: Option<String>,
    warmup: Option<Duration>,
) -> Result<Session> {
    let url = target
        .event_page(event)
        .map_err(|m| anyhow!("--url: {m}"))?;
    let req = WarmRequest {
        target: target.name.clone(),
        event: Some(event.to_string()),
        url,
        proxy,
        warmup: warmup.unwrap_or(target.warmup),
        navigation_timeout: target
            .navigation_timeout
            .unwrap_or(engine.warmer.supervisor().config().navigation_timeout),
        max_age: target.max_age,
        seed: None,
        viewport: None,
        turn: None,
        ready_when: target.ready_when.clone(),
        warm_steps: target.warm_steps.clone(),
        block: target.block.clone(),
    };
    let started = std::time::Instant::now();
    let progress = move |step: WarmStep| {
        let line = match step {
            WarmStep::Context => "starting browser and opening a fresh context".to_string(),
            WarmStep::Fingerprint(fp) => format!(
                "fingerprint: {:?} {}x{} {} {} (Chrome {})",
                fp.os,
                fp.viewport.0,
                fp.viewport.1,
                fp.locale,
                fp.timezone,
                fp.major()
            ),
            WarmStep::Navigate(u) => format!("navigating to {}", crate::browser::redact_url(&u)),
            WarmStep::Loaded { status, elapsed } => format!(
                "loaded: HTTP {} in {} ms",
                status.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                elapsed.as_millis()
            ),
            WarmStep::Step(line) => line,
            WarmStep::Warmup(d) => format!("warming up for {}", humantime::format_duration(d)),
            WarmStep::WaitReady {
                conditions,
                at_most,
            } => format!(
                "waiting for {conditions} (at most {})",
                humantime::format_duration(at_most)
            ),
            WarmStep::Capture => "capturing cookies, storage and what the page saw".to_string(),
        };
        eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    };
    let session = engine.warmer.warm(&req, &progress).await?;
    store.put_session(&session).await?;
    eprintln!(
        "[{:>5.1}s] stored session {} ({} cookies)",
        started.elapsed().as_secs_f64(),
        session.id,
        session.cookies.len()
    );
    Ok(session)
}

/// `warmer warm` while a daemon holds the store: ask it to warm.
async fn warm_via_daemon(
    config: &Config,
    target: Option<&str>,
    event: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let event = event.ok_or_else(|| anyhow!("--event: required while the daemon is running"))?;
    let mut path = String::from("/api/sessions/event/");
    path.extend(url::form_urlencoded::byte_serialize(event.as_bytes()));
    if let Some(t) = target {
        path.push_str("?target=");
        path.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
    }
    let (host, req) = daemon_post(config, &path)?;
    eprintln!("the store is in use by a running daemon; asking it at {host} to warm");
    let body = daemon_call(&host, req.timeout(Duration::from_secs(180))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("session   {}", body["session_id"].as_str().unwrap_or("?"));
        println!(
            "target    {}  event {event}",
            body["target"].as_str().unwrap_or("?")
        );
        let names: Vec<&str> = body["cookies"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        println!("cookies   {}", names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
