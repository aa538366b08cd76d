//! The pool paths scrapers and operators already use (`/api/sessions/*`, `/api/cookies/*`).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use super::dto::{rfc3339, EventSession, ServedSession, SessionOut};
use super::extract::{AppJson, AppQuery, EventIdPath, SessionIdPath};
use super::{authorized, ApiError, AppState, ErrorBody};
use crate::pool::{Ask, CreateOptions, PoolStats};
use crate::session::{now_ms, SessionState, UsageReport, Verdict};

/// Longest lease a scraper can take.
const MAX_LEASE: Duration = Duration::from_secs(600);

/// Parses a humantime duration (`30s`, `5m`) given in query field `field`.
///
/// # Errors
///
/// 400 (`bad_request`, naming `field`) when `v` does not parse, is zero, or exceeds `max`:
/// a zero lease would expire at once, and an unbounded one would pin a session forever.
fn parse_duration(field: &str, v: &str, max: Duration) -> Result<Duration, ApiError> {
    let d = humantime::parse_duration(v.trim())
        .map_err(|e| ApiError::bad_request(format!("{field}: invalid duration {v:?}: {e}")))?;
    if d.is_zero() || d > max {
        return Err(ApiError::bad_request(format!(
            "{field}: must be between 1s and {}",
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TakeQuery {
    /// Exclusive lease, e.g. `30s` (at most 10 min).
    lease: Option<String>,
    /// Target name; default: the target that lists the event, else the first.
    target: Option<String>,
}

/// A ready session for an event: one warmed on it if any, else any ready session of the target.
#[utoipa::path(get, path = "/api/sessions/event/{eventId}",
    params(("eventId" = String, Path, description = "Event id"), TakeQuery),
    responses((status = 200, body = EventSession), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn take_event(
    State(state): State<AppState>,
    EventIdPath(event): EventIdPath,
    headers: HeaderMap,
    AppQuery(q): AppQuery<TakeQuery>,
) -> Result<Response, ApiError> {
    let lease = q
        .lease
        .as_deref()
        .map(|l| parse_duration("lease", l, MAX_LEASE))
        .transpose()?;
    // Proxy credentials are only shown to token holders; an open (tokenless) API never shows them.
    let creds = state.token.is_some() && authorized(&state, &headers);
    // View 1 shows the proxy's credentials, view 0 does not.
    // A lease on a shared backend is held across daemons (one store call); otherwise memory only.
    let (served, matched) = state
        .pool
        .take_held(
            Ask {
                target: q.target.as_deref(),
                event: &event,
                lease,
                view: usize::from(creds),
            },
            |s| ServedSession::projection(s, creds, now_ms()),
        )
        .await?;
    let body = EventSession::render(&served, matched, lease);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TargetQuery {
    target: Option<String>,
}

/// Warms a new session on this event now (waits for it).
#[utoipa::path(post, path = "/api/sessions/event/{eventId}",
    params(("eventId" = String, Path, description = "Event id"), TargetQuery),
    responses((status = 201, body = EventSession), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
              (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn warm_event(
    State(state): State<AppState>,
    EventIdPath(event): EventIdPath,
    headers: HeaderMap,
    AppQuery(q): AppQuery<TargetQuery>,
) -> Result<(StatusCode, Json<EventSession>), ApiError> {
    let target = state
        .pool
        .target_for_event(q.target.as_deref(), &event)?
        .config
        .name
        .clone();
    let s = state
        .pool
        .warm_now(
            &target,
            CreateOptions {
                event: Some(event),
                ..Default::default()
            },
        )
        .await?;
    let creds = state.token.is_some() && authorized(&state, &headers);
    Ok((
        StatusCode::CREATED,
        Json(EventSession::from(
            &s,
            crate::pool::Match::Event,
            None,
            creds,
        )),
    ))
}

/// A scraper's report on a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    /// Whether the scraper's request succeeded.
    success: bool,
    /// HTTP status the scraper saw (401/403 retire the session, 429 backs it off).
    #[schema(value_type = Option<u16>, minimum = 100, maximum = 599)]
    #[serde(default, deserialize_with = "integral")]
    status: Option<u16>,
}

/// JSON Schema counts `200.0` as an integer; serde's integers do not. Takes either.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() == 0.0 && (0.0..=f64::from(u16::MAX)).contains(&n) {
        Ok(Some(n as u16))
    } else {
        Err(serde::de::Error::custom(format!(
            "invalid value {n}, expected an integer 100-599"
        )))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    session_id: String,
    /// `keep`, `back_off` or `retired`.
    verdict: &'static str,
    reason: Option<String>,
    error_score: f64,
}

/// Reports how a session did; the pool learns from it.
#[utoipa::path(post, path = "/api/sessions/{id}/usage",
    params(("id" = String, Path, description = "Session id")),
    request_body = UsageBody,
    responses((status = 200, body = UsageOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    AppJson(b): AppJson<UsageBody>,
) -> Result<Json<UsageOut>, ApiError> {
    if let Some(s) = b.status {
        if !(100..=599).contains(&s) {
            return Err(ApiError::unprocessable(
                "status: must be an HTTP status 100-599",
            ));
        }
    }
    let verdict = state
        .pool
        .report(
            &id,
            UsageReport {
                success: b.success,
                status: b.status,
            },
        )
        .await?;
    let score = state
        .pool
        .get(&id)
        .map(|s| s.health.error_score)
        .unwrap_or_default();
    let (verdict, reason) = match verdict {
        Verdict::Keep => ("keep", None),
        Verdict::BackOff(d) => (
            "back_off",
            Some(format!("rate limited; resting {}s", d.as_secs())),
        ),
        Verdict::Retire(r) => ("retired", Some(r.to_string())),
    };
    Ok(Json(UsageOut {
        session_id: id,
        verdict,
        reason,
        error_score: score,
    }))
}

/// Pool statistics (ages in minutes).
#[utoipa::path(get, path = "/api/sessions/stats",
    responses((status = 200, body = PoolStats)), security(("bearer" = [])))]
pub async fn stats(State(state): State<AppState>) -> Json<PoolStats> {
    Json(state.pool.stats())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevealQuery {
    /// Include cookie values and proxy credentials (requires the token).
    reveal: Option<bool>,
}

impl RevealQuery {
    /// The raw `reveal` query flag, for handlers outside this module that pass it to
    /// [`reveal`].
    pub(super) fn reveal_flag(&self) -> Option<bool> {
        self.reveal
    }
}

/// Decides whether a response may include secrets (cookie values, proxy credentials).
///
/// Returns `Ok(false)` unless the caller asked with `reveal=true`. Asking is only honoured
/// when a token is configured *and* the request carries it: without a token the API is open,
/// so secrets are never revealed there.
///
/// # Errors
///
/// 403 `reveal_requires_token` when `reveal=true` was asked but cannot be honoured; the
/// request is refused rather than silently answered without secrets.
pub(super) fn reveal(
    state: &AppState,
    headers: &HeaderMap,
    asked: Option<bool>,
) -> Result<bool, ApiError> {
    if asked != Some(true) {
        return Ok(false);
    }
    if state.token.is_none() || !authorized(state, headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reveal_requires_token",
            "reveal=true needs a configured token (server.token_file or WARMER_TOKEN)",
        ));
    }
    Ok(true)
}

/// Sessions being served (ready or rotating).
#[utoipa::path(get, path = "/api/sessions/active", params(RevealQuery),
    responses((status = 200, body = Vec<SessionOut>), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn active(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppQuery(q): AppQuery<RevealQuery>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let reveal = reveal(&state, &headers, q.reveal)?;
    let mut out: Vec<SessionOut> = state
        .pool
        .list()
        .into_iter()
        .filter(|(s, _)| s.state == SessionState::Ready)
        .map(|(s, rot)| SessionOut::from(&s, rot, reveal))
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    started: usize,
}

/// Forces rotation of every ready session (make-before-break).
#[utoipa::path(post, path = "/api/sessions/rotate",
    responses((status = 202, body = Started)), security(("bearer" = [])))]
pub async fn rotate(State(state): State<AppState>) -> (StatusCode, Json<Started>) {
    let started = crate::schedule::rotate::run_once(&state.pool, true);
    (StatusCode::ACCEPTED, Json(Started { started }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validated {
    passed: usize,
    retired: usize,
}

/// Validates every ready session now.
#[utoipa::path(post, path = "/api/sessions/validate",
    responses((status = 200, body = Validated)), security(("bearer" = [])))]
pub async fn validate(State(state): State<AppState>) -> Json<Validated> {
    let crate::schedule::validate::Checked { passed, retired } =
        crate::schedule::validate::run_once(&state.pool, true).await;
    Json(Validated { passed, retired })
}

/// Cookie counts over ready sessions (no values), with seed 000's `sessions` and `cookies`
/// objects beside them (see [`super::seed000`]).
#[utoipa::path(get, path = "/api/cookies/stats",
    responses((status = 200, body = super::seed000::CookieStatsOut)), security(("bearer" = [])))]
pub async fn cookie_stats(State(state): State<AppState>) -> Json<super::seed000::CookieStatsOut> {
    let sessions = state.pool.list();
    let refs: Vec<&crate::session::Session> = sessions.iter().map(|(s, _)| &**s).collect();
    Json(super::seed000::CookieStatsOut::of(
        &state.pool.stats(),
        &refs,
        now_ms(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    /// At most this many entries (default 20, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecentOut {
    at: String,
    session: Option<String>,
    target: Option<String>,
    action: String,
    detail: String,
}

/// Recent warms, refreshes and retirements (no cookie values).
#[utoipa::path(get, path = "/api/cookies/recent", params(RecentQuery),
    responses((status = 200, body = Vec<RecentOut>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cookie_recent(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<RecentQuery>,
) -> Result<Json<Vec<RecentOut>>, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 500 {
        return Err(ApiError::bad_request("limit: must be 1-500"));
    }
    let entries = state
        .pool
        .store()
        .recent_audit(limit)
        .await
        .map_err(crate::pool::PoolError::from)?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| RecentOut {
                at: rfc3339(e.at),
                session: e.session,
                target: e.target,
                action: e.action,
                detail: e.detail,
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Refreshed {
    refreshed: usize,
    failed: usize,
}

/// Refreshes every ready session's cookies now (revisits an event page in its context).
#[utoipa::path(post, path = "/api/cookies/refresh",
    responses((status = 200, body = Refreshed)), security(("bearer" = [])))]
pub async fn cookie_refresh(State(state): State<AppState>) -> Json<Refreshed> {
    let crate::schedule::refresh::Refreshed { refreshed, failed } =
        crate::schedule::refresh::run_once(&state.pool, true).await;
    Json(Refreshed { refreshed, failed })
}
