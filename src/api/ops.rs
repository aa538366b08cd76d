//! Operations endpoints: health, readiness, metrics, the OpenAPI document, a dashboard.

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

/// The dashboard: a page with no data in it. Its script asks `GET /api/sessions/stats`,
/// sending the token kept in the tab's `sessionStorage` when one is stored; on 401 it shows a
/// form for the token (kept only in that tab, no cookie: so nothing for another site to ride).
#[utoipa::path(get, path = "/",
    responses((status = 200, description = "The dashboard (HTML, no data: its script calls \
        the API with the token given in its form)", content_type = "text/html")))]
pub async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
                 base-uri 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DASHBOARD,
    )
}

/// The dashboard page: static, no external assets; everything shown is set as text (never as
/// HTML), so target names cannot inject markup.
const DASHBOARD: &str = r#"<!doctype html>
<html lang=en><meta charset=utf-8><meta name=viewport content="width=device-width">
<title>session-warmer</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
td,th{padding:.2em 1em;text-align:left}th{border-bottom:1px solid #ccc}
#login{margin:1em 0}#login input{width:28em}.err{color:#a00}.muted{color:#777}
</style>
<h1>session-warmer</h1>
<form id=login hidden>
<label for=token>API token</label>
<input id=token type=password autocomplete=off required>
<button id=signin type=submit>Show</button>
<p class=muted>Kept in this tab only (sessionStorage), sent as <code>Authorization: Bearer</code>.</p>
</form>
<p id=status class=muted>Loading…</p>
<div id=data hidden>
<p id=summary></p>
<table id=targets hidden><thead><tr><th>target</th><th>pool size</th><th>ready</th>
<th>backoff</th></tr></thead><tbody></tbody></table>
<p><button id=signout type=button hidden>Forget token</button></p>
</div>
<p><a href=/openapi.json>openapi.json</a></p>
<script>
"use strict";
const KEY = "warmer-token";
const $ = (id) => document.getElementById(id);
function cell(row, text) { const td = document.createElement("td"); td.textContent = String(text); row.appendChild(td); }
function render(s) {
  $("summary").textContent = s.activeSessions + " active of " + s.totalSessions +
    " sessions · average age " + Math.round(s.averageAge) + " min · oldest " +
    Math.round(s.oldestSession) + " min";
  const body = $("targets").tBodies[0];
  body.replaceChildren();
  const targets = Array.isArray(s.targets) ? s.targets : [];
  for (const t of targets) {
    const row = document.createElement("tr");
    cell(row, t.name); cell(row, t.poolSize); cell(row, t.ready);
    cell(row, t.backoff ? Math.ceil(t.backoff.seconds) + " s: " + t.backoff.reason : "—");
    body.appendChild(row);
  }
  $("targets").hidden = targets.length === 0;
  $("data").hidden = false;
}
async function load() {
  const token = sessionStorage.getItem(KEY);
  const headers = token ? { "Authorization": "Bearer " + token } : {};
  let r;
  try { r = await fetch("/api/sessions/stats", { headers, cache: "no-store" }); }
  catch (e) { $("status").textContent = "The daemon did not answer."; $("status").className = "err"; return; }
  if (r.status === 401) {
    $("data").hidden = true;
    $("login").hidden = false;
    $("status").textContent = token ? "That token was refused." : "This daemon needs its API token.";
    $("status").className = token ? "err" : "muted";
    if (token) sessionStorage.removeItem(KEY);
    return;
  }
  if (!r.ok) { $("status").textContent = "The API answered " + r.status + "."; $("status").className = "err"; return; }
  $("login").hidden = true;
  $("signout").hidden = !token;
  $("status").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  $("status").className = "muted";
  render(await r.json());
}
$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (t) { sessionStorage.setItem(KEY, t); $("token").value = ""; load(); }
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); load(); });
load();
setInterval(() => { if ($("login").hidden) load(); }, 5000);
</script>
"#;
