//! `warmer accounts`: the account files of login targets (list, add, remove) and asking a
//! running daemon to check them now.

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::daemon_client::{daemon_call, daemon_post};
use super::target::{self, accounts_dir, Kind};
use crate::config::{Config, TargetConfig};

/// `warmer accounts`: the account files of login targets.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    #[command(after_help = "Example:\n  warmer accounts list --target portal")]
    /// List account files (never passwords).
    List {
        /// Login target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
    },
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PW\" | warmer accounts add alice --target portal --username alice --password-stdin"
    )]
    /// Write an account file (0600). The password comes from stdin, a variable or a file.
    Add {
        /// The account id (the file's name: letters, digits, `-` or `_`).
        id: String,
        /// Login target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
        /// The user name the login flow fills in.
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
        /// Proxy this account always signs in and browses through.
        #[arg(long)]
        proxy: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer accounts remove alice --target portal")]
    /// Remove an account file (a running daemon disposes its context).
    Remove {
        /// The account id.
        id: String,
        /// Login target from the config (defaults to the only one).
        #[arg(long)]
        target: Option<String>,
    },
    #[command(after_help = "Example:\n  warmer accounts refresh")]
    /// Ask the running daemon to check every account now.
    Refresh,
}

/// Runs a `warmer accounts` subcommand.
///
/// `list`, `add` and `remove` work on the account files of the login targets directly (no
/// daemon needed; a running daemon picks changes up), while `refresh` asks the running daemon
/// over its API (`POST /api/accounts/refresh`).
///
/// # Errors
///
/// An unknown or ambiguous target, a missing password source, an unknown account on
/// `remove`, file I/O failures, or (for `refresh`) an unreachable or refusing daemon.
pub(super) async fn accounts_cmd(config: &Config, command: AccountsCommand) -> Result<ExitCode> {
    use crate::accounts::{self, AccountFile, PasswordSource};
    match command {
        AccountsCommand::List { target } => {
            let targets: Vec<&TargetConfig> = match target {
                Some(t) => vec![target::resolve(config, Some(&t), Kind::Login)?],
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
                // A sessions_dir-only target has no account files.
                let (found, bad) = match (&t.accounts_dir, &t.sessions_dir) {
                    (None, Some(_)) => Default::default(),
                    (dir, _) => {
                        accounts::load_dir(dir.as_deref().unwrap_or(Path::new("accounts")), &t.name)
                    }
                };
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
                    eprintln!("warning: {}", crate::logging::chain(&e));
                }
                list_session_files(t);
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
            let t = target::resolve(config, target.as_deref(), Kind::Login)?;
            let dir = accounts_dir(t)?;
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
            let t = target::resolve(config, target.as_deref(), Kind::Login)?;
            let dir = accounts_dir(t)?;
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

/// The files of `t`'s `sessions_dir` (dropped sessions, kept alive with no credentials): one
/// line each, `(session file)` in the username column and its format and cookie count in the
/// password column; a file the daemon would skip is a warning naming it and why. Their
/// keep-alive state (lastRefresh, refreshCount, isActive) is the daemon's:
/// `GET /api/accounts/status`.
fn list_session_files(t: &TargetConfig) {
    let Some(dir) = t.sessions_dir.as_deref() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("warning: {}: cannot read the sessions_dir", dir.display());
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| crate::dropped::is_candidate(p))
        .collect();
    paths.sort();
    let policy = crate::pool::TargetRuntime::url_policy(t);
    for path in paths {
        match crate::dropped::load_file(&path, &t.name, &policy, crate::session::now_ms()) {
            Ok(s) => {
                println!(
                    "{:<20}  {:<12}  {:<20}  {:<14}  {}",
                    s.id,
                    t.name,
                    "(session file)",
                    format!("{} ({})", s.format, s.cookies.len()),
                    s.proxy
                        .as_deref()
                        .map(crate::browser::redact_url)
                        .unwrap_or_else(|| "-".into())
                );
                for w in &s.warnings {
                    eprintln!("warning: {}: {w}", path.display());
                }
            }
            Err(e) => eprintln!("warning: skipped ({}): {e}", e.reason()),
        }
    }
}
