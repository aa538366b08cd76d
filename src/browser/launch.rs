//! Launching one Chromium: its command line, its own profile dir, TMPDIR and HOME (spawned so
//! that it dies with the daemon, see `process`), the DevTools URL read from its stderr, the
//! CDP handler task, and the teardown that closes, kills, reaps and removes it all — or, for a
//! remote browser ([`Owner::Remote`], attached in `remote.rs`), only disposes this daemon's
//! contexts and disconnects.

use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::Browser;
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::error::{cdp, cdp_error_kind};
use super::{process, BrowserError, Supervisor};
use crate::config::Flavor;
use crate::fingerprint::BrowserVersion;

/// Chromium's flags. Passed without `--`: chromiumoxide adds it.
fn launch_args(flavor: Flavor) -> Vec<String> {
    let mut args: Vec<String> = [
        "no-sandbox",
        "disable-gpu",
        "disable-quic",
        "no-first-run",
        "no-default-browser-check",
        "disable-background-networking",
        "disable-component-update",
        "disable-sync",
        "disable-breakpad",
        "disable-crash-reporter",
        "disable-dev-shm-usage",
        "password-store=basic",
        "use-mock-keychain",
        "mute-audio",
        "hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if flavor == Flavor::Chromium {
        args.push("no-startup-window".into());
        // WebUIOmniboxPopup, WebUIOmniboxAimPopup: each window otherwise carries a hidden
        // omnibox page: ~57 MiB instead of ~20 MiB per context.
        // SpareRendererForSitePerProcess: Chromium keeps a spare renderer process ready for
        // the next page, but a renderer serves one context only and every warm opens a new
        // one, so the spare is mostly started for nothing: ~8% less CPU per warm without it
        // and one process less (BENCHMARKS.md, ## warm). A page cannot see it. On the headless
        // shell it made no difference, so it is not passed there.
        args.push(
            "disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess"
                .into(),
        );
    }
    // Measured and left out (no gain, or a page could tell): BENCHMARKS.md, ## warm.
    args
}

/// The full command line after the executable: [`launch_args`] plus what chromiumoxide's
/// `Browser::launch` added (headless, no extensions, no setuid sandbox, the profile dir, and a
/// DevTools port of the kernel's choosing, announced on stderr).
fn command_args(flavor: Flavor, profile: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = launch_args(flavor)
        .into_iter()
        .map(|a| format!("--{a}"))
        .collect();
    for extra in [
        "--headless".to_string(),
        "--disable-extensions".to_string(),
        "--disable-setuid-sandbox".to_string(),
        "--remote-debugging-port=0".to_string(),
        format!("--user-data-dir={}", profile.display()),
    ] {
        if !args.contains(&extra) {
            args.push(extra);
        }
    }
    args
}

/// Whose browser it is, and so what ending it means.
pub(super) enum Owner {
    /// Launched by this daemon: closed, killed, reaped and its dirs removed at teardown.
    Launched {
        /// The browser process (ours to reap; it gets SIGKILL if this process dies).
        child: tokio::process::Child,
        /// Profile dir + TMPDIR of this launch; removed when dropped.
        dirs: tempfile::TempDir,
    },
    /// A remote browser attached to (`browser.endpoint`): never closed, killed or reaped;
    /// teardown disposes this daemon's contexts in it and disconnects.
    Remote {
        /// Its URL as it may be shown (no token, no password).
        shown: String,
    },
}

/// A live browser, launched or attached to, and everything that must be cleaned up with it.
pub(super) struct Running {
    /// The CDP client; dropping it (with the handler aborted) disconnects.
    pub(super) browser: Browser,
    /// Launched by us or remote: what teardown may do to it.
    pub(super) owner: Owner,
    /// Fired when the handler loop sees the connection close (or a remote browser stops
    /// answering its heartbeat).
    pub(super) gone: CancellationToken,
    /// The task polling the connection ([`spawn_handler`]); it owns the websocket, so
    /// aborting it is what disconnects.
    pub(super) handler: tokio::task::JoinHandle<()>,
    /// What `Browser.getVersion` reported, for the fingerprints' user agents.
    pub(super) version: BrowserVersion,
    /// The browser process's id (launched only); shown in `BrowserInfo` and logs.
    pub(super) pid: Option<u32>,
    /// Which launch or attach this is; contexts are tagged with it, so teardown forgets
    /// exactly this browser's contexts and drain waits for them.
    pub(super) generation: u64,
}

impl Running {
    /// The launch's own dir (profile, TMPDIR, HOME); none for a remote browser.
    pub(super) fn dir(&self) -> Option<&std::path::Path> {
        match &self.owner {
            Owner::Launched { dirs, .. } => Some(dirs.path()),
            Owner::Remote { .. } => None,
        }
    }

    /// The remote browser's URL as it may be shown; none for a launched one.
    pub(super) fn endpoint(&self) -> Option<&str> {
        match &self.owner {
            Owner::Launched { .. } => None,
            Owner::Remote { shown, .. } => Some(shown),
        }
    }
}

/// Polls a CDP connection's handler on its own task until the connection closes, then fires
/// the returned "gone" token. Any websocket error ends it: chromiumoxide sends nothing more
/// after one, and a call made then would wait forever.
pub(super) fn spawn_handler(
    mut handler: chromiumoxide::Handler,
) -> (tokio::task::JoinHandle<()>, CancellationToken) {
    let gone = CancellationToken::new();
    let gone_tx = gone.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = handler.next().await {
            match ev {
                Ok(()) => {}
                // The connection is closed: every further call would hang. Stop here so
                // callers fail at once.
                Err(CdpError::Ws(e)) => {
                    tracing::debug!(error = %e, "CDP connection closed");
                    break;
                }
                // Events chromiumoxide cannot parse are harmless. Only the kind is logged:
                // the text of a parse error can quote the frame (a cookie value).
                Err(e) => tracing::trace!(kind = cdp_error_kind(&e), "CDP handler error"),
            }
        }
        gone_tx.cancel();
    });
    (task, gone)
}

impl Running {
    /// A connected browser as [`Running`]: its handler spawned ([`spawn_handler`]) and its
    /// version read with `Browser.getVersion` (within `timeout`). On failure the browser comes
    /// back with the error, for the caller to end as its owner requires.
    pub(super) async fn connect(
        browser: Browser,
        handler: chromiumoxide::Handler,
        owner: Owner,
        pid: Option<u32>,
        generation: u64,
        timeout: Duration,
    ) -> Result<Running, (Running, BrowserError)> {
        let (handler, gone) = spawn_handler(handler);
        let mut running = Running {
            browser,
            owner,
            gone,
            handler,
            version: BrowserVersion {
                major: 0,
                full: String::new(),
            },
            pid,
            generation,
        };
        let version = cdp(
            "Browser.getVersion",
            timeout,
            &running.gone,
            running.browser.version(),
        )
        .await
        .and_then(|v| BrowserVersion::from_product(&v.product).map_err(launch_err_static));
        match version {
            Ok(v) => {
                running.version = v;
                Ok(running)
            }
            Err(e) => Err((running, e)),
        }
    }
}

impl Supervisor {
    /// Launches browser `generation`: dirs, process, DevTools connection, handler task and
    /// version. A launch that fails half-way leaves nothing behind.
    ///
    /// # Errors
    /// `Launch` (with Chromium's last stderr lines when it said why), or a CDP error of
    /// `Browser.getVersion`.
    pub(super) async fn launch(&self, generation: u64) -> Result<Running, BrowserError> {
        let cfg = &self.inner.config;
        let executable = cfg.resolved_executable();
        let launch_err = |message: String| BrowserError::Launch {
            executable: executable.display().to_string(),
            message,
        };
        if !executable.exists() {
            return Err(launch_err(
                "not found; install Debian's chromium (scripts/setup) or set browser.executable"
                    .into(),
            ));
        }
        let dirs = tempfile::Builder::new()
            .prefix(process::DIR_PREFIX)
            .tempdir()
            .map_err(|e| launch_err(format!("creating profile dir: {e}")))?;
        // Marks the launch as this process's, so a later daemon's sweep leaves it alone while
        // this process lives and ends it once it died.
        process::Owner::me()
            .and_then(|o| o.write(dirs.path()))
            .map_err(|e| launch_err(format!("writing the launch's owner file: {e}")))?;
        let profile = dirs.path().join("profile");
        let tmp = dirs.path().join("tmp");
        let home = dirs.path().join("home");
        for d in [&profile, &tmp, &home] {
            std::fs::create_dir_all(d).map_err(|e| launch_err(format!("creating {d:?}: {e}")))?;
        }
        let mut cmd = tokio::process::Command::new(&executable);
        // HOME (and the XDG dirs under it) too: Chromium otherwise writes into the user's home
        // (~/.config/chromium/Crash Reports, ~/.cache/dconf, ~/Downloads when a page is a
        // download), which outlives the launch.
        cmd.args(command_args(cfg.flavor, &profile))
            .env("TMPDIR", &tmp)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = process::spawn_tied_to_this_process(cmd)
            .await
            .map_err(|e| launch_err(format!("spawning: {e}")))?;
        let pid = child.id();
        // `launch_timeout` bounds waiting for the DevTools URL; the extra 5 s covers the
        // websocket handshake, so a browser that hangs after announcing cannot stall us.
        let connected = tokio::time::timeout(cfg.launch_timeout + Duration::from_secs(5), async {
            let url = devtools_url(&mut child, cfg.launch_timeout).await?;
            let handler_config = HandlerConfig {
                viewport: None,
                request_timeout: cfg.navigation_timeout,
                ..HandlerConfig::default()
            };
            Browser::connect_with_config(url, handler_config)
                .await
                .map_err(|e| format!("connecting to DevTools: {e}"))
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        let (browser, handler) = match connected {
            Ok(c) => c,
            // Nothing may outlive a failed launch: the process, its children (found by the
            // dir in their command line) and the dirs.
            Err(message) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                process::kill_all_of(dirs.path(), Duration::from_secs(3)).await;
                let path = dirs.path().to_path_buf();
                if dirs.close().is_err() {
                    let _ = process::remove_dir(&path).await;
                }
                return Err(launch_err(message));
            }
        };
        self.inner
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let owner = Owner::Launched { child, dirs };
        match Running::connect(browser, handler, owner, pid, generation, cfg.cdp_timeout).await {
            Ok(running) => Ok(running),
            Err((running, e)) => {
                self.teardown(running, false).await;
                Err(e)
            }
        }
    }

    /// Ends a browser: a launched one is closed (when `graceful`), killed, reaped and its dirs
    /// removed; a remote one only loses this daemon's contexts (when `graceful` and still
    /// connected) and the connection. `Browser.close` is never sent to a remote browser.
    pub(super) async fn teardown(&self, r: Running, graceful: bool) {
        let Running {
            browser,
            owner,
            gone,
            handler,
            generation,
            ..
        } = r;
        // Every step of teardown is bounded: a wedged browser must not hold up shutdown.
        let t = self.inner.config.cdp_timeout.min(Duration::from_secs(3));
        let (mut child, dirs) = match owner {
            Owner::Launched { child, dirs } => (child, dirs),
            Owner::Remote { shown, .. } => {
                if graceful && !gone.is_cancelled() {
                    let n = self.dispose_ours(&browser, &gone, generation, t).await;
                    tracing::debug!(endpoint = %shown, generation, contexts = n, "our contexts disposed in the remote browser");
                }
                // Disconnecting is aborting the handler: it owns the websocket. Contexts left
                // over (a crash, a timeout) go with it: they were created dispose-on-detach.
                handler.abort();
                drop(browser);
                self.forget_contexts(generation);
                tracing::info!(endpoint = %shown, generation, "disconnected from the remote browser (left running)");
                return;
            }
        };
        if graceful && !gone.is_cancelled() {
            let mut browser = browser;
            let _ = tokio::time::timeout(t, browser.close()).await;
        }
        let exited = tokio::time::timeout(t, child.wait()).await.is_ok();
        if !exited {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        handler.abort();
        self.forget_contexts(generation);
        let path = dirs.path().to_path_buf();
        // After a crash, renderers and the zygote can outlive the browser process for a
        // moment and keep writing into the profile: end them, then remove the dir.
        process::kill_all_of(&path, Duration::from_secs(3)).await;
        let removed = match dirs.close() {
            Ok(()) => Ok(()),
            Err(_) => process::remove_dir(&path).await,
        };
        if let Err(e) = removed {
            tracing::warn!(error = %crate::logging::chain(&e), dir = %path.display(), "removing browser profile dir");
        }
        tracing::debug!(generation, "browser reaped and cleaned up");
    }
}

/// Reads Chromium's stderr until it announces its DevTools websocket (`DevTools listening on
/// ws://…`), at most `within`.
///
/// # Errors
/// When it exits or closes stderr first, or says nothing in time; with its last stderr lines.
async fn devtools_url(
    child: &mut tokio::process::Child,
    within: Duration,
) -> Result<String, String> {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let read = tokio::time::timeout(within, async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some((_, ws)) = line.rsplit_once("listening on ") {
                        if ws.starts_with("ws") && ws.contains("devtools/browser") {
                            return Ok(ws.trim().to_string());
                        }
                    }
                    if tail.len() == 3 {
                        tail.pop_front();
                    }
                    tail.push_back(line.chars().take(300).collect());
                }
                Ok(None) => return Err(None),
                Err(e) => return Err(Some(format!("reading its stderr: {e}"))),
            }
        }
    })
    .await;
    let stderr = || Vec::from(tail.clone()).join(" | ");
    match read {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(Some(e))) => Err(format!("{e}; stderr: {}", stderr())),
        Ok(Err(None)) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "stderr closed".into(),
            };
            Err(format!(
                "exited before DevTools listened ({status}); stderr: {}",
                stderr()
            ))
        }
        Err(_) => Err(format!(
            "no DevTools URL on stderr within {within:?}; stderr: {}",
            stderr()
        )),
    }
}

/// A `Browser.getVersion` answer whose product cannot be parsed.
fn launch_err_static(e: crate::fingerprint::VersionError) -> BrowserError {
    BrowserError::Protocol {
        what: "Browser.getVersion".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_passed_without_dashes_and_keep_the_network_quiet() {
        for flavor in [Flavor::Chromium, Flavor::HeadlessShell] {
            let args = launch_args(flavor);
            assert!(args.iter().all(|a| !a.starts_with('-')));
            for needed in [
                "no-sandbox",
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
            ] {
                assert!(args.iter().any(|a| a == needed), "{needed}");
            }
        }
        assert!(launch_args(Flavor::Chromium)
            .iter()
            .any(|a| a.contains("WebUIOmniboxPopup")));
    }
}
