//! Figures over the pool for operators, computed here in the domain so the HTTP edge only
//! serialises them: the cookie counts of `GET /api/cookies/stats` ([`CookieStats`]) and the
//! gauges `GET /metrics` renders beside its counters ([`gauges`]). No values leave here: only
//! counts, names and times.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::browser::Supervisor;
use crate::keepalive::AccountStatus;
use crate::metrics::Gauge;
use crate::pool::Pool;
use crate::session::{Session, SessionState, UnixMillis};
use crate::warm::Warm;

/// A cookie counts as "expiring soon" when it expires within this long.
const SOON_MS: u64 = 3_600_000;

/// Cookie counts over the ready sessions (`GET /api/cookies/stats`); no cookie values.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieStats {
    /// Cookies over all ready sessions.
    pub total_cookies: usize,
    /// Ready sessions holding at least one cookie.
    pub sessions_with_cookies: usize,
    /// Of `total_cookies`, those the page's scripts cannot read.
    pub http_only: usize,
    /// Of `total_cookies`, those expiring within the hour (or already expired).
    pub expiring_within_hour: usize,
    /// Cookies per cookie domain.
    pub by_domain: BTreeMap<String, usize>,
    /// When a ready session was last warmed or refreshed (RFC 3339); `None` without any.
    pub last_refresh: Option<String>,
}

impl CookieStats {
    /// The counts over `sessions`, of which only the ready ones count, at `now`.
    pub fn of<'a>(sessions: impl IntoIterator<Item = &'a Session>, now: UnixMillis) -> Self {
        let mut out = CookieStats {
            total_cookies: 0,
            sessions_with_cookies: 0,
            http_only: 0,
            expiring_within_hour: 0,
            by_domain: BTreeMap::new(),
            last_refresh: None,
        };
        let mut last = 0;
        for s in sessions {
            if s.state != SessionState::Ready {
                continue;
            }
            last = last.max(s.refreshed_at);
            if !s.cookies.is_empty() {
                out.sessions_with_cookies += 1;
            }
            for c in &s.cookies {
                out.total_cookies += 1;
                out.http_only += usize::from(c.http_only);
                if c.expires
                    .is_some_and(|e| (e * 1000.0) as u64 <= now + SOON_MS)
                {
                    out.expiring_within_hour += 1;
                }
                *out.by_domain.entry(c.domain.clone()).or_default() += 1;
            }
        }
        // `refreshed_at` 0 means never refreshed, so no time is shown rather than 1970.
        out.last_refresh = (last > 0).then(|| rfc3339(last));
        out
    }
}

/// RFC 3339 time (whole seconds, UTC) of a Unix-ms instant.
pub fn rfc3339(ms: UnixMillis) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// How many accounts are in each state, as `warmer_accounts{state}` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountCounts {
    /// Signed in now.
    pub signed_in: usize,
    /// Not signed in, and the last attempt failed.
    pub failed: usize,
    /// Not signed in yet, no failure so far.
    pub pending: usize,
}

impl AccountCounts {
    /// Counts `statuses` by state.
    pub fn of(statuses: &[AccountStatus]) -> Self {
        let mut out = Self::default();
        for a in statuses {
            match (a.is_active, a.last_error.is_some()) {
                (true, _) => out.signed_in += 1,
                (false, true) => out.failed += 1,
                (false, false) => out.pending += 1,
            }
        }
        out
    }
}

/// The gauges of `GET /metrics`, in the order they are rendered: sessions per target and
/// state, each target's back-off and backed-off events, accounts per state, and the browser
/// (up, launches, contexts, memory).
pub fn gauges<W: Warm>(
    pool: &Pool<W>,
    accounts: &[AccountStatus],
    browser: &Supervisor,
) -> Vec<Gauge<'static>> {
    let mut gauges = Vec::new();
    let counts = pool.counts();
    for t in pool.targets() {
        for st in ["warming", "ready", "rotating", "retired"] {
            let mut n = counts
                .get(&(t.config.name.clone(), st))
                .copied()
                .unwrap_or(0);
            // Warms in flight have no stored record yet; the pool counts them apart.
            if st == "warming" {
                n += t.warming();
            }
            gauges.push((
                "warmer_sessions",
                vec![("target", t.config.name.clone()), ("state", st.to_string())],
                n as f64,
            ));
        }
    }
    for t in pool.targets() {
        // Seconds until top-up warms the target again (0: it is warming it), with why.
        let b = t.backoff();
        let reason = b.as_ref().map_or("none", |b| b.reason.kind);
        gauges.push((
            "warmer_target_backoff_seconds",
            vec![
                ("target", t.config.name.clone()),
                ("reason", reason.to_string()),
            ],
            b.map_or(0.0, |b| b.remaining.as_secs_f64()),
        ));
        gauges.push((
            "warmer_events_backed_off",
            vec![("target", t.config.name.clone())],
            t.events_backed_off() as f64,
        ));
    }
    let a = AccountCounts::of(accounts);
    for (state, n) in [
        ("signed_in", a.signed_in),
        ("failed", a.failed),
        ("pending", a.pending),
    ] {
        gauges.push((
            "warmer_accounts",
            vec![("state", state.to_string())],
            n as f64,
        ));
    }
    gauges.push((
        "warmer_browser_up",
        vec![],
        f64::from(u8::from(browser.current().is_some())),
    ));
    gauges.push(("warmer_browser_launches", vec![], browser.launches() as f64));
    gauges.push((
        "warmer_live_contexts",
        vec![],
        browser.live_contexts() as f64,
    ));
    gauges.push((
        "warmer_open_contexts",
        vec![],
        browser.open_contexts() as f64,
    ));
    gauges.push((
        "warmer_browser_pss_bytes",
        vec![],
        browser.pss_bytes().unwrap_or(0) as f64,
    ));
    cluster_gauges(pool, &mut gauges);
    gauges
}

/// The cluster's gauges, from what the last heartbeat saw (no store call): daemons seen, each
/// one's heartbeat age, whether this daemon's last beat got through, and its claims held.
fn cluster_gauges<W: Warm>(pool: &Pool<W>, gauges: &mut Vec<Gauge<'static>>) {
    let view = pool.cluster_view();
    gauges.push(("warmer_cluster_daemons", vec![], view.nodes.len() as f64));
    for n in &view.nodes {
        gauges.push((
            "warmer_cluster_heartbeat_age_seconds",
            vec![("node", n.node.clone())],
            n.last_beat_ago.as_secs_f64(),
        ));
    }
    gauges.push((
        "warmer_cluster_heartbeat_up",
        vec![],
        f64::from(u8::from(view.error.is_none())),
    ));
    gauges.push((
        "warmer_cluster_claims_held",
        vec![],
        pool.coord_counters().claims_held as f64,
    ));
}

/// The counters of `GET /metrics` computed outside [`crate::metrics::Metrics`]: this daemon's
/// coordination totals (claims, takeovers, lease losses, reaped), typed `counter`.
pub fn counters<W: Warm>(pool: &Pool<W>) -> Vec<Gauge<'static>> {
    let c = pool.coord_counters();
    [
        ("warmer_cluster_claims_total", c.claims),
        ("warmer_cluster_takeovers_total", c.takeovers),
        ("warmer_cluster_lease_losses_total", c.lease_losses),
        ("warmer_cluster_requeued_total", c.requeued),
        ("warmer_cluster_dead_lettered_total", c.dead_lettered),
    ]
    .into_iter()
    .map(|(name, v)| (name, Vec::new(), v as f64))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        serde_json::from_str(include_str!("../tests/fixtures/session_v1.json")).unwrap()
    }

    #[test]
    fn cookie_stats_count_ready_sessions_only() {
        let mut a = session();
        a.state = SessionState::Ready;
        a.refreshed_at = 1_000_000;
        for c in &mut a.cookies {
            c.expires = Some(10_000.0);
        }
        let mut retired = a.clone();
        retired.state = SessionState::Retired;
        retired.refreshed_at = 9_000_000;
        let n = a.cookies.len();
        let http_only = a.cookies.iter().filter(|c| c.http_only).count();
        // 10 000 s is within the hour of 9 000 s, not of 1 000 s.
        let soon = CookieStats::of([&a, &retired], 9_000_000);
        assert_eq!(soon.total_cookies, n);
        assert_eq!(soon.sessions_with_cookies, 1);
        assert_eq!(soon.http_only, http_only);
        assert_eq!(soon.expiring_within_hour, n);
        assert_eq!(soon.by_domain.values().sum::<usize>(), n);
        assert_eq!(soon.last_refresh.as_deref(), Some("1970-01-01T00:16:40Z"));
        let later = CookieStats::of([&a], 1_000);
        assert_eq!(later.expiring_within_hour, 0);
        let none = CookieStats::of([&retired], 0);
        assert_eq!(none.total_cookies, 0);
        assert_eq!(none.last_refresh, None);
    }
}
