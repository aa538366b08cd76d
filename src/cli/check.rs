//! `warmer check`: validate the config, find Chromium (or reach the remote browsers), load
//! fingerprints.

use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::ExitCode;

use super::events::read_events_file;
use crate::config::Config;
use crate::fingerprint::FingerprintSource;

pub(super) async fn check(config: &Config, path: Option<&Path>) -> Result<ExitCode> {
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
    if config.browser.is_remote() {
        // Remote browsers are connected to (and left running): their version is what counts.
        for e in config.browser.remote_endpoints() {
            let v = crate::browser::probe_remote(&config.browser, &e).await?;
            println!("browser     remote {e} (Chrome/{})", v.full);
        }
    } else {
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
    }
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
