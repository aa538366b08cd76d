//! `GET /api/status`: the daemons serving this pool and their browsers (state, contexts,
//! memory), and each target's warm outcomes — what the dashboard shows beside the pool's
//! stats, sessions and audit trail. No secrets: no cookie, token or proxy in it.
//!
//! With a shared store (Redis) `daemons` lists every daemon seen by its heartbeat within 15 s
//! (this one first, with its browser; the others with what their heartbeat publishes: name,
//! age of the beat, claims held, takeovers, lease losses); `cluster` sums up this daemon's view.
//! With sled or memory the cluster is this daemon alone. Read from what the last heartbeat saw:
//! no store call.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::AppState;
use crate::config::Flavor;
use crate::store::CoordCounters;

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
    /// The cluster as this daemon sees it: daemons seen, its own claims and losses.
    pub cluster: ClusterStatus,
    /// Warm outcomes since start, per configured target.
    pub targets: Vec<TargetWarms>,
}

/// The cluster as the daemon that answered sees it (the same figures as `/metrics`'
/// `warmer_cluster_*`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// This daemon's name (`cluster.node`, default `hostname:pid`).
    pub node: String,
    /// Daemons whose heartbeat was seen within the last 15 s, this one included.
    pub daemons_seen: usize,
    /// Why this daemon's last heartbeat did not reach the store, if it did not.
    pub heartbeat_error: Option<String>,
    /// This daemon's claims: held now, granted, taken over, lost, requeued, dead-lettered.
    #[serde(flatten)]
    pub counters: CoordCounters,
}

/// One daemon of the pool.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    /// `cluster.node`, default `hostname:pid`.
    pub node: String,
    /// Whether this is the daemon that answered.
    pub this: bool,
    /// The `warmer` version (known for the daemon that answered only).
    pub version: Option<String>,
    /// Seconds since it started (known for the daemon that answered only).
    pub uptime_seconds: Option<u64>,
    /// Seconds since its last heartbeat (by the store's clock), when it has beaten.
    pub last_beat_seconds_ago: Option<f64>,
    /// Claims of work it holds (as of its last beat for another daemon).
    pub claims_held: u64,
    /// Claims it took over from a daemon whose lease lapsed.
    pub takeovers: u64,
    /// Claims it lost before finishing.
    pub lease_losses: u64,
    /// Its browser(s) (the daemon that answered only).
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
    let view = pool.cluster_view();
    let mine = pool.coord_counters();
    let me = pool.coordination().holder().to_string();
    let beat_ago = |node: &str| {
        view.nodes
            .iter()
            .find(|n| n.node == node)
            .map(|n| n.last_beat_ago.as_secs_f64())
    };
    let mut daemons = vec![DaemonStatus {
        node: me.clone(),
        this: true,
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        uptime_seconds: Some(pool.started.elapsed().as_secs()),
        last_beat_seconds_ago: beat_ago(&me),
        claims_held: mine.claims_held,
        takeovers: mine.takeovers,
        lease_losses: mine.lease_losses,
        browsers: vec![browser],
    }];
    daemons.extend(
        view.nodes
            .iter()
            .filter(|n| n.node != me)
            .map(|n| DaemonStatus {
                node: n.node.clone(),
                this: false,
                version: None,
                uptime_seconds: None,
                last_beat_seconds_ago: Some(n.last_beat_ago.as_secs_f64()),
                claims_held: n.counters.claims_held,
                takeovers: n.counters.takeovers,
                lease_losses: n.counters.lease_losses,
                browsers: Vec::new(),
            }),
    );
    let cluster = ClusterStatus {
        node: me,
        daemons_seen: view.nodes.len(),
        heartbeat_error: view.error,
        counters: mine,
    };
    Json(Status {
        shared: pool.is_shared(),
        daemons,
        cluster,
        targets,
    })
}
