//! Seed 000's shape of `GET /api/cookies/stats`, answered beside today's fields so a dashboard
//! written against the seed works:
//!
//! ```text
//! { "sessions": { totalSessions, activeSessions, validSessions, averageAge, oldestSession },
//!   "cookies": { "cachedHeaders": 12, "lastCookieReset": "2 hours ago",
//!                "capturedState": { "hasCookies": true, "cookieCount": 45,
//!                                   "lastRefresh": "15 minutes ago" } } }
//! ```
//!
//! What each field means here (the seed kept one cookie jar and a header cache; warmer keeps a
//! jar per session):
//! - `sessions`: the five numbers of `GET /api/sessions/stats` (ages in minutes);
//! - `cachedHeaders`: ready, unexpired sessions, each a ready-to-send header set served from
//!   memory;
//! - `lastCookieReset`: when the newest ready session's cookie jar was earned from scratch
//!   (a warm or login), as the seed wrote it ("2 hours ago"); `null` with none;
//! - `capturedState`: over ready sessions, whether any has cookies, how many cookies they
//!   hold, and when cookies were last captured from a browser ("15 minutes ago").

use serde::Serialize;
use utoipa::ToSchema;

use crate::pool::PoolStats;
use crate::session::{Session, SessionState, UnixMillis};
use crate::stats::CookieStats;

/// `sessions`: seed 000's session stats (the fields of `GET /api/sessions/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedSessionStats {
    /// Sessions in memory (warming, ready, retired awaiting cleanup).
    pub total_sessions: usize,
    /// Sessions being served.
    pub active_sessions: usize,
    /// Served sessions that are healthy.
    pub valid_sessions: usize,
    /// Minutes.
    pub average_age: f64,
    /// Minutes.
    pub oldest_session: f64,
}

impl From<&PoolStats> for SeedSessionStats {
    fn from(s: &PoolStats) -> Self {
        Self {
            total_sessions: s.total_sessions,
            active_sessions: s.active_sessions,
            valid_sessions: s.valid_sessions,
            average_age: s.average_age,
            oldest_session: s.oldest_session,
        }
    }
}

/// `cookies.capturedState`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapturedState {
    /// Whether any ready session holds a cookie.
    pub has_cookies: bool,
    /// Cookies over ready sessions.
    pub cookie_count: usize,
    /// When cookies were last captured from a browser, e.g. "15 minutes ago"; `null` with
    /// no ready session.
    pub last_refresh: Option<String>,
}

/// `cookies`: seed 000's cookie manager state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedCookies {
    /// Ready, unexpired sessions: header sets served from memory.
    pub cached_headers: usize,
    /// When a cookie jar was last earned from scratch, e.g. "2 hours ago"; `null` with no
    /// ready session.
    pub last_cookie_reset: Option<String>,
    /// What the ready sessions hold.
    pub captured_state: CapturedState,
}

/// The seed's two objects, to be flattened into today's answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeedCookieStats {
    /// Seed 000's session stats.
    pub sessions: SeedSessionStats,
    /// Seed 000's cookie state.
    pub cookies: SeedCookies,
}

/// How long ago `then` was at `now`, as the seed's guide writes it: "just now",
/// "1 minute ago", "15 minutes ago", "2 hours ago", "3 days ago" (whole units, rounded down).
pub fn ago(then: UnixMillis, now: UnixMillis) -> String {
    let secs = now.saturating_sub(then) / 1000;
    let (n, unit) = match secs {
        0..=59 => return "just now".to_string(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    if n == 1 {
        format!("1 {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Seed 000's fields from the pool's stats and its sessions at `now` (only ready sessions
/// count, as in today's answer).
pub fn seed_cookie_stats<'a>(
    stats: &PoolStats,
    sessions: impl IntoIterator<Item = &'a Session>,
    now: UnixMillis,
) -> SeedCookieStats {
    let mut cached_headers = 0;
    let mut cookie_count = 0;
    let mut last_reset: Option<UnixMillis> = None;
    let mut last_refresh: Option<UnixMillis> = None;
    for s in sessions {
        if s.state != SessionState::Ready {
            continue;
        }
        if s.expires_at > now {
            cached_headers += 1;
        }
        cookie_count += s.cookies.len();
        last_reset = last_reset.max(Some(s.created_at));
        last_refresh = last_refresh.max(Some(s.refreshed_at));
    }
    SeedCookieStats {
        sessions: SeedSessionStats::from(stats),
        cookies: SeedCookies {
            cached_headers,
            last_cookie_reset: last_reset.map(|t| ago(t, now)),
            captured_state: CapturedState {
                has_cookies: cookie_count > 0,
                cookie_count,
                last_refresh: last_refresh.map(|t| ago(t, now)),
            },
        },
    }
}

/// The whole answer of `GET /api/cookies/stats`: today's counts ([`CookieStats`]) and seed
/// 000's `sessions` and `cookies` objects side by side in one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CookieStatsOut {
    /// Today's fields (`totalCookies`, `byDomain`, ...).
    #[serde(flatten)]
    pub today: CookieStats,
    /// Seed 000's fields (`sessions`, `cookies`).
    #[serde(flatten)]
    pub seed: SeedCookieStats,
}

impl CookieStatsOut {
    /// Both shapes over the same sessions at `now`.
    pub fn of(stats: &PoolStats, sessions: &[&Session], now: UnixMillis) -> Self {
        Self {
            today: CookieStats::of(sessions.iter().copied(), now),
            seed: seed_cookie_stats(stats, sessions.iter().copied(), now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: UnixMillis = 1_700_000_000_000;
    const MIN: UnixMillis = 60_000;

    fn session(
        state: SessionState,
        created_min_ago: u64,
        refreshed_min_ago: u64,
        cookies: usize,
    ) -> Session {
        let mut s: Session =
            serde_json::from_str(include_str!("../../tests/fixtures/session_v1.json")).unwrap();
        s.state = state;
        s.created_at = NOW - created_min_ago * MIN;
        s.refreshed_at = NOW - refreshed_min_ago * MIN;
        s.expires_at = NOW + 60 * MIN;
        let one = s.cookies[0].clone();
        s.cookies = vec![one; cookies];
        s
    }

    fn stats() -> PoolStats {
        PoolStats {
            total_sessions: 8,
            active_sessions: 6,
            valid_sessions: 6,
            average_age: 15.0,
            oldest_session: 28.0,
            targets: Vec::new(),
        }
    }

    #[test]
    fn the_seeds_documented_shape() {
        let mut expired = session(SessionState::Ready, 200, 200, 5);
        expired.expires_at = NOW - 1;
        let sessions = [
            session(SessionState::Ready, 120, 15, 20),
            session(SessionState::Ready, 130, 40, 20),
            expired,
            // Retired sessions do not count.
            session(SessionState::Retired, 0, 0, 7),
            session(SessionState::Retired, 1, 1, 9),
        ];
        let v = serde_json::to_value(seed_cookie_stats(&stats(), &sessions, NOW)).unwrap();
        assert_eq!(
            v,
            json!({
                "sessions": {"totalSessions": 8, "activeSessions": 6, "validSessions": 6,
                             "averageAge": 15.0, "oldestSession": 28.0},
                "cookies": {
                    "cachedHeaders": 2,
                    "lastCookieReset": "2 hours ago",
                    "capturedState": {"hasCookies": true, "cookieCount": 45,
                                      "lastRefresh": "15 minutes ago"}
                }
            })
        );
    }

    #[test]
    fn an_empty_pool_has_no_times() {
        let v = serde_json::to_value(seed_cookie_stats(&stats(), &[], NOW)).unwrap();
        assert_eq!(
            v["cookies"],
            json!({"cachedHeaders": 0, "lastCookieReset": null,
                   "capturedState": {"hasCookies": false, "cookieCount": 0, "lastRefresh": null}})
        );
        let bare = [session(SessionState::Ready, 1, 1, 0)];
        let v = serde_json::to_value(seed_cookie_stats(&stats(), &bare, NOW)).unwrap();
        assert_eq!(v["cookies"]["capturedState"]["hasCookies"], false);
        assert_eq!(v["cookies"]["cachedHeaders"], 1);
    }

    #[test]
    fn ago_reads_like_the_seed() {
        assert_eq!(ago(NOW, NOW), "just now");
        assert_eq!(ago(NOW - 59_999, NOW), "just now");
        assert_eq!(ago(NOW - MIN, NOW), "1 minute ago");
        assert_eq!(ago(NOW - 15 * MIN, NOW), "15 minutes ago");
        assert_eq!(ago(NOW - 60 * MIN, NOW), "1 hour ago");
        assert_eq!(ago(NOW - 150 * MIN, NOW), "2 hours ago");
        assert_eq!(ago(NOW - 3 * 1440 * MIN, NOW), "3 days ago");
        // A time in the future (clock skew between daemons) reads as now.
        assert_eq!(ago(NOW + MIN, NOW), "just now");
    }
}
