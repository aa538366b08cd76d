//! `warmer store copy` and the record commands (`events`, `sessions`) on a Redis store, run as
//! a user runs them: the real binary, a sled store on disk, a real `redis-server`
//! (tests/common/redis.rs: Debian's, started per test process on a free port; missing, the
//! tests fail loudly, never skip), each test under its own key prefix.
//!
//! - sled → Redis → sled: every session (an account session among them), event and audit
//!   entry arrives, decrypted with the source's key and encrypted with the destination's; usage
//!   counted in Redis is carried into the copy; a second run writes nothing; the counts are
//!   printed.
//! - A wrong key, a missing key and a copy onto itself are refused, saying why.
//! - `events add|list` and `sessions list|show|export|delete` work on a Redis store directly
//!   (no daemon needed, none in the way), and next to a running `warmer serve` on the same
//!   Redis (attached to a remote browser nobody runs, so it launches no Chromium): events added,
//!   a sled store copied into the running pool and then served by the daemon, a session deleted
//!   by the CLI no longer served.

use session_warmer::config::{SecretUrl, StoreBackend, StoreConfig};
use session_warmer::session::{Cookie, Session, SessionState};
use session_warmer::store::{self, AuditEntry, Backend, Event, SledStore, StoreKey, Usage};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/redis.rs"]
mod redis_server;

/// Key bytes of the source sled store and of the Redis store.
const KEY_A: [u8; 32] = [0xA1; 32];
/// Key bytes of the second sled store (and the wrong key).
const KEY_B: [u8; 32] = [0xB2; 32];

/// A temporary working directory with a config, key files and stores.
struct Place {
    dir: tempfile::TempDir,
    /// This test's Redis key prefix (unique per test).
    prefix: String,
}

impl Place {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("copy-{name}-{}", std::process::id());
        let place = Self { dir, prefix };
        place.write_key("a.key", KEY_A);
        place.write_key("b.key", KEY_B);
        place.write_config("");
        place
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a key file as `warmer` wants it: 64 hex characters, mode 0600.
    fn write_key(&self, name: &str, bytes: [u8; 32]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let p = self.path(name);
        std::fs::write(&p, hex).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// `warmer.toml` with one target `tickets` and `store` as its `[store]` body.
    fn write_config(&self, store: &str) {
        std::fs::write(
            self.path("warmer.toml"),
            format!(
                "[store]\n{store}\n[[targets]]\nname = \"tickets\"\n\
                 event_url = \"http://127.0.0.1:9/event/{{event}}\"\n"
            ),
        )
        .unwrap();
    }

    /// The Redis URL of the shared server with this test's prefix.
    fn redis_spec(&self) -> String {
        format!("{}?prefix={}", redis_server::shared().url(), self.prefix)
    }

    /// Runs `warmer ARGS` here; returns (exit code, stdout, stderr).
    fn warmer(&self, args: &[&str]) -> (i32, String, String) {
        self.warmer_with(&[], args)
    }

    /// [`Place::warmer`] with the variables `env` set (the `WARMER_*` ones are unset otherwise).
    fn warmer_with(&self, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
            .current_dir(self.dir.path())
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Place::warmer`], and the command must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.warmer(args);
        assert_eq!(code, 0, "warmer {args:?} failed:\n{err}\n{out}");
        out
    }

    /// This test's Redis store, opened through the library with `key`.
    async fn redis(&self, key: Option<[u8; 32]>) -> Backend {
        let config = StoreConfig {
            backend: StoreBackend::Redis,
            url: Some(SecretUrl::new(redis_server::shared().url())),
            prefix: self.prefix.clone(),
            ..StoreConfig::default()
        };
        store::open(&config, key.map(StoreKey::from_bytes))
            .await
            .expect("the test's Redis store opens")
    }
}

/// A full session record (the checked-in v1 fixture) with a secret cookie.
fn session(id: &str, seed: u64, account: Option<&str>) -> Session {
    let mut s: Session = serde_json::from_str(include_str!("fixtures/session_v1.json")).unwrap();
    s.id = id.into();
    s.target = "tickets".into();
    s.account = account.map(str::to_string);
    s.state = SessionState::Ready;
    s.cookies = vec![Cookie {
        name: "sid".into(),
        value: format!("secret-{seed}"),
        domain: "tickets.example".into(),
        path: "/".into(),
        expires: None,
        http_only: true,
        secure: true,
        same_site: Some("Lax".into()),
    }];
    s.health.uses = seed;
    s
}

fn event(id: &str) -> Event {
    Event {
        target: "tickets".into(),
        id: id.into(),
        url: None,
        added_at: 1_700_000_000_000,
    }
}

fn audit(at: u64) -> AuditEntry {
    AuditEntry {
        at,
        session: Some(format!("s{at}")),
        target: Some("tickets".into()),
        action: "warmed".into(),
        detail: format!("entry {at}"),
    }
}

/// What a fresh sled store at `path` is filled with: 3 sessions (one signed in for an
/// account), 4 events, 5 audit entries (two of them identical, as happens within one ms).
fn fill_sled(path: &Path, key: [u8; 32]) -> (Vec<Session>, Vec<Event>, Vec<AuditEntry>) {
    let st = SledStore::open_with(path, Some(StoreKey::from_bytes(key))).unwrap();
    let sessions = vec![
        session("s1", 1, None),
        session("s2", 2, Some("alice")),
        session("s3", 3, None),
    ];
    for s in &sessions {
        st.put_session(s).unwrap();
    }
    let events: Vec<Event> = ["e1", "e2", "e3", "e4"].into_iter().map(event).collect();
    st.put_events(&events).unwrap();
    for at in [10, 20, 20, 30, 40] {
        st.append_audit(&audit(at)).unwrap();
    }
    st.flush().unwrap();
    let audit = st.recent_audit(100).unwrap();
    (sessions, events, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_to_redis_to_sled_round_trip_is_complete_idempotent_and_counted() {
    let place = Place::new("round");
    let (sessions, events, audit) = fill_sled(&place.path("a.sled"), KEY_A);
    let redis = place.redis_spec();

    // sled (key A) -> Redis (key A).
    let args = [
        "store",
        "copy",
        "--from",
        "sled:a.sled",
        "--to",
        &redis,
        "--from-key-file",
        "a.key",
        "--to-key-file",
        "a.key",
    ];
    let out = place.ok(&args);
    assert!(
        out.contains(
            "sessions: 3 written, 0 unchanged, 0 newer at the destination kept (1 of them \
             signed-in account sessions)"
        ),
        "{out}"
    );
    assert!(out.contains("events: 4 written, 0 already there"), "{out}");
    assert!(out.contains("audit: 5 written, 0 already there"), "{out}");

    // Everything is in Redis, readable with key A only.
    let r = place.redis(Some(KEY_A)).await;
    assert_eq!(r.records.list_sessions().await.unwrap(), sessions);
    assert_eq!(r.records.list_events(None).await.unwrap(), events);
    assert_eq!(r.records.recent_audit(100).await.unwrap(), audit);

    // Again: nothing new is written.
    let out = place.ok(&args);
    assert!(
        out.contains("sessions: 0 written, 3 unchanged, 0 newer at the destination kept"),
        "{out}"
    );
    assert!(out.contains("events: 0 written, 4 already there"), "{out}");
    assert!(out.contains("audit: 0 written, 5 already there"), "{out}");
    assert_eq!(r.records.recent_audit(100).await.unwrap(), audit);

    // Daemons on Redis count usage apart from the record: the copy back carries it.
    r.coordination
        .add_usage(
            "tickets",
            "s2",
            Usage {
                uses: 100,
                successes: 90,
                failures: 10,
            },
        )
        .await
        .unwrap();

    // Redis (key A) -> sled (key B): decrypted with A, written with B.
    let back = [
        "store",
        "copy",
        "--from",
        &redis,
        "--to",
        "sled:b.sled",
        "--from-key-file",
        "a.key",
        "--to-key-file",
        "b.key",
    ];
    let out = place.ok(&back);
    assert!(out.contains("sessions: 3 written, 0 unchanged"), "{out}");
    assert!(out.contains("events: 4 written"), "{out}");
    assert!(out.contains("audit: 5 written"), "{out}");
    let out = place.ok(&back);
    assert!(out.contains("sessions: 0 written, 3 unchanged"), "{out}");
    assert!(out.contains("events: 0 written, 4 already there"), "{out}");
    assert!(out.contains("audit: 0 written, 5 already there"), "{out}");

    let b = SledStore::open_with(&place.path("b.sled"), Some(StoreKey::from_bytes(KEY_B)))
        .expect("b.sled opens with key B");
    let mut expected = sessions.clone();
    expected[1].health.uses = 100;
    expected[1].health.successes = 90;
    expected[1].health.failures = 10;
    assert_eq!(b.list_sessions().unwrap(), expected);
    assert_eq!(b.list_events(None).unwrap(), events);
    assert_eq!(b.recent_audit(100).unwrap(), audit);
    drop(b);
    let err = SledStore::open_with(&place.path("b.sled"), Some(StoreKey::from_bytes(KEY_A)))
        .expect_err("b.sled is encrypted under key B, not A");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_key_is_refused_naming_the_key_ids() {
    let place = Place::new("keys");
    fill_sled(&place.path("a.sled"), KEY_A);
    let redis = place.redis_spec();
    let (a, b) = (
        StoreKey::from_bytes(KEY_A).id().to_string(),
        StoreKey::from_bytes(KEY_B).id().to_string(),
    );

    // The source's key is wrong.
    let (code, out, err) = place.warmer(&[
        "store",
        "copy",
        "--from",
        "sled:a.sled",
        "--to",
        &redis,
        "--from-key-file",
        "b.key",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("--from-key-file") && err.contains("does not match"),
        "{err}"
    );
    assert!(
        err.contains(&a) && err.contains(&b),
        "names both key ids: {err}"
    );

    // No key for an encrypted source.
    let (code, _, err) = place.warmer(&["store", "copy", "--from", "sled:a.sled", "--to", &redis]);
    assert_ne!(code, 0);
    assert!(
        err.contains("is encrypted") && err.contains("--from-key-file"),
        "{err}"
    );
    // Nothing reached the destination.
    let r = place.redis(None).await;
    assert!(r.records.list_sessions().await.unwrap().is_empty());
    drop(r);

    // The destination has key A (the configured key, from store.key_file); key B is refused.
    place.write_config("key_file = \"a.key\"");
    place.ok(&["store", "copy", "--from", "sled:a.sled", "--to", &redis]);
    let (code, _, err) = place.warmer(&[
        "store",
        "copy",
        "--from",
        "sled:a.sled",
        "--to",
        &redis,
        "--to-key-file",
        "b.key",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--to-key-file") && err.contains(&a) && err.contains(&b),
        "{err}"
    );
}

/// A Redis URL given to `--to`/`--from` is the store opened even while `WARMER_STORE_URL`
/// names another (here one where nothing listens); `config` follows the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_redis_url_wins_over_warmer_store_url() {
    let place = Place::new("explicit");
    let (sessions, events, _) = fill_sled(&place.path("a.sled"), KEY_A);
    place.write_config("backend = \"redis\"");
    let redis = place.redis_spec();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere = format!("redis://127.0.0.1:{}/0", dead.local_addr().unwrap().port());
    drop(dead);
    let env = [("WARMER_STORE_URL", elsewhere.as_str())];
    let keys = ["--from-key-file", "a.key", "--to-key-file", "a.key"];
    let to_redis = [
        &["store", "copy", "--from", "sled:a.sled", "--to", &redis],
        &keys[..],
    ]
    .concat();
    let (code, out, err) = place.warmer_with(&env, &to_redis);
    assert_eq!(code, 0, "sled -> explicit Redis failed:\n{err}\n{out}");
    assert!(out.contains("sessions: 3 written"), "{out}");
    let r = place.redis(Some(KEY_A)).await;
    assert_eq!(r.records.list_sessions().await.unwrap(), sessions);
    assert_eq!(r.records.list_events(None).await.unwrap(), events);

    let from_redis = [
        &["store", "copy", "--from", &redis, "--to", "sled:b.sled"],
        &keys[..],
    ]
    .concat();
    let (code, out, err) = place.warmer_with(&env, &from_redis);
    assert_eq!(code, 0, "explicit Redis -> sled failed:\n{err}\n{out}");
    assert!(out.contains("sessions: 3 written"), "{out}");

    // `config` is the variable's store: nothing listens there, and the error says where.
    let (code, _, err) = place.warmer_with(
        &env,
        &["store", "copy", "--from", "config", "--to", "memory"],
    );
    assert_ne!(code, 0);
    assert!(err.contains(&elsewhere), "{err}");
}

#[test]
fn a_copy_onto_itself_or_from_nowhere_is_refused() {
    let place = Place::new("self");
    fill_sled(&place.path("a.sled"), KEY_A);
    let port = redis_server::shared().port();
    let cases = [
        (
            "sled:a.sled".to_string(),
            "sled:./x/../a.sled".to_string(),
            "the same store",
        ),
        (
            format!("redis://127.0.0.1:{port}/0?prefix=p"),
            format!("redis://:secret-pw@127.0.0.1:{port}?prefix=p"),
            "the same store",
        ),
        (
            "sled:missing.sled".to_string(),
            "memory".to_string(),
            "no sled store at missing.sled",
        ),
        (
            "redis://:secret-pw@[nope".to_string(),
            "memory".to_string(),
            "not a valid Redis URL",
        ),
        (
            "data".to_string(),
            "memory".to_string(),
            "expected sled:PATH",
        ),
    ];
    for (from, to, why) in cases {
        let (code, out, err) = place.warmer(&["store", "copy", "--from", &from, "--to", &to]);
        assert_ne!(code, 0, "{from} -> {to}: {out}");
        assert!(err.contains(why), "{from} -> {to}: {err}");
        assert!(!err.contains("secret-pw"), "password printed: {err}");
    }
    assert!(
        !place.path("missing.sled").exists(),
        "a missing source is not created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_sessions_commands_work_on_a_redis_store() {
    let place = Place::new("cli");
    place.write_config(&format!(
        "backend = \"redis\"\nurl = \"{}\"\nprefix = \"{}\"\nkey_file = \"a.key\"",
        redis_server::shared().url(),
        place.prefix
    ));
    let err = {
        let (code, out, err) = place.warmer(&["events", "add", "--target", "tickets", "7", "8"]);
        assert_eq!(code, 0, "{out}\n{err}");
        err
    };
    assert!(err.contains("added 2 event(s) to tickets"), "{err}");
    let out = place.ok(&["events", "list"]);
    assert_eq!(out, "tickets\t7\ntickets\t8\n");

    // A session written by "a daemon" (the library, as the pool writes it) is seen at once.
    let r = place.redis(Some(KEY_A)).await;
    r.records
        .put_session(&session("s9", 9, None))
        .await
        .unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&place.ok(&["sessions", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["session_id"], "s9", "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown = place.ok(&["sessions", "show", "s9"]);
    assert!(
        shown.contains("\"sid\"") && !shown.contains("secret-9"),
        "{shown}"
    );
    let exported = place.ok(&["sessions", "export", "s9", "--format", "cookies-txt"]);
    assert!(exported.contains("secret-9"), "{exported}");

    // Delete: the record and its shared counters go.
    r.coordination
        .add_usage("tickets", "s9", Usage::default())
        .await
        .unwrap();
    place.ok(&["sessions", "delete", "s9"]);
    assert_eq!(r.records.get_session("s9").await.unwrap(), None);
    assert_eq!(r.coordination.usage("tickets", "s9").await.unwrap(), None);
    let (code, _, err) = place.warmer(&["sessions", "show", "s9"]);
    assert_ne!(code, 0);
    assert!(err.contains("no session \"s9\""), "{err}");

    // Another key is refused, naming the key ids; no password is ever shown.
    place.write_config(&format!(
        "backend = \"redis\"\nurl = \"{}\"\nprefix = \"{}\"\nkey_file = \"b.key\"",
        redis_server::shared().url(),
        place.prefix
    ));
    let (code, _, err) = place.warmer(&["events", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("does not match"), "{err}");
    assert!(
        err.contains(&StoreKey::from_bytes(KEY_A).id().to_string()),
        "{err}"
    );
}

/// A `warmer serve` child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        // SAFETY: signals the child this test started and still owns.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ids `GET /api/sessions/active` lists.
async fn active_ids(base: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::get(format!("{base}/api/sessions/active"))
        .await
        .expect("the daemon answers")
        .json()
        .await
        .expect("JSON");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `GET /api/sessions/active` until it lists exactly `want` (10 s at most).
async fn wait_active(base: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut got = active_ids(base).await;
        got.sort();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon lists {got:?}, not {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_on_redis_while_a_daemon_runs_and_the_daemon_sees_its_changes() {
    let place = Place::new("daemon");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A remote browser nobody runs: the daemon starts no Chromium, warms nothing, and serves
    // what the store holds (the cheap way to have a daemon on the store).
    std::fs::write(
        place.path("warmer.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [store]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"{}\"\nkey_file = \"a.key\"\n\
             [browser]\nendpoint = \"http://127.0.0.1:{closed}\"\n\
             [[targets]]\nname = \"tickets\"\nevent_url = \"http://127.0.0.1:{closed}/event/{{event}}\"\n\
             pool_size = 2\n",
            redis_server::shared().url(),
            place.prefix
        ),
    )
    .unwrap();
    let _daemon = Serving(
        Command::new(env!("CARGO_BIN_EXE_warmer"))
            .current_dir(place.dir.path())
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env("RUST_LOG", "warn")
            .args(["serve", "--config", "warmer.toml"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("warmer serve starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !reqwest::get(format!("{base}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Events go into the shared store while the daemon runs (sled would be locked).
    place.ok(&["events", "add", "--target", "tickets", "5"]);
    assert_eq!(place.ok(&["events", "list"]), "tickets\t5\n");

    // A single daemon's sled store copied into the running pool: the daemon serves it.
    let now = session_warmer::session::now_ms();
    {
        let st =
            SledStore::open_with(&place.path("a.sled"), Some(StoreKey::from_bytes(KEY_A))).unwrap();
        for id in ["f1", "f2"] {
            let mut s = session(id, 1, None);
            s.created_at = now;
            s.refreshed_at = now;
            s.expires_at = now + 3_600_000;
            st.put_session(&s).unwrap();
        }
        st.flush().unwrap();
    }
    let out = place.ok(&["store", "copy", "--from", "sled:a.sled", "--to", "config"]);
    assert!(out.contains("sessions: 2 written"), "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(&place.ok(&["sessions", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    wait_active(&base, &["f1", "f2"]).await;

    // Deleted through the CLI: the daemon stops serving it.
    place.ok(&["sessions", "delete", "f1"]);
    wait_active(&base, &["f2"]).await;
}
