//! The sled store on a real disk: CRUD, reopening, private files, schema version, locking,
//! audit order and trim, event dedupe, loading the checked-in v1 session record, and encryption
//! at rest (no secret on disk, wrong or missing key, migration, `warmer store rekey`).

use rand::SeedableRng;
use session_warmer::fingerprint::{BrowserVersion, FingerprintSource};
use session_warmer::session::{Cookie, Health, Observed, OriginStorage, Session, SessionState};
use session_warmer::store::{AuditEntry, Event, SledStore, StoreError, StoreKey, SCHEMA_VERSION};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// When set, this test binary is the child of `locked_by_another_process`: it opens the store
/// at this path, says so on stdout, and holds it until stdin closes.
const LOCK_CHILD_ENV: &str = "WARMER_TEST_STORE_LOCK_CHILD";

const V1_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/session_v1.json"
);

fn session(id: &str, seed: u64) -> Session {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let version = BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap();
    let fingerprint = FingerprintSource::embedded().sample(&mut rng, &version);
    let observed = Observed {
        user_agent: fingerprint.user_agent.clone(),
        brands: fingerprint
            .brands
            .iter()
            .map(|b| (b.brand.clone(), b.version.clone()))
            .collect(),
        platform: fingerprint.profile.platform.clone(),
        ua_platform: fingerprint.profile.ch_platform.clone(),
        timezone: fingerprint.timezone.clone(),
        languages: fingerprint.languages.clone(),
        screen: (
            fingerprint.profile.screen.width,
            fingerprint.profile.screen.height,
        ),
        hardware_concurrency: fingerprint.profile.hardware_concurrency,
        inner: fingerprint.viewport,
        outer: (
            fingerprint.profile.screen.avail_width,
            fingerprint.profile.screen.avail_height,
        ),
    };
    Session {
        id: id.into(),
        target: "tickets".into(),
        event: Some("123".into()),
        account: None,
        url: "https://tickets.example/event/123".into(),
        state: SessionState::Ready,
        fingerprint,
        proxy: Some("http://proxy.example:8080".into()),
        cookies: vec![
            Cookie {
                name: "visitor".into(),
                value: "v-1f3a".into(),
                domain: ".tickets.example".into(),
                path: "/".into(),
                expires: Some(1_800_000_000.0),
                http_only: false,
                secure: true,
                same_site: Some("Lax".into()),
            },
            Cookie {
                name: "sid".into(),
                value: "s-93c0".into(),
                domain: "tickets.example".into(),
                path: "/".into(),
                expires: None,
                http_only: true,
                secure: true,
                same_site: Some("Strict".into()),
            },
        ],
        origins: vec![OriginStorage {
            origin: "https://tickets.example".into(),
            local_storage: vec![("seen".into(), "1".into()), ("token".into(), "t-77".into())],
        }],
        observed: Some(observed),
        created_at: 1_700_000_000_000,
        refreshed_at: 1_700_000_060_000,
        expires_at: 1_700_007_200_000,
        health: Health {
            uses: 5,
            successes: 4,
            failures: 1,
            error_score: 0.5,
            last_status: Some(200),
            last_validated_at: Some(1_700_000_300_000),
            retired_reason: None,
        },
    }
}

fn event(target: &str, id: &str, added_at: u64) -> Event {
    Event {
        target: target.into(),
        id: id.into(),
        url: None,
        added_at,
    }
}

fn audit(at: u64, action: &str) -> AuditEntry {
    AuditEntry {
        at,
        session: Some(format!("s{at}")),
        target: Some("tickets".into()),
        action: action.into(),
        detail: String::new(),
    }
}

/// The store's sled database opened directly, to plant records the store would not write.
/// Retries because sled releases its lock lazily after the store is dropped.
fn raw_db(path: &Path) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::open(path) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sled::open(path).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        }
        out.push(p);
    }
    out
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let entries = tree(dir);
    assert!(
        entries.iter().any(|p| p.is_file()),
        "no files in the store?"
    );
    for p in entries {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "mode of {}", p.display());
    }
}

#[test]
fn sessions_put_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.get_session("a").unwrap(), None);
    assert!(store.list_sessions().unwrap().is_empty());

    let a = session("a", 1);
    let mut b = session("b", 2);
    store.put_session(&b).unwrap();
    store.put_session(&a).unwrap();
    assert_eq!(store.get_session("a").unwrap().as_ref(), Some(&a));
    let ids: Vec<String> = store
        .list_sessions()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);

    // put replaces.
    b.state = SessionState::Retired;
    b.health.retired_reason = Some("max age".into());
    store.put_session(&b).unwrap();
    assert_eq!(store.get_session("b").unwrap(), Some(b));
    assert_eq!(store.list_sessions().unwrap().len(), 2);

    assert!(store.delete_session("a").unwrap());
    assert!(!store.delete_session("a").unwrap());
    assert_eq!(store.get_session("a").unwrap(), None);
    assert_eq!(store.list_sessions().unwrap().len(), 1);
}

#[test]
fn sessions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = session("persisted", 3);
    {
        let store = SledStore::open(&path).unwrap();
        assert_eq!(store.path(), path);
        store.put_session(&s).unwrap();
        store.put_session(&session("gone", 4)).unwrap();
        store.delete_session("gone").unwrap();
        store.put_event(&event("tickets", "123", 1)).unwrap();
        store.append_audit(&audit(1, "warmed")).unwrap();
    }
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.get_session("persisted").unwrap(), Some(s.clone()));
    assert_eq!(store.list_sessions().unwrap(), vec![s]);
    assert_eq!(
        store.list_events(None).unwrap(),
        vec![event("tickets", "123", 1)]
    );
    assert_eq!(store.recent_audit(10).unwrap(), vec![audit(1, "warmed")]);
}

/// The pool's batched write of changed uses and health: one flush for all, and a session
/// deleted in the meantime stays deleted.
#[test]
fn batched_updates_write_stored_sessions_only_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (mut a, mut b) = (session("a", 5), session("b", 6));
    {
        let store = SledStore::open(&path).unwrap();
        store.put_session(&a).unwrap();
        store.put_session(&b).unwrap();
        store.delete_session("b").unwrap();
        a.health.uses = 7;
        b.health.uses = 9;
        let batch = vec![std::sync::Arc::new(a.clone()), std::sync::Arc::new(b)];
        assert_eq!(store.update_sessions(&batch).unwrap(), 1);
        assert_eq!(store.update_sessions(&[]).unwrap(), 0);
    }
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.list_sessions().unwrap(), vec![a]);
}

#[test]
fn store_dir_is_0700_and_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("store");
    {
        let store = SledStore::open(&path).unwrap();
        assert_private(&path);
        for i in 0..50 {
            store.put_session(&session(&format!("s{i}"), i)).unwrap();
            store.append_audit(&audit(i, "warmed")).unwrap();
        }
        store.put_event(&event("tickets", "1", 1)).unwrap();
        store.delete_session("s0").unwrap();
        assert_private(&path);
    }
    // An existing directory with loose modes (and a loose file in it) is tightened on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(path.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(path.join("blobs"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = SledStore::open(&path).unwrap();
    assert_private(&path);
    store.put_session(&session("later", 99)).unwrap();
    assert_private(&path);
}

#[test]
fn schema_version_is_written_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(SledStore::open(&path).unwrap());
    {
        let db = raw_db(&path);
        let meta = db.open_tree("meta").unwrap();
        let raw = meta
            .get("schema_version")
            .unwrap()
            .expect("schema_version written");
        assert_eq!(serde_json::from_slice::<u32>(&raw).unwrap(), SCHEMA_VERSION);
        meta.insert(
            "schema_version",
            serde_json::to_vec(&(SCHEMA_VERSION + 1)).unwrap(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(&path) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = SledStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains("newer than this build supports"), "{msg}");
}

#[test]
fn corrupt_record_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(SledStore::open(&path).unwrap());
    {
        let db = raw_db(&path);
        db.open_tree("sessions")
            .unwrap()
            .insert("bad", "{not json")
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(&path).unwrap();
    match store.get_session("bad") {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "sessions/bad"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.list_sessions(),
        Err(StoreError::Corrupt { .. })
    ));
    // A corrupt record can still be deleted.
    assert!(store.delete_session("bad").unwrap());
    assert!(store.list_sessions().unwrap().is_empty());
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    // sled 0.34 takes flock(LOCK_EX | LOCK_NB) on `<dir>/db`; flock locks belong to the open
    // file description, so a second open in the same process conflicts like another process.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let first = SledStore::open(&path).unwrap();
    match SledStore::open(&path) {
        Err(StoreError::Locked { path: p }) => assert_eq!(p, path),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Debug shows the path, never the contents (sled's own Debug dumps every value).
    let debug = format!("{first:?}");
    assert!(debug.contains("SledStore"), "{debug}");
    assert!(!debug.contains("Tree"), "{debug}");
    drop(first);
    // Released once the store is dropped (after sled's lazy release; `open` retries).
    SledStore::open(&path).unwrap();
}

#[test]
fn locked_by_another_process() {
    if let Ok(path) = std::env::var(LOCK_CHILD_ENV) {
        // Child side: hold the store until the parent closes our stdin.
        let _store = SledStore::open(Path::new(&path)).unwrap();
        println!("CHILD-HOLDS-STORE");
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locked_by_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ready = false;
    for line in lines.by_ref() {
        if line.unwrap().contains("CHILD-HOLDS-STORE") {
            ready = true;
            break;
        }
    }
    assert!(ready, "child never opened the store");

    let err = SledStore::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(msg.contains("in use by another process"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    drop(child.stdin.take()); // the child returns and exits
    lines.for_each(drop); // keep reading so the child's harness output has somewhere to go
    assert!(child.wait().unwrap().success());
    SledStore::open(&path).unwrap();
}

#[test]
fn audit_is_newest_first_and_trimmed_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = SledStore::open(&path).unwrap();
        for i in 0..20 {
            store.append_audit(&audit(i, "warmed")).unwrap();
        }
    }
    // Sequence numbers keep increasing across a restart.
    let store = SledStore::open(&path).unwrap();
    for i in 20..30 {
        store.append_audit(&audit(i, "rotated")).unwrap();
    }
    let ats = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.at).collect::<Vec<_>>();
    assert_eq!(ats(store.recent_audit(3).unwrap()), [29, 28, 27]);
    assert_eq!(store.recent_audit(100).unwrap().len(), 30);
    assert!(store.recent_audit(0).unwrap().is_empty());

    assert_eq!(store.trim_audit(5).unwrap(), 25);
    assert_eq!(ats(store.recent_audit(100).unwrap()), [29, 28, 27, 26, 25]);
    assert_eq!(store.trim_audit(5).unwrap(), 0);
    assert_eq!(store.trim_audit(0).unwrap(), 5);
    assert!(store.recent_audit(10).unwrap().is_empty());
}

#[test]
fn events_are_deduplicated_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    assert!(store.put_event(&event("tickets", "123", 1)).unwrap());
    // Same target and id: not added, the first one is kept.
    let mut again = event("tickets", "123", 2);
    again.url = Some("https://tickets.example/other".into());
    assert!(!store.put_event(&again).unwrap());
    // Same id, other target: a different event.
    assert!(store.put_event(&event("portal", "123", 3)).unwrap());
    // A target whose name extends another's is not mixed up with it.
    assert!(store.put_event(&event("tickets2", "9", 4)).unwrap());
    assert_eq!(
        store
            .put_events(&[
                event("tickets", "456", 5),
                event("tickets", "123", 6),
                event("tickets", "456", 7),
                event("tickets", "789", 8),
            ])
            .unwrap(),
        2
    );

    let ids = |v: Vec<Event>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_events(Some("tickets")).unwrap()),
        ["123", "456", "789"]
    );
    assert_eq!(
        store.list_events(Some("tickets")).unwrap()[0],
        event("tickets", "123", 1)
    );
    assert_eq!(ids(store.list_events(Some("portal")).unwrap()), ["123"]);
    assert_eq!(ids(store.list_events(Some("tickets2")).unwrap()), ["9"]);
    assert!(store.list_events(Some("nope")).unwrap().is_empty());
    assert_eq!(store.list_events(None).unwrap().len(), 5);

    assert!(store.delete_event("tickets", "456").unwrap());
    assert!(!store.delete_event("tickets", "456").unwrap());
    assert_eq!(
        ids(store.list_events(Some("tickets")).unwrap()),
        ["123", "789"]
    );
}

#[test]
fn event_and_audit_records_load_without_optional_fields() {
    // Older or hand-written records may lack defaulted fields.
    let e: Event = serde_json::from_str(r#"{"target":"t","id":"1"}"#).unwrap();
    assert_eq!(e, event("t", "1", 0));
    let a: AuditEntry = serde_json::from_str(r#"{"at":5,"action":"warmed"}"#).unwrap();
    assert_eq!(a.session, None);
    assert_eq!(a.detail, "");
}

#[test]
fn v1_session_fixture_loads_and_round_trips() {
    // Written once from a schema-1 `Session`; later schema versions must keep loading it.
    let text = std::fs::read_to_string(V1_FIXTURE).unwrap();
    let s: Session = serde_json::from_str(&text).expect("v1 session record still loads");
    assert_eq!(s.id, "5f0c8e0b2a1d4c7e9b3a6f1e2d4c8a90");
    assert_eq!(s.state, SessionState::Ready);
    assert_eq!(s.cookies.len(), 2);
    assert!(s.cookies[1].http_only);
    assert_eq!(s.cookies[1].expires, None);
    assert_eq!(s.origins[0].local_storage[1].1, "t-77");
    assert_eq!(s.health.uses, 5);
    assert!(s.fingerprint.user_agent.contains("Chrome/156."));

    let again: Session = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again, s);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    SledStore::open(&path).unwrap().put_session(&s).unwrap();
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.get_session(&s.id).unwrap(), Some(s));
}

/// Regenerates `session_v{SCHEMA_VERSION}.json` when it does not exist yet (run with
/// `--ignored` after bumping the schema); never overwrites a checked-in fixture.
#[test]
#[ignore = "writes a fixture file"]
fn write_session_fixture() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/session_v{SCHEMA_VERSION}.json"));
    assert!(!path.exists(), "{} exists; not overwriting", path.display());
    let s = session("5f0c8e0b2a1d4c7e9b3a6f1e2d4c8a90", 42);
    let mut text = serde_json::to_string_pretty(&s).unwrap();
    text.push('\n');
    std::fs::write(&path, text).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Encryption at rest

/// Values of `session(..)` that must never reach the disk in clear when a key is set.
const SECRETS: [&str; 4] = ["v-1f3a", "s-93c0", "t-77", "pw-hunter2"];

/// `session(..)` with proxy credentials, which live in the record too.
fn secret_session(id: &str, seed: u64) -> Session {
    let mut s = session(id, seed);
    s.proxy = Some("http://scraper:pw-hunter2@proxy.example:8080".into());
    s
}

fn key_a() -> StoreKey {
    StoreKey::from_bytes([0xA1; 32])
}

fn key_b() -> StoreKey {
    StoreKey::from_bytes([0xB2; 32])
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Raw values of a tree, opened directly with sled after the store is dropped.
fn raw_values(path: &Path, tree: &str) -> Vec<(String, Vec<u8>)> {
    let db = raw_db(path);
    let t = db.open_tree(tree).unwrap();
    t.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (String::from_utf8_lossy(&k).into_owned(), v.to_vec())
        })
        .collect()
}

/// Which of `needles` occur anywhere in the bytes of the files under `dir`.
fn found_in_files(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for p in tree(dir).into_iter().filter(|p| p.is_file()) {
        let bytes = std::fs::read(&p).unwrap();
        for n in needles {
            if contains(&bytes, n) {
                found.push(format!("{n} in {}", p.display()));
            }
        }
    }
    found
}

#[test]
fn encrypted_sessions_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let a = secret_session("a", 1);
    let b = secret_session("b", 2);
    {
        let store = SledStore::open_with(&path, Some(key_a())).unwrap();
        assert!(store.is_encrypted());
        assert_eq!(store.key_id(), Some(key_a().id()));
        store.put_session(&b).unwrap();
        store.put_session(&a).unwrap();
        assert_eq!(store.get_session("a").unwrap().as_ref(), Some(&a));
        assert_eq!(store.list_sessions().unwrap(), vec![a.clone(), b.clone()]);
        store.put_event(&event("tickets", "123", 1)).unwrap();
        store.append_audit(&audit(1, "warmed")).unwrap();
    }
    let store = SledStore::open_with(&path, Some(key_a())).unwrap();
    assert_eq!(store.list_sessions().unwrap(), vec![a, b.clone()]);
    assert!(store.delete_session("a").unwrap());
    assert_eq!(store.list_sessions().unwrap(), vec![b]);
    assert_eq!(store.recent_audit(10).unwrap(), vec![audit(1, "warmed")]);
    assert_eq!(
        store.list_events(None).unwrap(),
        vec![event("tickets", "123", 1)]
    );
    assert_private(&path);
}

#[test]
fn encrypted_store_holds_no_cookie_value_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("plain");
    let enc_path = dir.path().join("encrypted");
    for path in [&plain_path, &enc_path] {
        let key = (path == &enc_path).then(key_a);
        let store = SledStore::open_with(path, key).unwrap();
        for i in 0..5 {
            store
                .put_session(&secret_session(&format!("s{i}"), i))
                .unwrap();
        }
        store.put_event(&event("tickets", "123", 1)).unwrap();
        store.append_audit(&audit(1, "warmed")).unwrap();
    }
    // The scan works: an unencrypted store has every secret in its files.
    let plain = found_in_files(&plain_path, &SECRETS);
    assert!(
        SECRETS
            .iter()
            .all(|s| plain.iter().any(|f| f.starts_with(s))),
        "{plain:?}"
    );

    // Each session value is an envelope with the key's id, and no secret in it.
    let sessions = raw_values(&enc_path, "sessions");
    assert_eq!(sessions.len(), 5);
    for (k, v) in &sessions {
        assert_eq!(v[0], 0xE1, "sessions/{k} is not an envelope");
        assert_eq!(hex(&v[1..9]), key_a().id().to_string(), "sessions/{k}");
        for secret in SECRETS {
            assert!(!contains(v, secret), "{secret} in sessions/{k}");
        }
        assert!(
            !contains(v, "tickets.example"),
            "sessions/{k} shows a domain"
        );
    }
    // Events and audit hold no secrets and stay plaintext JSON.
    for tree in ["events", "audit"] {
        for (k, v) in raw_values(&enc_path, tree) {
            assert_eq!(v[0], b'{', "{tree}/{k}");
        }
    }
    // meta records encryption and the key id, never the key.
    let meta: std::collections::HashMap<String, Vec<u8>> =
        raw_values(&enc_path, "meta").into_iter().collect();
    let enc: serde_json::Value = serde_json::from_slice(&meta["encryption"]).unwrap();
    assert_eq!(enc["cipher"], "chacha20poly1305");
    assert_eq!(enc["key_id"], key_a().id().to_string());
    // Nothing in any file of a store that was encrypted from the start.
    let leaked = found_in_files(&enc_path, &SECRETS);
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(found_in_files(&enc_path, &[&hex(&[0xA1; 32])]).is_empty());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the store at `path` with `key`, writes `sessions` and closes it.
fn fill(path: &Path, key: Option<StoreKey>, sessions: &[Session]) {
    let store = SledStore::open_with(path, key).unwrap();
    for s in sessions {
        store.put_session(s).unwrap();
    }
}

#[test]
fn wrong_key_is_refused_at_open_and_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path, Some(key_a()), &[secret_session("a", 1)]);
    let err = SledStore::open_with(&path, Some(key_b())).unwrap_err();
    match &err {
        StoreError::KeyMismatch { stored, given, .. } => {
            assert_eq!(stored, &key_a().id().to_string());
            assert_eq!(given, &key_b().id().to_string());
        }
        other => panic!("expected KeyMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("the key does not match the one the store was written with"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    // A record written under another key than the store's (meta edited by hand): named too.
    {
        let db = raw_db(&path);
        db.open_tree("meta").unwrap().remove("encryption").unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open_with(&path, Some(key_b())).unwrap();
    match store.get_session("a") {
        Err(StoreError::KeyMismatch { what, .. }) => assert!(what.contains("sessions/a"), "{what}"),
        other => panic!("expected KeyMismatch, got {other:?}"),
    }
}

#[test]
fn encrypted_store_without_a_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(SledStore::open_with(&path, Some(key_a())).unwrap());
    let err = SledStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::KeyRequired { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("is encrypted; set WARMER_KEY or store.key_file"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // The refusal changed nothing: the key still opens it.
    SledStore::open_with(&path, Some(key_a())).unwrap();
}

#[test]
fn tampered_record_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(
        &path,
        Some(key_a()),
        &[secret_session("a", 1), secret_session("b", 2)],
    );
    {
        let db = raw_db(&path);
        let sessions = db.open_tree("sessions").unwrap();
        let mut v = sessions.get("a").unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        sessions.insert("a", v).unwrap();
        // An intact envelope moved to another id does not open either.
        let b = sessions.get("b").unwrap().unwrap();
        sessions.insert("c", b).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open_with(&path, Some(key_a())).unwrap();
    for id in ["a", "c"] {
        match store.get_session(id) {
            Err(StoreError::Tampered { key }) => assert_eq!(key, format!("sessions/{id}")),
            other => panic!("expected Tampered for {id}, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_session("b").unwrap(),
        Some(secret_session("b", 2))
    );
}

#[test]
fn plaintext_store_opened_with_a_key_reads_and_encrypts_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let a = secret_session("a", 1);
    let mut b = secret_session("b", 2);
    fill(&path, None, &[a.clone(), b.clone()]);
    {
        let store = SledStore::open_with(&path, Some(key_a())).unwrap();
        assert_eq!(store.list_sessions().unwrap(), vec![a.clone(), b.clone()]);
        b.health.uses += 1;
        store.put_session(&b).unwrap();
        assert_eq!(store.get_session("b").unwrap().as_ref(), Some(&b));
    }
    let raw: std::collections::HashMap<String, Vec<u8>> =
        raw_values(&path, "sessions").into_iter().collect();
    assert_eq!(raw["a"][0], b'{', "not yet rewritten: still plaintext");
    assert_eq!(raw["b"][0], 0xE1, "rewritten: encrypted");
    assert!(!contains(&raw["b"], "s-93c0"));
    // Encryption is on from the first open with a key.
    assert!(matches!(
        SledStore::open(&path),
        Err(StoreError::KeyRequired { .. })
    ));
    let store = SledStore::open_with(&path, Some(key_a())).unwrap();
    assert_eq!(store.list_sessions().unwrap(), vec![a, b]);
}

#[test]
fn rekey_from_a_to_b() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let sessions: Vec<Session> = (0..4)
        .map(|i| secret_session(&format!("s{i}"), i))
        .collect();
    {
        let store = SledStore::open_with(&path, Some(key_a())).unwrap();
        for s in &sessions {
            store.put_session(s).unwrap();
        }
        store.put_event(&event("tickets", "1", 1)).unwrap();
    }
    {
        let mut store = SledStore::open_with(&path, Some(key_a())).unwrap();
        assert_eq!(store.rekey(Some(key_b())).unwrap(), 4);
        // The handle goes on with the new key.
        assert_eq!(store.key_id(), Some(key_b().id()));
        assert_eq!(store.list_sessions().unwrap(), sessions);
        store.put_session(&secret_session("s9", 9)).unwrap();
    }
    for (k, v) in raw_values(&path, "sessions") {
        assert_eq!(hex(&v[1..9]), key_b().id().to_string(), "sessions/{k}");
    }
    let err = SledStore::open_with(&path, Some(key_a())).unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err:?}");
    assert!(matches!(
        SledStore::open(&path),
        Err(StoreError::KeyRequired { .. })
    ));
    let store = SledStore::open_with(&path, Some(key_b())).unwrap();
    assert_eq!(store.list_sessions().unwrap().len(), 5);
    assert_eq!(
        store.get_session("s2").unwrap().as_ref(),
        Some(&sessions[2])
    );
    assert_eq!(store.list_events(None).unwrap().len(), 1);
}

#[test]
fn rekey_encrypts_a_plaintext_store_and_decrypt_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = secret_session("a", 1);
    fill(&path, None, std::slice::from_ref(&s));
    {
        let mut store = SledStore::open(&path).unwrap();
        assert_eq!(store.rekey(Some(key_a())).unwrap(), 1);
    }
    let raw = raw_values(&path, "sessions");
    assert_eq!(raw[0].1[0], 0xE1);
    assert!(matches!(
        SledStore::open(&path),
        Err(StoreError::KeyRequired { .. })
    ));
    {
        let mut store = SledStore::open_with(&path, Some(key_a())).unwrap();
        assert_eq!(store.rekey(None).unwrap(), 1);
        assert!(!store.is_encrypted());
        assert_eq!(store.get_session("a").unwrap().as_ref(), Some(&s));
    }
    let raw = raw_values(&path, "sessions");
    assert_eq!(raw[0].1[0], b'{');
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.get_session("a").unwrap(), Some(s));
}

#[test]
fn v1_session_fixture_round_trips_through_an_encrypted_store() {
    let text = std::fs::read_to_string(V1_FIXTURE).unwrap();
    let s: Session = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fill(&path, Some(key_a()), std::slice::from_ref(&s));
    let store = SledStore::open_with(&path, Some(key_a())).unwrap();
    assert_eq!(store.get_session(&s.id).unwrap(), Some(s));
}

// `warmer store rekey` as a user runs it.

fn warmer(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warmer"));
    c.current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("WARMER_KEY")
        .env_remove("RUST_LOG");
    c
}

/// Writes a key file with `mode` holding `bytes` as hex.
fn key_file(dir: &Path, name: &str, bytes: [u8; 32], mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, hex(&bytes) + "\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn output(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_rekey_from_plaintext_to_a_then_b_then_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store_path = d.join("store");
    let s = secret_session("a", 1);
    fill(&store_path, None, std::slice::from_ref(&s));
    let a = key_file(d, "a.key", [0xA1; 32], 0o600);
    let b = key_file(d, "b.key", [0xB2; 32], 0o400);
    std::fs::write(d.join("plain.toml"), "[store]\npath = 'store'\n").unwrap();
    std::fs::write(
        d.join("a.toml"),
        "[store]\npath = 'store'\nkey_file = 'a.key'\n",
    )
    .unwrap();

    // First encryption: no key configured, the new one from a file.
    let (ok, out, err) = output(warmer(d).args([
        "--config",
        "plain.toml",
        "store",
        "rekey",
        "--new-key-file",
        "a.key",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("re-encrypted 1 session record(s)"), "{out}");
    assert!(out.contains(&key_a().id().to_string()), "{out}");
    assert!(out.contains("was: unencrypted"), "{out}");
    assert!(
        out.contains(&format!(
            "key_file = {:?}",
            a.canonicalize().unwrap().display().to_string()
        )),
        "{out}"
    );
    assert!(
        !out.contains(&hex(&[0xA1; 32])),
        "the key is printed: {out}"
    );

    // Rotation: the old key from store.key_file, the new from --new-key-file.
    let (ok, out, err) = output(warmer(d).args([
        "--config",
        "a.toml",
        "store",
        "rekey",
        "--new-key-file",
        "b.key",
    ]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("was: key id {}", key_a().id())),
        "{out}"
    );
    assert!(out.contains("destroy the old key"), "{out}");
    assert!(matches!(
        SledStore::open_with(&store_path, Some(key_a())),
        Err(StoreError::KeyMismatch { .. })
    ));
    assert_eq!(
        SledStore::open_with(&store_path, Some(key_b()))
            .unwrap()
            .get_session("a")
            .unwrap(),
        Some(s.clone())
    );

    // The old key is now wrong: the command says so and changes nothing.
    let (ok, _, err) = output(warmer(d).args([
        "--config",
        "a.toml",
        "store",
        "rekey",
        "--new-key-file",
        "a.key",
    ]));
    assert!(!ok);
    assert!(err.contains("the key does not match"), "{err}");

    // WARMER_KEY gives the old key too (and overrides store.key_file); --decrypt goes back.
    let (ok, out, err) = output(warmer(d).env("WARMER_KEY", hex(&[0xB2; 32])).args([
        "--config",
        "a.toml",
        "store",
        "rekey",
        "--decrypt",
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("decrypted 1 session record(s)"), "{out}");
    assert!(out.contains("remove key_file"), "{out}");
    assert_eq!(
        SledStore::open(&store_path)
            .unwrap()
            .get_session("a")
            .unwrap(),
        Some(s)
    );
    drop(b);
}

#[test]
fn cli_rekey_refuses_a_held_store_and_loose_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store_path = d.join("store");
    key_file(d, "loose.key", [0xA1; 32], 0o644);
    key_file(d, "good.key", [0xB2; 32], 0o600);
    std::fs::write(
        d.join("loose.toml"),
        "[store]\npath = 'store'\nkey_file = 'loose.key'\n",
    )
    .unwrap();
    std::fs::write(d.join("plain.toml"), "[store]\npath = 'store'\n").unwrap();
    let rekey = |config: &str, new: &str| {
        output(warmer(d).args(["--config", config, "store", "rekey", "--new-key-file", new]))
    };

    // No store yet: nothing is created.
    let (ok, _, err) = rekey("plain.toml", "good.key");
    assert!(!ok);
    assert!(err.contains("no store at"), "{err}");
    assert!(!store_path.exists());

    let held = SledStore::open(&store_path).unwrap();
    let (ok, _, err) = rekey("plain.toml", "good.key");
    assert!(!ok);
    assert!(err.contains("stop the daemon before rekeying"), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    drop(held);

    let (ok, _, err) = rekey("plain.toml", "loose.key");
    assert!(!ok);
    assert!(err.contains("--new-key-file loose.key"), "{err}");
    assert!(err.contains("0644"), "{err}");
    let (ok, _, err) = rekey("loose.toml", "good.key");
    assert!(!ok);
    assert!(err.contains("store.key_file loose.key"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    // Neither failure touched the store.
    assert!(!SledStore::open(&store_path).unwrap().is_encrypted());
}
