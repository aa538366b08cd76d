//! The pool's policies without a browser: a fake warmer ([`Fake`]) and paused tokio time, so
//! make-before-break rotation, top-up and its back-off, retire-on-report, `max_uses`, lease
//! expiry and the whole-warm timeout run in milliseconds. (End-to-end, with Chromium:
//! `tests/daemon.rs`, `tests/backoff.rs`, `tests/reliability.rs`.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Pool, PoolError, Projection};
use crate::config::TargetConfig;
use crate::metrics::Metrics;
use crate::schedule::{expire, rotate, topup};
use crate::session::{now_ms, RetireReason, Session, SessionState, UsageReport, Verdict};
use crate::store::{Backend, LocalCoordination, MemoryStore, Store};
use crate::warm::{Revisit, Revisited, Warm, WarmError, WarmRequest};

/// What the fake's next warm does.
enum Step {
    /// Waits until the notify fires, then succeeds.
    WaitFor(Arc<Notify>),
    /// Fails with this error at once.
    Fail(WarmError),
    /// Never completes (a hung browser).
    Hang,
}

/// A warmer without a browser: plays its script, one step per warm, then succeeds at once.
#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Step>>,
    calls: AtomicUsize,
}

impl Fake {
    fn with(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            script: Mutex::new(steps.into_iter().collect()),
            calls: AtomicUsize::new(0),
        }
    }
}

/// A ready session as a warm of `req` would make it (the checked-in fixture's cookies).
fn session_for(target: &str, event: Option<String>, max_age: Duration) -> Session {
    let mut s: Session =
        serde_json::from_str(include_str!("../../tests/fixtures/session_v1.json")).unwrap();
    let now = now_ms();
    s.id = Session::new_id();
    s.target = target.into();
    s.event = event;
    s.account = None;
    s.state = SessionState::Ready;
    s.created_at = now;
    s.refreshed_at = now;
    s.expires_at = now + max_age.as_millis() as u64;
    s.health = Default::default();
    s
}

impl Warm for Fake {
    async fn warm(&self, req: &WarmRequest) -> Result<Session, WarmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::WaitFor(n)) => n.notified().await,
            Some(Step::Fail(e)) => return Err(e),
            Some(Step::Hang) => futures::future::pending::<()>().await,
            None => {}
        }
        Ok(session_for(&req.target, req.event.clone(), req.max_age))
    }

    async fn revisit(&self, _: &Session, _: &Revisit<'_>) -> Result<Revisited, WarmError> {
        Err(WarmError::Invalid("the fake warmer has no browser".into()))
    }

    fn navigation_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

struct Fixture {
    pool: Arc<Pool<Fake>>,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

/// A pool over one target `t` (on 127.0.0.1, events `1` and `2`) with `extra` TOML lines.
fn fixture(extra: &str, fake: Fake) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let records: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let backend = Backend {
        coordination: Arc::new(LocalCoordination::new(records.clone())),
        records,
    };
    let target: TargetConfig = toml::from_str(&format!(
        "name = 't'\nevent_url = 'http://127.0.0.1:9/e/{{event}}'\nevents = ['1', '2']\n\
         warmup = '1s'\n{extra}"
    ))
    .unwrap();
    let tracker = TaskTracker::new();
    let pool = Pool::new(
        &[target],
        backend,
        fake,
        Arc::new(Metrics::default()),
        CancellationToken::new(),
        tracker.clone(),
    );
    Fixture {
        pool: Arc::new(pool),
        tracker,
        _dir: dir,
    }
}

impl Fixture {
    /// Waits (in paused time) for every warm started so far.
    async fn settle(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }

    fn take(&self, lease: Option<Duration>) -> Result<String, PoolError> {
        self.pool
            .take(Some("t"), "1", lease, 0, |s| Projection {
                body: s.id.as_str().into(),
                valid_until: u64::MAX,
            })
            .map(|(p, _)| p.body.to_string())
    }

    fn retired_label(&self, label: &str) -> bool {
        self.pool
            .metrics
            .render(&[])
            .contains(&format!("target=\"t\",reason=\"{label}\"}} 1"))
    }
}

#[tokio::test(start_paused = true)]
async fn rotation_serves_the_old_session_until_its_replacement_is_ready() {
    let gate = Arc::new(Notify::new());
    let f = fixture(
        "pool_size = 1\nrotate_every = '1h'",
        Fake::with([Step::WaitFor(gate.clone())]),
    );
    let mut old = session_for("t", Some("1".into()), Duration::from_secs(7200));
    old.created_at -= 3_600_000;
    let old_id = f.pool.upsert(old).await.unwrap().id.clone();

    assert_eq!(rotate::run_once(&f.pool, false), 1);
    assert_eq!(rotate::run_once(&f.pool, false), 0, "already rotating");
    // The replacement is warming (held by the gate): the old one is still served.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(f.pool.counts()[&("t".into(), "rotating")], 1);
    assert_eq!(f.take(None).unwrap(), old_id);

    gate.notify_one();
    f.settle().await;
    let new_id = f.take(None).unwrap();
    assert_ne!(new_id, old_id);
    let old = f.pool.get(&old_id).unwrap();
    assert_eq!(old.state, SessionState::Retired);
    assert_eq!(old.health.retired_reason.as_deref(), Some("rotated"));
    assert!(f.retired_label("rotated"));
    assert_eq!(f.pool.get(&new_id).unwrap().event.as_deref(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_replacement_leaves_the_old_session_served() {
    let fail = WarmError::TargetHttp {
        status: 503,
        url: "http://127.0.0.1:9/e/1".into(),
    };
    let f = fixture("pool_size = 1", Fake::with([Step::Fail(fail)]));
    let old = session_for("t", Some("1".into()), Duration::from_secs(7200));
    let old_id = f.pool.upsert(old).await.unwrap().id.clone();

    assert_eq!(rotate::run_once(&f.pool, true), 1);
    f.settle().await;
    assert_eq!(
        f.pool.counts()[&("t".into(), "ready")],
        1,
        "no longer rotating"
    );
    assert_eq!(f.take(None).unwrap(), old_id);
    assert_eq!(rotate::run_once(&f.pool, true), 1, "picked again");
    f.settle().await;
    assert_eq!(f.pool.get(&old_id).unwrap().state, SessionState::Retired);
}

#[tokio::test(start_paused = true)]
async fn top_up_fills_the_pool_and_stops_while_the_target_backs_off() {
    let fail = || WarmError::TargetHttp {
        status: 503,
        url: "http://127.0.0.1:9/e/1".into(),
    };
    let f = fixture(
        "pool_size = 3\nmax_concurrent_warms = 1",
        Fake::with([Step::Fail(fail()), Step::Fail(fail())]),
    );
    // At most twice the host's concurrent warms are queued.
    assert_eq!(topup::run_once(&f.pool), 2);
    assert_eq!(f.pool.targets()[0].warming(), 2);
    assert_eq!(topup::run_once(&f.pool), 0, "the queue is full");
    f.settle().await;
    assert_eq!(f.pool.fake_calls(), 2);
    let backoff = f.pool.targets()[0]
        .backoff()
        .expect("the site failed: it backs off");
    assert_eq!(backoff.reason.kind, "target_http");
    assert_eq!(topup::run_once(&f.pool), 0, "no warm while backing off");
    assert_eq!(f.pool.metrics.warm_count("t", "target_http"), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_event_backs_off_alone_and_top_up_goes_on() {
    let gone = WarmError::TargetHttp {
        status: 404,
        url: "http://127.0.0.1:9/e/x".into(),
    };
    let f = fixture("pool_size = 1", Fake::with([Step::Fail(gone)]));
    assert_eq!(topup::run_once(&f.pool), 1);
    f.settle().await;
    let t = &f.pool.targets()[0];
    assert!(t.backoff().is_none(), "the target does not back off");
    assert_eq!(t.events_backed_off(), 1);
    assert_eq!(topup::run_once(&f.pool), 1, "another event is warmed");
    f.settle().await;
    assert_eq!(f.pool.ready_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_blocked_report_retires_the_session_and_wakes_top_up() {
    let f = fixture("pool_size = 1", Fake::default());
    let s = session_for("t", Some("1".into()), Duration::from_secs(60));
    let id = f.pool.upsert(s).await.unwrap().id.clone();
    let woken = f.pool.wake.notified();
    let report = UsageReport {
        success: false,
        status: Some(403),
    };
    let verdict = f.pool.report(&id, report).await.unwrap();
    assert_eq!(
        verdict,
        Verdict::Retire(RetireReason::Blocked { status: 403 })
    );
    tokio::time::timeout(Duration::from_millis(1), woken)
        .await
        .expect("top-up woken");
    assert_eq!(f.pool.get(&id).unwrap().state, SessionState::Retired);
    assert!(f.retired_label("blocked"));
    assert!(matches!(f.take(None), Err(PoolError::NoneReady(_))));
}

#[tokio::test(start_paused = true)]
async fn max_uses_stops_serving_and_expiry_retires() {
    let f = fixture("pool_size = 1\nmax_uses = 2", Fake::default());
    let s = session_for("t", Some("1".into()), Duration::from_secs(60));
    let id = f.pool.upsert(s).await.unwrap().id.clone();
    assert_eq!(f.take(None).unwrap(), id);
    assert_eq!(f.take(None).unwrap(), id);
    assert!(matches!(f.take(None), Err(PoolError::AllBusy(_))));
    assert_eq!(expire::run_once(&f.pool).await, 1);
    let s = f.pool.get(&id).unwrap();
    assert_eq!(s.state, SessionState::Retired);
    assert_eq!(s.health.retired_reason.as_deref(), Some("used 2 times"));
    assert!(f.retired_label("max_uses"));
}

#[tokio::test(start_paused = true)]
async fn a_lease_keeps_the_session_from_others_until_it_expires() {
    let f = fixture("pool_size = 1", Fake::default());
    let s = session_for("t", Some("1".into()), Duration::from_secs(600));
    let id = f.pool.upsert(s).await.unwrap().id.clone();
    assert_eq!(f.take(Some(Duration::from_secs(30))).unwrap(), id);
    assert!(matches!(f.take(None), Err(PoolError::AllBusy(_))));
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(matches!(f.take(None), Err(PoolError::AllBusy(_))));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(f.take(None).unwrap(), id, "the lease expired");
    // A report ends a lease at once.
    assert_eq!(f.take(Some(Duration::from_secs(30))).unwrap(), id);
    let ok = UsageReport {
        success: true,
        status: Some(200),
    };
    f.pool.report(&id, ok).await.unwrap();
    assert_eq!(f.take(None).unwrap(), id);
}

#[tokio::test(start_paused = true)]
async fn a_hung_warm_ends_with_the_whole_warm_timeout() {
    let f = fixture("pool_size = 1", Fake::with([Step::Hang]));
    let started = tokio::time::Instant::now();
    let err = f.pool.warm_now("t", Default::default()).await.unwrap_err();
    assert!(
        matches!(err, PoolError::Warm(WarmError::WarmTimeout { .. })),
        "{err}"
    );
    // navigation 5 s x 2 + warm-up 1 s + 30 s.
    assert_eq!(started.elapsed().as_secs(), 41);
    assert_eq!(f.pool.metrics.warm_count("t", "warm_timeout"), 1);
    assert!(
        f.pool.targets()[0].backoff().is_some(),
        "a timeout blames the site"
    );
}

impl Pool<Fake> {
    fn fake_calls(&self) -> usize {
        self.warmer.calls.load(Ordering::SeqCst)
    }
}
