//! Several real `warmer serve` processes (the built binary) that are one pool: one real
//! `redis-server` (tests/common/redis.rs, started per cluster on a free port), ONE remote
//! Chromium started here with `--remote-debugging-port` that every daemon attaches to
//! (`browser.endpoint = http://127.0.0.1:<port>`), and the demo site on 127.0.0.1.
//!
//! Each daemon runs with its own `TMPDIR` and `HOME` under the cluster's temp dir, so anything
//! it launched or left behind there can be found ([`Node::leftovers`]); `cluster.node` names it
//! (`n1`, `n2`, …), so its claims (fence tokens `<n>:<nonce>:<node>` in `P:{t:demo}:owner`)
//! say which daemon holds them. Every HTTP call is bounded; nothing waits on a fixed sleep.

use crate::common::daemon::Site;
use crate::common::eventually;
use crate::redis_server::RedisServer;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The only target of the cluster's config.
pub const TARGET: &str = "demo";
/// The key prefix every daemon of a cluster shares.
pub const PREFIX: &str = "cluster";
/// Bound of every HTTP call the tests make.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A Chromium the test runs (no daemon starts or owns it), reachable on 127.0.0.1:`port`.
pub struct Chrome {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Chrome {
    /// Launches headless Chromium with remote debugging on a port of its choice (read back
    /// from `DevToolsActivePort`) and waits until `/json/version` answers (20 s at most).
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cluster-chrome-")
            .tempdir()
            .unwrap();
        let profile = dir.path().join("profile");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        let flags = "--headless --no-sandbox --disable-gpu --no-first-run \
                     --no-default-browser-check --disable-background-networking \
                     --disable-component-update --disable-sync --disable-breakpad \
                     --disable-dev-shm-usage --disable-extensions --password-store=basic \
                     --use-mock-keychain --mute-audio --remote-debugging-port=0";
        let child = Command::new(crate::common::browser_config().resolved_executable())
            .args(flags.split_whitespace())
            .arg(format!("--user-data-dir={}", profile.display()))
            .env("TMPDIR", &tmp)
            .env("HOME", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts (scripts/setup installs it)");
        let active = profile.join("DevToolsActivePort");
        let port = eventually(
            "Chromium's DevToolsActivePort",
            Duration::from_secs(20),
            || {
                let active = active.clone();
                async move {
                    std::fs::read_to_string(active)
                        .ok()?
                        .lines()
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                }
            },
        )
        .await;
        let c = Self {
            child: Some(child),
            dir,
            port,
        };
        let url = format!("{}/json/version", c.endpoint());
        eventually("Chromium's /json/version", Duration::from_secs(20), || {
            let url = url.clone();
            async move { (get(&url).await?.0 == 200).then_some(()) }
        })
        .await;
        c
    }

    /// `http://127.0.0.1:<port>`, what each daemon's `browser.endpoint` says.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the browser process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL of the browser and of every process of it (found by its dir in their argv).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let left = crate::common::processes_under(self.dir.path());
            if left.is_empty() || Instant::now() > end {
                return;
            }
            for pid in left {
                // SAFETY: kill(2) on a process of the browser this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `warmer serve` process of the cluster.
pub struct Node {
    /// `cluster.node`: `n1`, `n2`, …
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Option<Child>,
    /// Its config, log, `TMPDIR` and `HOME`.
    dir: PathBuf,
}

impl Node {
    /// Its process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its stderr (the daemon's log) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `TMPDIR` of this daemon: a launched Chromium's profile would be made in it.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// What this daemon left: processes whose argv names its `TMPDIR` (a Chromium it
    /// launched), its live child processes, and entries in its `TMPDIR`.
    pub fn leftovers(&self) -> (Vec<u32>, Vec<u32>, Vec<PathBuf>) {
        let launched = crate::common::processes_under(&self.tmp());
        let children = self.pid().map(children_of).unwrap_or_default();
        let files = std::fs::read_dir(self.tmp())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        (launched, children, files)
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the daemon: a stalled process
    /// (a long GC-like pause, a VM stall) that keeps its connections.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.pid().expect("the daemon runs");
        let sig = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signals the child this test started and still owns.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    }

    /// SIGKILL, as a crash would; waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: signals the child this test started and still owns.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The sum of a counter (every label set) in its `/metrics`.
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let (code, text) = get(&format!("{}/metrics", self.base))
            .await
            .unwrap_or_else(|| panic!("{} answers /metrics", self.name));
        assert_eq!(code, 200, "{} /metrics: {text}", self.name);
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// `GET /api/sessions/event/<event>[?lease=…]`: status and body.
    pub async fn take(&self, event: &str, lease: Option<&str>) -> (u16, serde_json::Value) {
        let mut url = format!("{}/api/sessions/event/{event}", self.base);
        if let Some(l) = lease {
            url.push_str(&format!("?lease={l}"));
        }
        let (code, body) = get(&url)
            .await
            .unwrap_or_else(|| panic!("{} answers the take", self.name));
        (code, serde_json::from_str(&body).unwrap_or_default())
    }

    /// The ids `GET /api/sessions/active` lists (sessions this daemon serves).
    pub async fn active(&self) -> BTreeSet<String> {
        let (code, body) = get(&format!("{}/api/sessions/active", self.base))
            .await
            .unwrap_or_else(|| panic!("{} answers /api/sessions/active", self.name));
        assert_eq!(code, 200, "{}: {body}", self.name);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                stat.rfind(')')
                    .and_then(|i| stat[i + 2..].split(' ').nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// How the cluster's one target is configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// `pool_size`, for all daemons together.
    pub pool_size: usize,
    /// The dwell on the event page of each warm (long: a warm to catch in flight).
    pub warmup: Duration,
    /// `cluster.lease_ttl`.
    pub lease_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_size: 3,
            warmup: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(3),
        }
    }
}

/// The real parts of one cluster; every daemon is stopped and Chromium killed on drop.
pub struct Cluster {
    /// The daemons, in start order.
    pub nodes: Vec<Node>,
    /// The one browser every daemon attaches to.
    pub chrome: Chrome,
    /// The demo site the target warms on.
    pub site: Site,
    /// The pool's store.
    pub redis: RedisServer,
    /// The target's settings.
    pub options: Options,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts Redis, the demo site, Chromium and `n` daemons (each answering `/healthz`).
    pub async fn start(n: usize, options: Options) -> Self {
        let redis = RedisServer::start();
        let site = Site::start().await;
        let chrome = Chrome::start().await;
        let dir = tempfile::Builder::new()
            .prefix("cluster-test-")
            .tempdir()
            .unwrap();
        let mut c = Self {
            nodes: Vec::new(),
            chrome,
            site,
            redis,
            options,
            dir,
        };
        for _ in 0..n {
            c.add_node().await;
        }
        c
    }

    /// The config every daemon shares, but for its name and port.
    pub fn config(&self, name: &str, port: u16) -> String {
        let events: Vec<String> = session_warmer::demo::demo_events()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        let o = &self.options;
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [store]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"{PREFIX}\"\n\
             [cluster]\nlease_ttl = \"{ttl}ms\"\nnode = \"{name}\"\n\
             [schedule]\ntop_up_every = \"300ms\"\npersist_every = \"500ms\"\n\
             [browser]\nendpoint = \"{endpoint}\"\nnavigation_timeout = \"10s\"\n\
             [[targets]]\nname = \"{TARGET}\"\nevent_url = \"{event_url}\"\n\
             events = [{events}]\nwarmup = \"{warmup}ms\"\npool_size = {pool}\n\
             max_concurrent_warms = 2\n",
            url = self.redis.url(),
            ttl = o.lease_ttl.as_millis(),
            endpoint = self.chrome.endpoint(),
            event_url = self.site.event_url_template(),
            events = events.join(", "),
            warmup = o.warmup.as_millis(),
            pool = o.pool_size,
        )
    }

    /// Starts one more daemon (`n<k>`) and waits until its `/healthz` answers 200 (30 s at
    /// most); returns its index. Its start is timed by the caller if wanted.
    pub async fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let node = self.spawn_node(i);
        self.nodes.push(node);
        let url = format!("{}/healthz", self.nodes[i].base);
        let log = self.nodes[i].dir.join("daemon.log");
        eventually(
            &format!("n{} to answer /healthz", i + 1),
            Duration::from_secs(30),
            || {
                let (url, log) = (url.clone(), log.clone());
                async move {
                    let up = get(&url).await.is_some_and(|(c, _)| c == 200);
                    if !up && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Error:")) {
                        panic!(
                            "the daemon failed to start: {}",
                            std::fs::read_to_string(&log).unwrap()
                        );
                    }
                    up.then_some(())
                }
            },
        )
        .await;
        i
    }

    /// Spawns daemon `n<i+1>` without waiting for it.
    pub fn spawn_node(&self, i: usize) -> Node {
        let name = format!("n{}", i + 1);
        let dir = self.dir.path().join(&name);
        for d in ["tmp", "home"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(dir.join("warmer.toml"), self.config(&name, port)).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_warmer"))
            .current_dir(&dir)
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env("RUST_LOG", "info,chromiumoxide=warn")
            .env("TMPDIR", dir.join("tmp"))
            .env("HOME", dir.join("home"))
            .args(["serve", "--config", "warmer.toml"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("warmer serve starts");
        Node {
            name,
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            dir,
        }
    }

    /// A connection to the pool's Redis.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn =
            tokio::time::timeout(HTTP_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .expect("Redis answers")
                .expect("connects to Redis");
        // The client's default (500 ms) is short for a loaded 2-core machine.
        conn.set_response_timeout(HTTP_TIMEOUT);
        conn
    }

    /// `P:<name>` of the target (`P:{t:demo}:<name>`).
    pub fn key(name: &str) -> String {
        format!("{PREFIX}:{{t:{TARGET}}}:{name}")
    }

    /// Session ids in the store (`P:sessions`, the records' index: ready and retired).
    pub async fn stored(&self) -> BTreeSet<String> {
        let mut r = self.redis().await;
        let ids: Vec<String> = redis::cmd("HKEYS")
            .arg(format!("{PREFIX}:sessions"))
            .query_async(&mut r)
            .await
            .unwrap();
        ids.into_iter().collect()
    }

    /// The `state` field of each stored session's record (`ready`, `retired`).
    pub async fn states(&self) -> BTreeMap<String, String> {
        let mut r = self.redis().await;
        let mut out = BTreeMap::new();
        for id in self.stored().await {
            let state: Option<String> = redis::cmd("HGET")
                .arg(Self::key(&format!("s:{id}")))
                .arg("state")
                .query_async(&mut r)
                .await
                .unwrap();
            out.insert(id, state.unwrap_or_default());
        }
        out
    }

    /// How many audit entries with `action` each session has (the shared audit trail).
    pub async fn audited(&self, action: &str) -> BTreeMap<String, usize> {
        let mut r = self.redis().await;
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{PREFIX}:audit"))
            .arg(0)
            .arg(-1)
            .query_async(&mut r)
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for e in entries {
            let v: serde_json::Value = serde_json::from_str(&e).unwrap();
            if v["action"] == action {
                let id = v["session"].as_str().unwrap_or_default().to_string();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }

    /// The node whose claim committed session `id` (its record's `warmed_by` fence token).
    pub async fn warmed_by(&self, id: &str) -> String {
        let mut r = self.redis().await;
        let tok: Option<String> = redis::cmd("HGET")
            .arg(Self::key(&format!("s:{id}")))
            .arg("warmed_by")
            .query_async(&mut r)
            .await
            .unwrap();
        let tok = tok.unwrap_or_default();
        tok.splitn(3, ':').nth(2).unwrap_or_default().to_string()
    }

    /// Claims held now: item → the node holding it (from the fence token `<n>:<nonce>:<node>`).
    pub async fn claims(&self) -> BTreeMap<String, String> {
        let mut r = self.redis().await;
        let owners: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(Self::key("owner"))
            .query_async(&mut r)
            .await
            .unwrap();
        owners
            .into_iter()
            .map(|(item, tok)| {
                let node = tok.splitn(3, ':').nth(2).unwrap_or_default().to_string();
                (item, node)
            })
            .collect()
    }

    /// Waits until the store holds exactly `n` ready sessions and every daemon serves exactly
    /// those (`deadline`); on timeout fails with what the store and each daemon hold, and the
    /// logs.
    pub async fn wait_full(&self, n: usize, deadline: Duration) -> BTreeSet<String> {
        self.wait_for(&format!("exactly {n}"), deadline, |len| len == n)
            .await
    }

    /// Like [`Cluster::wait_full`] with at least `n` ready sessions.
    pub async fn wait_served(&self, n: usize, deadline: Duration) -> BTreeSet<String> {
        self.wait_for(&format!("at least {n}"), deadline, |len| len >= n)
            .await
    }

    async fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        enough: impl Fn(usize) -> bool,
    ) -> BTreeSet<String> {
        let end = Instant::now() + deadline;
        loop {
            let ready: BTreeSet<String> = self
                .states()
                .await
                .into_iter()
                .filter(|(_, state)| state == "ready")
                .map(|(id, _)| id)
                .collect();
            let mut all_serve = enough(ready.len());
            for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
                if !all_serve {
                    break;
                }
                all_serve = node.active().await == ready;
            }
            if all_serve {
                return ready;
            }
            if Instant::now() > end {
                panic!(
                    "timed out after {deadline:?} waiting for {what} ready sessions served by \
                     every daemon:\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the store and each running daemon hold, the claims, and the daemons' logs.
    pub async fn describe(&self) -> String {
        let mut out = format!(
            "stored: {:?}\nclaims: {:?}\n",
            self.states().await,
            self.claims().await
        );
        for n in self.nodes.iter().filter(|n| n.pid().is_some()) {
            out.push_str(&format!("{} serves {:?}\n", n.name, n.active().await));
        }
        for n in &self.nodes {
            out.push_str(&format!("--- {} log\n{}\n", n.name, n.log()));
        }
        out
    }

    /// Runs `warmer ARGS` with daemon 1's config (the CLI on the shared store); the command must
    /// succeed; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
            .current_dir(&self.nodes[0].dir)
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg("warmer.toml")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "warmer {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
        self.chrome.stop();
    }
}

/// A client with nothing between it and 127.0.0.1 and every call bounded.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .unwrap()
}

/// `GET url`: status and body, or `None` when nothing answers (within [`HTTP_TIMEOUT`]).
pub async fn get(url: &str) -> Option<(u16, String)> {
    let r = client().get(url).send().await.ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().await.ok()?))
}
