//! Which pool session answers a FlareSolverr request: a named session's pin (`sessions.create`
//! names one; it pins a pool session per target, leased to it, until destroyed or idle), or
//! for a request without `session` one taken from the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AppState, Failure, POLL};
use crate::pool::{CreateOptions, Pool, PoolError};
use crate::session::{Session, SessionState};

/// Named sessions (`sessions.create`): each pins at most one pool session per target.
pub struct NamedSessions {
    /// A named session idle this long is destroyed (`flaresolverr.session_idle`).
    pub(super) idle: Duration,
    pub(super) named: Mutex<HashMap<String, Named>>,
    /// Creation order, for `sessions.list`.
    pub(super) serial: std::sync::atomic::AtomicU64,
}

/// One named session.
pub(super) struct Named {
    /// Its place in `sessions.list`.
    pub(super) serial: u64,
    /// Last use; it is destroyed `idle` after it.
    pub(super) last_used: Instant,
    /// Pool session pinned per target name.
    pub(super) pins: HashMap<String, Pin>,
    /// The caller's proxy (`sessions.create` with `proxy`): its pins are warmed through it.
    pub(super) proxy: Option<String>,
}

/// A pool session leased to a named session.
#[derive(Clone)]
pub(super) struct Pin {
    pub(super) session: String,
    pub(super) pinned_at: Instant,
    /// A caller's cookies or a form POST changed it: retired when unpinned, not handed back to
    /// the pool.
    pub(super) dirty: bool,
}

impl NamedSessions {
    /// No named sessions yet; one idle for `idle` is destroyed.
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            named: Mutex::new(HashMap::new()),
            serial: Default::default(),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Named>> {
        self.named.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `name` unless it exists; whether it was created.
    pub(super) fn create(&self, name: &str, proxy: Option<String>) -> bool {
        let mut m = self.lock();
        if m.contains_key(name) {
            return false;
        }
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.insert(
            name.to_string(),
            Named {
                serial,
                last_used: Instant::now(),
                pins: HashMap::new(),
                proxy,
            },
        );
        true
    }

    /// Names in creation order.
    pub(super) fn names(&self) -> Vec<String> {
        let m = self.lock();
        let mut v: Vec<(&String, u64)> = m.iter().map(|(k, n)| (k, n.serial)).collect();
        v.sort_by_key(|(_, s)| *s);
        v.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// Removes `name`; its pins, or `None` when there was no such session.
    pub(super) fn remove(&self, name: &str) -> Option<Vec<Pin>> {
        self.lock()
            .remove(name)
            .map(|n| n.pins.into_values().collect())
    }

    /// Removes the sessions idle for longer than `idle`; their pins.
    pub(super) fn expire(&self) -> Vec<Pin> {
        let now = Instant::now();
        let mut m = self.lock();
        let gone: Vec<String> = m
            .iter()
            .filter(|(_, n)| now.duration_since(n.last_used) >= self.idle)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| m.remove(&k))
            .flat_map(|n| n.pins.into_values())
            .collect()
    }
}

/// Gives a pin's pool session back (its lease ends), or retires it when the caller changed it.
pub(super) async fn unpin(pool: &Pool, pin: &Pin) {
    if pin.dirty {
        let _ = pool
            .retire(
                &pin.session,
                crate::session::RetireReason::FlareSolverrEnded,
                false,
            )
            .await;
    } else {
        let _ = pool.lease_session(&pin.session, None);
    }
}

/// A ready session of `target` for a request without `session`: taken from the pool (a use is
/// counted), or with a caller's proxy warmed through it now. Waits while none is ready.
pub(super) async fn anonymous(
    state: &AppState,
    target: &str,
    proxy: Option<String>,
) -> Result<Arc<Session>, Failure> {
    match proxy {
        Some(p) => warm_through(&state.pool, target, p).await,
        None => take(&state.pool, target, None).await,
    }
}

/// A session of `target` warmed now through the caller's `proxy` (it joins the pool).
async fn warm_through(pool: &Pool, target: &str, proxy: String) -> Result<Arc<Session>, Failure> {
    let options = CreateOptions {
        proxy: Some(proxy),
        ..Default::default()
    };
    Ok(pool.warm_now(target, options).await?)
}

/// Takes a ready session of `target`, waiting (the caller bounds it) while none is free.
pub(super) async fn take(
    pool: &Pool,
    target: &str,
    lease: Option<Duration>,
) -> Result<Arc<Session>, Failure> {
    loop {
        match pool.take_session(target, lease) {
            Ok(s) => return Ok(s),
            Err(PoolError::NoneReady(_) | PoolError::AllBusy(_)) => tokio::time::sleep(POLL).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The pool session named session `name` holds on `target`: its pin while that is still ready
/// and younger than `ttl`, else a new one taken (or warmed through the session's proxy) and
/// leased to it. Creates `name` when unknown (as FlareSolverr does). `changes`: the request
/// brings cookies or a POST, so the pin is retired rather than handed back at the end.
pub(super) async fn pinned(
    state: &AppState,
    name: &str,
    target: &str,
    ttl: Option<Duration>,
    changes: bool,
) -> Result<Arc<Session>, Failure> {
    let named = &state.flaresolverr;
    let pool = &state.pool;
    named.create(name, None);
    let (current, proxy) = {
        let mut m = named.lock();
        let n = m.get_mut(name).expect("just created");
        n.last_used = Instant::now();
        (n.pins.get(target).cloned(), n.proxy.clone())
    };
    if let Some(pin) = current {
        let live = pool
            .get(&pin.session)
            .filter(|s| s.state == SessionState::Ready);
        let fresh = ttl.is_none_or(|t| pin.pinned_at.elapsed() < t);
        match live {
            Some(s) if fresh => {
                pool.lease_session(&s.id, Some(named.idle))?;
                let mut m = named.lock();
                if let Some(p) = m.get_mut(name).and_then(|n| n.pins.get_mut(target)) {
                    p.dirty |= changes;
                }
                return Ok(s);
            }
            _ => unpin(pool, &pin).await,
        }
    }
    let s = match proxy {
        Some(p) => {
            let s = warm_through(pool, target, p).await?;
            pool.lease_session(&s.id, Some(named.idle))?;
            s
        }
        None => take(pool, target, Some(named.idle)).await?,
    };
    let pin = Pin {
        session: s.id.clone(),
        pinned_at: Instant::now(),
        dirty: changes,
    };
    // Destroyed meanwhile, or pinned by a concurrent request: give this one back.
    let replaced = {
        let mut m = named.lock();
        match m.get_mut(name) {
            Some(n) => n.pins.insert(target.to_string(), pin.clone()),
            None => Some(pin.clone()),
        }
    };
    if let Some(old) = replaced.filter(|o| o.session != s.id) {
        unpin(pool, &old).await;
    }
    Ok(s)
}
