//! Warming sessions into the pool: the event picked, the host's turn (its warm slot and a
//! little jitter, held only while the browser works on the host), the warm itself under the whole-warm bound, and then either the new session stored and
//! served (retiring the one it replaces, for a rotation) or the failure's back-off (of the
//! event, the target and its proxy, or a short pause for the browser). Which sessions to warm
//! and when is decided by `schedule::topup` and `schedule::rotate`; `POST /api/sessions`
//! warms through [`Pool::warm_now`].

use rand::seq::SliceRandom;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{chain, clock, lock, Culprit, Entry, Pool, PoolError, Reason, TargetRuntime};
use crate::config::TargetConfig;
use crate::session::{now_ms, RetireReason, Session, SessionState};
use crate::store::{AuditEntry, Claim, CoordError, Work};
use crate::warm::turn::HostTurn;
use crate::warm::{Warm, WarmError, WarmRequest};

/// Options for a session created through the API.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The event to warm on; a random one of the target's (not backing off) when `None`.
    pub event: Option<String>,
    /// Served for this long instead of the target's `max_age`.
    pub ttl: Option<Duration>,
    /// A caller's proxy (only with `server.allow_custom_proxies`).
    pub proxy: Option<String>,
    /// Window size instead of the fingerprint's.
    pub viewport: Option<(u32, u32)>,
    /// A caller's User-Agent to earn and serve the session with (seed 002's
    /// `browser.userAgent`; see `fingerprint::custom`).
    pub user_agent: Option<String>,
}

impl<W: Warm> Pool<W> {
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
        self.nav_timeout(t) * 2
            + t.journey_bound(self.nav_timeout(t))
            + t.warmup
            + Duration::from_secs(30)
    }

    /// The bound of one navigation for target `t`: its own, else the browser's.
    pub(super) fn nav_timeout(&self, t: &TargetConfig) -> Duration {
        t.navigation_timeout
            .unwrap_or(self.warmer.navigation_timeout())
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
        let r = self.warm_into(&t, opts, None).await;
        t.warming.fetch_sub(1, Ordering::Relaxed);
        match r {
            // Whatever went wrong on the way through a caller's proxy is said the same way.
            Err(PoolError::Warm(
                WarmError::Network { .. }
                | WarmError::NavigationTimeout { .. }
                | WarmError::WarmTimeout { .. }
                | WarmError::Browser(crate::browser::BrowserError::Timeout { .. }),
            )) if custom_proxy => Err(PoolError::ProxyUnreachable),
            r => r,
        }
    }

    /// Starts the make-before-break replacement of session `old` (marked rotating by
    /// [`Pool::mark_rotating`]) on the pool's task tracker: a new session of `t`, on `event`
    /// when given; `old` is retired once the new one is served, or keeps being served (and
    /// may be picked again) when the warm fails. Claimed by name ([`Pool::claimed`]): with a
    /// shared store, one daemon replaces it, and only while its claim is current.
    pub fn start_rotation(
        self: &Arc<Self>,
        t: &Arc<TargetRuntime>,
        old: String,
        event: Option<String>,
    ) {
        let pool = self.clone();
        let t = t.clone();
        self.tracker.spawn(async move {
            let opts = CreateOptions {
                event,
                ..Default::default()
            };
            let work = Work::Rotate {
                session: old.clone(),
            };
            // Claimed by name: of the daemons sharing a store, one replaces it. Still ready
            // once claimed, or another daemon replaced it meanwhile.
            let period = t.config.rotate_every.min(t.config.full_rewarm_every);
            let rotated = pool
                .claimed(&t.config.name, work, period, async {
                    let ready = |e: &Entry| e.session.state == SessionState::Ready;
                    match pool.session_if(&old, ready) {
                        Some(_) => pool.warm_into(&t, opts, Some(&old)).await.is_ok(),
                        None => true,
                    }
                })
                .await;
            if rotated != Some(true) {
                // Keep serving the old one; the next tick tries again.
                pool.index().with_mut(&old, |e| e.rotating = false);
            }
        });
    }

    /// Warms one session of `t` and puts it into the pool (stored first); with `replaces`,
    /// retires that session once the new one is served. A failure backs off what it blames.
    ///
    /// # Errors
    /// `NoEvents`, `ShuttingDown`, the warm's error, or the store's.
    pub async fn warm_into(
        &self,
        t: &Arc<TargetRuntime>,
        opts: CreateOptions,
        replaces: Option<&str>,
    ) -> Result<Arc<Session>, PoolError> {
        // Without a claim the record is written as it is: `None` does not happen.
        self.warm_with(t, opts, replaces, None)
            .await?
            .ok_or(PoolError::ShuttingDown)
    }

    /// [`Pool::warm_into`], with the new record written by a fenced commit of `claim` when
    /// given: `Ok(None)` when the claim was lost meanwhile (another daemon took the work over;
    /// nothing is written or served, and the warm's context is already gone).
    ///
    /// # Errors
    /// As [`Pool::warm_into`].
    pub(super) async fn warm_with(
        &self,
        t: &Arc<TargetRuntime>,
        opts: CreateOptions,
        replaces: Option<&str>,
        claim: Option<&Claim>,
    ) -> Result<Option<Arc<Session>>, PoolError> {
        // Picked at random from the store (top-up), rather than named by a caller or rotation.
        let picked = opts.event.is_none();
        let event = match opts.event {
            Some(e) => e,
            None => self.pick_event(t)?,
        };
        let url = match t.config.event_page(&event) {
            Ok(url) => url,
            Err(m) => {
                let e = WarmError::Invalid(m.to_string());
                self.warm_failed(t, &event, picked, None, &e).await;
                return Err(e.into());
            }
        };
        // Politeness: the host's turn, entered by the warm just before its first navigation
        // (after a little jitter, `warm_jitter`) and left once the page is ready. Top-up keeps
        // twice the host's slots under way (woken as each warm ends), so while the pool is
        // below its size the next warm is already open and waiting for the host.
        let turn = HostTurn::new(t.host.clone(), t.config.warm_jitter, self.shutdown.clone());
        let proxy = opts
            .proxy
            .clone()
            .or_else(|| lock(&t.proxies).pick(clock()));
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
            ready_when: t.config.ready_when.clone(),
            warm_steps: t.config.warm_steps.clone(),
            block: t.config.block.clone(),
            turn: Some(turn.clone()),
        };
        let started = Instant::now();
        let bound = self.warm_timeout(&t.config);
        let result = tokio::select! {
            r = tokio::time::timeout(bound, self.warmer.warm_as(&req, opts.user_agent.as_deref())) => match r {
                Ok(r) => r,
                Err(_) => Err(WarmError::WarmTimeout { url: crate::browser::redact_url(&req.url), after: bound }),
            },
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        };
        let secs = started.elapsed().as_secs_f64();
        // Given back by the warm once its page was ready; here too when it failed before.
        turn.leave();
        match result {
            Ok(session) => {
                lock(&t.backoff).succeeded();
                lock(&t.event_backoff).succeeded(&event);
                self.metrics.warm(&t.config.name, "ok", secs);
                match claim {
                    None => self.put_session(&session).await?,
                    Some(c) => match self.coordination.commit(c, Some(&session)).await {
                        Ok(()) => {}
                        Err(CoordError::LeaseLost { what }) => {
                            self.metrics.event("cluster", "lease_lost");
                            tracing::warn!(
                                work = %what,
                                session = %session.id,
                                "warm finished after its claim was lost; another daemon took \
                                 it over, so this session is dropped unwritten"
                            );
                            return Ok(None);
                        }
                        Err(CoordError::Store(e)) => return Err(e.into()),
                    },
                }
                // Into the index at once: top-up counts the pool from it, and the commit no
                // longer counts this warm as under way.
                let id = session.id.clone();
                self.index().insert(session);
                let arc = self.get(&id).expect("just inserted");
                tracing::info!(
                    session = %arc.id,
                    target = %arc.target,
                    event = arc.event.as_deref().unwrap_or("-"),
                    cookies = arc.cookies.len(),
                    duration_ms = (secs * 1000.0) as u64,
                    rotation = replaces.is_some(),
                    "session warmed"
                );
                self.audit(Some(&arc), "warm", format!("{} cookies", arc.cookies.len()))
                    .await;
                if let Some(old) = replaces {
                    self.retire(old, RetireReason::Rotated, false).await?;
                }
                Ok(Some(arc))
            }
            Err(e) => {
                self.metrics.warm(&t.config.name, e.kind(), secs);
                self.warm_failed(t, &event, picked, proxy.as_deref(), &e)
                    .await;
                Err(e.into())
            }
        }
    }

    /// Backs off what the failure blames: the event alone (top-up goes on with the target's
    /// other events, at once), the target and its proxy, or — when the browser failed —
    /// nothing but a short pause.
    async fn warm_failed(
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
        })
        .await;
        match Culprit::of(e.blame(), picked) {
            Culprit::Event => {
                let d = lock(&t.event_backoff).failed(event, now);
                tracing::warn!(
                    target = %t.config.name,
                    event,
                    reason = e.kind(),
                    error = %chain(e),
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
                    lock(&t.proxies).warm_failed(p, clock());
                }
                let mut b = lock(&t.backoff);
                let d = b.failed(reason, now);
                let failures = b.state(now).map_or(0, |s| s.failures);
                drop(b);
                tracing::warn!(
                    target = %t.config.name,
                    event,
                    reason = e.kind(),
                    error = %chain(e),
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
                    error = %chain(e),
                    retry_in_ms = d.as_millis() as u64,
                    "warm failed in the browser"
                );
            }
        }
    }
}
