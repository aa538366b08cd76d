//! The `warmer` command line: a thin edge over the library. Parses commands, opens what they
//! need (config, store, browser), prints progress on stderr and results on stdout.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::browser::Supervisor;
use crate::config::{BrowserConfig, Config, TargetConfig};
use crate::export::{self, ExportFormat};
use crate::fingerprint::FingerprintSource;
use crate::session::{now_ms, Session};
use crate::store::{Event, SledStore, Store};
use crate::warm::{WarmRequest, WarmStep, Warmer};

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(after_help = "Example:\n  warmer serve --config /etc/warmer/warmer.toml")]
    /// Run the daemon: pool, workers and HTTP API.
    Serve,
    #[command(after_help = "Example:\n  warmer demo --sessions 2 --once")]
    /// Start the demo site on loopback and a daemon warming it.
    Demo {
        /// Port of the demo site (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Sessions to warm.
        #[arg(long, default_value_t = 3)]
        sessions: usize,
        /// Store directory of the demo (emptied on each run: the demo site forgets its
        /// visitors when it stops, so old demo sessions would not work).
        #[arg(long, default_value = "data/demo.sled")]
        store: PathBuf,
        /// Warm-up dwell after load.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        /// API address of the demo daemon (falls back to a free port when taken).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        /// Wait for the sessions, print them, and exit instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    #[command(after_help = "Example:\n  warmer warm --event 123 --target tickets --json")]
    /// Warm one session now, with progress.
    Warm {
        /// Event id to warm on (random from the target's events when absent).
        #[arg(long)]
        event: Option<String>,
        /// Target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
        /// Page URL to warm on (with `{event}` or literal); overrides the target's event_url.
        #[arg(long)]
        url: Option<String>,
        /// Proxy for this session (http://user:pass@host:port, socks5://...).
        #[arg(long)]
        proxy: Option<String>,
        /// Print the session record as JSON.
        #[arg(long)]
        json: bool,
        /// Warm-up dwell override (e.g. 2s).
        #[arg(long, value_parser = humantime::parse_duration)]
        warmup: Option<Duration>,
    },
    #[command(after_help = "Example:\n  warmer sessions list --json")]
    /// Inspect stored sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    #[command(after_help = "Example:\n  warmer events import events.txt --target tickets")]
    /// Fill the event store.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    #[command(after_help = "Example:\n  warmer accounts list --target portal")]
    /// Manage the accounts of login targets.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    #[command(after_help = "Example:\n  warmer login --account alice --target portal")]
    /// Sign one account in by hand, with progress, and store the session.
    Login {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        account: String,
    },
    #[command(after_help = "Example:\n  warmer check --config warmer.toml")]
    /// Validate the config, find Chromium, load fingerprints.
    Check,
    #[command(after_help = "Example:\n  warmer store rekey --new-key-file new.key")]
    /// Maintain the store (with the daemon stopped).
    Store {
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

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    #[command(
        after_help = "Example:\n  warmer store rekey --new-key-file new.key   # WARMER_KEY holds the old one, if any"
    )]
    /// Re-encrypt every session record under a new key (the old one comes from WARMER_KEY or
    /// store.key_file; with neither, a plaintext store is encrypted for the first time).
    Rekey {
        /// File with the new 32-byte key (64 hex characters or base64; mode 0600 or 0400).
        #[arg(long, value_name = "FILE", required_unless_present = "decrypt")]
        new_key_file: Option<PathBuf>,
        /// Decrypt every session record instead, turning encryption off.
        #[arg(long, conflicts_with = "new_key_file")]
        decrypt: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    #[command(after_help = "Example:\n  warmer accounts list --target portal")]
    /// List account files (never passwords).
    List {
        #[arg(long)]
        target: Option<String>,
    },
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PW\" | warmer accounts add alice --target portal --username alice --password-stdin"
    )]
    /// Write an account file (0600). The password comes from stdin, a variable or a file.
    Add {
        id: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        username: String,
        /// Read the password from standard input (first line).
        #[arg(long, group = "pw")]
        password_stdin: bool,
        /// Name of the daemon's environment variable holding the password.
        #[arg(long, group = "pw")]
        password_env: Option<String>,
        /// File holding the password.
        #[arg(long, group = "pw")]
        password_file: Option<PathBuf>,
        #[arg(long)]
        proxy: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer accounts remove alice --target portal")]
    /// Remove an account file (a running daemon disposes its context).
    Remove {
        id: String,
        #[arg(long)]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer accounts refresh")]
    /// Ask the running daemon to check every account now.
    Refresh,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    #[command(after_help = "Example:\n  warmer sessions list --json")]
    /// List stored sessions.
    List {
        #[arg(long)]
        json: bool,
    },
    #[command(after_help = "Example:\n  warmer sessions show 9f1c2e0a4b7d4e5f8a6b3c2d1e0f9a8b")]
    /// Show one session (cookie values hidden).
    Show { id: String },
    #[command(
        after_help = "Example:\n  warmer sessions export ID --format cookies-txt > cookies.txt"
    )]
    /// Export a session for a scraper, or with `--all` the ready ones as one Crawlee
    /// `SessionPool` state record.
    Export {
        /// The session (see `warmer sessions list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// cookies-txt | cookies-txt-wget | storage-state | headers | json | crawlee
        /// (with `--all`: crawlee, the default then)
        #[arg(long)]
        format: Option<String>,
        /// Every ready, unexpired session at once (format crawlee).
        #[arg(long)]
        all: bool,
        /// With `--all`: only this target's sessions.
        #[arg(long, requires = "all")]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer sessions delete ID")]
    /// Delete a session.
    Delete { id: String },
}

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
        Command::Demo {
            port,
            sessions,
            store,
            warmup,
            listen,
            once,
        } => {
            let opts = DemoOptions {
                port,
                sessions,
                store,
                warmup,
                listen,
                once,
            };
            demo(&config, opts).await
        }
        Command::Warm {
            event,
            target,
            url,
            proxy,
            json,
            warmup,
        } => {
            let store = match SledStore::open_configured(&config.store) {
                Ok(s) => s,
                Err(crate::store::StoreError::Locked { .. })
                    if url.is_none() && proxy.is_none() =>
                {
                    return warm_via_daemon(&config, target.as_deref(), event.as_deref(), json)
                        .await;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("opening store {}", config.store.path.display())))
                }
            };
            let target = pick_target(&config, target.as_deref(), url.as_deref())?;
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
        Command::Sessions { command } => sessions_cmd(&config, command).await,
        Command::Events { command } => events_cmd(&config, command),
        Command::Check => check(&config, cli.config.as_deref()).await,
        Command::Accounts { command } => accounts_cmd(&config, command).await,
        Command::Login { target, account } => {
            login_by_hand(&config, target.as_deref(), &account).await
        }
        Command::Store { command } => store_cmd(&config, cli.config.as_deref(), command),
        Command::DemoSite { listen } => demo_site(listen).await,
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

/// `warmer demo-site`: the demo site alone, until SIGINT or SIGTERM.
async fn demo_site(listen: std::net::SocketAddr) -> Result<ExitCode> {
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

/// A browser supervisor plus the warmer on it, with the tasks they own.
pub struct Engine {
    pub warmer: Warmer,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Engine {
    /// Loads fingerprints and starts the supervisor (Chromium launches in the background).
    ///
    /// # Errors
    /// When the fingerprint data cannot be loaded.
    pub fn start(browser: BrowserConfig) -> Result<Self> {
        let fingerprints = Arc::new(match &browser.fingerprints_dir {
            Some(dir) => FingerprintSource::load_dir(dir)?,
            None => FingerprintSource::embedded(),
        });
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let sup = Supervisor::start(browser, shutdown.clone(), &tracker);
        Ok(Self {
            warmer: Warmer::new(sup, fingerprints),
            shutdown,
            tracker,
        })
    }

    /// Closes and reaps the browser and removes its dirs.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("browser did not stop within 10 s");
        }
    }
}

fn open_store(config: &Config) -> Result<SledStore> {
    SledStore::open_configured(&config.store)
        .with_context(|| format!("opening store {}", config.store.path.display()))
}

fn pick_target(config: &Config, name: Option<&str>, url: Option<&str>) -> Result<TargetConfig> {
    let base = match name {
        Some(n) => Some(config.target(n).cloned().ok_or_else(|| {
            let known: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
            anyhow!(
                "--target: unknown target {n:?} (configured: {})",
                known.join(", ")
            )
        })?),
        None if config.targets.len() == 1 => Some(config.targets[0].clone()),
        None => None,
    };
    match (base, url) {
        (Some(mut t), Some(u)) => {
            t.event_url = Some(u.to_string());
            Ok(t)
        }
        (Some(t), None) => Ok(t),
        (None, Some(u)) => Ok(TargetConfig::ad_hoc("adhoc", u)),
        (None, None) if config.targets.is_empty() => {
            bail!("no target configured: pass --url URL or add a [[targets]] section to the config")
        }
        (None, None) => bail!("several targets configured: pass --target NAME"),
    }
}

fn random_event(store: &SledStore, target: &TargetConfig) -> Result<String> {
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
async fn warm_one(
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

fn print_session(s: &Session) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "session   {}", s.id);
    let _ = writeln!(
        out,
        "target    {}  event {}",
        s.target,
        s.event.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "url       {}", crate::browser::redact_url(&s.url));
    let _ = writeln!(out, "identity  {}", s.fingerprint.user_agent);
    let _ = writeln!(
        out,
        "          {} · {}x{} · {} · {}",
        s.fingerprint.profile.ch_platform,
        s.fingerprint.viewport.0,
        s.fingerprint.viewport.1,
        s.fingerprint.locale,
        s.fingerprint.timezone
    );
    let names: Vec<String> = s
        .cookies
        .iter()
        .map(|c| {
            if c.http_only {
                format!("{} (HttpOnly)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    let _ = writeln!(out, "cookies   {}", names.join(", "));
    for o in &s.origins {
        let keys: Vec<&str> = o.local_storage.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(out, "storage   {} : {}", o.origin, keys.join(", "));
    }
    if let Some(p) = &s.proxy {
        let _ = writeln!(out, "proxy     {}", crate::browser::redact_url(p));
    }
}

async fn sessions_cmd(config: &Config, command: SessionsCommand) -> Result<ExitCode> {
    let store = match (SledStore::open_configured(&config.store), &command) {
        (Ok(s), _) => s,
        // A daemon holds the store: it can export (the other commands need the store).
        (
            Err(crate::store::StoreError::Locked { .. }),
            SessionsCommand::Export {
                id, format, target, ..
            },
        ) => {
            let format = export_format(id.is_none(), format.as_deref())?;
            return export_via_daemon(config, id.as_deref(), format, target.as_deref()).await;
        }
        (Err(e), _) => {
            return Err(anyhow::Error::new(e)
                .context(format!("opening store {}", config.store.path.display())))
        }
    };
    match command {
        SessionsCommand::List { json } => {
            let mut sessions = store.list_sessions()?;
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
            let s = get(&store, &id)?;
            println!("{}", serde_json::to_string_pretty(&summary(&s))?);
        }
        SessionsCommand::Export {
            id, format, target, ..
        } => {
            let format = export_format(id.is_none(), format.as_deref())?;
            let now = now_ms();
            match id {
                Some(id) => print!("{}", export::render(&get(&store, &id)?, format, now)),
                None => {
                    if let Some(t) = &target {
                        if !config.targets.iter().any(|c| &c.name == t) {
                            bail!("--target: no target {t:?} in the config");
                        }
                    }
                    let mut sessions: Vec<Session> = store
                        .list_sessions()?
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
            if !store.delete_session(&id)? {
                bail!("no session {id:?}");
            }
            eprintln!("deleted {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The format of `warmer sessions export`: json by default for one session; the pool-wide
/// export (`--all`) is crawlee only.
fn export_format(all: bool, format: Option<&str>) -> Result<ExportFormat> {
    let default = if all { "crawlee" } else { "json" };
    let format: ExportFormat = format
        .unwrap_or(default)
        .parse()
        .map_err(|e| anyhow!("--format: {e}"))?;
    if all && format != ExportFormat::Crawlee {
        bail!("--format: --all exports as crawlee only; export one session by id for {format}");
    }
    Ok(format)
}

/// `warmer sessions export` while a daemon holds the store: ask it for the export
/// (`GET /api/v1/sessions/:id/export`, or `GET /api/v1/sessions/export` for `--all`), as
/// `warm` asks it to warm.
async fn export_via_daemon(
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

fn get(store: &SledStore, id: &str) -> Result<Session> {
    store
        .get_session(id)?
        .ok_or_else(|| anyhow!("no session {id:?} (see `warmer sessions list`)"))
}

/// A session without secret values: cookie names and flags only.
fn summary(s: &Session) -> serde_json::Value {
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

fn events_cmd(config: &Config, command: EventsCommand) -> Result<ExitCode> {
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

fn login_target<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a TargetConfig> {
    let logins: Vec<&TargetConfig> = config
        .targets
        .iter()
        .filter(|t| t.login.is_some())
        .collect();
    match name {
        Some(n) => logins
            .into_iter()
            .find(|t| t.name == n)
            .ok_or_else(|| anyhow!("--target: no login target {n:?} in the config")),
        None => match logins.as_slice() {
            [one] => Ok(one),
            [] => bail!("no login target configured ([targets.login] with accounts_dir)"),
            _ => bail!("--target: several login targets; name one"),
        },
    }
}

/// Sends a request to the daemon and returns its JSON answer.
///
/// # Errors
/// When the daemon cannot be reached or answers with an error (its message is kept).
async fn daemon_call(base: &str, req: reqwest::RequestBuilder) -> Result<serde_json::Value> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("asking the daemon at {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the daemon answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

/// A POST to the running daemon at `path`, with its token when one is configured.
fn daemon_post(config: &Config, path: &str) -> Result<(String, reqwest::RequestBuilder)> {
    daemon_request(config, reqwest::Method::POST, path)
}

/// A request to the running daemon at `path`, with its token when one is configured; also
/// returns the daemon's base URL.
fn daemon_request(
    config: &Config,
    method: reqwest::Method,
    path: &str,
) -> Result<(String, reqwest::RequestBuilder)> {
    let addr = config.server.listen;
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let base = format!("http://{host}");
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = crate::daemon::load_token(config)? {
        req = req.bearer_auth(token);
    }
    Ok((base, req))
}

async fn accounts_cmd(config: &Config, command: AccountsCommand) -> Result<ExitCode> {
    use crate::accounts::{self, AccountFile, PasswordSource};
    match command {
        AccountsCommand::List { target } => {
            let targets: Vec<&TargetConfig> = match target {
                Some(t) => vec![login_target(config, Some(&t))?],
                None => config
                    .targets
                    .iter()
                    .filter(|t| t.login.is_some())
                    .collect(),
            };
            println!(
                "{:<20}  {:<12}  {:<20}  {:<14}  PROXY",
                "ACCOUNT", "TARGET", "USERNAME", "PASSWORD"
            );
            for t in targets {
                let dir = t.accounts_dir.as_deref().unwrap_or(Path::new("accounts"));
                let (found, bad) = accounts::load_dir(dir, &t.name);
                for a in found {
                    let source = match &a.password {
                        PasswordSource::Inline(_) => "in file".to_string(),
                        PasswordSource::Env(v) => format!("env {v}"),
                        PasswordSource::File(_) => "file".to_string(),
                    };
                    println!(
                        "{:<20}  {:<12}  {:<20}  {:<14}  {}",
                        a.id,
                        t.name,
                        a.username,
                        source,
                        a.proxy
                            .as_deref()
                            .map(crate::browser::redact_url)
                            .unwrap_or_else(|| "-".into())
                    );
                }
                for e in bad {
                    eprintln!("warning: {e}");
                }
            }
        }
        AccountsCommand::Add {
            id,
            target,
            username,
            password_stdin,
            password_env,
            password_file,
            proxy,
        } => {
            let t = login_target(config, target.as_deref())?;
            let dir = t
                .accounts_dir
                .clone()
                .ok_or_else(|| anyhow!("target {:?} has no accounts_dir", t.name))?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let pw = line.trim_end_matches(['\n', '\r']).to_string();
                if pw.is_empty() {
                    bail!("--password-stdin: no password on standard input");
                }
                Some(pw)
            } else {
                None
            };
            if password.is_none() && password_env.is_none() && password_file.is_none() {
                bail!("give the password with --password-stdin, --password-env VAR or --password-file FILE");
            }
            if let Some(p) = &proxy {
                crate::config::check_proxy(p).map_err(|m| anyhow!("--proxy: {m}"))?;
            }
            let file = AccountFile {
                username,
                password,
                password_env,
                password_file,
                proxy,
            };
            let path = accounts::write_file(&dir, &id, &file)?;
            eprintln!("wrote {} (a running daemon picks it up)", path.display());
        }
        AccountsCommand::Remove { id, target } => {
            let t = login_target(config, target.as_deref())?;
            let dir = t
                .accounts_dir
                .clone()
                .ok_or_else(|| anyhow!("target {:?} has no accounts_dir", t.name))?;
            if !accounts::remove_file(&dir, &id)? {
                bail!("no account {id:?} in {}", dir.display());
            }
            eprintln!("removed {id}");
        }
        AccountsCommand::Refresh => {
            let (base, req) = daemon_post(config, "/api/accounts/refresh")?;
            let body = daemon_call(&base, req).await?;
            eprintln!("checking {} account(s) now", body["started"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn login_by_hand(config: &Config, target: Option<&str>, account: &str) -> Result<ExitCode> {
    use crate::warm::login;
    let t = login_target(config, target)?.clone();
    let login_cfg = t.login.clone().expect("login target");
    let dir = t
        .accounts_dir
        .clone()
        .ok_or_else(|| anyhow!("target {:?} has no accounts_dir", t.name))?;
    crate::accounts::check_id(account)?;
    let acc = crate::accounts::load_file(&dir.join(format!("{account}.toml")), &t.name)?;
    let store = match SledStore::open_configured(&config.store) {
        Ok(s) => s,
        Err(crate::store::StoreError::Locked { .. }) => bail!(
            "the daemon is running and keeps {account:?} signed in; use `warmer accounts refresh`"
        ),
        Err(e) => return Err(e.into()),
    };
    let password = acc.password().map_err(|m| anyhow!("{account}: {m}"))?;
    let engine = Engine::start(config.browser.clone())?;
    let started = std::time::Instant::now();
    let say = |line: String| eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    let result = async {
        say("starting browser and opening a fresh context".into());
        let sup = engine.warmer.supervisor();
        let ctx = sup.new_context(acc.proxy.as_deref()).await?;
        let out = async {
            let fp = engine.warmer.sample_fingerprint().await?;
            ctx.apply_fingerprint(&fp).await?;
            say(format!(
                "signing in as {} at {}",
                acc.username,
                crate::browser::redact_url(&login_cfg.url)
            ));
            let nav = t
                .navigation_timeout
                .unwrap_or(config.browser.navigation_timeout);
            let creds = login::Credentials {
                username: acc.username.clone(),
                password,
            };
            login::run_steps(&ctx, &login_cfg, &creds, nav, &|l| say(l)).await?;
            say("checking the session".into());
            if !login::check(&ctx, &login_cfg.check, nav).await? {
                return Err(login::LoginError::StillSignedOut.into());
            }
            let (cookies, origins, observed) = crate::warm::capture(&ctx).await?;
            let now = now_ms();
            Ok::<_, anyhow::Error>(Session {
                id: Session::new_id(),
                target: t.name.clone(),
                event: None,
                account: Some(acc.id.clone()),
                url: login_cfg
                    .check
                    .url
                    .clone()
                    .unwrap_or_else(|| login_cfg.url.clone()),
                state: crate::session::SessionState::Ready,
                fingerprint: fp,
                proxy: acc.proxy.clone(),
                cookies,
                origins,
                observed: Some(observed),
                created_at: now,
                refreshed_at: now,
                expires_at: now + t.max_age.as_millis() as u64,
                health: Default::default(),
            })
        }
        .await;
        ctx.dispose().await;
        out
    }
    .await;
    engine.stop().await;
    let session = result?;
    store.put_session(&session)?;
    say(format!(
        "signed in; stored session {} ({} cookies)",
        session.id,
        session.cookies.len()
    ));
    print_session(&session);
    Ok(ExitCode::SUCCESS)
}

/// `warmer store rekey`: rewrites every session record under the new key (or decrypted), then
/// says what to change in the config. Refused while a daemon holds the store.
fn store_cmd(
    config: &Config,
    config_path: Option<&Path>,
    command: StoreCommand,
) -> Result<ExitCode> {
    use crate::store::{StoreError, StoreKey};
    let StoreCommand::Rekey {
        new_key_file,
        decrypt,
    } = command;
    let path = &config.store.path;
    if !path.exists() {
        bail!("store.path: no store at {}", path.display());
    }
    let new = match (&new_key_file, decrypt) {
        (Some(f), false) => Some(StoreKey::read_file(f, "--new-key-file")?),
        (None, true) => None,
        _ => bail!("give either --new-key-file FILE or --decrypt"),
    };
    let new_id = new.as_ref().map(StoreKey::id);
    let old = StoreKey::from_env_or_file(&config.store)?;
    let mut store = match SledStore::open_with(path, old) {
        Ok(s) => s,
        Err(e @ StoreError::Locked { .. }) => {
            return Err(anyhow::Error::new(e).context("stop the daemon before rekeying"))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("opening store {}", path.display())))
        }
    };
    let old_id = store.key_id();
    let rewritten = store
        .rekey(new)
        .with_context(|| format!("rekeying store {}", path.display()))?;
    drop(store);

    let was = match old_id {
        Some(id) => format!("key id {id}"),
        None => "unencrypted".to_string(),
    };
    let (_, found) = Config::discover(config_path)?;
    let config_name = found
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the config file".into());
    let env_set = std::env::var(crate::store::KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    match (new_id, new_key_file) {
        (Some(id), Some(file)) => {
            println!(
                "re-encrypted {rewritten} session record(s) in {} under key id {id} (was: {was})",
                path.display()
            );
            if old_id == Some(id) {
                println!("Same key as before: nothing to change in the config.");
                return Ok(ExitCode::SUCCESS);
            }
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            println!("Before starting the daemon, point it at the new key:");
            println!(
                "  in {config_name}:  [store] key_file = {:?}",
                file.display().to_string()
            );
            println!(
                "  or set WARMER_KEY to the file's contents (WARMER_KEY overrides store.key_file)"
            );
            if env_set {
                println!("WARMER_KEY is set here: change or unset it, or warmer keeps using the old key and fails.");
            }
            if old_id.is_some() {
                println!("Then destroy the old key: the store no longer opens with it.");
            }
        }
        _ => {
            println!(
                "decrypted {rewritten} session record(s) in {} (was: {was})",
                path.display()
            );
            println!(
                "Before starting the daemon, remove key_file from [store] in {config_name} and unset WARMER_KEY."
            );
            println!("The store now holds cookie values unencrypted; the daemon warns about it at start.");
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

fn add_events(store: &dyn Store, target: &str, ids: Vec<String>) -> Result<usize> {
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

async fn check(config: &Config, path: Option<&Path>) -> Result<ExitCode> {
    let (_, found) = Config::discover(path)?;
    match found {
        Some(p) => println!(
            "config      {} ok ({} targets)",
            p.display(),
            config.targets.len()
        ),
        None => println!("config      none found; using defaults"),
    }
    // What the daemon refuses at start is an error here too.
    let listen = config.server.listen;
    let token = crate::daemon::load_token(config)?;
    if token.is_none() && !listen.ip().is_loopback() {
        bail!(
            "server.listen: {listen} is not a loopback address and no token is configured: \
             set WARMER_TOKEN or server.token_file (the daemon refuses to start without one)"
        );
    }
    println!(
        "api         {listen} ({})",
        if token.is_some() {
            "token required"
        } else {
            "loopback, no token"
        }
    );
    if config.targets.is_empty() {
        eprintln!("warning: no [[targets]] configured: the daemon would keep no sessions warm");
    }
    let fp = match &config.browser.fingerprints_dir {
        Some(dir) => FingerprintSource::load_dir(dir)?,
        None => FingerprintSource::embedded(),
    };
    let counts: Vec<String> = fp
        .counts()
        .iter()
        .map(|(os, n)| format!("{os:?} {n}"))
        .collect();
    println!("fingerprints {} profiles", counts.join(", "));
    let exe = config.browser.resolved_executable();
    if !exe.exists() {
        bail!(
            "browser.executable: {} not found; run scripts/setup (installs Debian's chromium)",
            exe.display()
        );
    }
    let out = tokio::process::Command::new(&exe)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", exe.display()))?;
    println!(
        "browser     {} ({})",
        exe.display(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    for t in &config.targets {
        if let Some(f) = &t.events_file {
            let n = read_events_file(f)
                .with_context(|| format!("targets {:?}: events_file", t.name))?
                .len();
            println!("target      {} ({} events in {})", t.name, n, f.display());
        }
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Options of `warmer demo`.
struct DemoOptions {
    port: u16,
    sessions: usize,
    store: PathBuf,
    warmup: Duration,
    listen: std::net::SocketAddr,
    once: bool,
}

/// The built-in config of `warmer demo`: one target on the demo site.
fn demo_config(base: &Config, site: &crate::demo::DemoSite, o: &DemoOptions) -> Config {
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

async fn demo(base: &Config, o: DemoOptions) -> Result<ExitCode> {
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

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn write_private(path: &Path, body: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(body)?;
    Ok(())
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
