//! A real `redis-server` (Debian's, installed by scripts/setup) for the Redis backend's tests.
//!
//! [`RedisServer::start`] runs one on a free 127.0.0.1 port with nothing persisted
//! (`--save '' --appendonly no`, its files in a temporary directory), waits until it answers
//! `PING` (with a deadline) and kills it on drop. [`shared`] is one server per test process
//! (under nextest, one per test); tests tell their data apart with distinct key prefixes.
//!
//! A missing `redis-server` is a failure, never a skip: the panic says how to install it.
//! Every server is also started with `PR_SET_PDEATHSIG`, so it dies with the test process even
//! when its `Drop` never runs (the shared one lives in a static).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable naming another `redis-server` binary.
pub const BIN_ENV: &str = "REDIS_SERVER";

/// How long a started server may take to answer `PING`.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A running `redis-server` on 127.0.0.1, killed on drop.
pub struct RedisServer {
    /// The process (None while killed).
    child: Mutex<Option<Child>>,
    /// Its port, kept across [`RedisServer::restart`].
    port: u16,
    /// `requirepass`, if any.
    password: Option<String>,
    /// Working directory and log file.
    dir: tempfile::TempDir,
}

/// One server for this test process, started on first use.
pub fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// The `redis-server` binary: `$REDIS_SERVER`, else `redis-server` on the PATH.
fn binary() -> PathBuf {
    std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Spawns `cmd` from a thread that lives as long as the process, with `PR_SET_PDEATHSIG`
/// (the signal follows the thread that forked, so it must outlive every test).
pub fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("spawning thread answers")
}

impl RedisServer {
    /// Starts a server without a password. Panics (never skips) when `redis-server` is
    /// missing or does not come up.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Starts a server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Self {
        Self::start_inner(Some(password.to_string()))
    }

    fn start_inner(password: Option<String>) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let server = Self {
                child: Mutex::new(None),
                port,
                password: password.clone(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
            };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start on a free port after 5 tries: {last}");
    }

    /// Starts the process on this server's port and waits for `PING`.
    fn launch(&self) -> Result<(), String> {
        let bin = binary();
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let mut child = match spawn_tied_to_process(cmd) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{} not found: the Redis backend's tests need Debian's redis-server \
                 (`apt-get install -y redis-server`, which scripts/setup does) or {BIN_ENV} \
                 naming the binary. These tests never skip.",
                bin.display()
            ),
            Err(e) => panic!("starting {}: {e}", bin.display()),
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}): {log}"));
            }
            if self.answers_ping() {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "redis-server on 127.0.0.1:{} did not answer PING within {READY_DEADLINE:?}: \
                     {log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers `PING` (with `AUTH` first when it has a password).
    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut req = String::new();
        if let Some(p) = &self.password {
            req.push_str(&format!("AUTH {p}\r\n"));
        }
        req.push_str("PING\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !String::from_utf8_lossy(&got).contains("PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the server: connections stay
    /// open and nothing answers, like a Redis behind a network that drops packets.
    pub fn freeze(&self, frozen: bool) {
        let guard = self.child.lock().unwrap();
        let pid = guard.as_ref().expect("server running").id();
        let sig = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signals a child this struct started and still owns.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "signalling redis-server {pid}");
    }

    /// Starts it again on the same port (empty: nothing was persisted).
    pub fn restart(&self) {
        self.kill();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restarting redis-server: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now (the server may still lose a race for it; start
/// retries).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}
