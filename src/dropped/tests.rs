//! Each format, each refused file, write-back and the watcher, on real files in a tempdir.

use super::*;
use crate::fingerprint::{BrowserVersion, FingerprintSource};
use crate::session::now_ms;
use rand::SeedableRng;
use std::os::unix::fs::PermissionsExt;

const NOW: UnixMillis = 1_700_000_000_000;
/// An expiry after NOW, in seconds.
const LATER: f64 = 1_800_000_000.0;

fn policy() -> UrlPolicy {
    UrlPolicy::from_urls([
        "https://www.portal.example/account",
        "http://127.0.0.1:8080/",
    ])
}

fn fingerprint() -> Fingerprint {
    let version = BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap();
    FingerprintSource::embedded().sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3), &version)
}

/// Writes `name` in `dir` with mode 0600 and returns its path.
/// A warmer-format record of target `portal` with nothing in it yet.
fn empty_record(id: &str, proxy: Option<&str>) -> DroppedSession {
    DroppedSession {
        id: id.into(),
        target: "portal".into(),
        file: PathBuf::new(),
        format: DroppedFormat::WarmerJson,
        cookies: vec![],
        origins: vec![],
        foreign_cookies: vec![],
        foreign_origins: vec![],
        fingerprint: None,
        proxy: proxy.map(str::to_string),
        url: None,
        warnings: vec![],
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

const STORAGE_STATE: &str = r#"{
  "cookies": [
    {"name": "sid", "value": "s3cr3t", "domain": "www.portal.example", "path": "/",
     "expires": -1, "httpOnly": true, "secure": true, "sameSite": "Strict"},
    {"name": "pref", "value": "dark", "domain": ".portal.example", "path": "/",
     "expires": 1800000000.5, "httpOnly": false, "secure": false, "sameSite": "Lax"},
    {"name": "_ga", "value": "GA1", "domain": ".analytics.example", "path": "/",
     "expires": 1800000000, "httpOnly": false, "secure": false, "sameSite": "None"},
    {"name": "old", "value": "x", "domain": "www.portal.example", "path": "/",
     "expires": 1000, "httpOnly": false, "secure": false, "sameSite": "Lax"}
  ],
  "origins": [
    {"origin": "https://www.portal.example", "localStorage": [{"name": "token", "value": "t1"}]},
    {"origin": "https://analytics.example", "localStorage": [{"name": "id", "value": "a"}]}
  ]
}"#;

#[test]
fn playwright_storage_state_is_read_and_checked_against_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "session-0912.json", STORAGE_STATE);
    let s = load_file(&p, "portal", &policy(), NOW).unwrap();
    assert_eq!(s.id, "session-0912");
    assert_eq!(s.target, "portal");
    assert_eq!(s.format, DroppedFormat::StorageState);
    let names: Vec<&str> = s.cookies.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["sid", "pref"],
        "expired and foreign cookies left out"
    );
    let sid = &s.cookies[0];
    assert!(sid.http_only && sid.secure);
    assert_eq!(sid.expires, None, "-1 is a session cookie");
    assert_eq!(sid.same_site.as_deref(), Some("Strict"));
    assert_eq!(s.cookies[1].expires, Some(1_800_000_000.5));
    assert_eq!(s.foreign_cookies.len(), 1);
    assert_eq!(s.origins.len(), 1);
    assert_eq!(s.origins[0].local_storage, [("token".into(), "t1".into())]);
    assert_eq!(s.foreign_origins[0].origin, "https://analytics.example");
    assert!(s.fingerprint.is_none() && s.proxy.is_none());
    assert_eq!(
        s.warnings,
        [
            DroppedWarning::ForeignCookies {
                domains: vec![".analytics.example".into()]
            },
            DroppedWarning::ExpiredCookies { count: 1 }
        ]
    );
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("t1\""),
        "{debug}"
    );
}

#[test]
fn cookies_txt_with_httponly_lines_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# Netscape HTTP Cookie File\n\
                # a comment\n\n\
                #HttpOnly_www.portal.example\tFALSE\t/\tTRUE\t1800000000\tsid\ts3cr3t\n\
                portal.example\tTRUE\t/app\tFALSE\t0\tpref\tdark\r\n\
                .portal.example\tTRUE\t/\tFALSE\t0\tempty\n";
    let p = write(dir.path(), "alice.txt", text);
    let s = load_file(&p, "portal", &policy(), NOW).unwrap();
    assert_eq!(s.format, DroppedFormat::CookiesTxt);
    assert_eq!(s.cookies.len(), 3);
    assert!(s.cookies[0].http_only && s.cookies[0].secure);
    assert_eq!(s.cookies[0].domain, "www.portal.example");
    assert_eq!(s.cookies[0].expires, Some(LATER));
    // include-subdomains TRUE is a leading dot; expiry 0 a session cookie.
    assert_eq!(s.cookies[1].domain, ".portal.example");
    assert_eq!(s.cookies[1].path, "/app");
    assert_eq!(s.cookies[1].expires, None);
    assert!(!s.cookies[1].http_only);
    assert_eq!(
        s.cookies[2].value, "",
        "a trailing empty value may lose its tab"
    );
}

#[test]
fn warmers_own_export_round_trips_with_its_fingerprint_and_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let fp = fingerprint();
    let mut rec = empty_record("x", Some("http://u:p@proxy.example:8080")).to_session(
        fp.clone(),
        "https://www.portal.example/account",
        NOW,
        Duration::from_secs(60),
    );
    rec.cookies = vec![cookie("sid", "v", "www.portal.example")];
    let text = crate::export::render(&rec, crate::export::ExportFormat::Json, NOW);
    let p = write(dir.path(), "bob.json", &text);
    let s = load_file(&p, "portal", &policy(), NOW).unwrap();
    assert_eq!(s.format, DroppedFormat::WarmerJson);
    assert_eq!(s.fingerprint.as_ref(), Some(&fp));
    assert_eq!(s.proxy.as_deref(), Some("http://u:p@proxy.example:8080"));
    assert_eq!(s.url.as_deref(), Some("https://www.portal.example/account"));
    assert_eq!(s.cookies, rec.cookies);
    assert!(
        !format!("{s:?}").contains(":p@"),
        "Debug hides the proxy's password"
    );
    // The checked-in record of an older schema loads too (its cookies are for tickets.example).
    let old = include_str!("../../tests/fixtures/session_v1.json");
    let p = write(dir.path(), "old.json", old);
    let tickets = UrlPolicy::from_urls(["https://tickets.example/"]);
    let s = load_file(&p, "tickets", &tickets, NOW).unwrap();
    assert_eq!(s.format, DroppedFormat::WarmerJson);
    assert!(!s.cookies.is_empty());
}

fn cookie(name: &str, value: &str, domain: &str) -> Cookie {
    Cookie {
        name: name.into(),
        value: value.into(),
        domain: domain.into(),
        path: "/".into(),
        expires: None,
        http_only: false,
        secure: false,
        same_site: None,
    }
}

/// Loads `text` as `name` and returns the refusal.
fn refused(name: &str, text: &str) -> DroppedError {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, text);
    let e = load_file(&p, "portal", &policy(), NOW).unwrap_err();
    assert!(e.to_string().contains(name), "names the file: {e}");
    e
}

#[test]
fn bad_files_are_refused_naming_the_file_and_the_reason() {
    let e = refused("a.json", "{\"cookies\": [");
    assert_eq!(e.reason(), "not_json", "{e}");
    let e = refused("b.json", "cookies=1");
    assert_eq!(e.reason(), "not_json", "{e}");
    let e = refused("c.json", "{\"hello\": 1}");
    assert_eq!(e.reason(), "unrecognised", "{e}");
    assert!(e.to_string().contains("storageState"), "{e}");
    let e = refused("d.json", "[1, 2]");
    assert_eq!(e.reason(), "unrecognised", "{e}");
    let e = refused(
        "e.json",
        r#"{"cookies": [{"name": "sid", "value": 12345, "domain": "www.portal.example"}]}"#,
    );
    assert_eq!(e.reason(), "unrecognised", "{e}");
    assert!(e.to_string().contains("cookies[0].value"), "{e}");
    assert!(
        !e.to_string().contains("12345"),
        "never echoes a value: {e}"
    );
    let e = refused("f.json", r#"{"cookies": [{"value": "v", "domain": "x"}]}"#);
    assert!(e.to_string().contains("name"), "names the field: {e}");

    let e = refused("g.txt", "www.portal.example\tFALSE\t/\tFALSE\n");
    assert_eq!(e.reason(), "bad_cookies_txt", "{e}");
    assert!(e.to_string().contains("line 1"), "{e}");
    let e = refused(
        "h.txt",
        "# c\nwww.portal.example\tMAYBE\t/\tFALSE\t0\tsid\tsecretvalue\n",
    );
    assert!(e.to_string().contains("line 2") && e.to_string().contains("include-subdomains"));
    assert!(!e.to_string().contains("secretvalue"), "{e}");
    let e = refused(
        "i.txt",
        "www.portal.example\tFALSE\t/\tFALSE\tsoon\tsid\tv\n",
    );
    assert!(e.to_string().contains("expires"), "{e}");

    let e = refused("j.json", r#"{"cookies": [], "origins": []}"#);
    assert_eq!(e.reason(), "no_cookies", "{e}");
    let e = refused("k.txt", "# Netscape HTTP Cookie File\n");
    assert_eq!(e.reason(), "no_cookies", "{e}");
    let e = refused(
        "l.txt",
        "www.portal.example\tFALSE\t/\tFALSE\t1000\told\tv\n",
    );
    assert!(
        matches!(e, DroppedError::NoCookies { expired: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("1 expired"), "{e}");

    let e = refused(
        "m.txt",
        "evil.example\tFALSE\t/\tFALSE\t0\tsid\tv\n.portal.example.evil\tTRUE\t/\tFALSE\t0\tb\tv\n",
    );
    assert_eq!(e.reason(), "wrong_domain", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("evil.example") && text.contains("https://www.portal.example:443"),
        "{text}"
    );
    // A host-only cookie of a sibling host is not the target's either.
    let e = refused("n.txt", "api.portal.example\tFALSE\t/\tFALSE\t0\tsid\tv\n");
    assert_eq!(e.reason(), "wrong_domain", "{e}");

    let e = refused("bad id!.json", STORAGE_STATE);
    assert_eq!(e.reason(), "bad_id", "{e}");
    let e = refused("o.txt", "\u{0}\u{1}garbage\u{ff}");
    assert_eq!(e.reason(), "bad_cookies_txt", "{e}");
}

#[test]
fn non_utf8_symlinks_and_huge_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.txt");
    std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
    let e = load_file(&p, "portal", &policy(), NOW).unwrap_err();
    assert_eq!(e.reason(), "unrecognised", "{e}");

    let real = write(dir.path(), "real.json", STORAGE_STATE);
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = load_file(&link, "portal", &policy(), NOW).unwrap_err();
    assert_eq!(e.reason(), "not_regular_file", "{e}");

    let big = dir.path().join("big.txt");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = load_file(&big, "portal", &policy(), NOW).unwrap_err();
    assert_eq!(e.reason(), "too_large", "{e}");

    let e = load_file(&dir.path().join("missing.json"), "portal", &policy(), NOW).unwrap_err();
    assert_eq!(e.reason(), "unreadable", "{e}");
}

#[test]
fn a_file_others_may_read_is_loaded_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "open.json", STORAGE_STATE);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = load_file(&p, "portal", &policy(), NOW).unwrap();
    assert_eq!(s.warnings[0], DroppedWarning::WorldReadable { mode: 0o644 });
    assert!(s.warnings[0].to_string().contains("chmod 600"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let s = load_file(&p, "portal", &policy(), NOW).unwrap();
    assert!(!s
        .warnings
        .iter()
        .any(|w| matches!(w, DroppedWarning::WorldReadable { .. })));
    assert_eq!(
        permission_warning(0o100_602),
        Some(DroppedWarning::WorldReadable { mode: 0o602 })
    );
    assert_eq!(permission_warning(0o100_600), None);
}

#[test]
fn to_session_makes_a_ready_login_session_keyed_by_the_file_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "session-0912.json", STORAGE_STATE);
    let d = load_file(&p, "portal", &policy(), NOW).unwrap();
    let fp = fingerprint();
    let s = d.to_session(
        fp.clone(),
        "https://www.portal.example/account",
        NOW,
        Duration::from_secs(3600),
    );
    assert_eq!(s.account.as_deref(), Some("session-0912"));
    assert_eq!(s.target, "portal");
    assert_eq!(s.state, SessionState::Ready);
    assert_eq!(s.fingerprint, fp);
    assert_eq!(s.cookies, d.cookies);
    assert_eq!(s.expires_at, NOW + 3_600_000);
    assert_eq!(s.id.len(), 32);
}

#[test]
fn a_file_adds_nothing_to_a_record_that_holds_its_cookies_or_is_newer() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "session-0912.json", STORAGE_STATE);
    let d = load_file(&p, "portal", &policy(), NOW).unwrap();
    let url = "https://www.portal.example/account";
    let life = Duration::from_secs(3600);
    let written = std::fs::metadata(&p)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Refreshed before the file was written: only the cookies decide.
    let mut record = d.to_session(fingerprint(), url, written - 60_000, life);
    assert!(d.adds_nothing_to(&record), "the same cookies: nothing new");
    // More cookies in the record (set by the site since) and a leading dot written either
    // way still hold the file's.
    record
        .cookies
        .push(cookie("seen", "1", "www.portal.example"));
    for c in &mut record.cookies {
        if c.name == "pref" {
            c.domain = "portal.example".into();
        }
    }
    assert!(d.adds_nothing_to(&record));
    // A value the record does not have: a new sign-in, to be loaded.
    for c in &mut record.cookies {
        if c.name == "sid" {
            c.value = "older".into();
        }
    }
    assert!(!d.adds_nothing_to(&record));
    // Unless the record was refreshed after the file was written (its cookies are newer).
    record.refreshed_at = written + 1_000;
    assert!(d.adds_nothing_to(&record));
}

/// Reads a written-back file, checks it is private, and loads it again.
fn reload(p: &Path) -> DroppedSession {
    let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file left: {leftovers:?}"
    );
    load_file(p, "portal", &policy(), NOW).unwrap()
}

#[test]
fn write_back_keeps_the_format_and_refreshes_the_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let fp = fingerprint();
    let url = "https://www.portal.example/account";
    let cases = [
        (
            "a.json",
            STORAGE_STATE.to_string(),
            DroppedFormat::StorageState,
        ),
        (
            "b.txt",
            "#HttpOnly_www.portal.example\tFALSE\t/\tTRUE\t0\tsid\told\n\
             .analytics.example\tTRUE\t/\tFALSE\t0\t_ga\tGA1\n"
                .to_string(),
            DroppedFormat::CookiesTxt,
        ),
    ];
    for (name, text, format) in cases {
        let p = write(dir.path(), name, &text);
        // Written world-readable by the other process: the rewrite makes it private.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let d = load_file(&p, "portal", &policy(), NOW).unwrap();
        let mut s = d.to_session(fp.clone(), url, NOW, Duration::from_secs(60));
        s.cookies = vec![cookie("sid", "fresh", "www.portal.example")];
        s.cookies[0].http_only = true;
        d.write_back(&s).unwrap();
        let back = reload(&p);
        assert_eq!(back.format, format, "{name}");
        assert_eq!(back.cookies.len(), 1, "{name}");
        assert_eq!(back.cookies[0].value, "fresh", "{name}");
        assert!(back.cookies[0].http_only, "{name}");
        assert_eq!(
            back.foreign_cookies.len(),
            1,
            "other sites' cookies kept: {name}"
        );
        assert_eq!(back.foreign_cookies[0].name, "_ga");
    }
    // warmer's own format: the record with its fingerprint.
    let mut rec = empty_record("c", None).to_session(fp.clone(), url, NOW, Duration::from_secs(60));
    rec.cookies = vec![cookie("sid", "old", "www.portal.example")];
    let p = write(
        dir.path(),
        "c.json",
        &crate::export::render(&rec, crate::export::ExportFormat::Json, NOW),
    );
    let d = load_file(&p, "portal", &policy(), NOW).unwrap();
    rec.cookies[0].value = "fresh".into();
    d.write_back(&rec).unwrap();
    let back = reload(&p);
    assert_eq!(back.format, DroppedFormat::WarmerJson);
    assert_eq!(back.cookies[0].value, "fresh");
    assert_eq!(back.fingerprint, Some(fp));
}

/// Waits (at most 5 s, the contract) for the watcher's next events.
async fn next_events(w: &mut DroppedWatcher) -> Vec<DroppedEvent> {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("the watcher reports within 5 s")
}

fn spec(dir: &Path) -> DirSpec {
    DirSpec {
        dir: dir.to_path_buf(),
        target: "portal".into(),
        policy: policy(),
    }
}

#[tokio::test]
async fn the_watcher_reports_adds_changes_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let first = write(dir.path(), "pre.json", STORAGE_STATE);
    std::fs::create_dir(&sessions).unwrap();
    std::fs::rename(&first, sessions.join("pre.json")).unwrap();
    let mut w = DroppedWatcher::new(vec![spec(&sessions)]);

    // What is there at start is reported as added.
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].id, "pre");
    assert!(matches!(&ev[0].change, Change::Added(Ok(s)) if s.cookies.len() == 2));

    // A new file.
    write(
        &sessions,
        "new.txt",
        "www.portal.example\tFALSE\t/\tFALSE\t0\tsid\tv\n",
    );
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].id, "new");
    assert!(matches!(&ev[0].change, Change::Added(Ok(_))));

    // A changed file, rewritten in place.
    write(
        &sessions,
        "new.txt",
        "www.portal.example\tFALSE\t/\tFALSE\t0\tsid\tv2\nwww.portal.example\tFALSE\t/\tFALSE\t0\tb\tv\n",
    );
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(&ev[0].change, Change::Changed(Ok(s)) if s.cookies.len() == 2));

    // A bad file is reported, not fatal; hidden and other files are not looked at.
    write(&sessions, "bad.json", "not json");
    write(&sessions, ".hidden.json", "not json");
    write(&sessions, "notes.md", "x");
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].id, "bad");
    assert!(matches!(&ev[0].change, Change::Added(Err(e)) if e.reason() == "not_json"));

    // A removed file.
    std::fs::remove_file(sessions.join("pre.json")).unwrap();
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].id, "pre");
    assert!(matches!(ev[0].change, Change::Removed));

    // A second file for an id: the first in name order (new.json < new.txt) stands for it,
    // the other is refused once.
    write(&sessions, "new.json", STORAGE_STATE);
    let ev = next_events(&mut w).await;
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        matches!(&ev[0].change, Change::Changed(Ok(s)) if s.format == DroppedFormat::StorageState),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1].change, Change::Added(Err(DroppedError::DuplicateId { path, other, .. }))
            if path.ends_with("new.txt") && other.ends_with("new.json")),
        "{ev:?}"
    );

    // Its own write-back is not a change.
    let Change::Changed(Ok(current)) = &ev[0].change else {
        unreachable!("checked above")
    };
    let s = current.to_session(
        fingerprint(),
        "https://www.portal.example/",
        now_ms(),
        Duration::from_secs(60),
    );
    current.write_back(&s).unwrap();
    w.note_written("portal", &current.file);
    let quiet = tokio::time::timeout(RESCAN + Duration::from_millis(700), w.next()).await;
    assert!(quiet.is_err(), "no event for our own write: {quiet:?}");
}

#[tokio::test]
async fn the_rescan_finds_changes_without_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = DroppedWatcher::new(vec![spec(dir.path())]);
    // Without inotify signals, only the periodic rescan can find a file.
    w.watch = None;
    let started = tokio::time::timeout(Duration::from_millis(200), w.next()).await;
    assert!(started.is_err(), "an empty dir reports nothing");
    write(dir.path(), "late.json", STORAGE_STATE);
    let ev = next_events(&mut w).await;
    assert_eq!(ev[0].id, "late");
    assert!(matches!(&ev[0].change, Change::Added(Ok(_))));
}
