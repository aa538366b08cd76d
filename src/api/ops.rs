//! Operations endpoints: health, readiness, metrics, the OpenAPI document. (The dashboard is
//! `super::dashboard`, the daemons' status `super::status`.)

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use std::time::Duration;
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
    /// Whether this daemon can serve: at least one session is ready and the store answers.
    ready: bool,
    /// Ready sessions over every target.
    ready_sessions: usize,
    /// Whether the browser is up now (else launching or relaunching).
    browser_up: bool,
    /// `ok` when the store answers (sled and memory always do), else `down: <why>`: where
    /// the store is (no credentials) and what failed, e.g. `down: store
    /// redis://10.0.0.5:6379/0 (prefix sw, no password) is unavailable (ping): Connection
    /// refused (os error 111)`. While it is down the index's sessions are still served.
    store: String,
}

/// The most `/readyz` waits for the store's answer (its own call bound is shorter: 2 s by
/// default, `store.timeout`).
const STORE_PING_BOUND: Duration = Duration::from_secs(5);

/// Readiness: 200 when warm sessions exist and the store answers, else 503 saying why
/// (`ready_sessions` 0, or `store` down). Asks the store once (bounded), never Chromium.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let store = match tokio::time::timeout(STORE_PING_BOUND, state.pool.store().ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("down: {e}"),
        Err(_) => format!(
            "down: no answer within {}",
            humantime::format_duration(STORE_PING_BOUND)
        ),
    };
    let n = state.pool.ready_count();
    let ready = n > 0 && store == "ok";
    let body = Ready {
        ready,
        ready_sessions: n,
        browser_up: state.browser.current().is_some(),
        store,
    };
    let status = if ready {
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
    let counters = crate::stats::counters(&state.pool);
    let text = state.pool.metrics.render_with(&gauges, &counters);
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
