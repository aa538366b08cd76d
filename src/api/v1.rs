//! Sessions as resources (`/api/v1/sessions`), exports, and fetch in a session's live context.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::{EventSession, SessionOut};
use super::extract::{AppJson, AppQuery, SessionIdHeader, SessionIdPath};
use super::pool::{reveal, RevealQuery};
use super::seed002::{CreateSessionBody, SeedJson};
use super::{authorized, ApiError, AppState, ErrorBody};
use crate::export::ExportFormat;
use crate::pool::{CreateOptions, FetchResult, Match};
use crate::session::now_ms;

/// Warms a new session now and returns it ready to use.
///
/// The body is today's (`target`, `event`, `ttl`, `browser.viewport`, `proxy`) or seed
/// 002's as written (`adapter`, `ttl` in seconds, `browser.userAgent`): see
/// [`super::seed002`].
#[utoipa::path(post, path = "/api/v1/sessions", request_body = CreateSessionBody,
    responses((status = 201, body = EventSession), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "custom_proxy_not_allowed: `proxy` given while server.allow_custom_proxies is off"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
              (status = 504, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    SeedJson(b): SeedJson<CreateSessionBody>,
) -> Result<(StatusCode, Json<EventSession>), ApiError> {
    let backend = state.pool.store().info().backend;
    let spec = b.into_spec(backend.as_str())?;
    let target = match &spec.target {
        Some(t) => {
            crate::ids::check("target", t)?;
            state.pool.target(t)?.config.name.clone()
        }
        // The first target with event pages (a login-only target has none to warm on).
        None => state
            .pool
            .targets()
            .iter()
            .find(|t| t.config.event_url.is_some())
            .or_else(|| state.pool.targets().first())
            .map(|t| t.config.name.clone())
            .ok_or_else(|| ApiError::not_found("no target configured"))?,
    };
    if let Some(e) = &spec.event {
        crate::ids::check("event", e)?;
    }
    let s = state
        .pool
        .warm_now(
            &target,
            CreateOptions {
                event: spec.event,
                ttl: spec.ttl,
                proxy: spec.proxy,
                viewport: spec.viewport,
                user_agent: spec.user_agent,
            },
        )
        .await?;
    let creds = state.token.is_some() && authorized(&state, &headers);
    Ok((
        StatusCode::CREATED,
        Json(EventSession::from(&s, Match::Event, None, creds)),
    ))
}

/// Every session in memory (ready, rotating, retired awaiting cleanup).
#[utoipa::path(get, path = "/api/v1/sessions", params(RevealQuery),
    responses((status = 200, body = Vec<SessionOut>), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppQuery(q): AppQuery<RevealQuery>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let reveal = reveal(&state, &headers, q.reveal_flag())?;
    let mut out: Vec<SessionOut> = state
        .pool
        .list()
        .into_iter()
        .map(|(s, rot)| SessionOut::from(&s, rot, reveal))
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(Json(out))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{id}",
    params(("id" = String, Path, description = "Session id"), RevealQuery),
    responses((status = 200, body = SessionOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    headers: HeaderMap,
    AppQuery(q): AppQuery<RevealQuery>,
) -> Result<Json<SessionOut>, ApiError> {
    let reveal = reveal(&state, &headers, q.reveal_flag())?;
    state.pool.sync_usage(&id).await;
    let (s, rot) = state
        .pool
        .list()
        .into_iter()
        .find(|(s, _)| s.id == id)
        .ok_or_else(|| ApiError::from(crate::pool::PoolError::UnknownSession(id.clone())))?;
    Ok(Json(SessionOut::from(&s, rot, reveal)))
}

/// Deletes one session.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
) -> Result<StatusCode, ApiError> {
    state.pool.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Sessions deleted.
    deleted: usize,
}

/// Deletes every session (the pool warms new ones).
#[utoipa::path(delete, path = "/api/v1/sessions",
    responses((status = 200, body = Deleted)), security(("bearer" = [])))]
pub async fn delete_all(State(state): State<AppState>) -> Result<Json<Deleted>, ApiError> {
    let ids: Vec<String> = state
        .pool
        .list()
        .into_iter()
        .map(|(s, _)| s.id.clone())
        .collect();
    // Best effort: a failed delete (e.g. a session retired, expired or deleted by another
    // caller since the listing) is skipped; only actual deletions are counted.
    let mut deleted = 0;
    for id in ids {
        if state.pool.delete(&id).await.is_ok() {
            deleted += 1;
        }
    }
    Ok(Json(Deleted { deleted }))
}

/// Query of `GET /api/v1/sessions/{id}/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// cookies-txt | cookies-txt-wget | storage-state | headers | json | crawlee
    #[param(pattern = "^(cookies-txt|cookies-txt-wget|storage-state|headers|json|crawlee)$")]
    format: Option<String>,
}

/// Exports a session for a scraper (contains cookie values).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/export",
    params(("id" = String, Path, description = "Session id"), ExportQuery),
    responses((status = 200, description = "The export: cookies-txt(-wget) as text, the others as JSON (crawlee: a SessionPool state record of this one session)",
               content(("text/plain"), ("application/json"))),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    SessionIdPath(id): SessionIdPath,
    AppQuery(q): AppQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format: ExportFormat = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("format: {e}")))?;
    let s = state
        .pool
        .get(&id)
        .ok_or_else(|| ApiError::from(crate::pool::PoolError::UnknownSession(id.clone())))?;
    let text = crate::export::render(&s, format, now_ms());
    Ok(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
}

/// Query of the pool-wide export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PoolExportQuery {
    /// crawlee (the only pool-wide format; the default)
    #[param(pattern = "^crawlee$")]
    format: Option<String>,
    /// Only this target's sessions (a Crawlee pool is usually one site's).
    #[param(
        pattern = r"^(\.?[A-Za-z0-9_:-])*\.?$",
        min_length = 1,
        max_length = 200
    )]
    target: Option<String>,
}

/// Exports every ready, unexpired session (of one target, with `target`) as one Crawlee
/// `SessionPool` state record (`SDK_SESSION_POOL_STATE`); contains cookie values. Leased
/// sessions are included: an export is a copy, not a take.
#[utoipa::path(get, path = "/api/v1/sessions/export", params(PoolExportQuery),
    responses((status = 200, description = "A Crawlee SessionPool state record", content_type = "application/json"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_pool(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PoolExportQuery>,
) -> Result<Response, ApiError> {
    let format: ExportFormat = q
        .format
        .as_deref()
        .unwrap_or("crawlee")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("format: {e}")))?;
    if format != ExportFormat::Crawlee {
        return Err(ApiError::bad_request(format!(
            "format: {format} exports one session (GET /api/v1/sessions/{{id}}/export); the pool exports as crawlee"
        )));
    }
    if let Some(t) = &q.target {
        crate::ids::check("target", t)?;
        state.pool.target(t)?;
    }
    let now = now_ms();
    let mut sessions: Vec<_> = state
        .pool
        .list()
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| crate::export::crawlee_exportable(s, now))
        .filter(|s| q.target.as_deref().is_none_or(|t| s.target == t))
        .collect();
    sessions.sort_by_key(|s| s.created_at);
    let text = crate::export::render_crawlee_pool(sessions.iter().map(|s| &**s), now);
    Ok(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
}

/// What to load in the session's context.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// http(s) URL to load.
    url: String,
}

/// What a fetch in a session's browser answers (`/api/v1/fetch`, `/api/scrape`): a
/// description for the OpenAPI document, never built.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
enum FetchAnswers {
    /// The page's status, final URL and body, and the session's updated cookies.
    #[response(status = 200)]
    Fetched(FetchResult),
    /// No `X-Session-ID`, or a body that is not JSON.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// url_not_allowed: the URL (or a redirect) is not on the session's target.
    #[response(status = 403)]
    NotAllowed(ErrorBody),
    /// No such session.
    #[response(status = 404)]
    Unknown(ErrorBody),
    /// The session is retired.
    #[response(status = 410)]
    Retired(ErrorBody),
    /// A URL that is not http(s), or one the browser refuses.
    #[response(status = 422)]
    BadUrl(ErrorBody),
    /// The page could not be loaded (its site or its proxy failed).
    #[response(status = 502)]
    Failed(ErrorBody),
    /// The browser is gone or being replaced, the store is unreachable, or the daemon stops.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// The page did not load within the navigation timeout.
    #[response(status = 504)]
    TimedOut(ErrorBody),
}

/// Loads a URL in the live context of the session named by `X-Session-ID` and returns the
/// status, final URL, body and the session's updated cookies. Only URLs of the session's own
/// target (the origins of its event, login, check and validate URLs and its
/// `allowed_origins`) are loaded; a redirect out of them is stopped inside the browser.
#[utoipa::path(post, path = "/api/v1/fetch", request_body = FetchBody,
    params(("X-Session-ID" = String, Header, description = "Session id")),
    responses(FetchAnswers),
    security(("bearer" = [])))]
pub async fn fetch(
    State(state): State<AppState>,
    SessionIdHeader(id): SessionIdHeader,
    AppJson(b): AppJson<FetchBody>,
) -> Result<Json<FetchResult>, ApiError> {
    let url = url::Url::parse(&b.url).map_err(|e| ApiError::unprocessable(format!("url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::unprocessable("url: only http and https"));
    }
    Ok(Json(state.pool.fetch(&id, url.as_str()).await?))
}

/// Seed 002's `POST /api/scrape`: the same as [`fetch`] (`X-Session-ID` names the session,
/// the body is `{"url": ...}`), under the seed's path.
#[utoipa::path(post, path = "/api/scrape", request_body = FetchBody,
    params(("X-Session-ID" = String, Header, description = "Session id")),
    responses(FetchAnswers),
    security(("bearer" = [])))]
pub async fn scrape(
    state: State<AppState>,
    id: SessionIdHeader,
    SeedJson(body): SeedJson<FetchBody>,
) -> Result<Json<FetchResult>, ApiError> {
    fetch(state, id, AppJson(body)).await
}
