//! One contract, every backend: each test below runs against every store backend (sled in a
//! temporary directory, memory), opened the way the daemon opens it (`store::open` with
//! `store.backend`). Records: sessions CRUD and id order, batched updates that never bring a
//! deleted session back, events (first kept, target-then-id order, delete, import), the audit
//! trail (newest first, trim), persistence across a reopen (or, for memory, its absence) and
//! encryption at rest. Coordination: one claim per work item even under concurrent claimers, a
//! lapsed lease taken over, a fenced commit refused once the lease is lost (nothing written),
//! a new session just committed still counted by `top_up` on a shared store (other daemons'
//! indexes see it only at their next resync), exclusive holds, and 1,000 concurrent usage
//! increments adding up to 1,000. Also: claims in due-then-queueing order with 2,000 items due
//! at once (claims/s printed), the coordination counters (claims held, takeovers, lease
//! losses, dead letters), heartbeats listing the daemon, `changes` since a revision (written,
//! deleted, reset) and `ping`.
//!
//! Adding a backend is one line at the bottom (`backend_suite!(redis, Kind::Redis);`) and one
//! arm in [`Kind::config`]. The Redis backend runs on a real `redis-server` started by the
//! test (tests/common/redis.rs; missing, it fails loudly), each test under its own key prefix;
//! `redis_only` below adds what only a shared backend can show: three daemons' usage reports
//! all counted, a late commit of a daemon that lost its lease refused, a daemon with another
//! key refused, Redis killed and restarted, Redis frozen (every call fails within
//! `store.timeout`), credentials kept out of messages and logs, a claim's cost inside Redis
//! with 2,000 items due in one millisecond, every daemon's heartbeat seen by every other, one
//! daemon's writes in another's `changes`.
//! Lease timing uses real time with short ttls (a shared backend
//! measures leases on its own clock, so paused tokio time cannot drive it); only "it lapsed
//! after we waited longer than its ttl" is asserted, which a slow machine cannot break.

use session_warmer::config::{SecretUrl, StoreBackend, StoreConfig};
use session_warmer::session::{Cookie, Session, SessionState};
use session_warmer::store::{
    self, AtRest, AuditEntry, Backend, CoordError, Event, StoreError, StoreKey, Usage, Work,
};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/redis.rs"]
mod redis_server;

#[path = "common/mongo.rs"]
mod mongo_server;

/// A backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sled,
    Memory,
    Redis,
    /// MongoDB: `$MONGODB_URL` when set (a real server), else nx-27017 started by the test.
    Mongodb,
}

impl Kind {
    /// The `[store]` section that selects this backend, keeping its data under `dir`.
    fn config(self, dir: &Path) -> StoreConfig {
        let mut c = StoreConfig {
            path: dir.join("store"),
            ..StoreConfig::default()
        };
        c.backend = match self {
            Kind::Sled => StoreBackend::Sled,
            Kind::Memory => StoreBackend::Memory,
            Kind::Redis => {
                c.url = Some(SecretUrl::new(redis_server::shared().url()));
                c.prefix = prefix_for(dir);
                StoreBackend::Redis
            }
            Kind::Mongodb => {
                let url = match std::env::var("MONGODB_URL") {
                    Ok(real) => real,
                    Err(_) => {
                        // nx-27017 answers one call at a time (about 450 a second here): the
                        // 1,000 concurrent usage increments queue for longer than the 2 s
                        // default. A real server keeps the default.
                        c.timeout = Duration::from_secs(15);
                        mongo_server::shared().url("warmer_test")
                    }
                };
                c.url = Some(SecretUrl::new(url));
                c.prefix = prefix_for(dir);
                StoreBackend::Mongodb
            }
        };
        c
    }
}

/// A key prefix of its own for the test whose data would live in `dir` (its name is unique),
/// so tests sharing one redis-server never see each other's keys; the same for a reopen.
fn prefix_for(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy();
    let clean: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("t{clean}")
}

/// A backend opened in its own temporary place.
struct Fixture {
    kind: Kind,
    /// Where a persistent backend keeps its data; removed at the end.
    dir: tempfile::TempDir,
    backend: Backend,
}

impl Fixture {
    async fn open(kind: Kind, key: Option<StoreKey>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = store::open(&kind.config(dir.path()), key).await.unwrap();
        Self { kind, dir, backend }
    }

    /// Closes the backend and opens the same place again with `key`.
    async fn reopen(
        self,
        key: Option<StoreKey>,
    ) -> (tempfile::TempDir, Result<Backend, StoreError>) {
        let Fixture { kind, dir, backend } = self;
        backend.records.flush().await.unwrap();
        drop(backend);
        let again = store::open(&kind.config(dir.path()), key).await;
        (dir, again)
    }
}

fn key_a() -> StoreKey {
    StoreKey::from_bytes([0xA1; 32])
}

fn key_b() -> StoreKey {
    StoreKey::from_bytes([0xB2; 32])
}

/// A full session record (the checked-in v1 fixture) with a secret cookie; `seed` varies its
/// content.
fn session(id: &str, seed: u64) -> Session {
    let mut s: Session = serde_json::from_str(include_str!("fixtures/session_v1.json")).unwrap();
    s.id = id.into();
    s.target = "tickets".into();
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

fn event(target: &str, id: &str, url: Option<&str>) -> Event {
    Event {
        target: target.into(),
        id: id.into(),
        url: url.map(str::to_string),
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

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

fn event_keys(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.target.clone(), e.id.clone()))
        .collect()
}

fn refresh(id: &str) -> Work {
    Work::Refresh {
        session: id.to_string(),
    }
}

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT`].
const PAST_SHORT: Duration = Duration::from_millis(450);

// ---- records ----

async fn sessions_crud(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    assert!(r.list_sessions().await.unwrap().is_empty());
    for (id, seed) in [("b", 2), ("a", 1), ("c", 3)] {
        r.put_session(&session(id, seed)).await.unwrap();
    }
    assert_eq!(ids(&r.list_sessions().await.unwrap()), ["a", "b", "c"]);
    assert_eq!(r.get_session("b").await.unwrap(), Some(session("b", 2)));
    assert_eq!(r.get_session("nope").await.unwrap(), None);

    r.put_session(&session("b", 20)).await.unwrap();
    assert_eq!(r.get_session("b").await.unwrap(), Some(session("b", 20)));
    assert_eq!(r.list_sessions().await.unwrap().len(), 3);

    assert!(r.delete_session("b").await.unwrap());
    assert!(!r.delete_session("b").await.unwrap());
    assert_eq!(r.get_session("b").await.unwrap(), None);
    assert_eq!(ids(&r.list_sessions().await.unwrap()), ["a", "c"]);
}

async fn update_sessions_never_bring_back_a_deleted_one(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    r.put_session(&session("a", 1)).await.unwrap();
    r.put_session(&session("b", 2)).await.unwrap();
    assert!(r.delete_session("b").await.unwrap());
    let updates = [Arc::new(session("a", 10)), Arc::new(session("b", 20))];
    assert_eq!(r.update_sessions(&updates).await.unwrap(), 1);
    assert_eq!(r.get_session("a").await.unwrap(), Some(session("a", 10)));
    assert_eq!(r.get_session("b").await.unwrap(), None);
    assert_eq!(r.update_sessions(&[]).await.unwrap(), 0);
}

async fn events_keep_the_first_and_list_in_target_then_id_order(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    assert!(r.put_event(&event("b", "2", None)).await.unwrap());
    assert!(r.put_event(&event("a", "9", None)).await.unwrap());
    assert!(r.put_event(&event("ab", "1", None)).await.unwrap());
    assert!(r
        .put_event(&event("a", "1", Some("https://a/1")))
        .await
        .unwrap());
    // Same target and id: the first one is kept.
    assert!(!r
        .put_event(&event("a", "1", Some("https://a/other")))
        .await
        .unwrap());
    // Same id, another target: a different event.
    assert!(r.put_event(&event("b", "9", None)).await.unwrap());

    let all = r.list_events(None).await.unwrap();
    let expect = [("a", "1"), ("a", "9"), ("ab", "1"), ("b", "2"), ("b", "9")];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .collect();
    assert_eq!(event_keys(&all), expect);
    assert_eq!(all[0].url.as_deref(), Some("https://a/1"));
    // A target's list holds only that target (not "ab" for "a").
    let a = r.list_events(Some("a")).await.unwrap();
    assert_eq!(event_keys(&a), expect[..2]);
    assert!(r.list_events(Some("zz")).await.unwrap().is_empty());

    assert!(r.delete_event("a", "9").await.unwrap());
    assert!(!r.delete_event("a", "9").await.unwrap());
    assert!(!r.delete_event("b", "1").await.unwrap());
    assert_eq!(r.list_events(Some("a")).await.unwrap().len(), 1);
}

async fn event_import_counts_only_new_events(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    assert!(r.put_event(&event("t", "2", None)).await.unwrap());
    let batch = [
        event("t", "1", None),
        event("t", "2", Some("https://t/2")),
        event("t", "3", None),
        event("t", "1", Some("https://t/dupe")),
    ];
    assert_eq!(r.put_events(&batch).await.unwrap(), 2);
    let listed = r.list_events(Some("t")).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(listed.iter().all(|e| e.url.is_none()), "first ones kept");
    assert_eq!(r.put_events(&batch).await.unwrap(), 0);
}

async fn audit_is_newest_first_and_trimmed_to_the_newest(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    assert!(r.recent_audit(10).await.unwrap().is_empty());
    for at in 1..=5 {
        r.append_audit(&audit(at)).await.unwrap();
    }
    let at = |v: Vec<AuditEntry>| v.iter().map(|e| e.at).collect::<Vec<_>>();
    assert_eq!(at(r.recent_audit(3).await.unwrap()), [5, 4, 3]);
    assert_eq!(at(r.recent_audit(10).await.unwrap()), [5, 4, 3, 2, 1]);
    assert_eq!(r.recent_audit(1).await.unwrap()[0], audit(5));
    assert_eq!(r.trim_audit(2).await.unwrap(), 3);
    assert_eq!(at(r.recent_audit(10).await.unwrap()), [5, 4]);
    assert_eq!(r.trim_audit(5).await.unwrap(), 0);
    r.append_audit(&audit(6)).await.unwrap();
    assert_eq!(at(r.recent_audit(10).await.unwrap()), [6, 5, 4]);
}

async fn reopening_keeps_everything_or_says_nothing_is_kept(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let info = f.backend.info();
    let r = &f.backend.records;
    r.put_session(&session("a", 1)).await.unwrap();
    r.put_event(&event("t", "1", None)).await.unwrap();
    r.append_audit(&audit(1)).await.unwrap();
    let (_dir, again) = f.reopen(None).await;
    let r = again.unwrap().records;
    if info.is_persistent() {
        assert_eq!(info.at_rest, AtRest::Plaintext);
        assert_eq!(r.get_session("a").await.unwrap(), Some(session("a", 1)));
        assert_eq!(r.list_events(None).await.unwrap().len(), 1);
        assert_eq!(r.recent_audit(5).await.unwrap(), [audit(1)]);
    } else {
        assert_eq!(kind, Kind::Memory, "only memory keeps nothing");
        assert_eq!(info.at_rest, AtRest::NotPersisted);
        assert!(r.list_sessions().await.unwrap().is_empty());
        assert!(r.list_events(None).await.unwrap().is_empty());
        assert!(r.recent_audit(5).await.unwrap().is_empty());
    }
}

async fn a_key_encrypts_what_is_at_rest_and_is_required_to_reopen(kind: Kind) {
    let f = Fixture::open(kind, Some(key_a())).await;
    let info = f.backend.info();
    let r = &f.backend.records;
    r.put_session(&session("a", 1)).await.unwrap();
    assert_eq!(r.get_session("a").await.unwrap(), Some(session("a", 1)));
    if !info.is_persistent() {
        // Nothing at rest: the key is not used, and a fresh open needs none.
        assert_eq!(info.at_rest, AtRest::NotPersisted);
        let (_dir, again) = f.reopen(None).await;
        assert!(again
            .unwrap()
            .records
            .list_sessions()
            .await
            .unwrap()
            .is_empty());
        return;
    }
    assert_eq!(info.at_rest, AtRest::Encrypted(key_a().id()));
    let (dir, without) = f.reopen(None).await;
    assert!(
        matches!(without, Err(StoreError::KeyRequired { .. })),
        "{without:?}"
    );
    let config = kind.config(dir.path());
    let wrong = store::open(&config, Some(key_b())).await;
    assert!(
        matches!(wrong, Err(StoreError::KeyMismatch { .. })),
        "{wrong:?}"
    );
    let right = store::open(&config, Some(key_a())).await.unwrap();
    assert_eq!(
        right.records.get_session("a").await.unwrap(),
        Some(session("a", 1))
    );
}

async fn changes_since_a_revision_are_what_was_written_and_deleted_after_it(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let r = &f.backend.records;
    let start = r.changes("tickets", 0).await.unwrap();
    assert_eq!(start, store::Changes::default(), "nothing yet");
    assert!(
        r.changes("tickets", 7).await.unwrap().reset,
        "a revision from elsewhere"
    );

    r.put_session(&session("a", 1)).await.unwrap();
    r.put_session(&session("b", 1)).await.unwrap();
    let mut other = session("o", 1);
    other.target = "other".into();
    r.put_session(&other).await.unwrap();
    let first = r.changes("tickets", 0).await.unwrap();
    assert!(!first.reset);
    assert_eq!(ids(&first.written), ["a", "b"], "oldest change first");
    assert!(first.deleted.is_empty());
    // Nothing since: nothing to read.
    let quiet = r.changes("tickets", first.rev).await.unwrap();
    assert_eq!(
        (quiet.rev, quiet.written.len(), quiet.deleted.len()),
        (first.rev, 0, 0)
    );

    // A rewrite (retired), a batched update, a delete: each after the last revision seen.
    let mut retired = session("a", 2);
    retired.state = SessionState::Retired;
    r.put_session(&retired).await.unwrap();
    r.update_sessions(&[Arc::new(session("b", 3))])
        .await
        .unwrap();
    assert!(r.delete_session("b").await.unwrap());
    let next = r.changes("tickets", first.rev).await.unwrap();
    assert!(next.rev > first.rev);
    assert_eq!(next.written, vec![retired.clone()]);
    assert_eq!(next.deleted, ["b"]);
    // A commit writes through the same door.
    let c = &f.backend.coordination;
    assert!(c
        .enqueue("tickets", refresh("c"), Duration::ZERO)
        .await
        .unwrap());
    let claim = c.claim("tickets", LONG).await.unwrap().unwrap();
    c.commit(&claim, Some(&session("c", 4))).await.unwrap();
    let last = r.changes("tickets", next.rev).await.unwrap();
    assert_eq!(ids(&last.written), ["c"]);
    // The other target saw only its own.
    let o = r.changes("other", 0).await.unwrap();
    assert_eq!((ids(&o.written), o.deleted.len()), (vec!["o"], 0));
    assert!(r.changes("tickets", last.rev + 1).await.unwrap().reset);
}

async fn a_ping_answers_while_the_store_is_up(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    f.backend.records.ping().await.unwrap();
}

// ---- coordination ----

async fn a_work_item_is_claimed_once_even_by_concurrent_claimers(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    assert_eq!(c.top_up("t", 40).await.unwrap(), 40);
    assert_eq!(c.top_up("t", 40).await.unwrap(), 0, "no overshoot");
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(claim) = c.claim("t", LONG).await.unwrap() {
                    got.push(claim.work.key());
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in claimers {
        all.extend(h.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(distinct.len(), 40, "an item was claimed twice");
    let p = c.pending("t").await.unwrap();
    assert_eq!((p.queued, p.in_flight), (0, 40));
    // In flight, so not queued again, and nothing else to claim.
    let in_flight = Work::from_key(&all[0]).unwrap();
    assert!(!c.enqueue("t", in_flight, Duration::ZERO).await.unwrap());
    assert!(c.claim("t", LONG).await.unwrap().is_none());
    assert!(c.claim("other", LONG).await.unwrap().is_none());
}

async fn a_lapsed_lease_is_taken_over_and_its_late_commit_refused(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let (c, r) = (&f.backend.coordination, &f.backend.records);
    assert!(c.enqueue("t", refresh("x"), Duration::ZERO).await.unwrap());
    let first = c.claim("t", SHORT).await.unwrap().unwrap();
    assert_eq!(first.work, refresh("x"));
    tokio::time::sleep(PAST_SHORT).await;

    // Lapsed: the holder may neither renew nor commit, even before a reap.
    assert!(matches!(
        c.renew(&first, LONG).await,
        Err(CoordError::LeaseLost { .. })
    ));
    let reaped = c.reap(5).await.unwrap();
    assert_eq!(reaped.requeued.len(), 1, "{reaped:?}");
    assert_eq!(reaped.requeued[0].work, refresh("x"));
    assert!(reaped.dead.is_empty());

    let second = c.claim("t", LONG).await.unwrap().unwrap();
    assert_eq!(second.work, first.work);
    assert_ne!(second.token, first.token);
    c.renew(&second, LONG).await.unwrap();

    // The first holder's late result is refused and writes nothing.
    let late = c.commit(&first, Some(&session("x", 1))).await;
    assert!(
        matches!(late, Err(CoordError::LeaseLost { .. })),
        "{late:?}"
    );
    assert_eq!(r.get_session("x").await.unwrap(), None);
    assert!(c.abandon(&first, None).await.is_err());

    c.commit(&second, Some(&session("x", 2))).await.unwrap();
    assert_eq!(r.get_session("x").await.unwrap(), Some(session("x", 2)));
    // Done: a second commit of the same grant is refused, nothing is pending.
    assert!(c.commit(&second, None).await.is_err());
    let p = c.pending("t").await.unwrap();
    assert_eq!((p.queued, p.in_flight), (0, 0));
    assert!(c.reap(5).await.unwrap().requeued.is_empty());
}

async fn a_new_session_just_committed_counts_for_top_up_until_every_daemon_can_see_it(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let (c, r) = (&f.backend.coordination, &f.backend.records);
    assert_eq!(c.top_up("t", 1).await.unwrap(), 1);
    let claim = c.claim("t", LONG).await.unwrap().unwrap();
    c.commit(&claim, Some(&session("w", 1))).await.unwrap();
    assert!(r.get_session("w").await.unwrap().is_some());
    // A daemon whose index has not resynced yet counts the pool one short right after.
    let at_once = c.top_up("t", 1).await.unwrap();
    if matches!(kind, Kind::Redis | Kind::Mongodb) {
        assert_eq!(at_once, 0, "the new session still counts on a shared store");
        // Later every daemon's index holds it: it no longer counts here.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while c.top_up("t", 1).await.unwrap() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the committed session counted for top_up for 15 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        // Alone on its store, the daemon's own index holds it already.
        assert_eq!(at_once, 1);
    }
    // A warm given up wrote nothing: it does not count a moment longer.
    let failed = c.claim("t", LONG).await.unwrap().unwrap();
    c.abandon(&failed, None).await.unwrap();
    assert_eq!(c.top_up("t", 1).await.unwrap(), 1);
}

async fn a_named_item_is_done_by_one_claimer_fenced_and_rests_after(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let (c, r) = (f.backend.coordination.clone(), &f.backend.records);
    let item = refresh("x");
    // Twenty daemons find it due at once: one is granted it.
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let (c, item) = (c.clone(), item.clone());
            tokio::spawn(async move { c.claim_item("t", &item, SHORT).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tries {
        granted.extend(t.await.unwrap());
    }
    assert_eq!(granted.len(), 1, "exactly one grant");
    let first = granted.pop().unwrap();
    assert_eq!(first.work, item);
    c.renew_item(&first, SHORT).await.unwrap();
    c.put_fenced(&first, &session("x", 1)).await.unwrap();
    assert_eq!(r.get_session("x").await.unwrap(), Some(session("x", 1)));
    // Named items are not queued: the queue stays empty, other items are free.
    let p = c.pending("t").await.unwrap();
    assert_eq!((p.queued, p.in_flight), (0, 0));
    assert!(c.claim("t", LONG).await.unwrap().is_none());
    let other = c
        .claim_item("t", &refresh("y"), LONG)
        .await
        .unwrap()
        .unwrap();
    c.finish_item(&other, Duration::ZERO).await.unwrap();

    // The holder stalls past its ttl: refused from then on, even before anyone takes over.
    tokio::time::sleep(PAST_SHORT).await;
    assert!(matches!(
        c.renew_item(&first, LONG).await,
        Err(CoordError::LeaseLost { .. })
    ));
    let second = c.claim_item("t", &item, LONG).await.unwrap().unwrap();
    assert_ne!(second.token, first.token);
    let late = c.put_fenced(&first, &session("x", 9)).await;
    assert!(
        matches!(late, Err(CoordError::LeaseLost { .. })),
        "{late:?}"
    );
    assert!(c.finish_item(&first, LONG).await.is_err());
    assert_eq!(r.get_session("x").await.unwrap(), Some(session("x", 1)));
    c.put_fenced(&second, &session("x", 2)).await.unwrap();
    assert_eq!(r.get_session("x").await.unwrap(), Some(session("x", 2)));

    // Finished, it rests: nobody claims it until the rest is over, then anyone may.
    c.finish_item(&second, SHORT).await.unwrap();
    assert!(c.renew_item(&second, LONG).await.is_err(), "finished");
    assert!(c.claim_item("t", &item, LONG).await.unwrap().is_none());
    tokio::time::sleep(PAST_SHORT).await;
    let third = c.claim_item("t", &item, LONG).await.unwrap().unwrap();
    c.finish_item(&third, Duration::ZERO).await.unwrap();
    assert!(
        c.claim_item("t", &item, LONG).await.unwrap().is_some(),
        "no rest"
    );
    // A lapsed grant is a takeover; a resting one is not; one lease loss (the stalled holder).
    let n = c.counters();
    assert_eq!((n.claims, n.takeovers, n.lease_losses), (5, 1, 1), "{n:?}");
}

async fn a_hold_is_exclusive_until_released_or_lapsed(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.hold("t", "s", LONG).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tries {
        granted.extend(t.await.unwrap());
    }
    assert_eq!(granted.len(), 1, "exactly one hold granted");
    let hold = granted.pop().unwrap();
    assert!(c.is_held("t", "s").await.unwrap());
    assert!(c.release_hold(&hold).await.unwrap());
    assert!(!c.is_held("t", "s").await.unwrap());
    assert!(!c.release_hold(&hold).await.unwrap());

    let short = c.hold("t", "s", SHORT).await.unwrap().unwrap();
    assert!(c.hold("t", "s", LONG).await.unwrap().is_none());
    tokio::time::sleep(PAST_SHORT).await;
    assert!(!c.is_held("t", "s").await.unwrap());
    assert!(matches!(
        c.renew_hold(&short, LONG).await,
        Err(CoordError::LeaseLost { .. })
    ));
    let next = c.hold("t", "s", LONG).await.unwrap().unwrap();
    assert!(
        !c.release_hold(&short).await.unwrap(),
        "a lapsed grant frees nothing"
    );
    assert!(c.is_held("t", "s").await.unwrap());
    c.renew_hold(&next, LONG).await.unwrap();
}

async fn concurrent_usage_increments_are_never_lost(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    let base = Usage {
        uses: 5,
        successes: 4,
        failures: 1,
    };
    assert!(c.seed_usage("t", "s", base).await.unwrap());
    assert!(!c.seed_usage("t", "s", Usage::default()).await.unwrap());
    let adds: Vec<_> = (0..1000u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let delta = Usage {
                    uses: 1,
                    successes: u64::from(i % 2 == 0),
                    failures: u64::from(i % 2 == 1),
                };
                c.add_usage("t", "s", delta).await.unwrap().uses
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for a in adds {
        assert!(seen.insert(a.await.unwrap()), "two adds saw the same total");
    }
    assert_eq!(seen, (6..=1005).collect::<HashSet<u64>>());
    let total = c.usage("t", "s").await.unwrap().unwrap();
    assert_eq!(
        total,
        Usage {
            uses: 1005,
            successes: 504,
            failures: 501
        }
    );
    assert_eq!(c.usage("t", "other").await.unwrap(), None);
    c.forget("t", "s").await.unwrap();
    assert_eq!(c.usage("t", "s").await.unwrap(), None);
}

async fn claims_take_the_head_in_due_then_queue_order_even_with_2000_queued(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    // 2,000 new-session items queued in one call: all due at the same millisecond.
    assert_eq!(c.top_up("t", 2000).await.unwrap(), 2000);
    // Due, and held, in an hour: 2,000 claims take ~40 s on nx-27017 alone (over 60 s on a
    // loaded machine), and neither may the later item come due nor a claim lapse before the
    // last is taken.
    let hour = Duration::from_secs(3600);
    assert!(c.enqueue("t", refresh("later"), hour).await.unwrap());
    let start = std::time::Instant::now();
    let mut order = Vec::with_capacity(2000);
    while let Some(claim) = c.claim("t", hour).await.unwrap() {
        order.push(claim.work);
    }
    let took = start.elapsed();
    eprintln!(
        "{kind:?}: 2,000 claims with 2,000 queued in {took:?} ({:.0} claims/s)",
        2000.0 / took.as_secs_f64()
    );
    let want: Vec<Work> = (1..=2000).map(|seq| Work::Warm { seq }).collect();
    assert!(order == want, "not claimed in queueing order");
    let p = c.pending("t").await.unwrap();
    assert_eq!((p.queued, p.in_flight), (1, 2000), "the later item waits");
    assert_eq!(c.counters().claims_held, 2000);
}

async fn counters_show_claims_held_takeovers_lease_losses_and_dead_letters(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    let none = store::CoordCounters::default();
    assert_eq!(c.counters(), none);
    for id in ["x", "y"] {
        assert!(c.enqueue("t", refresh(id), Duration::ZERO).await.unwrap());
    }
    let x = c.claim("t", SHORT).await.unwrap().unwrap();
    let y = c.claim("t", LONG).await.unwrap().unwrap();
    assert_eq!(
        (x.work.clone(), y.work.clone()),
        (refresh("x"), refresh("y"))
    );
    let n = c.counters();
    assert_eq!((n.claims_held, n.claims, n.takeovers), (2, 2, 0));

    // x lapses: its renew and its abandon are refused, one lease loss.
    tokio::time::sleep(PAST_SHORT).await;
    assert!(c.renew(&x, LONG).await.is_err());
    assert!(c.abandon(&x, None).await.is_err());
    let n = c.counters();
    assert_eq!((n.claims_held, n.lease_losses), (1, 1));

    // Reaped and claimed again: a takeover.
    assert_eq!(c.reap(5).await.unwrap().requeued.len(), 1);
    let again = c.claim("t", LONG).await.unwrap().unwrap();
    assert_eq!(again.work, refresh("x"));
    let n = c.counters();
    assert_eq!(
        (n.claims_held, n.claims, n.takeovers, n.requeued),
        (2, 3, 1, 1)
    );
    c.commit(&again, None).await.unwrap();
    c.abandon(&y, None).await.unwrap();
    assert_eq!(c.counters().claims_held, 0);

    // A poison item: dead-lettered by this daemon's reap; its holder's late renew is one loss.
    assert!(c.enqueue("t", refresh("z"), Duration::ZERO).await.unwrap());
    let z = c.claim("t", SHORT).await.unwrap().unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(c.reap(1).await.unwrap().dead.len(), 1);
    assert_eq!(c.counters().claims_held, 0, "reaped: no longer held");
    assert!(c.renew(&z, LONG).await.is_err());
    assert!(c.commit(&z, None).await.is_err());
    assert_eq!(
        c.counters(),
        store::CoordCounters {
            claims_held: 0,
            claims: 4,
            takeovers: 1,
            lease_losses: 2,
            requeued: 1,
            dead_lettered: 1,
        }
    );
}

async fn a_heartbeat_lists_the_daemon_with_its_counters(kind: Kind) {
    let f = Fixture::open(kind, None).await;
    let c = f.backend.coordination.clone();
    assert!(c.nodes(LONG).await.unwrap().is_empty(), "no beat yet");
    assert!(c.enqueue("t", refresh("x"), Duration::ZERO).await.unwrap());
    c.claim("t", LONG).await.unwrap().unwrap();
    c.heartbeat(LONG).await.unwrap();
    let nodes = c.nodes(LONG).await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].node, c.holder());
    assert!(nodes[0].last_beat_ago < Duration::from_secs(5), "{nodes:?}");
    assert_eq!(nodes[0].counters, c.counters());
    assert_eq!(nodes[0].counters.claims_held, 1);
    // Not seen within a window shorter than the time since the beat.
    tokio::time::sleep(PAST_SHORT).await;
    assert!(c.nodes(SHORT).await.unwrap().is_empty());
    assert_eq!(c.nodes(LONG).await.unwrap().len(), 1);
}

/// Instantiates every contract test above for one backend, as `<module>::<test>`.
macro_rules! backend_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            contract_tests!(
                $kind;
                sessions_crud,
                update_sessions_never_bring_back_a_deleted_one,
                events_keep_the_first_and_list_in_target_then_id_order,
                event_import_counts_only_new_events,
                audit_is_newest_first_and_trimmed_to_the_newest,
                reopening_keeps_everything_or_says_nothing_is_kept,
                a_key_encrypts_what_is_at_rest_and_is_required_to_reopen,
                changes_since_a_revision_are_what_was_written_and_deleted_after_it,
                a_ping_answers_while_the_store_is_up,
                a_work_item_is_claimed_once_even_by_concurrent_claimers,
                a_lapsed_lease_is_taken_over_and_its_late_commit_refused,
                a_new_session_just_committed_counts_for_top_up_until_every_daemon_can_see_it,
                a_hold_is_exclusive_until_released_or_lapsed,
                a_named_item_is_done_by_one_claimer_fenced_and_rests_after,
                concurrent_usage_increments_are_never_lost,
                claims_take_the_head_in_due_then_queue_order_even_with_2000_queued,
                counters_show_claims_held_takeovers_lease_losses_and_dead_letters,
                a_heartbeat_lists_the_daemon_with_its_counters,
            );
        }
    };
}

/// One `#[tokio::test]` per contract test, on a multi-threaded runtime so concurrent calls
/// really overlap.
macro_rules! contract_tests {
    ($kind:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test($kind).await
            }
        )*
    };
}

backend_suite!(sled, Kind::Sled);
backend_suite!(memory, Kind::Memory);
backend_suite!(redis, Kind::Redis);
backend_suite!(mongodb, Kind::Mongodb);

/// What only a shared backend shows: several daemons (each its own connection and node name)
/// on one Redis.
mod redis_only {
    use super::*;
    use session_warmer::store::{Coordination, CALL_TIMEOUT};
    use std::time::Instant;

    /// A `[store]` section on `url` under a fresh prefix (kept alive by the returned dir).
    fn redis_config(url: &str) -> (tempfile::TempDir, StoreConfig) {
        let dir = tempfile::tempdir().unwrap();
        let c = StoreConfig {
            backend: StoreBackend::Redis,
            url: Some(SecretUrl::new(url)),
            prefix: prefix_for(dir.path()),
            ..StoreConfig::default()
        };
        (dir, c)
    }

    /// `n` daemons on one Redis and one prefix: `node-0`, `node-1`, ...
    async fn daemons(config: &StoreConfig, n: usize, key: Option<StoreKey>) -> Vec<Backend> {
        let mut out = Vec::new();
        for i in 0..n {
            let key = key.as_ref().map(|_| key_a());
            out.push(
                store::open_as(config, key, &format!("node-{i}"))
                    .await
                    .unwrap(),
            );
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_daemons_times_1000_concurrent_usage_reports_count_3000() {
        let (_dir, config) = redis_config(&redis_server::shared().url());
        let nodes = daemons(&config, 3, None).await;
        let one_use = Usage {
            uses: 1,
            successes: 1,
            failures: 0,
        };
        let mut tasks = Vec::new();
        for node in &nodes {
            for _ in 0..1000 {
                let c: Arc<dyn Coordination> = node.coordination.clone();
                tasks.push(tokio::spawn(async move {
                    c.add_usage("t", "s", one_use).await.unwrap().uses
                }));
            }
        }
        let mut seen = HashSet::new();
        for t in tasks {
            assert!(
                seen.insert(t.await.unwrap()),
                "two reports saw the same total"
            );
        }
        assert_eq!(seen, (1..=3000).collect::<HashSet<u64>>());
        for node in &nodes {
            let total = node.coordination.usage("t", "s").await.unwrap().unwrap();
            assert_eq!(
                (total.uses, total.successes, total.failures),
                (3000, 3000, 0)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_late_commit_from_a_daemon_that_lost_its_lease_is_refused() {
        let (_dir, config) = redis_config(&redis_server::shared().url());
        let nodes = daemons(&config, 2, None).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        assert!(a
            .coordination
            .enqueue("t", refresh("x"), Duration::ZERO)
            .await
            .unwrap());
        // The item is queued once for the whole pool.
        assert!(!b
            .coordination
            .enqueue("t", refresh("x"), Duration::ZERO)
            .await
            .unwrap());
        let first = a.coordination.claim("t", SHORT).await.unwrap().unwrap();
        assert!(first.token.as_str().ends_with(":node-0"), "{}", first.token);
        assert!(b.coordination.claim("t", LONG).await.unwrap().is_none());
        tokio::time::sleep(PAST_SHORT).await;

        // Another daemon's reap takes the lapsed claim back; it claims it itself.
        let reaped = b.coordination.reap(5).await.unwrap();
        assert_eq!(reaped.requeued.len(), 1, "{reaped:?}");
        let second = b.coordination.claim("t", LONG).await.unwrap().unwrap();
        assert_eq!(second.work, first.work);
        assert!(
            second.token.as_str().ends_with(":node-1"),
            "{}",
            second.token
        );

        // The first daemon, back from a pause, is fenced off: nothing it writes lands.
        assert!(matches!(
            a.coordination.renew(&first, LONG).await,
            Err(CoordError::LeaseLost { .. })
        ));
        let late = a.coordination.commit(&first, Some(&session("x", 1))).await;
        assert!(
            matches!(late, Err(CoordError::LeaseLost { .. })),
            "{late:?}"
        );
        assert_eq!(b.records.get_session("x").await.unwrap(), None);

        b.coordination
            .commit(&second, Some(&session("x", 2)))
            .await
            .unwrap();
        // Any daemon serves what another committed.
        assert_eq!(
            a.records.get_session("x").await.unwrap(),
            Some(session("x", 2))
        );
        let p = a.coordination.pending("t").await.unwrap();
        assert_eq!((p.queued, p.in_flight), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_daemon_with_another_key_is_refused_naming_the_key_ids() {
        let server = redis_server::shared();
        let (_dir, config) = redis_config(&server.url());
        let first = store::open_as(&config, Some(key_a()), "node-0")
            .await
            .unwrap();
        assert_eq!(first.info().at_rest, AtRest::Encrypted(key_a().id()));
        first.records.put_session(&session("enc", 7)).await.unwrap();

        let other = store::open_as(&config, Some(key_b()), "node-1").await;
        let Err(e) = other else {
            panic!("a second daemon with another key was let in")
        };
        assert!(matches!(e, StoreError::KeyMismatch { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains(&key_a().id().to_string())
                && message.contains(&key_b().id().to_string()),
            "{message}"
        );
        let none = store::open_as(&config, None, "node-2").await;
        assert!(
            matches!(none, Err(StoreError::KeyRequired { .. })),
            "{none:?}"
        );

        // At rest in Redis: the envelope, never the cookie value; and the key id in meta.
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let blob: Vec<u8> = ::redis::cmd("HGET")
            .arg(format!("{}:{{t:tickets}}:s:enc", config.prefix))
            .arg("blob")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(blob.first(), Some(&0xE1), "an envelope");
        assert!(!blob.windows(8).any(|w| w == b"secret-7"));
        let key_id: String = ::redis::cmd("HGET")
            .arg(format!("{}:meta", config.prefix))
            .arg("key_id")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(key_id, key_a().id().to_string());
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(format!("{}:{{t:tickets}}:s:enc", config.prefix))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0, "a session record expires eventually (PTTL {ttl})");
    }

    /// Retries `f` until it succeeds; the time it took, or a panic after `limit`.
    async fn until_ok<T, F, Fut>(limit: Duration, mut f: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        loop {
            match f().await {
                Ok(_) => return start.elapsed(),
                Err(e) if start.elapsed() > limit => panic!("still failing after {limit:?}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_fails_fast_and_works_again_within_5s_of_its_return() {
        const PASSWORD: &str = "pw-9f3a7c-never-shown";
        let server = redis_server::RedisServer::start_with_password(PASSWORD);
        let (_dir, config) = redis_config(&server.url());
        let b = store::open_as(&config, None, "node-0").await.unwrap();
        b.records.put_session(&session("a", 1)).await.unwrap();

        server.kill();
        for call in 0..5 {
            let start = Instant::now();
            let got = b.records.get_session("a").await;
            let took = start.elapsed();
            let Err(e) = got else {
                panic!("call {call} succeeded with Redis dead")
            };
            assert!(
                took < CALL_TIMEOUT + Duration::from_millis(500),
                "call {call} took {took:?}"
            );
            let message = e.to_string();
            assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
            assert!(message.contains("127.0.0.1"), "{message}");
            assert!(!message.contains(PASSWORD), "{message}");
            let claim = b.coordination.claim("t", LONG).await;
            assert!(matches!(claim, Err(CoordError::Store(_))), "{claim:?}");
            // What /readyz says: where the store is, that a password is set, and why.
            let ping = b.records.ping().await.unwrap_err().to_string();
            assert!(
                ping.contains("127.0.0.1")
                    && ping.contains("password set")
                    && ping.contains("(ping)"),
                "{ping}"
            );
            assert!(!ping.contains(PASSWORD), "{ping}");
        }
        // Down for a while: the client's reconnect attempts run out meanwhile.
        tokio::time::sleep(Duration::from_secs(2)).await;

        server.restart();
        let records = b.records.clone();
        let took = until_ok(Duration::from_secs(5), || {
            let r = records.clone();
            async move { r.put_session(&session("b", 2)).await }
        })
        .await;
        eprintln!("working again {took:?} after Redis came back");
        assert_eq!(
            b.records.get_session("b").await.unwrap(),
            Some(session("b", 2))
        );
        // Scripts were flushed with the restart; they are loaded again on first use.
        b.coordination
            .enqueue("t", refresh("b"), Duration::ZERO)
            .await
            .unwrap();
        assert!(b.coordination.claim("t", LONG).await.unwrap().is_some());
        b.records.ping().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_that_stops_answering_fails_every_call_within_store_timeout() {
        let server = redis_server::RedisServer::start();
        let (_dir, mut config) = redis_config(&server.url());
        config.timeout = Duration::from_millis(300);
        let b = store::open_as(&config, None, "node-0").await.unwrap();
        b.records.put_session(&session("a", 1)).await.unwrap();

        server.freeze(true);
        for _ in 0..3 {
            let start = Instant::now();
            let e = b.records.get_session("a").await.unwrap_err();
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(250) && took < Duration::from_millis(1000),
                "{took:?}"
            );
            assert!(e.to_string().contains("no answer within 300ms"), "{e}");
            let start = Instant::now();
            assert!(b.records.ping().await.is_err());
            assert!(b.coordination.claim("t", LONG).await.is_err());
            assert!(start.elapsed() < Duration::from_millis(2000));
        }
        server.freeze(false);
        let records = b.records.clone();
        let took = until_ok(Duration::from_secs(5), || {
            let r = records.clone();
            async move { r.get_session("a").await }
        })
        .await;
        eprintln!("answering again {took:?} after Redis thawed");
        assert_eq!(
            b.records.get_session("a").await.unwrap(),
            Some(session("a", 1))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_daemons_writes_reach_anothers_changes() {
        let (_dir, config) = redis_config(&redis_server::shared().url());
        let nodes = daemons(&config, 2, None).await;
        let (a, b) = (&nodes[0].records, &nodes[1].records);
        let seen = b.changes("tickets", 0).await.unwrap();
        a.put_session(&session("x", 1)).await.unwrap();
        let got = b.changes("tickets", seen.rev).await.unwrap();
        assert_eq!(got.written, vec![session("x", 1)]);
        assert!(a.delete_session("x").await.unwrap());
        let gone = b.changes("tickets", got.rev).await.unwrap();
        assert_eq!(
            (gone.written.len(), gone.deleted.clone()),
            (0, vec!["x".to_string()])
        );
        // A daemon reopened later continues from the shared revision.
        let again = store::open_as(&config, None, "node-9").await.unwrap();
        let quiet = again.records.changes("tickets", gone.rev).await.unwrap();
        assert_eq!((quiet.rev, quiet.reset), (gone.rev, false));
    }

    #[tokio::test]
    async fn the_url_and_password_never_reach_logs_info_or_errors() {
        const PASSWORD: &str = "pw-51d0e2-never-logged";
        let server = redis_server::RedisServer::start_with_password(PASSWORD);
        let (_dir, config) = redis_config(&server.url());
        assert!(!format!("{config:?}").contains(PASSWORD));

        let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        for key in [None, Some(key_a())] {
            let (_d, config) = redis_config(&server.url());
            let b = store::open_as(&config, key, "node-0").await.unwrap();
            let info = b.info();
            info.log_at_start();
            assert!(info.location.contains("127.0.0.1"), "{}", info.location);
            assert!(!info.location.contains(PASSWORD), "{}", info.location);
            assert!(!format!("{b:?}").contains(PASSWORD));
            b.records.put_session(&session("a", 1)).await.unwrap();
        }
        // A wrong password, and a server that is not there: neither message shows the URL's.
        let wrong = server.url().replace(PASSWORD, "pw-wrong-7e1b");
        let (_d, bad) = redis_config(&wrong);
        let e = store::open_as(&bad, None, "n").await.unwrap_err();
        assert!(!e.to_string().contains("pw-wrong-7e1b"), "{e}");
        let gone = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
        let (_d, gone) = redis_config(&gone);
        let e = store::open_as(&gone, None, "n").await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert!(!e.to_string().contains(PASSWORD), "{e}");

        let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("store opened"), "{logged}");
        assert!(logged.contains("127.0.0.1"), "{logged}");
        assert!(!logged.contains(PASSWORD), "{logged}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_costs_redis_the_same_with_2000_items_due_in_one_millisecond() {
        // A server of its own, so its command statistics are this test's alone.
        let server = redis_server::RedisServer::start();
        let (_dir, config) = redis_config(&server.url());
        let b = store::open_as(&config, None, "node-0").await.unwrap();
        assert_eq!(b.coordination.top_up("t", 2000).await.unwrap(), 2000);
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let () = ::redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut raw)
            .await
            .unwrap();
        let mut n = 0;
        while b.coordination.claim("t", LONG).await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 2000);
        let stats: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut raw)
            .await
            .unwrap();
        // `cmdstat_evalsha:calls=2001,usec=...,usec_per_call=12.34,...`: the claims (and the
        // last, empty one) only, as timed by Redis itself, so a busy client machine does not
        // skew it. Scanning the items due in the same millisecond made this ~1 ms per claim.
        let line = stats
            .lines()
            .find(|l| l.starts_with("cmdstat_evalsha:"))
            .unwrap_or_else(|| panic!("no evalsha stats in {stats}"));
        let per_call: f64 = line
            .split(',')
            .find_map(|kv| kv.strip_prefix("usec_per_call="))
            .unwrap()
            .parse()
            .unwrap();
        eprintln!("claim script: {per_call} µs per call in Redis ({line})");
        // ~12 µs when Redis has the cores; the bug was ~1,000 µs. The bound sits between,
        // far from both, because Redis' own timing still counts time it was preempted on a
        // loaded 2-core machine (150 µs was exceeded at load 12).
        assert!(per_call < 500.0, "{line}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_daemon_sees_every_daemon_that_beat_and_silent_ones_are_forgotten() {
        let (_dir, config) = redis_config(&redis_server::shared().url());
        let nodes = daemons(&config, 3, None).await;
        for n in &nodes {
            n.coordination.heartbeat(LONG).await.unwrap();
        }
        assert!(nodes[1]
            .coordination
            .enqueue("t", refresh("x"), Duration::ZERO)
            .await
            .unwrap());
        nodes[1]
            .coordination
            .claim("t", LONG)
            .await
            .unwrap()
            .unwrap();
        nodes[1].coordination.heartbeat(LONG).await.unwrap();
        for n in &nodes {
            let seen = n.coordination.nodes(LONG).await.unwrap();
            let names: HashSet<&str> = seen.iter().map(|i| i.node.as_str()).collect();
            assert_eq!(names, HashSet::from(["node-0", "node-1", "node-2"]));
            assert_eq!(seen[0].node, "node-1", "most recent first: {seen:?}");
            assert_eq!(seen[0].counters.claims_held, 1);
            assert_eq!(seen[1].counters.claims_held, 0);
        }
        // node-2 goes silent; node-0 beats and forgets whoever is silent for SHORT.
        tokio::time::sleep(PAST_SHORT).await;
        nodes[1].coordination.heartbeat(LONG).await.unwrap();
        let recent = nodes[0].coordination.nodes(SHORT).await.unwrap();
        assert_eq!(recent.len(), 1, "{recent:?}");
        assert_eq!(recent[0].node, "node-1");
        nodes[0].coordination.heartbeat(SHORT).await.unwrap();
        let all = nodes[2].coordination.nodes(LONG).await.unwrap();
        let names: HashSet<&str> = all.iter().map(|i| i.node.as_str()).collect();
        assert_eq!(names, HashSet::from(["node-0", "node-1"]));
    }

    /// A log writer into a shared buffer.
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
