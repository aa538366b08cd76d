//! `GET /api/status`: the daemons serving this pool and their browsers (state, contexts,
//! memory), and each target's warm outcomes — what the dashboard shows beside the pool's
//! stats, sessions and audit trail. No secrets: no cookie, token or proxy in it.
//!
//! The store is not shared yet, so the cluster is this daemon alone; `daemons` is a list so
//! that a shared backend can name every daemon of the pool.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::AppState;
use crate::config::Flavor;

/// Every outcome a warm can end with besides `ok`: the kinds of `WarmError` and, through it,
/// of `BrowserError`, as `warmer_warms_total{outcome}` counts them.
const WARM_FAILURE_KINDS: &[&str] = &[
    "navigation_timeout",
    "warm_timeout",
    "browser_gone",
    "target_http",
    "network",
    "capture_failed",
    "page_too_large",
    "invalid",
    "timeout",
    "launch_failed",
    "protocol",
    "shutting_down",
];

/// `GET /api/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Whether the pool is shared by several daemons (a shared store backend); `false` with
    /// sled, where this daemon is the only one.
    pub shared: bool,
    /// The daemons of the pool (this one first).
    pub daemons: Vec<DaemonStatus>,
    /// Warm outcomes since start, per configured target.
    pub targets: Vec<TargetWarms>,
}

/// One daemon of the pool.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    /// `hostname:pid`.
    pub node: String,
    /// Whether this is the daemon that answered.
    pub this: bool,
    /// The `warmer` version.
    pub version: String,
    pub uptime_seconds: u64,
    /// Its browser(s): the one it launched (more when the design's remote endpoints come).
    pub browsers: Vec<BrowserStatus>,
}

/// A browser of a daemon.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrowserStatus {
    /// `chromium` or `headless-shell`.
    pub flavor: String,
    /// Whether it is up now (else launching or relaunching after a crash).
    pub up: bool,
    /// Its launch number (1 = the first; more after relaunches and recycles).
    pub generation: Option<u64>,
    /// `Chrome/<version>` as Chromium reports it.
    pub version: Option<String>,
    pub pid: Option<u32>,
    /// Launches so far, relaunches included.
    pub launches: u64,
    /// Browser contexts alive now (open or parked).
    pub live_contexts: usize,
    /// Contexts with an open page now.
    pub open_contexts: usize,
    /// `browser.max_contexts`.
    pub max_contexts: usize,
    /// Proportional memory (PSS) of its whole process tree, when known.
    pub pss_bytes: Option<u64>,
    /// `browser.max_pss_mib` in bytes (recycled above it; 0 = no guard).
    pub max_pss_bytes: u64,
}

/// Warms of one target since the daemon started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetWarms {
    pub name: String,
    /// Warms that gave a session.
    pub ok: u64,
    /// Warms that failed, by kind (`network`, `target_http`, `navigation_timeout`, ...).
    pub failed: BTreeMap<String, u64>,
}

/// The daemon's node name: `hostname:pid`, as the design's `cluster.node` default.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The daemons of the pool and their browsers, and each target's warm outcomes.
#[utoipa::path(get, path = "/api/status",
    responses((status = 200, body = Status)), security(("bearer" = [])))]
pub async fn status(State(state): State<AppState>) -> Json<Status> {
    let pool = &state.pool;
    let sup = &state.browser;
    let config = sup.config();
    let current = sup.current();
    let flavor = match config.flavor {
        Flavor::Chromium => "chromium",
        Flavor::HeadlessShell => "headless-shell",
    }
    .to_string();
    let browser = BrowserStatus {
        flavor,
        up: current.is_some(),
        generation: current.as_ref().map(|b| b.generation),
        version: current
            .as_ref()
            .map(|b| format!("Chrome/{}", b.version.full)),
        pid: current.as_ref().and_then(|b| b.pid),
        launches: sup.launches(),
        live_contexts: sup.live_contexts(),
        open_contexts: sup.open_contexts(),
        max_contexts: config.max_contexts,
        pss_bytes: sup.pss_bytes(),
        max_pss_bytes: config.max_pss_mib * 1024 * 1024,
    };
    let targets = pool
        .targets()
        .iter()
        .map(|t| {
            let name = &t.config.name;
            TargetWarms {
                name: name.clone(),
                ok: pool.metrics.warm_count(name, "ok"),
                failed: WARM_FAILURE_KINDS
                    .iter()
                    .map(|k| (k.to_string(), pool.metrics.warm_count(name, k)))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            }
        })
        .collect();
    Json(Status {
        shared: false,
        daemons: vec![DaemonStatus {
            node: node_name(),
            this: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: pool.started.elapsed().as_secs(),
            browsers: vec![browser],
        }],
        targets,
    })
}
