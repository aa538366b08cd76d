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
//!   credentials, fingerprint, navigation, cookies, dispose); `browser::guard`: where a
//!   session's browser may go (its target's origins), enforced inside the browser.
//! - [`warm`]: the warming procedure (context → fingerprint → event page → wait → capture) and,
//!   in `warm::login`, declared login flows (typed steps, `config::StepAction`) and the
//!   signed-in check. What a warm failure blames (`WarmError::blame`).
//! - [`session`]: the `Session` record, its states, and the health policy (pure).
//! - [`accounts`]: account files of login targets (one TOML per account), watched.
//! - [`store`]: the `Store` trait and its sled implementation (one tree per entity, schema
//!   version, optional encryption at rest).
//! - [`pool`]: the in-memory pool (serving order per target and event, leases, memoised
//!   answers), proxies, warming, make-before-break rotation, validation, cookie refresh, and
//!   the login keep-alive; `pool::backoff`: what backs off after a failed warm (the event or
//!   the target) and for how long.
//! - [`schedule`]: the workers, one file each (rotate, expire, validate, refresh, top-up,
//!   cleanup, heartbeat, keep-alive).
//! - [`metrics`]: Prometheus counters and the warm-duration histogram.
//! - [`api`]: the axum edge: routes, one `ApiError`, auth, OpenAPI; `api::edge` (Host and
//!   Origin rules, CORS, JSON for hyper's own errors), `api::flaresolverr` (FlareSolverr's `/v1`
//!   from the pool, and its second listener), `api::dashboard` + `api::status` (the operator
//!   page and the JSON it polls).
//! - [`daemon`]: `warmer serve`: wires store, browser, pool, workers and API; ordered shutdown.
//! - [`export`]: cookies.txt (and wget's variant), Playwright storageState, a Crawlee
//!   SessionPool record, ready-to-send headers.
//! - [`logging`]: the allow-list log filter that keeps raw CDP and HTTP traffic (and its
//!   secrets) out of logs at any level; text or JSON lines.
//! - [`demo`]: the demo target site (zero-config target and test fixture; `warmer demo-site`
//!   serves it alone).
//! - [`cli`]: the `warmer` command line (a thin edge over the above; shell completions).
//!
//! Outside `src/`: `clients/python` (`session_warmer`: client, requests helper, Scrapy
//! middleware), `clients/node` (`WarmerClient`, Crawlee `createSessionFunction`),
//! `vendor/chromiumoxide` (chromiumoxide 0.9.1 with one patch, see its PATCHED.md).

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
