//! The pool's policies without a browser: a fake warmer ([`Fake`]) and paused tokio time, so
//! make-before-break rotation, top-up and its back-off, retire-on-report, `max_uses`, lease
//! expiry and the whole-warm timeout run in milliseconds. (End-to-end, with Chromium:
//! `tests/daemon.rs`, `tests/backoff.rs`, `tests/reliability.rs`.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Ask, Pool, PoolError, Projection};
use crate::config::TargetConfig;
use crate::metrics::Metrics;
use crate::schedule::{expire, rotate, topup};
use crate::session::{now_ms, RetireReason, Session, SessionState, UsageReport, Verdict};
use crate::store::{
    Backend, Claim, CoordError, CoordResult, Coordination, Hold, LocalCoordination, MaybeClaim,
    MaybeHold, MemoryStore, Pending, Reaped, Store, StoreError, Usage, Work,
};
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
    /// Warms whose (pretend) browser context is gone: each warm's guard counts here when it
    /// ends, returned or dropped half-way.
    disposed: Arc<AtomicUsize>,
}

/// A warm's pretend browser context: disposed when the warm ends, however it ends.
struct Context(Arc<AtomicUsize>);

impl Drop for Context {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Fake {
    fn with(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            script: Mutex::new(steps.into_iter().collect()),
            ..Default::default()
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
        let _context = Context(self.disposed.clone());
        // As the real warmer: the host's turn before the first navigation.
        if let Some(turn) = &req.turn {
            turn.enter()
                .await
                .map_err(|e| WarmError::Invalid(e.to_string()))?;
        }
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
}

/// A memory store with in-process coordination, as `store.backend = "memory"` opens it.
fn memory_backend() -> Backend {
    let records: Arc<dyn Store> = Arc::new(MemoryStore::new());
    Backend {
        coordination: Arc::new(LocalCoordination::new(records.clone())),
        records,
    }
}

/// A pool over one target `t` (on 127.0.0.1, events `1` and `2`) with `extra` TOML lines.
fn fixture(extra: &str, fake: Fake) -> Fixture {
    fixture_on(extra, fake, memory_backend())
}

/// [`fixture`] on a given backend: two fixtures on one backend are two daemons sharing it.
fn fixture_on(extra: &str, fake: Fake, backend: Backend) -> Fixture {
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
            .take(ask(lease), |s| Projection {
                body: s.id.as_str().into(),
                valid_until: u64::MAX,
            })
            .map(|(p, _)| p.body.to_string())
    }

    /// Adds a ready session of target `t` for event `1`, valid for `ttl`; its id.
    async fn add_session(&self, ttl: Duration) -> String {
        let s = session_for("t", Some("1".into()), ttl);
        self.pool.upsert(s).await.unwrap().id.clone()
    }

    /// How many warms' (pretend) browser contexts are gone.
    fn disposed(&self) -> usize {
        self.pool.warmer.disposed.load(Ordering::SeqCst)
    }

    /// Reports one successful use of `id` (as a scraper whose request got a 200).
    async fn report_ok(&self, id: &str) {
        let ok = UsageReport {
            success: true,
            status: Some(200),
        };
        self.pool.report(id, ok).await.unwrap();
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
    let f = fixture("pool_size = 1", Fake::with([Step::Fail(http(503, "1"))]));
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
    let f = fixture(
        "pool_size = 3\nmax_concurrent_warms = 1",
        Fake::with([Step::Fail(http(503, "1")), Step::Fail(http(503, "1"))]),
    );
    // At most twice the host's concurrent warms are queued.
    assert_eq!(topup::run_once(&f.pool).await, 2);
    assert_eq!(f.pool.targets()[0].warming(), 2);
    assert_eq!(topup::run_once(&f.pool).await, 0, "the queue is full");
    f.settle().await;
    assert_eq!(f.pool.fake_calls(), 2);
    let backoff = f.pool.targets()[0]
        .backoff()
        .expect("the site failed: it backs off");
    assert_eq!(backoff.reason.kind, "target_http");
    assert_eq!(
        topup::run_once(&f.pool).await,
        0,
        "no warm while backing off"
    );
    assert_eq!(f.pool.metrics.warm_count("t", "target_http"), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_event_backs_off_alone_and_top_up_goes_on() {
    let f = fixture("pool_size = 1", Fake::with([Step::Fail(http(404, "x"))]));
    assert_eq!(topup::run_once(&f.pool).await, 1);
    f.settle().await;
    let t = &f.pool.targets()[0];
    assert!(t.backoff().is_none(), "the target does not back off");
    assert_eq!(t.events_backed_off(), 1);
    assert_eq!(topup::run_once(&f.pool).await, 1, "another event is warmed");
    f.settle().await;
    assert_eq!(f.pool.ready_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_blocked_report_retires_the_session_and_wakes_top_up() {
    let f = fixture("pool_size = 1", Fake::default());
    let id = f.add_session(Duration::from_secs(60)).await;
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
    let id = f.add_session(Duration::from_secs(60)).await;
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
    let id = f.add_session(Duration::from_secs(600)).await;
    assert_eq!(f.take(Some(Duration::from_secs(30))).unwrap(), id);
    assert!(matches!(f.take(None), Err(PoolError::AllBusy(_))));
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(matches!(f.take(None), Err(PoolError::AllBusy(_))));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(f.take(None).unwrap(), id, "the lease expired");
    // A report ends a lease at once.
    assert_eq!(f.take(Some(Duration::from_secs(30))).unwrap(), id);
    f.report_ok(&id).await;
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

/// The target's answer `status` to event `event`'s page, as a warm fails with it.
fn http(status: u16, event: &str) -> WarmError {
    WarmError::TargetHttp {
        status,
        url: format!("http://127.0.0.1:9/e/{event}"),
    }
}

impl Pool<Fake> {
    fn fake_calls(&self) -> usize {
        self.warmer.calls.load(Ordering::SeqCst)
    }
}

/// Coordination that can lose the store for renewals only (a daemon partitioned from a shared
/// store while its warm goes on): everything else passes through.
struct Partitionable {
    inner: Arc<dyn Coordination>,
    renew_fails: AtomicBool,
}

impl Partitionable {
    /// The store's error while renewals are cut off.
    fn partitioned(&self) -> CoordResult<()> {
        if self.renew_fails.load(Ordering::SeqCst) {
            return Err(CoordError::Store(StoreError::Unavailable {
                location: "test".into(),
                call: "renew",
                reason: "partitioned".into(),
            }));
        }
        Ok(())
    }
}

/// One memory store seen two ways: `shared` as any daemon sees it, and `cut_off` through a
/// [`Partitionable`] (`switch`) whose renewals can be made to fail.
struct Partition {
    shared: Backend,
    cut_off: Backend,
    switch: Arc<Partitionable>,
}

fn partition() -> Partition {
    let shared = memory_backend();
    let switch = Arc::new(Partitionable {
        inner: shared.coordination.clone(),
        renew_fails: AtomicBool::new(false),
    });
    let cut_off = Backend {
        records: shared.records.clone(),
        coordination: switch.clone(),
    };
    Partition {
        shared,
        cut_off,
        switch,
    }
}

impl Partition {
    /// Cuts `cut_off`'s renewals off (`true`) or lets them through again.
    fn cut(&self, off: bool) {
        self.switch.renew_fails.store(off, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Coordination for Partitionable {
    fn holder(&self) -> &str {
        self.inner.holder()
    }
    async fn enqueue(&self, t: &str, w: Work, d: Duration) -> CoordResult<bool> {
        self.inner.enqueue(t, w, d).await
    }
    async fn top_up(&self, t: &str, missing: usize) -> CoordResult<usize> {
        self.inner.top_up(t, missing).await
    }
    async fn claim(&self, t: &str, ttl: Duration) -> MaybeClaim {
        self.inner.claim(t, ttl).await
    }
    async fn renew(&self, c: &Claim, ttl: Duration) -> CoordResult<()> {
        self.partitioned()?;
        self.inner.renew(c, ttl).await
    }
    async fn commit(&self, c: &Claim, r: Option<&Session>) -> CoordResult<()> {
        self.inner.commit(c, r).await
    }
    async fn abandon(&self, c: &Claim, retry: Option<Duration>) -> CoordResult<()> {
        self.inner.abandon(c, retry).await
    }
    async fn reap(&self, max: u32) -> CoordResult<Reaped> {
        self.inner.reap(max).await
    }
    async fn pending(&self, t: &str) -> CoordResult<Pending> {
        self.inner.pending(t).await
    }
    async fn claim_item(&self, t: &str, w: &Work, ttl: Duration) -> MaybeClaim {
        self.inner.claim_item(t, w, ttl).await
    }
    async fn renew_item(&self, c: &Claim, ttl: Duration) -> CoordResult<()> {
        self.partitioned()?;
        self.inner.renew_item(c, ttl).await
    }
    async fn put_fenced(&self, c: &Claim, r: &Session) -> CoordResult<()> {
        self.inner.put_fenced(c, r).await
    }
    async fn finish_item(&self, c: &Claim, rest: Duration) -> CoordResult<()> {
        self.inner.finish_item(c, rest).await
    }
    async fn hold(&self, t: &str, s: &str, ttl: Duration) -> MaybeHold {
        self.inner.hold(t, s, ttl).await
    }
    async fn renew_hold(&self, h: &Hold, ttl: Duration) -> CoordResult<()> {
        self.inner.renew_hold(h, ttl).await
    }
    async fn release_hold(&self, h: &Hold) -> CoordResult<bool> {
        self.inner.release_hold(h).await
    }
    async fn is_held(&self, t: &str, s: &str) -> CoordResult<bool> {
        self.inner.is_held(t, s).await
    }
    async fn seed_usage(&self, t: &str, s: &str, base: Usage) -> CoordResult<bool> {
        self.inner.seed_usage(t, s, base).await
    }
    async fn add_usage(&self, t: &str, s: &str, d: Usage) -> CoordResult<Usage> {
        self.inner.add_usage(t, s, d).await
    }
    async fn usage(&self, t: &str, s: &str) -> CoordResult<Option<Usage>> {
        self.inner.usage(t, s).await
    }
    async fn forget(&self, t: &str, s: &str) -> CoordResult<()> {
        self.inner.forget(t, s).await
    }
}

/// Advances paused time by `d`, a second at a time, letting due timers run in between.
async fn step(d: Duration) {
    for _ in 0..d.as_secs() {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
}

/// Ready sessions in the shared records.
async fn stored_ready(b: &Backend) -> usize {
    b.records
        .list_sessions()
        .await
        .unwrap()
        .iter()
        .filter(|s| s.state == SessionState::Ready)
        .count()
}

#[tokio::test(start_paused = true)]
async fn two_pools_on_one_backend_warm_pool_size_together() {
    let backend = memory_backend();
    let extra = "pool_size = 2\nmax_concurrent_warms = 2";
    let (ga, gb) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let a = fixture_on(
        extra,
        Fake::with([Step::WaitFor(ga.clone()), Step::WaitFor(ga.clone())]),
        backend.clone(),
    );
    let b = fixture_on(
        extra,
        Fake::with([Step::WaitFor(gb.clone()), Step::WaitFor(gb.clone())]),
        backend.clone(),
    );
    // Both daemons top up at once: every item is claimed by one of them.
    let (na, nb) = tokio::join!(topup::run_once(&a.pool), topup::run_once(&b.pool));
    assert_eq!(na + nb, 2, "pool_size counts for both daemons together");
    assert_eq!(
        topup::run_once(&a.pool).await + topup::run_once(&b.pool).await,
        0
    );
    ga.notify_waiters();
    gb.notify_waiters();
    tokio::time::sleep(Duration::from_secs(1)).await;
    ga.notify_waiters();
    gb.notify_waiters();
    a.settle().await;
    b.settle().await;
    assert_eq!(a.pool.fake_calls() + b.pool.fake_calls(), 2);
    assert_eq!(stored_ready(&backend).await, 2);
    // Each daemon serves the other's sessions once it has resynced.
    for f in [&a, &b] {
        f.pool.resync().await.unwrap();
        assert_eq!(f.pool.ready_count(), 2);
        assert_eq!(topup::run_once(&f.pool).await, 0, "the pool is full");
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_daemons_claim_is_taken_over_after_its_lease_lapses() {
    let backend = memory_backend();
    // The dead daemon claimed the one warm the pool lacks, and never renewed it.
    backend.coordination.top_up("t", 1).await.unwrap();
    let ttl = Duration::from_secs(30);
    let dead = backend.coordination.claim("t", ttl).await.unwrap().unwrap();
    let b = fixture_on("pool_size = 1", Fake::default(), backend.clone());
    assert_eq!(
        topup::run_once(&b.pool).await,
        0,
        "the warm is under way elsewhere"
    );
    tokio::time::advance(ttl + Duration::from_secs(1)).await;
    assert_eq!(topup::run_once(&b.pool).await, 1, "taken over");
    b.settle().await;
    assert_eq!(stored_ready(&backend).await, 1);
    assert_eq!(b.pool.ready_count(), 1);
    assert!(matches!(
        backend.coordination.commit(&dead, None).await,
        Err(CoordError::LeaseLost { .. })
    ));
    assert!(b.pool.metrics.render(&[]).contains("takeover"));
}

#[tokio::test(start_paused = true)]
async fn a_late_commit_after_the_lease_was_lost_writes_nothing() {
    let net = partition();
    let shared = net.shared.clone();
    let gate = Arc::new(Notify::new());
    let a = fixture_on(
        "pool_size = 1",
        Fake::with([Step::WaitFor(gate.clone())]),
        net.cut_off.clone(),
    );
    let b = fixture_on("pool_size = 1", Fake::default(), shared.clone());
    assert_eq!(topup::run_once(&a.pool).await, 1);
    // A can no longer renew: its lease lapses while its warm goes on; B takes the work over.
    net.cut(true);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(topup::run_once(&b.pool).await, 1);
    b.settle().await;
    assert_eq!(stored_ready(&shared).await, 1);
    // A's warm finishes now: its commit is refused, nothing is written or served.
    gate.notify_one();
    a.settle().await;
    assert_eq!(a.pool.fake_calls(), 1);
    assert_eq!(a.disposed(), 1, "A's context is gone");
    assert_eq!(stored_ready(&shared).await, 1, "only B's session");
    assert_eq!(a.pool.ready_count(), 0, "A serves nothing of its own");
    assert!(a.pool.metrics.render(&[]).contains("lease_lost"));
}

#[tokio::test(start_paused = true)]
async fn a_warm_whose_claim_is_lost_while_warming_is_stopped() {
    let net = partition();
    let (records, local) = (net.shared.records.clone(), net.shared.coordination.clone());
    let a = fixture_on(
        "pool_size = 1",
        Fake::with([Step::Hang]),
        net.cut_off.clone(),
    );
    assert_eq!(topup::run_once(&a.pool).await, 1);
    // Renewals keep the claim while the warm runs, however long (time moves a second at a
    // time, so each renewal runs when it is due).
    step(Duration::from_secs(35)).await;
    assert_eq!(local.pending("t").await.unwrap().in_flight, 1);
    assert_eq!(local.reap(5).await.unwrap(), Reaped::default());
    // A loses the store long enough for its lease to lapse; another daemon takes the item.
    net.cut(true);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(local.reap(5).await.unwrap().requeued.len(), 1);
    let other = local.claim("t", Duration::from_secs(30)).await.unwrap();
    assert!(other.is_some(), "taken over");
    assert_eq!(a.disposed(), 0, "still warming");
    // A reaches the store again: its next renewal is refused and its warm is stopped.
    net.cut(false);
    step(Duration::from_secs(11)).await;
    a.settle().await;
    assert_eq!(a.disposed(), 1, "context disposed");
    assert_eq!(a.pool.targets()[0].warming(), 0);
    assert!(
        records.list_sessions().await.unwrap().is_empty(),
        "nothing written"
    );
    assert!(a.pool.metrics.render(&[]).contains("lease_lost"));
}

#[tokio::test(start_paused = true)]
async fn a_daemon_joining_a_full_pool_serves_at_once_and_warms_nothing() {
    let backend = memory_backend();
    let a = fixture_on("pool_size = 2", Fake::default(), backend.clone());
    assert_eq!(topup::run_once(&a.pool).await, 2);
    a.settle().await;
    assert_eq!(stored_ready(&backend).await, 2);
    let b = fixture_on("pool_size = 2", Fake::default(), backend.clone());
    b.pool.restore().await.unwrap();
    assert!(b.take(None).is_ok(), "serves at once");
    assert_eq!(topup::run_once(&b.pool).await, 0);
    b.settle().await;
    assert_eq!(b.pool.fake_calls(), 0, "warms nothing");
}

#[tokio::test(start_paused = true)]
async fn a_session_retired_or_deleted_elsewhere_is_not_served_after_a_resync() {
    let backend = memory_backend();
    let a = fixture_on("pool_size = 2", Fake::default(), backend.clone());
    let b = fixture_on("pool_size = 2", Fake::default(), backend.clone());
    let s1 = a.add_session(Duration::from_secs(600)).await;
    let s2 = a.add_session(Duration::from_secs(600)).await;
    let r = b.pool.resync().await.unwrap();
    assert_eq!(r.added, 2);
    a.pool
        .retire(&s1, RetireReason::Blocked { status: 403 }, true)
        .await
        .unwrap();
    a.pool.delete(&s2).await.unwrap();
    let r = b.pool.resync().await.unwrap();
    assert_eq!((r.updated, r.removed), (1, 1));
    assert_eq!(b.pool.get(&s1).unwrap().state, SessionState::Retired);
    assert!(b.pool.get(&s2).is_none());
    assert!(matches!(b.take(None), Err(PoolError::NoneReady(_))));
}

/// [`fixture_on`] as one of several daemons sharing `backend` (the pool treats it as shared).
fn shared_fixture_on(extra: &str, backend: Backend) -> Fixture {
    let f = fixture_on(extra, Fake::default(), backend);
    let pool = Arc::try_unwrap(f.pool)
        .ok()
        .expect("not shared yet")
        .shared_for_tests();
    Fixture {
        pool: Arc::new(pool),
        tracker: f.tracker,
    }
}

/// A take of target `t`'s event 1 through view 0.
fn ask(lease: Option<Duration>) -> Ask<'static> {
    Ask {
        target: Some("t"),
        event: "1",
        lease,
        view: 0,
    }
}

impl Fixture {
    async fn take_held(&self, lease: Option<Duration>) -> Result<String, PoolError> {
        self.pool
            .take_held(ask(lease), |s| Projection {
                body: s.id.as_str().into(),
                valid_until: u64::MAX,
            })
            .await
            .map(|(p, _)| p.body.to_string())
    }
}

/// Two daemons (pools of one session of target `t`) sharing one memory backend, and a
/// session `a` stored.
async fn two_daemons_with_a_session() -> (Backend, Fixture, Fixture, String) {
    let backend = memory_backend();
    let a = shared_fixture_on("pool_size = 1", backend.clone());
    let b = shared_fixture_on("pool_size = 1", backend.clone());
    let id = a.add_session(Duration::from_secs(600)).await;
    (backend, a, b, id)
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_exclusive_across_daemons_until_the_report() {
    let (backend, a, b, id) = two_daemons_with_a_session().await;
    assert_eq!(b.pool.resync().await.unwrap().added, 1);
    let lease = Some(Duration::from_secs(30));
    assert_eq!(a.take_held(lease).await.unwrap(), id);
    assert!(backend.coordination.is_held("t", &id).await.unwrap());
    // b has the session but a holds it: b hands it to no one else, and counts no use.
    let uses = b.pool.get(&id).unwrap().health.uses;
    assert!(matches!(
        b.take_held(lease).await,
        Err(PoolError::AllBusy(_))
    ));
    assert_eq!(b.pool.get(&id).unwrap().health.uses, uses);
    // The report on a ends the lease everywhere (b re-checks after HELD_ELSEWHERE_RECHECK).
    a.report_ok(&id).await;
    assert!(!backend.coordination.is_held("t", &id).await.unwrap());
    step(super::serve::HELD_ELSEWHERE_RECHECK).await;
    assert_eq!(b.take_held(lease).await.unwrap(), id);
    assert!(matches!(
        a.take_held(lease).await,
        Err(PoolError::AllBusy(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_session_held_elsewhere_is_not_served_without_a_lease_after_a_resync() {
    let (_, a, b, id) = two_daemons_with_a_session().await;
    b.pool.resync().await.unwrap();
    // Served by b without a lease while nobody holds it.
    assert_eq!(b.take_held(None).await.unwrap(), id);
    let lease = Some(Duration::from_secs(30));
    assert_eq!(a.take_held(lease).await.unwrap(), id);
    // b's next resync learns of a's hold: b hands the session to no one, lease or not.
    b.pool.resync().await.unwrap();
    assert!(matches!(
        b.take_held(None).await,
        Err(PoolError::AllBusy(_))
    ));
    // a's own hold is its lease, not a mark: a's resync leaves it alone.
    a.pool.resync().await.unwrap();
    assert!(a
        .pool
        .sessions_where(|e| e.held_elsewhere_until.is_some())
        .is_empty());
    // Released (the report): b's next resync lifts the mark at once.
    a.report_ok(&id).await;
    b.pool.resync().await.unwrap();
    assert_eq!(b.take_held(None).await.unwrap(), id);
}
