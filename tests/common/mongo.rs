//! A MongoDB wire-protocol server for the MongoDB backend's tests: `nx-27017` (PyPI, MongoDB's
//! wire protocol on SQLite), installed by scripts/setup into `.venv/nx-27017` (no real `mongod`
//! can be installed from the project's package sources).
//!
//! [`MongoServer::start`] runs one on a free 127.0.0.1 port with an in-memory database (its
//! log and pid file in a temporary directory), waits until it accepts connections (with a
//! deadline) and kills it on drop; the process also gets `PR_SET_PDEATHSIG`, so it dies with
//! the test process. [`shared`] is one server per test process (under nextest, one per test);
//! tests tell their data apart with distinct collection prefixes.
//!
//! A missing `nx-27017` is a failure, never a skip: the panic says how to install it.
//! `$NX_27017` names another binary; `$MONGODB_URL` is for a real server (tests/mongo.rs).
//! A test crate including this file includes tests/common/redis.rs as `redis_server` as well.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// Process helpers shared with the Redis fixture: a test crate using this file includes
// tests/common/redis.rs as `redis_server` too (clippy refuses one file loaded twice).
use super::redis_server as support;

/// Environment variable naming another `nx-27017` binary.
pub const BIN_ENV: &str = "NX_27017";

/// How long a started server may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running `nx-27017` on 127.0.0.1, killed on drop.
pub struct MongoServer {
    /// The process (None once killed).
    child: Mutex<Option<Child>>,
    /// Its port.
    port: u16,
    /// Log and pid file.
    dir: tempfile::TempDir,
}

/// One server for this test process, started on first use.
pub fn shared() -> &'static MongoServer {
    static SERVER: OnceLock<MongoServer> = OnceLock::new();
    SERVER.get_or_init(MongoServer::start)
}

/// The `nx-27017` binary: `$NX_27017`, else the one scripts/setup installs.
fn binary() -> PathBuf {
    std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/nx-27017/bin/nx-27017")
        })
}

impl MongoServer {
    /// Starts a server. Panics (never skips) when `nx-27017` is missing or does not come up.
    pub fn start() -> Self {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} is missing: the MongoDB backend's tests need nx-27017 (a MongoDB wire-protocol \
             server on SQLite). Run scripts/setup, or: python3 -m venv .venv/nx-27017 && \
             .venv/nx-27017/bin/pip install nx-27017==0.8.1 (or set {BIN_ENV})",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..5 {
            let server = Self {
                child: Mutex::new(None),
                port: support::free_port(),
                dir: tempfile::tempdir().expect("temp dir for nx-27017"),
            };
            match server.launch(&bin) {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("nx-27017 did not start on a free port after 5 tries: {last}");
    }

    /// Starts the process and waits until it accepts connections.
    fn launch(&self, bin: &PathBuf) -> Result<(), String> {
        let dir = self.dir.path();
        let mut cmd = Command::new(bin);
        cmd.args(["--db", "memory", "--host", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .arg("--log-file")
            .arg(dir.join("nx.log"))
            .arg("--pid-file")
            .arg(dir.join("nx.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = support::spawn_tied_to_process(cmd)
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("nx.log")).unwrap_or_default();
                return Err(format!("nx-27017 exited ({status}): {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no connection within {READY_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mongodb://127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{database}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.kill();
    }
}
