//! The site's memory: visitors and their nonces, login sessions with their last activity,
//! accounts, the global fault and the counters. Everything behind short-lived std mutexes
//! (never held across an await). Time-dependent methods take `now`, so expiry is unit-tested
//! without sleeping.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use super::{DemoConfig, DemoStats, Fault};

/// How long a visitor id (and its nonce) stays valid; matches the cookies' Max-Age.
pub(crate) const VISITOR_TTL: Duration = Duration::from_secs(7200);

/// Above this many visitors, expired ones are swept on the next insert.
const VISITOR_SWEEP_THRESHOLD: usize = 10_000;

/// A browser that loaded an event page.
struct Visitor {
    /// The nonce its page embedded; the `challenge` cookie must carry it.
    nonce: String,
    /// When the visitor id was issued; it lapses after [`VISITOR_TTL`].
    issued: Instant,
}

/// A signed-in browser.
struct LoginSession {
    /// The account it signed in as.
    user: String,
    /// Last request that used it; it lapses `login_inactivity` after this.
    last_activity: Instant,
}

/// Counters behind [`DemoStats`].
#[derive(Default)]
struct Counters {
    event_visits: AtomicU64,
    logins: AtomicU64,
    login_failures: AtomicU64,
    account_hits: AtomicU64,
    api_ok: AtomicU64,
    api_denied: AtomicU64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    EventVisits,
    Logins,
    LoginFailures,
    AccountHits,
    ApiOk,
    ApiDenied,
}

/// Shared state of one running demo site.
pub(crate) struct SiteState {
    /// Delay before the event page's script sets the challenge cookie.
    pub js_delay: Duration,
    /// Inactivity after which a login session lapses.
    pub login_inactivity: Duration,
    /// Cancelled when the site shuts down; hanging handlers wait on it so shutdown completes.
    pub shutdown: CancellationToken,
    /// username -> password; changeable at runtime by `set_password`.
    users: Mutex<HashMap<String, String>>,
    /// visitor id -> visitor.
    visitors: Mutex<HashMap<String, Visitor>>,
    /// sid -> login session.
    logins: Mutex<HashMap<String, LoginSession>>,
    /// Fault applied to every `/event/{id}` without its own `?fault=`.
    fault: Mutex<Option<Fault>>,
    /// Request counters.
    counters: Counters,
    /// Asset counters and the HttpOnly token's time (`readiness`).
    pub readiness: super::readiness::ReadinessState,
}

/// Locks a mutex, shrugging off poisoning: every critical section leaves the maps consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh random id: 32 lowercase hex digits (128 bits).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SiteState {
    /// State for a site started with `config`.
    pub fn new(config: DemoConfig, shutdown: CancellationToken) -> Self {
        Self {
            js_delay: config.js_delay,
            login_inactivity: config.login_inactivity,
            shutdown,
            users: Mutex::new(config.users),
            visitors: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
            fault: Mutex::new(None),
            counters: Counters::default(),
            readiness: Default::default(),
        }
    }

    /// The visitor for a request carrying `cookie` (the `visitor` cookie's value, if any):
    /// that visitor when it is known and unexpired, else a newly issued one.
    /// Returns `(visitor id, nonce)`.
    pub fn visitor_for(&self, cookie: Option<&str>, now: Instant) -> (String, String) {
        let mut visitors = lock(&self.visitors);
        if let Some(id) = cookie {
            if let Some(v) = visitors.get(id) {
                if now.duration_since(v.issued) < VISITOR_TTL {
                    return (id.to_owned(), v.nonce.clone());
                }
            }
        }
        if visitors.len() >= VISITOR_SWEEP_THRESHOLD {
            visitors.retain(|_, v| now.duration_since(v.issued) < VISITOR_TTL);
        }
        let id = random_id();
        let nonce = random_id()[..16].to_owned();
        visitors.insert(
            id.clone(),
            Visitor {
                nonce: nonce.clone(),
                issued: now,
            },
        );
        (id, nonce)
    }

    /// The nonce of a known, unexpired visitor.
    pub fn nonce_for(&self, visitor: &str, now: Instant) -> Option<String> {
        let visitors = lock(&self.visitors);
        visitors
            .get(visitor)
            .filter(|v| now.duration_since(v.issued) < VISITOR_TTL)
            .map(|v| v.nonce.clone())
    }

    /// Whether `password` is `username`'s current password.
    pub fn check_password(&self, username: &str, password: &str) -> bool {
        lock(&self.users)
            .get(username)
            .is_some_and(|pw| pw == password)
    }

    /// Sets (or adds) an account's password. Existing login sessions stay signed in.
    pub fn set_password(&self, user: &str, pw: &str) {
        lock(&self.users).insert(user.to_owned(), pw.to_owned());
    }

    /// Opens a login session for `user`; returns its sid.
    pub fn open_login(&self, user: &str, now: Instant) -> String {
        let sid = random_id();
        let mut logins = lock(&self.logins);
        let inactivity = self.login_inactivity;
        logins.retain(|_, s| now.duration_since(s.last_activity) < inactivity);
        logins.insert(
            sid.clone(),
            LoginSession {
                user: user.to_owned(),
                last_activity: now,
            },
        );
        sid
    }

    /// The user signed in with `sid` if its session is alive, refreshing its activity time;
    /// a lapsed session is forgotten and yields `None`.
    pub fn touch_login(&self, sid: &str, now: Instant) -> Option<String> {
        let mut logins = lock(&self.logins);
        let session = logins.get_mut(sid)?;
        if now.duration_since(session.last_activity) < self.login_inactivity {
            session.last_activity = now;
            Some(session.user.clone())
        } else {
            logins.remove(sid);
            None
        }
    }

    /// Forgets every visitor and login session.
    pub fn revoke_all(&self) {
        lock(&self.visitors).clear();
        lock(&self.logins).clear();
    }

    /// The global fault.
    pub fn fault(&self) -> Option<Fault> {
        *lock(&self.fault)
    }

    /// Sets or clears the global fault.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *lock(&self.fault) = fault;
    }

    /// Adds one to a counter.
    pub fn count(&self, counter: Counter) {
        let c = &self.counters;
        let cell = match counter {
            Counter::EventVisits => &c.event_visits,
            Counter::Logins => &c.logins,
            Counter::LoginFailures => &c.login_failures,
            Counter::AccountHits => &c.account_hits,
            Counter::ApiOk => &c.api_ok,
            Counter::ApiDenied => &c.api_denied,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DemoStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DemoStats {
            event_visits: get(&c.event_visits),
            logins: get(&c.logins),
            login_failures: get(&c.login_failures),
            account_hits: get(&c.account_hits),
            api_ok: get(&c.api_ok),
            api_denied: get(&c.api_denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(inactivity: Duration) -> SiteState {
        let config = DemoConfig {
            login_inactivity: inactivity,
            ..DemoConfig::default()
        };
        SiteState::new(config, CancellationToken::new())
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn login_lapses_after_inactivity_and_activity_refreshes_it() {
        let s = state(60 * SEC);
        let t0 = Instant::now();
        let sid = s.open_login("alice", t0);
        assert_eq!(s.touch_login(&sid, t0 + 50 * SEC).as_deref(), Some("alice"));
        assert_eq!(
            s.touch_login(&sid, t0 + 100 * SEC).as_deref(),
            Some("alice")
        );
        assert_eq!(s.touch_login(&sid, t0 + 160 * SEC), None);
        // Forgotten, not merely stale: even an earlier clock cannot revive it.
        assert_eq!(s.touch_login(&sid, t0 + 100 * SEC), None);
    }

    #[test]
    fn opening_a_login_sweeps_lapsed_ones() {
        let s = state(60 * SEC);
        let t0 = Instant::now();
        let old = s.open_login("alice", t0);
        let _new = s.open_login("bob", t0 + 61 * SEC);
        assert_eq!(lock(&s.logins).len(), 1);
        assert_eq!(s.touch_login(&old, t0), None);
    }

    #[test]
    fn visitors_are_reused_until_they_expire() {
        let s = state(60 * SEC);
        let t0 = Instant::now();
        let (id, nonce) = s.visitor_for(None, t0);
        assert_eq!(
            s.visitor_for(Some(&id), t0 + SEC),
            (id.clone(), nonce.clone())
        );
        assert_eq!(s.nonce_for(&id, t0 + SEC), Some(nonce));
        assert_eq!(s.nonce_for(&id, t0 + VISITOR_TTL), None);
        assert_ne!(s.visitor_for(Some(&id), t0 + VISITOR_TTL).0, id);
        assert_ne!(s.visitor_for(Some("made-up"), t0).0, "made-up");
    }

    #[test]
    fn revoke_forgets_everything() {
        let s = state(60 * SEC);
        let t0 = Instant::now();
        let (id, _) = s.visitor_for(None, t0);
        let sid = s.open_login("bob", t0);
        s.revoke_all();
        assert_eq!(s.nonce_for(&id, t0), None);
        assert_eq!(s.touch_login(&sid, t0), None);
    }

    #[test]
    fn passwords_can_change() {
        let s = state(60 * SEC);
        assert!(s.check_password("alice", "wonderland"));
        assert!(!s.check_password("alice", "Wonderland"));
        assert!(!s.check_password("carol", ""));
        s.set_password("alice", "looking-glass");
        assert!(!s.check_password("alice", "wonderland"));
        assert!(s.check_password("alice", "looking-glass"));
    }
}
