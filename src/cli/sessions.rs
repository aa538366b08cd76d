//! `warmer sessions`: list, show, export and delete stored sessions, in the configured store
//! (sled, or Redis next to running daemons); with sled held by a running daemon, export asks
//! the daemon.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

use super::backend;
use super::daemon_client::daemon_request;
use super::target::{self, Kind};
use crate::config::Config;
use crate::export::{self, ExportFormat};
use crate::session::{now_ms, Session};
use crate::store::Store;

/// `warmer sessions`: what to do with stored sessions.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    #[command(after_help = "Example:\n  warmer sessions list --json")]
    /// List stored sessions.
    List {
        /// As JSON (an array of session summaries).
        #[arg(long)]
        json: bool,
    },
    #[command(after_help = "Example:\n  warmer sessions show 9f1c2e0a4b7d4e5f8a6b3c2d1e0f9a8b")]
    /// Show one session (cookie values hidden).
    Show {
        /// The session (see `warmer sessions list`).
        id: String,
    },
    #[command(
        after_help = "Example:\n  warmer sessions export ID --format cookies-txt > cookies.txt"
    )]
    /// Export a session for a scraper, or with `--all` the ready ones as one Crawlee
    /// `SessionPool` state record.
    Export {
        /// The session (see `warmer sessions list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// The export format (default: json; with `--all`: crawlee, the only one it takes).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Every ready, unexpired session at once (format crawlee).
        #[arg(long)]
        all: bool,
        /// With `--all`: only this target's sessions.
        #[arg(long, requires = "all")]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer sessions delete ID")]
    /// Delete a session.
    Delete {
        /// The session (see `warmer sessions list`).
        id: String,
    },
}

/// `--format` of `warmer sessions export`: an [`ExportFormat`] by the name the command line and
/// the API's `?format=` use (clap lists them in `--help` and completes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatArg(pub ExportFormat);

/// Every format as a `--format` value, in [`ExportFormat::ALL`]'s order (its length keeps the
/// two lists the same size).
const FORMAT_ARGS: [FormatArg; ExportFormat::ALL.len()] = {
    let all = ExportFormat::ALL;
    let mut out = [FormatArg(all[0]); ExportFormat::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        out[i] = FormatArg(all[i]);
        i += 1;
    }
    out
};

impl clap::ValueEnum for FormatArg {
    fn value_variants<'a>() -> &'a [Self] {
        &FORMAT_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.as_str()))
    }
}

/// Runs `warmer sessions ...` on the configured store; `export` asks a running daemon when it
/// holds a sled store. With Redis, `delete` also drops the session's usage counters and hold.
///
/// # Errors
/// An unknown session or target, a format `--all` does not take, or a store or daemon error.
pub(super) async fn sessions_cmd(config: &Config, command: SessionsCommand) -> Result<ExitCode> {
    let backend = match (backend::open_configured(&config.store).await, &command) {
        (Ok(b), _) => b,
        // A daemon holds the sled store: it can export (the other commands need the store).
        (
            Err(e),
            SessionsCommand::Export {
                id, format, target, ..
            },
        ) if backend::is_locked(&e) => {
            let format = export_format(id.is_none(), *format)?;
            return export_via_daemon(config, id.as_deref(), format, target.as_deref()).await;
        }
        (Err(e), _) => {
            return Err(e.context(format!(
                "opening store {}",
                backend::location(&config.store)
            )))
        }
    };
    let store = backend.records.as_ref();
    match command {
        SessionsCommand::List { json } => {
            let mut sessions = store.list_sessions().await?;
            sessions.sort_by_key(|s| s.created_at);
            if json {
                let rows: Vec<serde_json::Value> = sessions.iter().map(summary).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let now = now_ms();
                println!(
                    "{:<32}  {:<10}  {:<8}  {:<10}  {:>7}  {:>7}",
                    "ID", "TARGET", "STATE", "EVENT", "AGE", "COOKIES"
                );
                for s in &sessions {
                    println!(
                        "{:<32}  {:<10}  {:<8}  {:<10}  {:>6}m  {:>7}",
                        s.id,
                        s.target,
                        format!("{:?}", s.state).to_lowercase(),
                        s.event.as_deref().unwrap_or("-"),
                        s.age_ms(now) / 60_000,
                        s.cookies.len()
                    );
                }
            }
        }
        SessionsCommand::Show { id } => {
            let mut s = get(store, &id).await?;
            // A shared store counts every daemon's reports apart from the record (which a
            // daemon rewrites with them only on its next flush): show the totals.
            if let Ok(Some(total)) = backend.coordination.usage(&s.target, &s.id).await {
                total.fold_into(&mut s.health);
            }
            println!("{}", serde_json::to_string_pretty(&summary(&s))?);
        }
        SessionsCommand::Export {
            id, format, target, ..
        } => {
            let format = export_format(id.is_none(), format)?;
            let now = now_ms();
            match id {
                Some(id) => print!("{}", export::render(&get(store, &id).await?, format, now)),
                None => {
                    if let Some(t) = &target {
                        target::resolve(config, Some(t), Kind::Any)?;
                    }
                    let mut sessions: Vec<Session> = store
                        .list_sessions()
                        .await?
                        .into_iter()
                        .filter(|s| export::crawlee_exportable(s, now))
                        .filter(|s| target.as_ref().is_none_or(|t| &s.target == t))
                        .collect();
                    sessions.sort_by_key(|s| s.created_at);
                    print!("{}", export::render_crawlee_pool(&sessions, now));
                }
            }
        }
        SessionsCommand::Delete { id } => {
            let Some(s) = store.get_session(&id).await? else {
                bail!("no session {id:?}");
            };
            if !store.delete_session(&id).await? {
                bail!("no session {id:?}");
            }
            // Its counters and any scraper's hold go with it (shared state with Redis; a no-op
            // for sled, whose counters live in the daemon).
            backend.coordination.forget(&s.target, &id).await?;
            eprintln!("deleted {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The format of `warmer sessions export`: json by default for one session; the pool-wide
/// export (`--all`) is crawlee only.
fn export_format(all: bool, format: Option<FormatArg>) -> Result<ExportFormat> {
    let default = if all {
        ExportFormat::Crawlee
    } else {
        ExportFormat::Json
    };
    let format = format.map_or(default, |f| f.0);
    if all && format != ExportFormat::Crawlee {
        bail!("--format: --all exports as crawlee only; export one session by id for {format}");
    }
    Ok(format)
}

/// `warmer sessions export` while a daemon holds the store: ask it for the export
/// (`GET /api/v1/sessions/:id/export`, or `GET /api/v1/sessions/export` for `--all`), as
/// `warm` asks it to warm.
pub(super) async fn export_via_daemon(
    config: &Config,
    id: Option<&str>,
    format: ExportFormat,
    target: Option<&str>,
) -> Result<ExitCode> {
    let mut path = String::from("/api/v1/sessions/");
    if let Some(id) = id {
        path.extend(url::form_urlencoded::byte_serialize(id.as_bytes()));
        path.push('/');
    }
    path.push_str("export?format=");
    path.push_str(format.as_str());
    if let Some(t) = target {
        path.push_str("&target=");
        path.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
    }
    let (host, req) = daemon_request(config, reqwest::Method::GET, &path)?;
    eprintln!("the store is in use by a running daemon; asking it at {host} for the export");
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("asking the daemon at {host}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("reading the daemon's answer from {host}"))?;
    if let (Some(id), reqwest::StatusCode::NOT_FOUND) = (id, status) {
        bail!("no session {id:?} in the running daemon (see `warmer sessions list`)");
    }
    if !status.is_success() {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        bail!(
            "the daemon answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// One stored session, or an error naming the id and where to find ids.
///
/// # Errors
/// No such session, or a store error.
pub(super) async fn get(store: &dyn Store, id: &str) -> Result<Session> {
    store
        .get_session(id)
        .await?
        .ok_or_else(|| anyhow!("no session {id:?} (see `warmer sessions list`)"))
}

/// A session without secret values: cookie names and flags only.
pub(super) fn summary(s: &Session) -> serde_json::Value {
    serde_json::json!({
        "session_id": s.id,
        "target": s.target,
        "event": s.event,
        "state": s.state,
        "url": crate::browser::redact_url(&s.url),
        "user_agent": s.fingerprint.user_agent,
        "platform": s.fingerprint.profile.ch_platform,
        "locale": s.fingerprint.locale,
        "timezone": s.fingerprint.timezone,
        "cookies": s.cookies.iter().map(|c| serde_json::json!({
            "name": c.name, "domain": c.domain, "http_only": c.http_only, "expires": c.expires,
        })).collect::<Vec<_>>(),
        "local_storage_keys": s.origins.iter().flat_map(|o| o.local_storage.iter().map(|(k, _)| k.clone())).collect::<Vec<_>>(),
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "health": s.health,
        "proxy": s.proxy.as_deref().map(crate::browser::redact_url),
    })
}
