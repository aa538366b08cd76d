//! No zombie Chromium: the real `warmer serve`, SIGKILLed, takes its whole browser with it (the
//! browser gets a parent-death signal, and its zygotes, renderers and helpers follow it); and a
//! daemon that starts sweeps the launches of owners that died (their processes killed, their
//! dirs removed) while a live owner's launch is left alone.
//!
//! Each test gives its daemons a private `TMPDIR`, so it sees only its own browsers and dirs.

mod common;

use common::eventually;
use session_warmer::browser::{processes_of, Supervisor};
use session_warmer::demo::{DemoConfig, DemoSite};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One at a time under plain `cargo test` too: one test sets this process's `TMPDIR`.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Browser launch dirs (`warmer-chromium-*`) directly under `root`.
fn launch_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("warmer-chromium-")
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// A daemon under test: its process, API base URL and log file.
struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Serve {
    /// Starts `warmer serve` against `site` with `TMPDIR=root`, its store and log in `dir`.
    fn start(site: &DemoSite, root: &Path, dir: &Path, name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[schedule]\ntop_up_every = \"300ms\"\n[[targets]]\nname = \"demo\"\nevent_url = \"{}\"\nevents = [\"1001\", \"1002\"]\nwarmup = \"300ms\"\npool_size = 2\n",
            dir.join(format!("store-{name}")).display(),
            site.event_url_template()
        );
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_warmer"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("TMPDIR", root)
            .env("RUST_LOG", "info")
            .env_remove("WARMER_TOKEN")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until `/readyz` says the browser is up.
    async fn browser_up(&mut self) {
        let url = format!("{}/readyz", self.base);
        let pid = self.child.id();
        eventually(
            "the daemon's browser to be up",
            Duration::from_secs(60),
            || {
                let url = url.clone();
                async move {
                    assert!(alive(pid), "the daemon exited");
                    let body: serde_json::Value =
                        reqwest::get(&url).await.ok()?.json().await.ok()?;
                    body["browser_up"].as_bool().filter(|up| *up).map(|_| ())
                }
            },
        )
        .await;
    }

    fn sigkill(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    async fn sigterm(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let child = &mut self.child;
        eventually(
            "the daemon to stop on SIGTERM",
            Duration::from_secs(15),
            || {
                let done = child.try_wait().ok().flatten().is_some();
                async move { done.then_some(()) }
            },
        )
        .await;
    }

    /// The daemon's log, without the terminal colours it writes even into a file.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters final-byte (a letter).
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.sigkill();
        }
    }
}

/// Kills whatever a test left under `root` (a failed test must not leave a browser running).
fn reap(root: &Path) {
    for dir in launch_dirs(root) {
        for pid in processes_of(&dir) {
            // SAFETY: kill(2) on processes of this test's own browser launches.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

async fn demo_site() -> (DemoSite, CancellationToken) {
    let stop = CancellationToken::new();
    let site = DemoSite::start(DemoConfig::default(), 0, stop.clone())
        .await
        .unwrap();
    (site, stop)
}

#[tokio::test]
async fn a_sigkilled_daemon_takes_its_whole_chromium_with_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (site, site_stop) = demo_site().await;
    let mut daemon = Serve::start(&site, root.path(), dir.path(), "serve");
    daemon.browser_up().await;
    let launches = launch_dirs(root.path());
    assert_eq!(launches.len(), 1, "one browser launch: {launches:?}");
    let launch = launches[0].clone();
    // Its browser, zygotes, renderers, GPU/utility processes and crashpad handlers.
    let procs = eventually(
        "the browser's helper processes",
        Duration::from_secs(30),
        || {
            let p = processes_of(&launch);
            async move { (p.len() >= 3).then_some(p) }
        },
    )
    .await;

    daemon.sigkill();

    // Polled with a deadline: the browser gets SIGKILL at once, its helpers exit as they see
    // it gone.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left: Vec<u32> = procs.iter().copied().filter(|p| alive(*p)).collect();
        let by_dir = processes_of(&launch);
        if (left.is_empty() && by_dir.is_empty()) || std::time::Instant::now() >= end {
            break (left, by_dir);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    reap(root.path());
    site_stop.cancel();
    assert!(
        left.0.is_empty() && left.1.is_empty(),
        "Chromium processes of the SIGKILLed daemon still alive 10 s later: {:?} of {} (by dir: {:?})",
        left.0,
        procs.len(),
        left.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_daemon_sweeps_a_dead_owners_launch_and_leaves_a_live_owners_alone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (site, site_stop) = demo_site().await;

    // A live owner: this process, with a browser of its own in the same temp root. The
    // supervisor makes its launch dir under TMPDIR when it starts.
    std::env::set_var("TMPDIR", root.path());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sup = Supervisor::start(common::browser_config(), shutdown.clone(), &tracker);
    let live = sup.ready().await.expect("this process's browser is up");
    std::env::remove_var("TMPDIR");
    let live_pid = live.pid.expect("browser pid");

    // A dead owner: a daemon SIGKILLed once its browser was up. Its Chromium dies with it; a
    // survivor in its launch (as an older version, or any escaped process, would leave) is
    // started by hand: a real Chromium with that launch's profile dir and TMPDIR.
    let mut first = Serve::start(&site, root.path(), dir.path(), "first");
    first.browser_up().await;
    let dead: Vec<PathBuf> = launch_dirs(root.path())
        .into_iter()
        .filter(|d| *d != live.profile_dir)
        .collect();
    assert_eq!(dead.len(), 1, "the first daemon's launch: {dead:?}");
    let dead = dead[0].clone();
    first.sigkill();
    let mut survivor = Command::new(sup.config().resolved_executable())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dead.join("profile").display()
        ))
        .arg("about:blank")
        .env("TMPDIR", dead.join("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let survivors = eventually("the survivor's processes", Duration::from_secs(30), || {
        let p = processes_of(&dead);
        async move { (p.len() >= 3).then_some(p) }
    })
    .await;
    let live_procs = processes_of(&live.profile_dir);

    // The next daemon sweeps the dead owner's launch before it launches its own browser.
    let mut second = Serve::start(&site, root.path(), dir.path(), "second");
    second.browser_up().await;
    let _ = survivor.wait();
    let swept_ok = !dead.exists() && survivors.iter().all(|p| !alive(*p));
    let log = second.log();
    let live_ok = live.profile_dir.exists()
        && alive(live_pid)
        && !processes_of(&live.profile_dir).is_empty()
        && sup
            .current()
            .is_some_and(|c| c.generation == live.generation);
    second.sigterm().await;
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    reap(root.path());
    site_stop.cancel();

    assert!(
        swept_ok,
        "the dead owner's launch is swept: dir exists {}, alive {:?}",
        dead.exists(),
        survivors.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    let line = log
        .lines()
        .find(|l| l.contains("swept browser launches of daemons that died"))
        .unwrap_or_else(|| panic!("the sweep is logged: {log}"));
    assert!(line.contains("launches=1"), "{line}");
    assert!(line.contains("live_left_alone=1"), "{line}");
    assert!(
        live_ok,
        "the live owner's browser and dir are untouched ({} processes before)",
        live_procs.len()
    );
}
