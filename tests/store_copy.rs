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
//!   (no daemon needed, none in the way).

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
        let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
            .current_dir(self.dir.path())
            .env_remove("WARMER_CONFIG")
            .env_remove("WARMER_KEY")
            .env_remove("WARMER_STORE_URL")
            .env_remove("RUST_LOG")
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
