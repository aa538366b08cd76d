//! The pool: per target, keep `pool_size` ready sessions; serve them from memory (never waiting
//! on Chromium); learn from scrapers' reports; warm, rotate (make-before-break), validate,
//! refresh and retire them. The schedule workers call in here; so does the API.

mod backoff;
mod index;
mod keepalive;
mod proxy;

pub use backoff::{
    backoff_delay, event_backoff_delay, BackoffState, Culprit, EventBackoffs, Reason,
    TargetBackoff, BROWSER_RETRY,
};

pub use keepalive::{AccountStatus, KeepAlive};

pub use index::{Entry, Index, Match, Projection, TakeError, Taken, Want, VIEWS};
pub use proxy::ProxyPicker;

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::browser::guard::{origin_of, UrlPolicy};
use crate::config::TargetConfig;
use crate::export;
use crate::metrics::Metrics;
use crate::session::{
    now_ms, HealthPolicy, Session, SessionState, UnixMillis, UsageReport, Verdict,
};
use crate::store::{AuditEntry, Event, Store, StoreError};
use crate::warm::{self, WarmError, WarmRequest, Warmer};

/// Why a pool operation failed; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    #[error("no session {0:?}")]
    UnknownSession(String),
    #[error("no ready session for target {0:?} yet")]
    NoneReady(String),
    #[error("every ready session of target {0:?} is leased, rate limited or used up (max_uses)")]
    AllBusy(String),
    #[error("warm capacity of target {target:?} is full; retry in {retry_after:?}")]
    Busy {
        target: String,
        retry_after: Duration,
    },
    #[error("target {0:?} has no events; add some with `warmer events add`")]
    NoEvents(String),
    #[error("session {0:?} is retired")]
    Retired(String),
    #[error(transparent)]
    Warm(#[from] WarmError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("shutting down")]
    ShuttingDown,
    /// A URL (or a redirect) outside the session's target: never loaded.
    #[error("{what} {origin} is not one of target {target:?}'s origins ({})", allowed.join(", "))]
    UrlNotAllowed {
        /// `url` or `a redirect to`.
        what: &'static str,
        /// The refused URL's origin (never its path or query).
        origin: String,
        target: String,
        allowed: Vec<String>,
    },
    /// An API caller named a proxy while `server.allow_custom_proxies` is off.
    #[error("custom proxies are off: set server.allow_custom_proxies = true to let API callers name one")]
    CustomProxyRefused,
    /// A caller-named proxy could not be used; nothing more is said (it would tell open ports
    /// from closed ones).
    #[error("proxy unreachable")]
    ProxyUnreachable,
}

/// One configured target and its runtime state.
pub struct TargetRuntime {
    pub config: TargetConfig,
    pub policy: HealthPolicy,
    /// Warms at once against this target's host (shared by targets on the same host).
    host_slots: Arc<Semaphore>,
    proxies: Mutex<ProxyPicker>,
    /// Warms of new sessions (not rotations) under way.
    warming: AtomicUsize,
    /// Back-off after failed warms that blamed the site: no top-up warm meanwhile.
    backoff: Mutex<TargetBackoff>,
    /// Back-off of events that failed (unknown, gone, not published): top-up picks others.
    /// Locked after `events` when both are held.
    event_backoff: Mutex<EventBackoffs>,
    /// Event ids, refreshed from the store.
    events: Mutex<Vec<String>>,
    /// The origins its sessions' browsers may load (see [`TargetRuntime::url_policy`]).
    urls: Arc<UrlPolicy>,
}

impl TargetRuntime {
    /// The origins of a target's own URLs: `event_url`, login URL and `goto` steps, the check
    /// and validate URLs, and `allowed_origins`.
    pub fn url_policy(config: &TargetConfig) -> UrlPolicy {
        let mut urls: Vec<&str> = config.event_url.iter().map(String::as_str).collect();
        if let Some(l) = &config.login {
            urls.push(&l.url);
            urls.extend(l.steps.iter().filter_map(|s| match &s.action {
                crate::config::StepAction::Goto { url } => Some(url.as_str()),
                _ => None,
            }));
            urls.extend(l.check.url.as_deref());
        }
        urls.extend(config.validate.as_ref().map(|v| v.url.as_str()));
        urls.extend(config.allowed_origins.iter().map(String::as_str));
        UrlPolicy::from_urls(urls)
    }

    fn policy_for(config: &TargetConfig) -> HealthPolicy {
        HealthPolicy {
            max_failures: f64::from(config.max_failures),
            max_uses: config.max_uses,
            required_cookies: config
                .validate
                .as_ref()
                .map(|v| v.require_cookies.clone())
                .unwrap_or_default(),
            backoff: Duration::from_secs(60),
        }
    }

    /// Warms under way for new sessions.
    pub fn warming(&self) -> usize {
        self.warming.load(Ordering::Relaxed)
    }

    /// The target's back-off now: after failures of the site, or while every one of its
    /// events backs off. `None` when top-up may warm it.
    pub fn backoff(&self) -> Option<BackoffState> {
        let events = lock(&self.events);
        backoff::target_state(
            &lock(&self.backoff),
            &lock(&self.event_backoff),
            &events,
            now_ms(),
        )
    }

    /// Events of this target backing off now.
    pub fn events_backed_off(&self) -> usize {
        lock(&self.event_backoff).backed_off(now_ms())
    }

    /// Whether top-up would skip `event` now (it failed lately).
    pub fn event_backs_off(&self, event: &str) -> bool {
        lock(&self.event_backoff).blocks(event, now_ms())
    }
}

/// Result of `fetch` in a session's live context.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FetchResult {
    pub status: Option<u16>,
    pub url: String,
    pub body: String,
    #[schema(value_type = Vec<Object>)]
    pub cookies: Vec<crate::session::Cookie>,
}

/// Options for a session created through the API.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub event: Option<String>,
    pub ttl: Option<Duration>,
    pub proxy: Option<String>,
    pub viewport: Option<(u32, u32)>,
}

/// How [`Pool::fetch_with`] loads its URL (FlareSolverr's request fields). The default loads
/// it as [`Pool::fetch`] does.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Cookies put into the context after the session's own (same name, domain and path: these
    /// win).
    pub cookies: Vec<crate::session::Cookie>,
    /// Dwell after the load, before the page is read.
    pub wait: Duration,
    /// Block images, stylesheets and fonts (by URL: `Network.setBlockedURLs`).
    pub disable_media: bool,
    /// Instead of loading the URL, submit these fields to it as a form POST
    /// (`application/x-www-form-urlencoded`) from a page of the URL's origin.
    pub form: Option<Vec<(String, String)>>,
    /// Leave the session's record as it was: the cookies the page ends with are returned but
    /// not stored (a caller's cookies or form post stay out of a shared session).
    pub detached: bool,
}

/// File extensions blocked by [`FetchOptions::disable_media`]: images, stylesheets, fonts.
const MEDIA_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "bmp", "svg", "ico", "avif", "tif", "tiff", "css", "woff",
    "woff2", "ttf", "otf", "eot",
];

/// The pool of every target.
pub struct Pool {
    index: Mutex<Index>,
    targets: Vec<Arc<TargetRuntime>>,
    store: Arc<dyn Store>,
    warmer: Warmer,
    pub metrics: Arc<Metrics>,
    http: Mutex<HashMap<Option<String>, reqwest::Client>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Wakes the top-up worker (a session was retired).
    pub wake: tokio::sync::Notify,
    pub started: Instant,
    /// `server.allow_custom_proxies`: whether [`Pool::warm_now`] takes a caller's proxy.
    allow_custom_proxies: bool,
}

fn host_of(t: &TargetConfig) -> String {
    t.event_url
        .as_deref()
        .and_then(|u| url::Url::parse(&u.replace("{event}", "x")).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| t.name.clone())
}

impl Pool {
    /// Builds the pool over `targets`; nothing is loaded or warmed yet.
    pub fn new(
        targets: &[TargetConfig],
        store: Arc<dyn Store>,
        warmer: Warmer,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        for t in targets {
            let host = host_of(t);
            let permits = targets
                .iter()
                .filter(|o| host_of(o) == host)
                .map(|o| o.max_concurrent_warms)
                .min()
                .unwrap_or(1);
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(permits)));
        }
        let targets = targets
            .iter()
            .map(|t| {
                Arc::new(TargetRuntime {
                    policy: TargetRuntime::policy_for(t),
                    host_slots: hosts[&host_of(t)].clone(),
                    proxies: Mutex::new(ProxyPicker::new(&t.proxies)),
                    warming: AtomicUsize::new(0),
                    backoff: Mutex::default(),
                    event_backoff: Mutex::default(),
                    events: Mutex::new(t.events.clone()),
                    urls: Arc::new(TargetRuntime::url_policy(t)),
                    config: t.clone(),
                })
            })
            .collect();
        Self {
            index: Mutex::new(Index::default()),
            targets,
            store,
            warmer,
            metrics,
            http: Mutex::new(HashMap::new()),
            shutdown,
            tracker,
            wake: tokio::sync::Notify::new(),
            started: Instant::now(),
            allow_custom_proxies: false,
        }
    }

    /// Lets [`Pool::warm_now`] take a caller's proxy (`server.allow_custom_proxies`).
    #[must_use]
    pub fn with_custom_proxies(mut self, allowed: bool) -> Self {
        self.allow_custom_proxies = allowed;
        self
    }

    /// Whether API callers may name their own proxy (`server.allow_custom_proxies`).
    pub fn allows_custom_proxies(&self) -> bool {
        self.allow_custom_proxies
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configured targets.
    pub fn targets(&self) -> &[Arc<TargetRuntime>] {
        &self.targets
    }

    /// The target called `name`.
    ///
    /// # Errors
    /// `UnknownTarget`.
    pub fn target(&self, name: &str) -> Result<&Arc<TargetRuntime>, PoolError> {
        self.targets
            .iter()
            .find(|t| t.config.name == name)
            .ok_or_else(|| PoolError::UnknownTarget(name.to_string()))
    }

    /// The store behind the pool.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The warmer (and through it the browser supervisor).
    pub fn warmer(&self) -> &Warmer {
        &self.warmer
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e.to_string()))))
    }

    fn audit(&self, session: Option<&Session>, action: &str, detail: String) {
        self.audit_entry(AuditEntry {
            at: now_ms(),
            session: session.map(|s| s.id.clone()),
            target: session.map(|s| s.target.clone()),
            action: action.to_string(),
            detail,
        });
    }

    fn audit_entry(&self, entry: AuditEntry) {
        if let Err(e) = self.store.append_audit(&entry) {
            tracing::warn!(error = %e, "writing audit entry");
        }
    }

    /// Loads sessions from the store: ready ones are served at once (no browser needed);
    /// expired ones are retired. Seeds configured events into the store.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn restore(&self) -> Result<(usize, usize), PoolError> {
        let sessions = self.blocking(|s| s.list_sessions()).await?;
        let now = now_ms();
        let mut ready = 0;
        let mut expired = Vec::new();
        {
            let mut ix = self.index();
            for mut s in sessions {
                let Ok(t) = self.target(&s.target) else {
                    continue;
                };
                if s.state == SessionState::Warming {
                    // A warm cut short by a crash never produced a servable session.
                    s.state = SessionState::Retired;
                    s.health.retired_reason = Some("interrupted while warming".into());
                    expired.push(s.clone());
                } else if s.state == SessionState::Ready {
                    if let Verdict::Retire(reason) = t.policy.check(&s, now) {
                        s.state = SessionState::Retired;
                        s.health.retired_reason = Some(reason);
                        expired.push(s.clone());
                    } else {
                        ready += 1;
                        if let Some(p) = &s.proxy {
                            lock(&t.proxies).adopt(p);
                        }
                    }
                }
                ix.insert(s);
            }
        }
        let n_expired = expired.len();
        if !expired.is_empty() {
            self.blocking(move |st| {
                for s in &expired {
                    st.put_session(s)?;
                }
                Ok(())
            })
            .await?;
        }
        for t in &self.targets {
            self.seed_events(t).await?;
        }
        Ok((ready, n_expired))
    }

    async fn seed_events(&self, t: &TargetRuntime) -> Result<(), PoolError> {
        let mut ids = t.config.events.clone();
        if let Some(f) = &t.config.events_file {
            match std::fs::read_to_string(f) {
                Ok(text) => ids.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                ),
                Err(e) => {
                    tracing::warn!(target = %t.config.name, file = %f.display(), error = %e, "reading events_file")
                }
            }
        }
        let name = t.config.name.clone();
        let events: Vec<Event> = ids
            .iter()
            .map(|id| Event {
                target: name.clone(),
                id: id.clone(),
                url: None,
                added_at: now_ms(),
            })
            .collect();
        let all = self
            .blocking(move |s| {
                s.put_events(&events)?;
                s.list_events(Some(&name))
            })
            .await?;
        *lock(&t.events) = all.into_iter().map(|e| e.id).collect();
        Ok(())
    }

    /// The target serving `event`: `explicit`, else one whose events include it, else the first.
    ///
    /// # Errors
    /// `UnknownTarget` when `explicit` names no target or none is configured.
    pub fn target_for_event(
        &self,
        explicit: Option<&str>,
        event: &str,
    ) -> Result<&Arc<TargetRuntime>, PoolError> {
        if let Some(name) = explicit {
            return self.target(name);
        }
        if let [only] = self.targets.as_slice() {
            return Ok(only);
        }
        self.targets
            .iter()
            .find(|t| lock(&t.events).iter().any(|e| e == event))
            .or_else(|| self.targets.first())
            .ok_or_else(|| PoolError::UnknownTarget("(none configured)".into()))
    }

    /// The hot path: a ready session for `event`, from memory. Never touches Chromium or disk.
    /// Hands out `view`'s memoised projection of it (built by `project` when missing or
    /// stale).
    ///
    /// # Errors
    /// `NoneReady` / `AllBusy` (the API answers 503 with Retry-After), `UnknownTarget`.
    pub fn take(
        &self,
        target: Option<&str>,
        event: &str,
        lease: Option<Duration>,
        view: usize,
        project: impl FnOnce(&Session) -> Projection,
    ) -> Result<Taken, PoolError> {
        let t = self.target_for_event(target, event)?;
        let name = &t.config.name;
        let want = Want {
            target: name,
            event,
            lease,
            max_uses: t.policy.max_uses,
            view: (view, now_ms()),
        };
        self.index()
            .take(&want, Instant::now(), project)
            .map_err(|e| match e {
                TakeError::NoneReady => PoolError::NoneReady(name.clone()),
                TakeError::AllBusy => PoolError::AllBusy(name.clone()),
            })
    }

    /// A session by id (any state).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.index().get(id).map(|e| e.session.clone())
    }

    /// Every session in memory, with its rotating mark.
    pub fn list(&self) -> Vec<(Arc<Session>, bool)> {
        self.index()
            .iter()
            .map(|e| (e.session.clone(), e.rotating))
            .collect()
    }

    /// Counts per (target, state).
    pub fn counts(&self) -> HashMap<(String, &'static str), usize> {
        self.index().counts()
    }

    /// Ready sessions now, all targets.
    pub fn ready_count(&self) -> usize {
        self.index()
            .iter()
            .filter(|e| e.session.state == SessionState::Ready)
            .count()
    }

    /// Applies a scraper's report. A retiring verdict retires the session and wakes the top-up.
    ///
    /// # Errors
    /// `UnknownSession`.
    pub async fn report(&self, id: &str, report: UsageReport) -> Result<Verdict, PoolError> {
        let (verdict, session) = {
            let mut ix = self.index();
            let target = ix
                .get(id)
                .ok_or_else(|| PoolError::UnknownSession(id.to_string()))?
                .session
                .target
                .clone();
            let t = self.target(&target)?;
            // Health is not part of a served projection: no need to rebuild those.
            ix.with_mut(id, |e| {
                let verdict = t
                    .policy
                    .apply(&mut Arc::make_mut(&mut e.session).health, report);
                e.dirty = true;
                e.lease_until = None;
                if let Verdict::BackOff(d) = verdict {
                    e.backoff_until = Some(Instant::now() + d);
                }
                (verdict, e.session.clone())
            })
            .expect("entry exists")
        };
        let outcome = match (&verdict, report.success) {
            (_, true) => "success",
            (Verdict::BackOff(_), _) => "rate_limited",
            (Verdict::Retire(_), _) => "retired",
            _ => "failure",
        };
        self.metrics.report(&session.target, outcome);
        if let Verdict::Retire(reason) = &verdict {
            self.retire(id, reason, true).await?;
        }
        Ok(verdict)
    }

    /// Retires a session (flushed), frees its proxy, and wakes the top-up worker.
    ///
    /// # Errors
    /// `UnknownSession`, or the store write failing.
    pub async fn retire(&self, id: &str, reason: &str, failed: bool) -> Result<(), PoolError> {
        let session = {
            let mut ix = self.index();
            let Some(e) = ix.get(id) else {
                return Err(PoolError::UnknownSession(id.to_string()));
            };
            if e.session.state == SessionState::Retired {
                return Ok(());
            }
            ix.update(id, |s| {
                s.state = SessionState::Retired;
                s.health.retired_reason = Some(reason.to_string());
            })
            .expect("entry exists")
        };
        if let (Some(p), Ok(t)) = (&session.proxy, self.target(&session.target)) {
            lock(&t.proxies).released(p, failed, Instant::now());
        }
        let label = reason
            .split(':')
            .next()
            .unwrap_or(reason)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join("_");
        self.metrics.retired(&session.target, &label);
        tracing::info!(session = %session.id, target = %session.target, reason, "session retired");
        self.audit(Some(&session), "retire", reason.to_string());
        let s = (*session).clone();
        self.blocking(move |st| st.put_session(&s)).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Writes a session (flushed) and puts it into the pool, replacing any record of that id
    /// but keeping its serving state.
    ///
    /// # Errors
    /// When the store write fails (the pool is then unchanged).
    pub async fn upsert(&self, session: Session) -> Result<Arc<Session>, PoolError> {
        let s = session.clone();
        self.blocking(move |st| st.put_session(&s)).await?;
        let id = session.id.clone();
        let mut ix = self.index();
        if ix.get(&id).is_some() {
            ix.update(&id, |old| *old = session);
        } else {
            ix.insert(session);
        }
        Ok(ix.get(&id).expect("just written").session.clone())
    }

    /// Deletes a session from memory and store.
    ///
    /// # Errors
    /// `UnknownSession`, or the store failing.
    pub async fn delete(&self, id: &str) -> Result<(), PoolError> {
        let removed = self.index().remove(id);
        let key = id.to_string();
        let on_disk = self.blocking(move |s| s.delete_session(&key)).await?;
        if removed.is_none() && !on_disk {
            return Err(PoolError::UnknownSession(id.to_string()));
        }
        if let Some(e) = removed {
            if let (Some(p), Ok(t)) = (&e.session.proxy, self.target(&e.session.target)) {
                if e.session.state != SessionState::Retired {
                    lock(&t.proxies).released(p, false, Instant::now());
                }
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// A random event of the target that is not backing off; when every one is (top-up then
    /// waits, so this is a caller's warm), any.
    fn pick_event(&self, t: &TargetRuntime) -> Result<String, PoolError> {
        let events = lock(&t.events);
        lock(&t.event_backoff)
            .pick(&events, now_ms())
            .or_else(|| events.choose(&mut rand::thread_rng()))
            .cloned()
            .ok_or_else(|| PoolError::NoEvents(t.config.name.clone()))
    }

    fn warm_timeout(&self, t: &TargetConfig) -> Duration {
        self.nav_timeout(t) * 2 + t.warmup + Duration::from_secs(30)
    }

    fn nav_timeout(&self, t: &TargetConfig) -> Duration {
        t.navigation_timeout
            .unwrap_or(self.warmer.supervisor().config().navigation_timeout)
    }

    /// Warms one new session of `target` now and adds it to the pool (flushed first).
    ///
    /// # Errors
    /// `Busy` when the target's warm queue is full (the API answers 429), or the warm's error.
    pub async fn warm_now(
        &self,
        target: &str,
        opts: CreateOptions,
    ) -> Result<Arc<Session>, PoolError> {
        let t = self.target(target)?.clone();
        let custom_proxy = opts.proxy.is_some();
        if custom_proxy && !self.allow_custom_proxies {
            return Err(PoolError::CustomProxyRefused);
        }
        let cap = t.config.max_concurrent_warms * 4;
        if t.warming() >= cap {
            return Err(PoolError::Busy {
                target: target.to_string(),
                retry_after: t.config.warmup + Duration::from_secs(5),
            });
        }
        t.warming.fetch_add(1, Ordering::Relaxed);
        let r = self.warm_inner(&t, opts, None).await;
        t.warming.fetch_sub(1, Ordering::Relaxed);
        match r {
            // Whatever went wrong on the way through a caller's proxy is said the same way.
            Err(PoolError::Warm(
                WarmError::Network { .. }
                | WarmError::NavigationTimeout { .. }
                | WarmError::Browser(crate::browser::BrowserError::Timeout { .. }),
            )) if custom_proxy => Err(PoolError::ProxyUnreachable),
            r => r,
        }
    }

    async fn warm_inner(
        &self,
        t: &Arc<TargetRuntime>,
        opts: CreateOptions,
        replaces: Option<&str>,
    ) -> Result<Arc<Session>, PoolError> {
        // Picked at random from the store (top-up), rather than named by a caller or rotation.
        let picked = opts.event.is_none();
        let event = match opts.event {
            Some(e) => e,
            None => self.pick_event(t)?,
        };
        let url = match t.config.event_page(&event) {
            Ok(url) => url,
            Err(m) => {
                let e = WarmError::Invalid(m);
                self.warm_failed(t, &event, picked, None, &e);
                return Err(e.into());
            }
        };
        let _slot = tokio::select! {
            s = t.host_slots.clone().acquire_owned() => s.map_err(|_| PoolError::ShuttingDown)?,
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        };
        // Politeness: a little jitter between visits to the same host.
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..250));
        tokio::select! {
            _ = tokio::time::sleep(jitter) => {}
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        }
        let proxy = opts
            .proxy
            .clone()
            .or_else(|| lock(&t.proxies).pick(Instant::now()));
        let req = WarmRequest {
            target: t.config.name.clone(),
            event: Some(event.clone()),
            url,
            proxy: proxy.clone(),
            warmup: t.config.warmup,
            navigation_timeout: self.nav_timeout(&t.config),
            max_age: opts.ttl.unwrap_or(t.config.max_age),
            seed: None,
            viewport: opts.viewport,
        };
        let started = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(self.warm_timeout(&t.config), self.warmer.warm(&req, &|_| {})) => match r {
                Ok(r) => r,
                Err(_) => Err(WarmError::NavigationTimeout { url: crate::browser::redact_url(&req.url), after: self.warm_timeout(&t.config) }),
            },
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        };
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(session) => {
                lock(&t.backoff).succeeded();
                lock(&t.event_backoff).succeeded(&event);
                self.metrics.warm(&t.config.name, "ok", secs);
                let s = session.clone();
                self.blocking(move |st| st.put_session(&s)).await?;
                tracing::info!(
                    session = %session.id,
                    target = %session.target,
                    event = session.event.as_deref().unwrap_or("-"),
                    cookies = session.cookies.len(),
                    duration_ms = (secs * 1000.0) as u64,
                    rotation = replaces.is_some(),
                    "session warmed"
                );
                self.audit(
                    Some(&session),
                    "warm",
                    format!("{} cookies", session.cookies.len()),
                );
                let id = session.id.clone();
                self.index().insert(session);
                let arc = self.get(&id).expect("just inserted");
                if let Some(old) = replaces {
                    self.retire(old, "rotated", false).await?;
                }
                Ok(arc)
            }
            Err(e) => {
                self.metrics.warm(&t.config.name, e.kind(), secs);
                self.warm_failed(t, &event, picked, proxy.as_deref(), &e);
                Err(e.into())
            }
        }
    }

    /// Backs off what the failure blames: the event alone (top-up goes on with the target's
    /// other events, at once), the target and its proxy, or — when the browser failed —
    /// nothing but a short pause.
    fn warm_failed(
        &self,
        t: &TargetRuntime,
        event: &str,
        picked: bool,
        proxy: Option<&str>,
        e: &WarmError,
    ) {
        let now = now_ms();
        let reason = Reason {
            kind: e.kind(),
            message: e.to_string(),
        };
        // The trail (and the dashboard's recent failures) get the kind and status, not the
        // error's text: it quotes URLs, whose query strings may carry tokens.
        let status = match e {
            WarmError::TargetHttp { status, .. } => format!(" (HTTP {status})"),
            _ => String::new(),
        };
        self.audit_entry(AuditEntry {
            at: now,
            session: None,
            target: Some(t.config.name.clone()),
            action: "warm_failed".into(),
            detail: format!("event {event}: {}{status}", e.kind()),
        });
        match Culprit::of(e.blame(), picked) {
            Culprit::Event => {
                let d = lock(&t.event_backoff).failed(event, now);
                tracing::warn!(
                    target = %t.config.name,
                    event,
                    reason = e.kind(),
                    error = %e,
                    retry_in_ms = d.as_millis() as u64,
                    "warm failed; the event backs off, the target does not"
                );
                if picked {
                    // Top-up replaces this warm with one of another event now.
                    self.wake.notify_one();
                }
            }
            Culprit::Target => {
                if let Some(p) = proxy {
                    lock(&t.proxies).warm_failed(p, Instant::now());
                }
                let mut b = lock(&t.backoff);
                let d = b.failed(reason, now);
                let failures = b.state(now).map_or(0, |s| s.failures);
                drop(b);
                tracing::warn!(
                    target = %t.config.name,
                    event,
                    reason = e.kind(),
                    error = %e,
                    failures,
                    retry_in_ms = d.as_millis() as u64,
                    "warm failed; the target backs off"
                );
            }
            Culprit::Browser => {
                // A crashed or relaunching browser is no reason to back off from the target
                // or its proxy: retry shortly, once the supervisor has a browser again.
                let d = lock(&t.backoff).browser_failed(reason, now);
                tracing::warn!(
                    target = %t.config.name,
                    reason = e.kind(),
                    error = %e,
                    retry_in_ms = d.as_millis() as u64,
                    "warm failed in the browser"
                );
            }
        }
    }

    /// Starts warms so each target reaches `pool_size` (ready + warming), respecting the
    /// target's back-off after failures of its site, with events that are not backing off.
    /// Returns how many were started.
    pub fn top_up(self: &Arc<Self>) -> usize {
        let counts = self.counts();
        let mut started = 0;
        for t in &self.targets {
            if t.config.event_url.is_none() || lock(&t.events).is_empty() {
                continue;
            }
            if t.backoff().is_some() {
                // The site failed lately, or every event did.
                continue;
            }
            let name = &t.config.name;
            let ready = counts.get(&(name.clone(), "ready")).copied().unwrap_or(0)
                + counts
                    .get(&(name.clone(), "rotating"))
                    .copied()
                    .unwrap_or(0);
            let warming = t.warming();
            let deficit = t.config.pool_size.saturating_sub(ready + warming);
            // Queue at most what the host allows at once, so the back-off can take effect.
            let room = (t.config.max_concurrent_warms * 2).saturating_sub(warming);
            for _ in 0..deficit.min(room) {
                t.warming.fetch_add(1, Ordering::Relaxed);
                let pool = self.clone();
                let t = t.clone();
                self.tracker.spawn(async move {
                    let _ = pool.warm_inner(&t, CreateOptions::default(), None).await;
                    t.warming.fetch_sub(1, Ordering::Relaxed);
                });
                started += 1;
            }
        }
        started
    }

    /// Starts make-before-break replacements of sessions older than `rotate_every` (all ready
    /// sessions when `force`). The old session is served until its replacement is ready.
    pub fn rotate(self: &Arc<Self>, force: bool) -> usize {
        let now = now_ms();
        let due: Vec<(Arc<TargetRuntime>, String, Option<String>)> = {
            let mut ix = self.index();
            let mut due = Vec::new();
            let ids: Vec<String> = ix
                .iter()
                .filter(|e| {
                    e.session.state == SessionState::Ready
                        && !e.rotating
                        && e.session.account.is_none()
                })
                .map(|e| e.session.id.clone())
                .collect();
            for id in ids {
                let e = ix.get(&id).expect("listed");
                let Ok(t) = self.target(&e.session.target) else {
                    continue;
                };
                let every = t.config.rotate_every.min(t.config.full_rewarm_every);
                let old = e.session.age_ms(now) >= every.as_millis() as u64;
                if force || old {
                    // An event that fails lately is no place for the replacement: any is.
                    let event = e.session.event.clone().filter(|ev| !t.event_backs_off(ev));
                    due.push((t.clone(), id.clone(), event));
                    ix.with_mut(&id, |e| e.rotating = true);
                }
            }
            due
        };
        let n = due.len();
        for (t, id, event) in due {
            let pool = self.clone();
            self.tracker.spawn(async move {
                let opts = CreateOptions {
                    event,
                    ..Default::default()
                };
                if pool.warm_inner(&t, opts, Some(&id)).await.is_err() {
                    // Keep serving the old one; the next tick tries again.
                    pool.index().with_mut(&id, |e| e.rotating = false);
                }
            });
        }
        n
    }

    /// Retires sessions past their max age, max uses, or required-cookie expiry.
    pub async fn expire(&self) -> usize {
        let now = now_ms();
        let due: Vec<(String, String)> = self
            .index()
            .iter()
            .filter(|e| e.session.state == SessionState::Ready)
            .filter_map(|e| {
                let t = self.target(&e.session.target).ok()?;
                match t.policy.check(&e.session, now) {
                    Verdict::Retire(r) => Some((e.session.id.clone(), r)),
                    _ => None,
                }
            })
            .collect();
        for (id, reason) in &due {
            let _ = self.retire(id, reason, false).await;
        }
        due.len()
    }

    /// Ready event sessions (login sessions have their own keep-alive; rotating ones are about
    /// to go) for which `due` says it is time.
    fn due_sessions(&self, due: impl Fn(&Session, &TargetConfig) -> bool) -> Vec<Arc<Session>> {
        self.index()
            .iter()
            .filter(|e| {
                e.session.state == SessionState::Ready && !e.rotating && e.session.account.is_none()
            })
            .filter(|e| {
                self.target(&e.session.target)
                    .is_ok_and(|t| due(&e.session, &t.config))
            })
            .map(|e| e.session.clone())
            .collect()
    }

    fn client(&self, proxy: Option<&str>) -> reqwest::Client {
        let mut clients = lock(&self.http);
        clients
            .entry(proxy.map(str::to_string))
            .or_insert_with(|| {
                let mut b = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(15));
                if let Some(p) = proxy.and_then(|p| reqwest::Proxy::all(p).ok()) {
                    b = b.proxy(p);
                } else {
                    b = b.no_proxy();
                }
                b.build().unwrap_or_default()
            })
            .clone()
    }

    /// Validates ready sessions due for it (all with `force`): the target's validate request
    /// with the session's headers over plain HTTP, plus the health policy. A failure retires
    /// the session (the top-up replaces it). Returns (passed, retired).
    pub async fn validate(&self, force: bool) -> (usize, usize) {
        let now = now_ms();
        let due = self.due_sessions(|s, t| {
            let last = s.health.last_validated_at.unwrap_or(s.created_at);
            force || now.saturating_sub(last) >= t.validate_every.as_millis() as u64
        });
        let (mut ok, mut bad) = (0, 0);
        for s in due {
            if self.shutdown.is_cancelled() {
                break;
            }
            match self.validate_one(&s).await {
                Ok(()) => {
                    ok += 1;
                    self.metrics.event("validate", "ok");
                    self.index().with_mut(&s.id, |e| {
                        Arc::make_mut(&mut e.session).health.last_validated_at = Some(now_ms());
                        e.dirty = true;
                    });
                }
                Err(reason) => {
                    bad += 1;
                    self.metrics.event("validate", "failed");
                    let _ = self
                        .retire(&s.id, &format!("validation failed: {reason}"), true)
                        .await;
                }
            }
        }
        (ok, bad)
    }

    async fn validate_one(&self, s: &Session) -> Result<(), String> {
        let t = self.target(&s.target).map_err(|e| e.to_string())?;
        if let Verdict::Retire(r) = t.policy.check(s, now_ms()) {
            return Err(r);
        }
        let Some(v) = &t.config.validate else {
            return Ok(());
        };
        let url = v
            .url
            .replace("{event}", s.event.as_deref().unwrap_or_default());
        let parsed = url::Url::parse(&url).map_err(|e| e.to_string())?;
        let mut req = self.client(s.proxy.as_deref()).get(parsed.clone());
        for (k, val) in s.fingerprint.headers() {
            req = req.header(k, val);
        }
        let cookie = export::cookie_header(s, &parsed, now_ms());
        if !cookie.is_empty() {
            req = req.header("Cookie", cookie);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        let status = resp.status().as_u16();
        if status != v.expect_status {
            return Err(format!("HTTP {status}, expected {}", v.expect_status));
        }
        Ok(())
    }

    /// Revisits an event page in a context revived from each due session's stored cookies
    /// (all ready sessions with `force`), capturing the refreshed cookies. Returns (ok, failed).
    pub async fn refresh_cookies(&self, force: bool) -> (usize, usize) {
        let now = now_ms();
        let due = self.due_sessions(|s, t| {
            force || now.saturating_sub(s.refreshed_at) >= t.cookie_refresh_every.as_millis() as u64
        });
        let (mut ok, mut bad) = (0, 0);
        for s in due {
            if self.shutdown.is_cancelled() {
                break;
            }
            let url = s.url.clone();
            match self
                .in_context(&s, &url, true, &FetchOptions::default())
                .await
            {
                Ok(_) => {
                    ok += 1;
                    self.metrics.event("cookie_refresh", "ok");
                }
                Err(PoolError::Warm(WarmError::TargetHttp {
                    status: st @ (401 | 403),
                    ..
                })) => {
                    bad += 1;
                    self.metrics.event("cookie_refresh", "blocked");
                    let _ = self
                        .retire(&s.id, &format!("blocked: HTTP {st} on refresh"), true)
                        .await;
                }
                Err(e) => {
                    bad += 1;
                    self.metrics.event("cookie_refresh", "failed");
                    tracing::warn!(session = %s.id, error = %e, "cookie refresh failed");
                }
            }
        }
        (ok, bad)
    }

    /// Loads `url` in a live context revived from the session's stored cookies (and its
    /// fingerprint and proxy), then stores the updated cookies.
    ///
    /// # Errors
    /// `UnknownSession`, `Retired`, or the navigation's error.
    pub async fn fetch(&self, id: &str, url: &str) -> Result<FetchResult, PoolError> {
        self.fetch_with(id, url, &FetchOptions::default()).await
    }

    /// [`Pool::fetch`] with options: extra cookies, a dwell, media blocked, a form POST, or
    /// leaving the session's record untouched.
    ///
    /// # Errors
    /// As [`Pool::fetch`].
    pub async fn fetch_with(
        &self,
        id: &str,
        url: &str,
        opts: &FetchOptions,
    ) -> Result<FetchResult, PoolError> {
        let s = self
            .get(id)
            .ok_or_else(|| PoolError::UnknownSession(id.to_string()))?;
        if s.state == SessionState::Retired {
            return Err(PoolError::Retired(id.to_string()));
        }
        let policy = self.url_policy(&s)?;
        if !policy.allows(url) {
            return Err(PoolError::UrlNotAllowed {
                what: "url",
                origin: origin_of(url).unwrap_or_else(|| "(not an http(s) URL)".into()),
                target: s.target.clone(),
                allowed: policy.origins().to_vec(),
            });
        }
        // A scraper fetching a page wants its status, whatever it is.
        self.in_context(&s, url, false, opts).await
    }

    /// Where `s`'s browser may go: its target's origins and the origin it was warmed on.
    ///
    /// # Errors
    /// `UnknownTarget` when its target is no longer configured.
    pub fn url_policy(&self, s: &Session) -> Result<UrlPolicy, PoolError> {
        Ok(self.target(&s.target)?.urls.with([s.url.as_str()]))
    }

    /// The first target whose origins (see [`TargetRuntime::url_policy`]) include `url`'s.
    ///
    /// # Errors
    /// `UrlNotAllowed` naming every target's origins when none does.
    pub fn target_for_url(&self, url: &str) -> Result<&Arc<TargetRuntime>, PoolError> {
        self.targets
            .iter()
            .find(|t| t.urls.allows(url))
            .ok_or_else(|| {
                let mut allowed: Vec<String> = Vec::new();
                for t in &self.targets {
                    for o in t.urls.origins() {
                        if !allowed.contains(o) {
                            allowed.push(o.clone());
                        }
                    }
                }
                PoolError::UrlNotAllowed {
                    what: "url",
                    origin: origin_of(url).unwrap_or_else(|| "(not an http(s) URL)".into()),
                    target: "(any configured)".into(),
                    allowed,
                }
            })
    }

    /// [`Pool::take`] of any ready session of `target`, handing out the session record itself
    /// rather than a projection (for callers that drive the session, not serve it): the same
    /// choice, use count and lease ([`Index::take_id`]), no projection built.
    ///
    /// # Errors
    /// As [`Pool::take`].
    pub fn take_session(
        &self,
        target: &str,
        lease: Option<Duration>,
    ) -> Result<Arc<Session>, PoolError> {
        let t = self.target(target)?;
        let want = Want {
            target: &t.config.name,
            event: "",
            lease,
            max_uses: t.policy.max_uses,
            view: (0, now_ms()),
        };
        let mut ix = self.index();
        let (id, _) = ix.take_id(&want, Instant::now()).map_err(|e| match e {
            TakeError::NoneReady => PoolError::NoneReady(target.to_string()),
            TakeError::AllBusy => PoolError::AllBusy(target.to_string()),
        })?;
        ix.get(&id)
            .map(|e| e.session.clone())
            .ok_or_else(|| PoolError::NoneReady(target.to_string()))
    }

    /// Leases session `id` to one caller for `lease` from now, or ends its lease (`None`).
    ///
    /// # Errors
    /// `UnknownSession`.
    pub fn lease_session(&self, id: &str, lease: Option<Duration>) -> Result<(), PoolError> {
        let until = lease.map(|d| Instant::now() + d);
        self.index()
            .with_mut(id, |e| e.lease_until = until)
            .ok_or_else(|| PoolError::UnknownSession(id.to_string()))
    }

    /// `strict`: an HTTP error status is an error (refresh), else it is returned (fetch).
    async fn in_context(
        &self,
        s: &Session,
        url: &str,
        strict: bool,
        opts: &FetchOptions,
    ) -> Result<FetchResult, PoolError> {
        let t = self.target(&s.target)?.clone();
        let _slot = tokio::select! {
            p = t.host_slots.clone().acquire_owned() => p.map_err(|_| PoolError::ShuttingDown)?,
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        };
        let sup = self.warmer.supervisor();
        let policy = Arc::new(self.url_policy(s)?);
        let ctx = sup
            .new_guarded_context(s.proxy.as_deref(), policy.clone())
            .await
            .map_err(WarmError::from)?;
        let result = async {
            ctx.apply_fingerprint(&s.fingerprint).await?;
            // Chromium refuses an empty Storage.setCookies (a site that set none).
            if !s.cookies.is_empty() {
                ctx.set_cookies(&s.cookies).await?;
            }
            if !opts.cookies.is_empty() {
                ctx.set_cookies(&opts.cookies).await?;
            }
            if opts.disable_media {
                block_media(&ctx).await?;
            }
            let after = self.nav_timeout(&t.config);
            let status = match &opts.form {
                Some(fields) => {
                    // From a page of the URL's origin: the site's SameSite=Lax cookies go with
                    // the POST and its Origin is its own (a blank page's would be `null`).
                    let from = if origin_of(&s.url) == origin_of(url) {
                        s.url.clone()
                    } else {
                        origin_of(url).map(|o| format!("{o}/")).unwrap_or_default()
                    };
                    warm::load(&ctx, &from, after).await?;
                    submit_form(&ctx, url, fields, after).await?
                }
                None if strict => warm::visit(&ctx, url, after).await?,
                None => warm::load(&ctx, url, after).await?,
            };
            if !opts.wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(opts.wait) => {}
                    _ = self.shutdown.cancelled() => return Err(WarmError::Browser(crate::browser::BrowserError::ShuttingDown)),
                }
            }
            let body: String = ctx
                .evaluate("document.documentElement ? document.documentElement.outerHTML : ''")
                .await?;
            let final_url: String = ctx.evaluate("location.href").await?;
            let (cookies, origins, _) = warm::capture(&ctx).await?;
            Ok::<_, WarmError>((status, body, final_url, cookies, origins))
        }
        .await;
        let refused = ctx.refused();
        ctx.dispose().await;
        if let (Some(to), Err(_)) = (refused, &result) {
            return Err(PoolError::UrlNotAllowed {
                what: "a redirect to",
                origin: origin_of(&to).unwrap_or_default(),
                target: s.target.clone(),
                allowed: policy.origins().to_vec(),
            });
        }
        let (status, body, final_url, cookies, origins) = result?;
        if opts.detached {
            return Ok(FetchResult {
                status,
                url: final_url,
                body,
                cookies,
            });
        }
        let updated = self.index().update(&s.id, |sess| {
            sess.cookies = cookies.clone();
            if !origins.is_empty() {
                sess.origins = origins;
            }
            sess.refreshed_at = now_ms();
        });
        if let Some(u) = updated {
            let snapshot = (*u).clone();
            self.blocking(move |st| st.put_session(&snapshot)).await?;
            self.audit(Some(&u), "refresh", format!("{} cookies", u.cookies.len()));
        }
        Ok(FetchResult {
            status,
            url: final_url,
            body,
            cookies,
        })
    }

    /// Writes sessions whose uses or health changed in memory only.
    ///
    /// # Errors
    /// When the store write fails.
    pub async fn persist(&self) -> Result<usize, PoolError> {
        let dirty = self.index().take_dirty();
        let n = dirty.len();
        if n > 0 {
            self.blocking(move |st| st.update_sessions(&dirty)).await?;
        }
        Ok(n)
    }

    /// Drops retired sessions older than `retention` from memory and store; trims the audit.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn cleanup(
        &self,
        retention: Duration,
        audit_keep: usize,
    ) -> Result<usize, PoolError> {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let old: Vec<String> = {
            let mut ix = self.index();
            let ids: Vec<String> = ix
                .iter()
                .filter(|e| {
                    e.session.state == SessionState::Retired && retired_at(&e.session) <= cutoff
                })
                .map(|e| e.session.id.clone())
                .collect();
            for id in &ids {
                ix.remove(id);
            }
            ids
        };
        let n = old.len();
        self.blocking(move |st| {
            for id in &old {
                st.delete_session(id)?;
            }
            st.trim_audit(audit_keep)?;
            Ok(())
        })
        .await?;
        Ok(n)
    }

    /// Statistics in the seed's shape (minutes).
    pub fn stats(&self) -> PoolStats {
        let now = now_ms();
        let ix = self.index();
        let mut total = 0;
        let mut active = 0;
        let mut valid = 0;
        let mut ages = Vec::new();
        for e in ix.iter() {
            total += 1;
            let s = &e.session;
            if s.state != SessionState::Ready {
                continue;
            }
            active += 1;
            ages.push(s.age_ms(now));
            let t_ok = self
                .target(&s.target)
                .is_ok_and(|t| t.policy.check(s, now) == Verdict::Keep);
            if t_ok && s.health.error_score < 1.0 {
                valid += 1;
            }
        }
        let avg = if ages.is_empty() {
            0.0
        } else {
            ages.iter().sum::<u64>() as f64 / ages.len() as f64 / 60_000.0
        };
        drop(ix);
        let counts = self.counts();
        let targets = self
            .targets
            .iter()
            .map(|t| {
                let name = &t.config.name;
                let n = |st: &'static str| counts.get(&(name.clone(), st)).copied().unwrap_or(0);
                TargetStats {
                    name: name.clone(),
                    pool_size: t.config.pool_size,
                    ready: n("ready") + n("rotating"),
                    warming: n("warming") + t.warming(),
                    backoff: t.backoff().map(|b| TargetBackoffStats {
                        seconds: (b.remaining.as_secs_f64() * 10.0).ceil() / 10.0,
                        reason: b.reason.message,
                        kind: b.reason.kind.to_string(),
                        failures: b.failures,
                    }),
                    events_backed_off: t.events_backed_off(),
                }
            })
            .collect();
        PoolStats {
            targets,
            total_sessions: total,
            active_sessions: active,
            valid_sessions: valid,
            average_age: (avg * 10.0).round() / 10.0,
            oldest_session: ages
                .iter()
                .max()
                .map(|m| *m as f64 / 60_000.0)
                .map(|m| (m * 10.0).round() / 10.0)
                .unwrap_or(0.0),
        }
    }

    /// Flushes every pending write (shutdown).
    pub async fn flush(&self) {
        if let Err(e) = self.persist().await {
            tracing::warn!(error = %e, "persisting sessions at shutdown");
        }
        if let Err(e) = self.blocking(|s| s.flush()).await {
            tracing::warn!(error = %e, "flushing the store at shutdown");
        }
    }
}

fn retired_at(s: &Session) -> UnixMillis {
    s.refreshed_at.max(s.created_at)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocks images, stylesheets and fonts in `ctx`'s page by URL ([`MEDIA_EXTENSIONS`]).
async fn block_media(ctx: &crate::browser::BrowserContext) -> Result<(), WarmError> {
    use chromiumoxide::cdp::browser_protocol::network::{BlockPattern, SetBlockedUrLsParams};
    let patterns = MEDIA_EXTENSIONS
        .iter()
        .flat_map(|ext| {
            // With and without a query string.
            [
                BlockPattern::new(format!("*://*:*/*.{ext}"), true),
                BlockPattern::new(format!("*://*:*/*.{ext}?*"), true),
            ]
        })
        .collect();
    let params = SetBlockedUrLsParams {
        url_patterns: Some(patterns),
    };
    crate::browser::cdp_call(ctx, "Network.setBlockedURLs", ctx.page().execute(params)).await?;
    Ok(())
}

/// Submits `fields` to `url` as a form POST from the page now loaded in `ctx` and waits for the
/// resulting document's load, at most `after`. Returns its status. The form is built by a
/// script with the values as JSON literals, and submitted through the prototype's `submit` (a
/// field named `submit` cannot shadow it); the request goes through the context's URL guard
/// like any navigation.
///
/// # Errors
/// `NavigationTimeout` when no document loaded in time, `Network` when the POST produced no
/// document (refused, or a net error), or the browser's error.
async fn submit_form(
    ctx: &crate::browser::BrowserContext,
    url: &str,
    fields: &[(String, String)],
    after: Duration,
) -> Result<Option<u16>, WarmError> {
    use crate::browser::cdp_call as cdp;
    use chromiumoxide::cdp::browser_protocol::network::{EventResponseReceived, ResourceType};
    use chromiumoxide::cdp::browser_protocol::page::EventLoadEventFired;
    use futures::{FutureExt, StreamExt};
    let page = ctx.page();
    let frame = cdp(ctx, "Page.getFrameTree", page.mainframe()).await?;
    let mut responses = cdp(
        ctx,
        "Network.responseReceived listener",
        page.event_listener::<EventResponseReceived>(),
    )
    .await?;
    let mut loads = cdp(
        ctx,
        "Page.loadEventFired listener",
        page.event_listener::<EventLoadEventFired>(),
    )
    .await?;
    let js = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("[{},{}],", js(k), js(v)))
        .collect();
    let script = format!(
        "(() => {{ const f = document.createElement('form'); f.method = 'POST'; \
         f.enctype = 'application/x-www-form-urlencoded'; f.action = {}; \
         for (const [k, v] of [{inputs}]) {{ const i = document.createElement('input'); \
         i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }} \
         (document.body || document.documentElement).appendChild(f); \
         HTMLFormElement.prototype.submit.call(f); return true; }})()",
        js(url)
    );
    let _: bool = ctx.evaluate(&script).await?;
    let shown = crate::browser::redact_url(url);
    if tokio::time::timeout(after, loads.next()).await.is_err() {
        return Err(WarmError::NavigationTimeout { url: shown, after });
    }
    let mut status = None;
    while let Some(Some(ev)) = responses.next().now_or_never() {
        if ev.r#type == ResourceType::Document && (frame.is_none() || ev.frame_id == frame) {
            status = Some(ev.response.status as u16);
        }
    }
    if status.is_none() {
        return Err(WarmError::Network {
            url: shown,
            message: "the form POST produced no document (refused or failed)".into(),
        });
    }
    Ok(status)
}

/// `GET /api/sessions/stats`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStats {
    pub total_sessions: usize,
    pub active_sessions: usize,
    pub valid_sessions: usize,
    /// Minutes.
    pub average_age: f64,
    /// Minutes.
    pub oldest_session: f64,
    /// Each target: its pool, and why top-up is not warming it, if it is not.
    pub targets: Vec<TargetStats>,
}

/// One target in `GET /api/sessions/stats`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStats {
    /// The target's name.
    pub name: String,
    /// Ready sessions the pool keeps for it.
    pub pool_size: usize,
    /// Servable sessions now (rotating ones included).
    pub ready: usize,
    /// New sessions warming now.
    pub warming: usize,
    /// `null` while top-up may warm the target; else how long it waits and why.
    pub backoff: Option<TargetBackoffStats>,
    /// Events of the target skipped for now because their warms failed (unknown, gone, not
    /// published); the target itself keeps warming its others.
    pub events_backed_off: usize,
}

/// Why and how long top-up is not warming a target.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetBackoffStats {
    /// Seconds left.
    pub seconds: f64,
    /// The failure behind it, for people.
    pub reason: String,
    /// Its label: a warm error kind (`target_http`, `network`, `navigation_timeout`, ...),
    /// or `all_events_backed_off`.
    pub kind: String,
    /// Failed warms in a row that blamed the target.
    pub failures: u32,
}
