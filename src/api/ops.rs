//! Operations endpoints: health, readiness, metrics, the OpenAPI document. (The dashboard is
//! `super::dashboard`, the daemons' status `super::status`.)

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` (an answer at all is the signal).
    status: &'static str,
    /// Seconds since the pool was built.
    uptime_seconds: u64,
}

/// Liveness: cheap, never touches Chromium.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        uptime_seconds: state.pool.started.elapsed().as_secs(),
    })
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Whether at least one session is ready to serve.
    ready: bool,
    /// Ready sessions over every target.
    ready_sessions: usize,
    /// Whether the browser is up now (else launching or relaunching).
    browser_up: bool,
}

/// Readiness: 200 when warm sessions exist, else 503.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let n = state.pool.ready_count();
    let body = Ready {
        ready: n > 0,
        ready_sessions: n,
        browser_up: state.browser.current().is_some(),
    };
    let status = if n > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", content_type = "text/plain")), security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let gauges = crate::stats::gauges(&state.pool, &state.accounts.statuses(), &state.browser);
    let text = state.pool.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The OpenAPI document of this API: the bearer token is marked as required (with its 401s)
/// only when one is configured.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, description = "This document", content_type = "application/json")),
    security(("bearer" = [])))]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(super::openapi_document(state.token.is_some()))
}
