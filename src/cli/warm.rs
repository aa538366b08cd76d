//! `warmer warm`: warm one session now, with progress (or ask a running daemon to).

use anyhow::{anyhow, Result};
use std::process::ExitCode;
use std::time::Duration;

use super::daemon_client::{daemon_call, daemon_post};
use super::engine::Engine;
use super::output::print_session;
use super::target::pick_target;
use crate::config::{Config, TargetConfig};
use crate::session::Session;
use crate::store::{SledStore, Store};
use crate::warm::{WarmRequest, WarmStep};

/// `warmer warm`: warms one session with this process's own browser and stores it, or, when a
/// daemon holds the store (and no `--url`/`--proxy` asks for something only we can do), asks
/// the daemon to warm.
pub(super) async fn warm_cmd(
    config: &Config,
    event: Option<String>,
    target: Option<String>,
    url: Option<String>,
    proxy: Option<String>,
    json: bool,
    warmup: Option<Duration>,
) -> Result<ExitCode> {
    let store = match SledStore::open_configured(&config.store) {
        Ok(s) => s,
        Err(crate::store::StoreError::Locked { .. }) if url.is_none() && proxy.is_none() => {
            return warm_via_daemon(config, target.as_deref(), event.as_deref(), json).await;
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("opening store {}", config.store.path.display())))
        }
    };
    let target = pick_target(config, target.as_deref(), url.as_deref())?;
    let event = match event {
        Some(e) => e,
        None => random_event(&store, &target)?,
    };
    if let Some(p) = &proxy {
        crate::config::check_proxy(p).map_err(|m| anyhow!("--proxy: {m}"))?;
    }
    let engine = Engine::start(config.browser.clone())?;
    let result = warm_one(&engine, &store, &target, &event, proxy, warmup, None).await;
    engine.stop().await;
    let session = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&session)?);
    } else {
        print_session(&session);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn random_event(store: &SledStore, target: &TargetConfig) -> Result<String> {
    use rand::seq::SliceRandom;
    let mut ids: Vec<String> = store
        .list_events(Some(&target.name))?
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
pub(super) async fn warm_one(
    engine: &Engine,
    store: &dyn Store,
    target: &TargetConfig,
    event: &str,
    proxy: Option<String>,
    warmup: Option<Duration>,
    prefix: Option<&str>,
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
    };
    let prefix = prefix.unwrap_or("").to_string();
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
            WarmStep::Warmup(d) => format!("warming up for {}", humantime::format_duration(d)),
            WarmStep::Capture => "capturing cookies, storage and what the page saw".to_string(),
        };
        eprintln!("{prefix}[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    };
    let mut session = engine.warmer.warm(&req, &progress).await?;
    store.put_session(&session)?;
    session.state = crate::session::SessionState::Ready;
    eprintln!(
        "[{:>5.1}s] stored session {} ({} cookies)",
        started.elapsed().as_secs_f64(),
        session.id,
        session.cookies.len()
    );
    Ok(session)
}

/// `warmer warm` while a daemon holds the store: ask it to warm.
pub(super) async fn warm_via_daemon(
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
