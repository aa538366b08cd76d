//! The MongoDB backend with real daemons: two `warmer serve` processes (the real binary, a real
//! Chromium each) on one MongoDB-protocol server are one pool. The server is nx-27017
//! (tests/common/mongo.rs: installed by scripts/setup, started on a free port; missing, the test
//! fails loudly, never skips), or the real MongoDB `$MONGODB_URL` names.
//!
//! - Together they warm `pool_size` sessions for the target, not `pool_size` each: the work
//!   queue and its claims are shared, and after many top-up rounds of both daemons the store
//!   still holds `pool_size` ready sessions.
//! - A session one daemon warmed is served by the other, and a usage report through each lands
//!   on the one shared record of its counters (`$inc`): both are counted.
//!
//! - `warmer store copy` (the real binary) moves a sled store onto MongoDB and back: every
//!   session (decrypted with the source's key, encrypted with the destination's), event and
//!   audit entry, with usage counted in MongoDB folded into the copy back; a second run writes
//!   nothing.
//!
//! The record contract itself (leases, fencing, holds, 1,000 concurrent increments, changes,
//! encryption at rest) runs on the same server in tests/store_contract.rs (`mongodb::`).

mod common;
#[path = "common/mongo.rs"]
mod mongo_server;
#[path = "common/redis.rs"]
mod redis_server;

use common::daemon::Site;
use common::eventually;
use session_warmer::config::{SecretUrl, StoreBackend, StoreConfig};
use session_warmer::session::SessionState;
use session_warmer::store::{self, AuditEntry, Backend, Event, SledStore, StoreKey, Usage};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The target both daemons warm, and its pool size.
const TARGET: &str = "demo";
const POOL: usize = 2;

/// How long warming the pool may take (two Chromiums on a loaded machine).
const WARM_DEADLINE: Duration = Duration::from_secs(120);

/// A `warmer serve` process, stopped with SIGTERM (then SIGKILL after 10 s) when dropped, so
/// its Chromium is closed.
struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signals a child this test started and still owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free 127.0.0.1 port.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The store URL: `$MONGODB_URL` (a real server), else the nx-27017 this test started.
fn store_url(server: &Option<mongo_server::MongoServer>) -> String {
    match server {
        Some(s) => s.url("warmer_daemons"),
        None => std::env::var("MONGODB_URL").unwrap(),
    }
}

/// Starts `warmer serve` as `node` with the store at `url` under `prefix`, warming the demo
/// site's target, its files under `dir`.
fn serve(dir: &Path, node: &str, url: &str, prefix: &str, site: &Site) -> Serve {
    let port = free_port();
    let events: Vec<String> = session_warmer::demo::demo_events()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\
         [store]\nbackend = \"mongodb\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\ntimeout = \"10s\"\n\
         [cluster]\nnode = \"{node}\"\n\
         [schedule]\ntop_up_every = \"300ms\"\npersist_every = \"500ms\"\n\
         [[targets]]\nname = \"{TARGET}\"\nevent_url = \"{}\"\nevents = [{}]\n\
         warmup = \"300ms\"\npool_size = {POOL}\n",
        site.event_url_template(),
        events.join(", ")
    );
    let cfg = dir.join(format!("{node}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let log = std::fs::File::create(dir.join(format!("{node}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_warmer"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(dir)
        .env_remove("WARMER_STORE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("warmer serve starts");
    Serve {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// The test's own view of the shared store.
async fn backend(url: &str, prefix: &str) -> Backend {
    let config = StoreConfig {
        backend: StoreBackend::Mongodb,
        url: Some(SecretUrl::new(url)),
        prefix: prefix.into(),
        timeout: Duration::from_secs(10),
        ..StoreConfig::default()
    };
    store::open(&config, None).await.expect("the store opens")
}

/// Ids of the target's ready sessions in the store.
async fn ready(b: &Backend) -> Vec<String> {
    b.records
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.target == TARGET && s.state == SessionState::Ready)
        .map(|s| s.id)
        .collect()
}

/// POSTs a successful usage report for `id` to `base`; the status.
async fn report(c: &reqwest::Client, base: &str, id: &str) -> u16 {
    c.post(format!("{base}/api/sessions/{id}/usage"))
        .json(&serde_json::json!({"success": true, "status": 200}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_mongodb_warm_one_pool_and_count_each_others_reports() {
    let server = std::env::var("MONGODB_URL")
        .is_err()
        .then(mongo_server::MongoServer::start);
    let url = store_url(&server);
    let prefix = format!("daemons{:08x}", rand::random::<u32>());
    let site = Site::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), "node-a", &url, &prefix, &site);
    let b = serve(dir.path(), "node-b", &url, &prefix, &site);
    let store = backend(&url, &prefix).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    // One pool: POOL ready sessions in the store, warmed by the two together.
    eventually("the pool to be full", WARM_DEADLINE, || async {
        (ready(&store).await.len() >= POOL).then_some(())
    })
    .await;
    let ids = ready(&store).await;
    assert_eq!(ids.len(), POOL, "{ids:?}");

    // Each daemon hands out a session of the shared pool and takes a report for the same one.
    let id = ids[0].clone();
    for d in [&a, &b] {
        eventually(
            "the daemon to know the session and take its report",
            Duration::from_secs(30),
            || async { (report(&c, &d.base, &id).await == 200).then_some(()) },
        )
        .await;
    }
    let usage = store
        .coordination
        .usage(TARGET, &id)
        .await
        .unwrap()
        .expect("the session has shared counters");
    assert!(
        usage.successes >= 2,
        "both daemons' reports counted on one record: {usage:?}"
    );
    assert_eq!(usage.failures, 0, "{usage:?}");
    // Many top-up rounds later (every 300 ms, on both daemons), still one pool's worth.
    let now_ready = ready(&store).await;
    assert_eq!(now_ready.len(), POOL, "{now_ready:?}");
    // Both daemons beat into the same store.
    let nodes = store
        .coordination
        .nodes(Duration::from_secs(60))
        .await
        .unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert!(
        names.contains(&"node-a") && names.contains(&"node-b"),
        "{names:?}"
    );
    drop((a, b));
}

/// Runs `warmer ARGS` in `dir` and requires success; returns stdout.
fn warmer_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
        .current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("WARMER_KEY")
        .env_remove("WARMER_STORE_URL")
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "warmer {args:?}:\n{stderr}\n{stdout}");
    stdout
}

/// A 0600 key file of 64 hex characters holding `byte` 32 times.
fn key_file(dir: &Path, name: &str, byte: u8) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{byte:02x}").repeat(32)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_sled_store_onto_mongodb_and_back() {
    let server = std::env::var("MONGODB_URL")
        .is_err()
        .then(mongo_server::MongoServer::start);
    let url = store_url(&server);
    let prefix = format!("copy{:08x}", rand::random::<u32>());
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    key_file(here, "a.key", 0xA1);
    key_file(here, "b.key", 0xB2);
    std::fs::write(
        here.join("warmer.toml"),
        "[[targets]]\nname = \"tickets\"\nevent_url = \"http://127.0.0.1:9/e/{event}\"\n",
    )
    .unwrap();

    // A sled store (key A) with two sessions, three events and two audit entries.
    let mut sessions = Vec::new();
    for (id, cookie) in [("s1", "secret-1"), ("s2", "secret-2")] {
        let mut s: session_warmer::session::Session =
            serde_json::from_str(include_str!("fixtures/session_v1.json")).unwrap();
        s.id = id.into();
        s.target = "tickets".into();
        s.state = SessionState::Ready;
        s.cookies[0].value = cookie.into();
        sessions.push(s);
    }
    let events: Vec<Event> = ["e1", "e2", "e3"]
        .iter()
        .map(|id| Event {
            target: "tickets".into(),
            id: (*id).into(),
            url: None,
            added_at: 1_700_000_000_000,
        })
        .collect();
    {
        let sled =
            SledStore::open_with(&here.join("a.sled"), Some(StoreKey::from_bytes([0xA1; 32])))
                .unwrap();
        for s in &sessions {
            sled.put_session(s).unwrap();
        }
        sled.put_events(&events).unwrap();
        for at in [10, 20] {
            sled.append_audit(&AuditEntry {
                at,
                session: None,
                target: Some("tickets".into()),
                action: "warmed".into(),
                detail: String::new(),
            })
            .unwrap();
        }
        sled.flush().unwrap();
    }

    let spec = format!("{url}?prefix={prefix}");
    let there = [
        "store",
        "copy",
        "--from",
        "sled:a.sled",
        "--to",
        &spec,
        "--from-key-file",
        "a.key",
        "--to-key-file",
        "b.key",
    ];
    let out = warmer_ok(here, &there);
    assert!(out.contains("sessions: 2 written"), "{out}");
    assert!(out.contains("events: 3 written"), "{out}");
    assert!(out.contains("audit: 2 written"), "{out}");
    let out = warmer_ok(here, &there);
    assert!(out.contains("sessions: 0 written, 2 unchanged"), "{out}");
    assert!(out.contains("events: 0 written, 3 already there"), "{out}");

    // In MongoDB, encrypted under key B.
    let config = StoreConfig {
        backend: StoreBackend::Mongodb,
        url: Some(SecretUrl::new(&url)),
        prefix: prefix.clone(),
        timeout: Duration::from_secs(10),
        ..StoreConfig::default()
    };
    let m = store::open(&config, Some(StoreKey::from_bytes([0xB2; 32])))
        .await
        .unwrap();
    assert_eq!(m.records.list_sessions().await.unwrap(), sessions);
    assert_eq!(m.records.list_events(None).await.unwrap(), events);
    assert!(matches!(
        store::open(&config, None).await,
        Err(store::StoreError::KeyRequired { .. })
    ));
    let usage = Usage {
        uses: 7,
        successes: 6,
        failures: 1,
    };
    m.coordination
        .add_usage("tickets", "s2", usage)
        .await
        .unwrap();

    // And back to a new sled store (key A), with the usage MongoDB counted.
    let out = warmer_ok(
        here,
        &[
            "store",
            "copy",
            "--from",
            &spec,
            "--to",
            "sled:c.sled",
            "--from-key-file",
            "b.key",
            "--to-key-file",
            "a.key",
        ],
    );
    assert!(out.contains("sessions: 2 written"), "{out}");
    let back =
        SledStore::open_with(&here.join("c.sled"), Some(StoreKey::from_bytes([0xA1; 32]))).unwrap();
    let got = back.list_sessions().unwrap();
    assert_eq!(ids_of(&got), ["s1", "s2"]);
    assert_eq!(got[0], sessions[0]);
    assert_eq!(
        (
            got[1].health.uses,
            got[1].health.successes,
            got[1].health.failures
        ),
        (7, 6, 1)
    );
    assert_eq!(back.list_events(None).unwrap(), events);
    assert_eq!(back.recent_audit(10).unwrap().len(), 2);
}

/// The ids of `sessions`, in order.
fn ids_of(sessions: &[session_warmer::session::Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}
