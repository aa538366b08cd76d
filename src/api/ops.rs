//! Operations endpoints: health, readiness, metrics, the OpenAPI document. (The dashboard is
//! `super::dashboard`, the daemons' status `super::status`.)

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
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

#[derive(Serialize, ToSchema)]
pub struct Ready {
    ready: bool,
    ready_sessions: usize,
    browser_up: bool,
}

/// Readiness: 200 when warm sessions exist, else 503.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let n = state.pool.ready_count();
    let body = Ready {
        ready: n > 0,
        ready_sessions: n,
        browser_up: state.pool.warmer().supervisor().current().is_some(),
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
    let pool = &state.pool;
    let mut gauges = Vec::new();
    let counts = pool.counts();
    for t in pool.targets() {
        for st in ["warming", "ready", "rotating", "retired"] {
            let mut n = counts
                .get(&(t.config.name.clone(), st))
                .copied()
                .unwrap_or(0);
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
    let statuses = state.accounts.statuses();
    for (name, n) in [
        ("signed_in", statuses.iter().filter(|a| a.is_active).count()),
        (
            "failed",
            statuses
                .iter()
                .filter(|a| !a.is_active && a.last_error.is_some())
                .count(),
        ),
        (
            "pending",
            statuses
                .iter()
                .filter(|a| !a.is_active && a.last_error.is_none())
                .count(),
        ),
    ] {
        gauges.push((
            "warmer_accounts",
            vec![("state", name.to_string())],
            n as f64,
        ));
    }
    let sup = pool.warmer().supervisor();
    gauges.push((
        "warmer_browser_up",
        vec![],
        f64::from(u8::from(sup.current().is_some())),
    ));
    gauges.push(("warmer_browser_launches", vec![], sup.launches() as f64));
    gauges.push(("warmer_live_contexts", vec![], sup.live_contexts() as f64));
    gauges.push(("warmer_open_contexts", vec![], sup.open_contexts() as f64));
    gauges.push((
        "warmer_browser_pss_bytes",
        vec![],
        sup.pss_bytes().unwrap_or(0) as f64,
    ));
    let text = pool.metrics.render(&gauges);
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
