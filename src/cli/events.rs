//! `warmer events`: fill and list the event store.

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::open_store;
use crate::config::Config;
use crate::session::now_ms;
use crate::store::{Event, Store};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    #[command(after_help = "Example:\n  warmer events add --target tickets 123 456")]
    /// Add event ids to a target.
    Add {
        #[arg(long)]
        target: Option<String>,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    #[command(after_help = "Example:\n  warmer events import deploy/events.txt --target tickets")]
    /// Import event ids from a file (one per line, `#` comments).
    Import {
        file: PathBuf,
        #[arg(long)]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer events list --target tickets")]
    /// List stored events.
    List {
        #[arg(long)]
        target: Option<String>,
    },
}

pub(super) fn events_cmd(config: &Config, command: EventsCommand) -> Result<ExitCode> {
    let store = open_store(config)?;
    let target_name = |t: Option<String>| -> Result<String> {
        match t {
            Some(n) => {
                if config.target(&n).is_none() && !config.targets.is_empty() {
                    bail!("--target: unknown target {n:?}");
                }
                Ok(n)
            }
            None if config.targets.len() == 1 => Ok(config.targets[0].name.clone()),
            None => bail!("--target: pass the target the events belong to"),
        }
    };
    match command {
        EventsCommand::Add { target, ids } => {
            let target = target_name(target)?;
            let added = add_events(&store, &target, ids)?;
            eprintln!("added {added} event(s) to {target}");
        }
        EventsCommand::Import { file, target } => {
            let target = target_name(target)?;
            let ids = read_events_file(&file)?;
            let added = add_events(&store, &target, ids)?;
            eprintln!("imported {added} new event(s) into {target}");
        }
        EventsCommand::List { target } => {
            for e in store.list_events(target.as_deref())? {
                println!("{}\t{}", e.target, e.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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

pub(super) fn add_events(store: &dyn Store, target: &str, ids: Vec<String>) -> Result<usize> {
    let mut added = 0;
    for id in ids {
        if id.len() > 200 || id.chars().any(char::is_control) {
            bail!("invalid event id {id:?}");
        }
        let new = store.put_event(&Event {
            target: target.to_string(),
            id,
            url: None,
            added_at: now_ms(),
        })?;
        added += usize::from(new);
    }
    Ok(added)
}
