//! FlareSolverr's API answered from the warm pool, so FlareSolverr clients (Jackett, Prowlarr,
//! FlareSolverrSharp, fspy, scrapy-flaresolverr, …) only change their host.
//!
//! - `POST /v1` on the main API (behind its token, when it has one) and, when
//!   `[flaresolverr] listen` is set, on a second listener without a token that also answers
//!   `GET /` and `GET /health` ([`router`]).
//! - `request.get` / `request.post`: a ready session of the target the URL belongs to (or the
//!   named `session`'s), the URL loaded in a context restored from it ([`Pool::fetch_with`]),
//!   answered in FlareSolverr's shape. `returnOnlyCookies` (GET) answers from the pool without a
//!   browser. A URL of no configured target is refused and never loaded: this is no open proxy.
//! - `sessions.create` / `sessions.list` / `sessions.destroy`: a named session pins one pool
//!   session per target it is used on (leased to it, pinned on first use), until destroyed or
//!   idle for `flaresolverr.session_idle`; `session_ttl_minutes` re-pins an older one.
//! - Errors as FlareSolverr's: HTTP 500 with `{"status": "error", "message": "Error: …"}`.
//!
//! The contract followed is FlareSolverr 3.5.0's ([`VERSION`]); what differs is said in the
//! README ("FlareSolverr clients").

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::time::Duration;

mod request;
mod sessions;
mod wire;

pub use sessions::NamedSessions;
pub use wire::{V1Request, V1Response};

use super::{AppState, BODY_LIMIT};
use crate::pool::PoolError;
use crate::session::{now_ms, SessionState};
use crate::warm::WarmError;
use request::caller_proxy;
use sessions::unpin;

/// The FlareSolverr version whose contract `/v1` follows (reported as `version`).
pub const VERSION: &str = "3.5.0";

/// `maxTimeout` when absent or below 1 ms (FlareSolverr's default).
const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest `maxTimeout` honoured: the API's own request timeout is 180 s, and an answer must
/// leave before it.
const MAX_TIMEOUT_CAP: Duration = Duration::from_secs(170);

/// How often a request waiting for a ready session looks again.
const POLL: Duration = Duration::from_millis(100);

/// A failed command: its text, said as FlareSolverr says it (`Error: ` is added).
struct Failure(String);

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure(solving(&e))
    }
}

/// FlareSolverr's wording for a failure while loading the page.
fn solving(e: &PoolError) -> String {
    match e {
        PoolError::Warm(WarmError::Network { message, .. }) => {
            format!("Error solving the challenge. Message: unknown error: {message}")
        }
        PoolError::Store(_) => {
            tracing::error!(error = %e, "store error in a FlareSolverr request");
            "Error solving the challenge. Internal error.".into()
        }
        e => format!("Error solving the challenge. {e}"),
    }
}

/// FlareSolverr's timeout text: seconds as Python prints a float (`60.0`, `0.01`).
fn timeout_text(limit: Duration) -> String {
    let secs = limit.as_millis() as f64 / 1000.0;
    let secs = if secs.fract() == 0.0 {
        format!("{secs:.1}")
    } else {
        format!("{secs}")
    };
    format!("Error solving the challenge. Timeout after {secs} seconds.")
}

/// FlareSolverr's router error shape (Bottle's): `{"error", "status_code"}`.
fn router_error(status: StatusCode, error: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": error, "status_code": status.as_u16() })),
    )
        .into_response()
}

/// Runs a FlareSolverr command.
#[utoipa::path(post, path = "/v1", request_body = V1Request,
    responses((status = 200, body = V1Response),
              (status = 400, description = "Invalid JSON (`{\"error\", \"status_code\"}`)"),
              (status = 500, body = V1Response, description = "`status: error`, `message: Error: …`")),
    security(("bearer" = [])))]
pub async fn v1(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let start = now_ms();
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    // Like FlareSolverr: invalid JSON sent as JSON is a 400; any other body has no `cmd`.
    let req = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => serde_json::from_value::<V1Request>(v),
        Ok(_) => Ok(V1Request::default()),
        Err(_) if json_type => {
            return router_error(StatusCode::BAD_REQUEST, "Invalid JSON".into());
        }
        Err(_) => Ok(V1Request::default()),
    };
    let out = match req {
        Ok(req) => run(&state, req).await,
        Err(e) => Err(Failure(format!("Request parameters are invalid: {e}"))),
    };
    let (status, resp) = match out {
        Ok(mut r) => {
            r.start_timestamp = start;
            r.end_timestamp = now_ms();
            (StatusCode::OK, r)
        }
        Err(Failure(m)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            V1Response {
                status: "error",
                message: format!("Error: {m}"),
                session: None,
                sessions: None,
                solution: None,
                start_timestamp: start,
                end_timestamp: now_ms(),
                version: VERSION,
            },
        ),
    };
    (status, Json(resp)).into_response()
}

fn ok(message: impl Into<String>) -> V1Response {
    V1Response {
        status: "ok",
        message: message.into(),
        session: None,
        sessions: None,
        solution: None,
        start_timestamp: 0,
        end_timestamp: 0,
        version: VERSION,
    }
}

async fn run(state: &AppState, req: V1Request) -> Result<V1Response, Failure> {
    let named = &state.flaresolverr;
    for pin in named.expire() {
        unpin(&state.pool, &pin).await;
    }
    let ignored = req.ignored();
    if !ignored.is_empty() {
        tracing::info!(fields = ?ignored, "FlareSolverr request: fields accepted and ignored");
    }
    let Some(cmd) = req.cmd.clone() else {
        return Err(Failure("Request parameter 'cmd' is mandatory.".into()));
    };
    if req.session.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(Failure(
            "Request parameter 'session' is too long (at most 200 characters).".into(),
        ));
    }
    match cmd.as_str() {
        "sessions.create" => {
            let proxy = caller_proxy(&state.pool, req.proxy.as_ref())?;
            let name = req
                .session
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let message = if named.create(&name, proxy) {
                "Session created successfully."
            } else {
                "Session already exists."
            };
            Ok(V1Response {
                session: Some(name),
                ..ok(message)
            })
        }
        "sessions.list" => Ok(V1Response {
            sessions: Some(named.names()),
            ..ok("")
        }),
        "sessions.destroy" => {
            let pins = req
                .session
                .as_deref()
                .and_then(|n| named.remove(n))
                .ok_or_else(|| Failure("The session doesn't exist.".into()))?;
            for pin in &pins {
                unpin(&state.pool, pin).await;
            }
            Ok(ok("The session has been removed."))
        }
        "request.get" | "request.post" => request::load(state, &cmd, req).await,
        other => Err(Failure(format!(
            "Request parameter 'cmd' = '{other}' is invalid."
        ))),
    }
}

/// `GET /` of the FlareSolverr listener.
async fn index(State(state): State<AppState>) -> Json<Value> {
    let ua = match state
        .pool
        .list()
        .into_iter()
        .find(|(s, _)| s.state == SessionState::Ready)
    {
        Some((s, _)) => s.fingerprint.user_agent.clone(),
        None => tokio::time::timeout(
            Duration::from_secs(5),
            state.pool.warmer().sample_fingerprint(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|f| f.user_agent)
        .unwrap_or_default(),
    };
    Json(serde_json::json!({
        "msg": "FlareSolverr is ready!",
        "version": VERSION,
        "userAgent": ua,
    }))
}

/// `GET /health` of the FlareSolverr listener.
async fn health() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(uri: Uri) -> Response {
    router_error(
        StatusCode::NOT_FOUND,
        format!("Not found: '{}'", uri.path()),
    )
}

async fn method_not_allowed() -> Response {
    router_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.".into())
}

/// The edge rules of the main API, with the `Host` rule always (this listener has no token),
/// then the request, counted like the main API's.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let resp = match state.edge.check(true, &req) {
        super::edge::Verdict::Pass => next.run(req).await,
        super::edge::Verdict::Cors(origin) => {
            let mut resp = next.run(req).await;
            super::edge::add_cors(resp.headers_mut(), origin);
            resp
        }
        super::edge::Verdict::Answer(refused) => refused,
    };
    state
        .pool
        .metrics
        .api(&format!("flaresolverr:{route}"), resp.status().as_u16());
    resp
}

/// The FlareSolverr listener (`[flaresolverr] listen`): `POST /v1`, `GET /`, `GET /health`,
/// with FlareSolverr's router errors, no token, and the main API's `Host`/`Origin` rules.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/v1", post(v1))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(180),
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_python_prints_seconds() {
        assert_eq!(
            timeout_text(Duration::from_millis(10)),
            "Error solving the challenge. Timeout after 0.01 seconds."
        );
        assert_eq!(
            timeout_text(Duration::from_secs(60)),
            "Error solving the challenge. Timeout after 60.0 seconds."
        );
        assert_eq!(
            timeout_text(Duration::from_millis(1500)),
            "Error solving the challenge. Timeout after 1.5 seconds."
        );
    }
}
