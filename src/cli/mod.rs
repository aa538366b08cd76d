//! The `warmer` command line: a thin edge over the library. Parses commands, opens what they
//! need (config, store, browser), prints progress on stderr and results on stdout.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

mod accounts;
mod backend;
mod check;
mod daemon_client;
mod demo;
mod engine;
mod events;
mod login;
mod output;
mod sessions;
mod store;
mod store_copy;
mod store_spec;
mod target;
mod warm;

pub use accounts::AccountsCommand;
pub use demo::DemoArgs;
pub use events::{read_events_file, EventsCommand};
pub use sessions::SessionsCommand;
pub use store::StoreCommand;
pub use store_copy::CopyArgs;
pub use store_spec::StoreSpec;
pub use warm::WarmArgs;

/// Keeps browser sessions warm for scrapers.
#[derive(Debug, Parser)]
#[command(
    name = "warmer",
    version,
    about,
    after_help = "Example:\n  warmer demo                        # the demo site and a daemon warming it\n  warmer serve --config warmer.toml  # the daemon\n  warmer completions bash > ~/.local/share/bash-completion/completions/warmer"
)]
pub struct Cli {
    /// Config file (else $WARMER_CONFIG, else ./warmer.toml, else defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing syntax, e.g. `debug` or `session_warmer=debug`); also $RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Log line format: `text` (colours only at a terminal) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "WARMER_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `warmer`; each group's options and code live in its own file.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(after_help = "Example:\n  warmer serve --config /etc/warmer/warmer.toml")]
    /// Run the daemon: pool, workers and HTTP API.
    Serve,
    #[command(after_help = "Example:\n  warmer demo --sessions 2 --once")]
    /// Start the demo site on loopback and a daemon warming it.
    Demo(demo::DemoArgs),
    #[command(after_help = "Example:\n  warmer warm --event 123 --target tickets --json")]
    /// Warm one session now, with progress.
    Warm(warm::WarmArgs),
    #[command(after_help = "Example:\n  warmer sessions list --json")]
    /// Inspect stored sessions.
    Sessions {
        /// What to do with them.
        #[command(subcommand)]
        command: SessionsCommand,
    },
    #[command(after_help = "Example:\n  warmer events import events.txt --target tickets")]
    /// Fill the event store.
    Events {
        /// What to do with them.
        #[command(subcommand)]
        command: EventsCommand,
    },
    #[command(after_help = "Example:\n  warmer accounts list --target portal")]
    /// Manage the accounts of login targets.
    Accounts {
        /// What to do with them.
        #[command(subcommand)]
        command: AccountsCommand,
    },
    #[command(after_help = "Example:\n  warmer login --account alice --target portal")]
    /// Sign one account in by hand, with progress, and store the session.
    Login {
        /// Login target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
        /// The account (its file is `<accounts_dir>/<ACCOUNT>.toml`).
        #[arg(long)]
        account: String,
    },
    #[command(after_help = "Example:\n  warmer check --config warmer.toml")]
    /// Validate the config, find Chromium, load fingerprints.
    Check,
    #[command(
        after_help = "Example:\n  warmer store rekey --new-key-file new.key\n  warmer store copy --from sled:data/warmer.sled --to redis://127.0.0.1:6379/0"
    )]
    /// Maintain the store: re-encrypt it (daemon stopped), copy it to another backend.
    Store {
        /// What to do with it.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Serve only the demo site (the demo target; in docker-compose its own service).
    #[command(
        after_help = "Example:\n  warmer demo-site --listen 0.0.0.0:8080   # in a container, as docker-compose.yml runs it\n  warmer demo-site                          # 127.0.0.1:8080\n\nA target on it: event_url = \"http://HOST:PORT/event/{event}\"; its events are\n1001-1010 (`warmer demo` uses them)."
    )]
    DemoSite {
        /// Address to listen on; anything but loopback must be asked for (as in a container).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(
        after_help = "Example:\n  warmer completions bash > ~/.local/share/bash-completion/completions/warmer\n  warmer completions zsh > ~/.zfunc/_warmer      # with fpath+=(~/.zfunc) in ~/.zshrc\n  warmer completions fish > ~/.config/fish/completions/warmer.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the parsed command.
///
/// # Errors
/// Any failure, with its context chain; `main` prints it with `{:#}`.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let (config, _) = match cli.command {
        // Neither reads the config: a broken one must not stop them.
        Command::Completions { .. } | Command::DemoSite { .. } => (Config::default(), None),
        _ => Config::discover(cli.config.as_deref())?,
    };
    match cli.command {
        Command::Serve => {
            crate::daemon::run(config, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::demo(&config, args).await,
        Command::Warm(args) => warm::warm_cmd(&config, args).await,
        Command::Sessions { command } => sessions::sessions_cmd(&config, command).await,
        Command::Events { command } => events::events_cmd(&config, command).await,
        Command::Check => check::check(&config, cli.config.as_deref()).await,
        Command::Accounts { command } => accounts::accounts_cmd(&config, command).await,
        Command::Login { target, account } => {
            login::login_by_hand(&config, target.as_deref(), &account).await
        }
        Command::Store { command } => {
            store::store_cmd(&config, cli.config.as_deref(), command).await
        }
        Command::DemoSite { listen } => demo::demo_site(listen).await,
        Command::Completions { shell } => {
            completions(shell, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `shell`'s completion script for `warmer` to `out`.
///
/// # Errors
/// When writing fails.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    use clap::CommandFactory as _;
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "warmer", &mut buf);
    out.write_all(&buf)
        .context("writing the completion script")?;
    Ok(())
}

/// Opens the configured store's records for a command that reads or writes them directly
/// ([`backend::open_configured`]: sled, refused while a daemon holds it; Redis, shared with
/// running daemons; memory refused, it lives only inside its daemon).
///
/// # Errors
/// A memory store, or the store's own error, saying which store it was.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let backend = backend::open_configured(&config.store)
        .await
        .with_context(|| format!("opening store {}", backend::location(&config.store)))?;
    Ok(backend.records)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => futures::future::pending::<()>().await } } => {}
    }
}
