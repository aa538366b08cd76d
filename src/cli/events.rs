//! `warmer events`: fill and list the event store (sled, or Redis next to running daemons).

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::open_store;
use super::target::{self, Kind, Unresolved};
use crate::config::Config;
use crate::session::now_ms;
use crate::store::{Event, Store};

/// `warmer events`: the event ids each target warms on.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    #[command(after_help = "Example:\n  warmer events add --target tickets 123 456")]
    /// Add event ids to a target.
    Add {
        /// Target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
        /// The event ids (letters, digits, `-_.:`, as the API takes them).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    #[command(after_help = "Example:\n  warmer events import deploy/events.txt --target tickets")]
    /// Import event ids from a file (one per line, `#` comments).
    Import {
        /// The file.
        file: PathBuf,
        /// Target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer events list --target tickets")]
    /// List stored events.
    List {
        /// Only this target's events.
        #[arg(long)]
        target: Option<String>,
    },
}

/// Runs `warmer events add|import|list` on the configured store. With sled the daemon must
/// be stopped (sled is single-process); with Redis, running daemons see the events at once.
///
/// # Errors
/// An unknown or missing `--target`, an event id the API could not serve (nothing is added
/// then), an unreadable file, or a store error.
pub(super) async fn events_cmd(config: &Config, command: EventsCommand) -> Result<ExitCode> {
    let store = open_store(config).await?;
    match command {
        EventsCommand::Add { target, ids } => {
            let target = events_target(config, target)?;
            let added = add_events(&*store, &target, &ids).await?;
            eprintln!("added {added} event(s) to {target}");
        }
        EventsCommand::Import { file, target } => {
            let target = events_target(config, target)?;
            let ids = read_events_file(&file)?;
            let added = add_events(&*store, &target, &ids)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            eprintln!("imported {added} new event(s) into {target}");
        }
        EventsCommand::List { target } => {
            for e in store.list_events(target.as_deref()).await? {
                println!("{}\t{}", e.target, e.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The target events are added to: a configured one ([`target::resolve`]); with no target
/// configured at all, any name given (events can be stored before the config names them).
fn events_target(config: &Config, name: Option<String>) -> Result<String> {
    match (target::resolve(config, name.as_deref(), Kind::Any), name) {
        (Ok(t), _) => Ok(t.name.clone()),
        (Err(Unresolved::Unknown { .. }), Some(n)) if config.targets.is_empty() => Ok(n),
        (Err(Unresolved::NoneConfigured { .. }), None) => {
            bail!("--target: pass the target the events belong to")
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// Reads one event id per line, skipping blanks and `#` comments.
///
/// # Errors
/// When the file cannot be read.
pub fn read_events_file(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Adds `ids` to `target`'s events and returns how many were new. Every id is checked against
/// the API's id rule ([`crate::ids`]) first, so one the API could never serve is refused, by
/// name, before anything is stored.
///
/// # Errors
/// The first invalid id, or a store error.
async fn add_events(store: &dyn Store, target: &str, ids: &[String]) -> Result<usize> {
    for id in ids {
        crate::ids::check("event id", id)?;
    }
    let now = now_ms();
    let events: Vec<Event> = ids
        .iter()
        .map(|id| Event {
            target: target.to_string(),
            id: id.clone(),
            url: None,
            added_at: now,
        })
        .collect();
    Ok(store.put_events(&events).await?)
}
