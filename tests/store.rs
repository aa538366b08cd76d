//! The sled store on a real disk: CRUD, reopening, private files, schema version, locking,
//! audit order and trim, event dedupe, and loading the checked-in v1 session record.

use rand::SeedableRng;
use session_warmer::fingerprint::{BrowserVersion, FingerprintSource};
use session_warmer::session::{Cookie, Health, Observed, OriginStorage, Session, SessionState};
use session_warmer::store::{AuditEntry, Event, SledStore, Store, StoreError, SCHEMA_VERSION};
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
