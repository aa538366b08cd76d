//! The HTTP API (axum): a thin edge over the pool. `app(state)` builds the router; the edge
//! rules (`Host`, `Origin`, CORS: [`EdgePolicy`]), auth, request metrics, a body limit and a
//! timeout wrap every route. The hot path (take a session, report usage) never waits on
//! Chromium. Handlers take their input through `extract` (ids checked against
//! [`crate::ids`], JSON and query rejections as [`ApiError`]s) and leave their figures to the
//! domain ([`crate::stats`]).

mod accounts;
mod dashboard;
mod dto;
mod edge;
mod error;
mod extract;
mod flaresolverr;
mod ops;
mod pool;
pub mod seed000;
pub mod seed002;
mod status;
mod v1;

pub use edge::{EdgePolicy, JsonErrorsIo, JsonErrorsListener};
pub use error::{ApiError, ErrorBody};
pub use extract::{AppJson, AppQuery};
pub use flaresolverr::{router as flaresolverr_router, NamedSessions};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;

use crate::pool::Pool;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The pool every session route serves from.
    pub pool: Arc<Pool>,
    /// The login keep-alive (`/api/accounts*`, the accounts gauges).
    pub accounts: Arc<crate::keepalive::KeepAlive>,
    /// Bearer token; `None` = no auth (loopback only).
    pub token: Option<Arc<str>>,
    /// Hosts and origins accepted besides loopback ones and the daemon's own.
    pub edge: Arc<EdgePolicy>,
    /// FlareSolverr's named sessions (`POST /v1`), shared by both listeners.
    pub flaresolverr: Arc<NamedSessions>,
    /// The browser the pool warms in (the same supervisor as the pool's warmer's): its state,
    /// contexts and memory for `/readyz`, `/metrics` and `/api/status`.
    pub browser: crate::browser::Supervisor,
}

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The whole API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/api/sessions/stats", get(pool::stats))
        .route("/api/sessions/active", get(pool::active))
        .route("/api/sessions/rotate", post(pool::rotate))
        .route("/api/sessions/validate", post(pool::validate))
        .route(
            "/api/sessions/event/{eventId}",
            get(pool::take_event).post(pool::warm_event),
        )
        .route("/api/sessions/{id}/usage", post(pool::usage))
        .route("/api/cookies/stats", get(pool::cookie_stats))
        .route("/api/cookies/recent", get(pool::cookie_recent))
        .route("/api/cookies/refresh", post(pool::cookie_refresh))
        .route("/api/status", get(status::status))
        .route(
            "/api/v1/sessions",
            post(v1::create).get(v1::list).delete(v1::delete_all),
        )
        .route("/api/v1/sessions/{id}", get(v1::get).delete(v1::delete))
        .route("/api/v1/sessions/export", get(v1::export_pool))
        .route("/api/v1/sessions/{id}/export", get(v1::export))
        .route("/api/v1/fetch", post(v1::fetch))
        .route("/api/scrape", post(v1::scrape))
        .route("/v1", post(flaresolverr::v1))
        .route("/api/accounts", post(accounts::register))
        .route("/api/accounts/status", get(accounts::status))
        .route("/api/accounts/refresh", post(accounts::refresh))
        .route(
            "/api/accounts/{id}",
            axum::routing::delete(accounts::remove),
        )
        .route("/api/accounts/{id}/session", get(accounts::session))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        // The dashboard's page holds no data: its script asks the API with the token.
        .route("/", get(dashboard::dashboard))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(180),
        ))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// The safety net for errors made outside the handlers (axum's own rejections, such as a path
/// segment that is not UTF-8, and the timeout layer): every error leaves as
/// `{"error": {"code", "message"}}`.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    // 4xx texts are axum's rejection messages, safe to show; 5xx bodies stay generic.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) if status.is_client_error() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => String::new(),
    };
    let message = if !text.is_empty() {
        text
    } else if code == "timeout" {
        "the request timed out".to_string()
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Fallback for unknown paths: a JSON 404 (`not_found`) in the API's error shape instead of
/// axum's empty body.
async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Answer for a known path with the wrong method: a JSON 405 `method_not_allowed`.
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Compares in time independent of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Whether the request carries the token (always true without one configured).
pub fn authorized(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// The credentials of an `Authorization` value with the `Bearer` scheme, matched without
/// regard to case (RFC 9110, 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware guarding the protected routes with the bearer token.
///
/// Passes the request on when [`authorized`] (always, if no token is configured); otherwise
/// answers 401 `unauthorized` with `WWW-Authenticate: Bearer`, without running the handler.
async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(&state, req.headers()) {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    resp
}

/// The edge rules ([`EdgePolicy::check`]; the `Host` rule only without a token), then the
/// request, counted by route and status (refusals too).
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    let method = req.method().clone();
    let resp = match state.edge.check(state.token.is_none(), &req) {
        edge::Verdict::Pass => next.run(req).await,
        edge::Verdict::Cors(origin) => {
            let mut resp = next.run(req).await;
            edge::add_cors(resp.headers_mut(), origin);
            resp
        }
        edge::Verdict::Answer(refused) => refused,
    };
    let status = resp.status();
    state.pool.metrics.api(route, status.as_u16());
    if status.is_server_error() {
        tracing::warn!(%method, route, status = status.as_u16(), "API request failed");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), "API request");
    }
    resp
}

#[derive(OpenApi)]
#[openapi(
    info(title = "session-warmer", description = "Warm browser sessions for scrapers."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi, dashboard::dashboard,
        status::status,
        pool::stats, pool::active, pool::rotate, pool::validate, pool::take_event,
        pool::warm_event, pool::usage, pool::cookie_stats, pool::cookie_recent,
        pool::cookie_refresh,
        v1::create, v1::list, v1::get, v1::delete, v1::delete_all, v1::export, v1::export_pool,
        v1::fetch, v1::scrape,
        accounts::register, accounts::status, accounts::refresh, accounts::remove,
        accounts::session, flaresolverr::v1,
    ),
    components(schemas(ErrorBody, crate::pool::PoolStats)),
    modifiers(&Security),
)]
/// The OpenAPI document served by `ops::openapi`: every documented path and shared schema.
/// A handler missing from `paths(...)` is still routed but absent from the spec.
struct ApiDoc;

/// [`utoipa::Modify`] hook completing [`ApiDoc`]: the `bearer` security scheme, the shared
/// 401/413/415 responses, and the id patterns of path and header parameters.
struct Security;

/// Session and event ids as [`crate::ids::check`] accepts them (with `minLength` 1 and
/// `maxLength` 200).
const ID_PATTERN: &str = crate::ids::PATTERN;
/// Account ids as `accounts::check_id` accepts them.
const ACCOUNT_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // What any route may answer besides its own responses, and the ids the routes accept.
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.delete];
            for op in ops.into_iter().flatten() {
                let mut extra = Vec::new();
                if op.security.is_some() {
                    extra.push(("401", "A valid bearer token is required"));
                }
                if op.request_body.is_some() {
                    extra.push(("413", "Body larger than 64 KiB"));
                    extra.push(("415", "Body not sent as application/json"));
                }
                for (status, description) in extra {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
                for p in op.parameters.iter_mut().flatten() {
                    if p.name == "lease" {
                        // `lease=` is refused (400): a lease is a duration such as `30s`.
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .min_length(Some(1))
                                .into(),
                        );
                        continue;
                    }
                    let (pattern, max) = match p.name.as_str() {
                        "id" if path.starts_with("/api/accounts/") => (ACCOUNT_ID_PATTERN, 64),
                        "id" | "eventId" | "X-Session-ID" => (ID_PATTERN, 200),
                        _ => continue,
                    };
                    p.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(pattern))
                            .min_length(Some(1))
                            .max_length(Some(max))
                            .into(),
                    );
                }
            }
        }
    }
}

/// The OpenAPI document, generated from the handlers' types, of a daemon with a token (as
/// deployed: every route but `/healthz`, `/readyz` and `/` requires it).
pub fn openapi_json() -> serde_json::Value {
    openapi_document(true)
}

/// The OpenAPI document of a daemon with (`auth`) or without a token: without one, nothing is
/// marked as requiring it and no 401 is listed.
pub fn openapi_document(auth: bool) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    if !auth {
        for item in doc.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.delete];
            for op in ops.into_iter().flatten() {
                op.security = None;
                op.responses.responses.remove("401");
            }
        }
        if let Some(c) = doc.components.as_mut() {
            c.security_schemes.clear();
        }
        doc.security = None;
    }
    serde_json::to_value(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_fully() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn openapi_lists_the_pool_paths() {
        let doc = openapi_json();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/sessions/event/{eventId}",
            "/api/sessions/{id}/usage",
            "/api/v1/sessions",
            "/api/v1/fetch",
            "/healthz",
            "/",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }
}
