//! session-warmer keeps browser sessions warm for scrapers.
//!
//! # Layout
//!
//! - [`config`]: TOML config with serde defaults, validated; errors name the field.
//! - [`fingerprint`]: desktop Chrome profiles + locales (`fingerprints/`), sampling, version
//!   fields from the running browser, projection to CDP overrides and HTTP headers.
//! - [`browser`]: the Chromium supervisor (launch, handler task, crash detection, relaunch,
//!   reap, memory guard), `browser::process` (spawning Chromium so it dies with the daemon,
//!   and the start-up sweep of dead daemons' launches) and browser contexts (proxy and its
//!   credentials, fingerprint, navigation, cookies, dispose).
//! - [`warm`]: the warming procedure (context → fingerprint → event page → wait → capture) and,
//!   in `warm::login`, declared login flows and the signed-in check.
//! - [`session`]: the `Session` record, its states, and the health policy (pure).
//! - [`accounts`]: account files of login targets (one TOML per account), watched.
//! - [`store`]: the `Store` trait and its sled implementation (one tree per entity, schema
//!   version, optional encryption at rest).
//! - [`pool`]: the in-memory pool (serving order per target and event, leases, memoised
//!   answers), proxies, warming, make-before-break rotation, validation, cookie refresh, and
//!   the login keep-alive.
//! - [`schedule`]: the workers, one file each (rotate, expire, validate, refresh, top-up,
//!   cleanup, heartbeat, keep-alive).
//! - [`metrics`]: Prometheus counters and the warm-duration histogram.
//! - [`api`]: the axum edge: routes, one `ApiError`, auth, OpenAPI, dashboard.
//! - [`daemon`]: `warmer serve`: wires store, browser, pool, workers and API; ordered shutdown.
//! - [`export`]: cookies.txt, Playwright storageState, ready-to-send headers.
//! - [`logging`]: the log filter that keeps raw CDP traffic (and its secrets) out of logs.
//! - [`demo`]: the demo target site (zero-config target and test fixture).
//! - [`cli`]: the `warmer` command line (a thin edge over the above).

pub mod accounts;
pub mod api;
pub mod browser;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod export;
pub mod fingerprint;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod schedule;
pub mod session;
pub mod store;
pub mod warm;
