//! `GET /api/sessions/stats`: counts and ages of the pool's sessions, and per target its
//! pool, warms under way and back-off.

use super::Pool;
use crate::session::{now_ms, SessionState, Verdict};
use crate::warm::Warm;

impl<W: Warm> Pool<W> {
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
}

/// `GET /api/sessions/stats`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStats {
    /// Sessions in memory, every state.
    pub total_sessions: usize,
    /// Ready sessions.
    pub active_sessions: usize,
    /// Ready sessions the health policy still serves, with an error score below 1.
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
