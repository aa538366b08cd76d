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
//!   session's browser may go (its target's origins) and what it does not load (`block`),
//!   enforced inside the browser; `browser::remote`: attaching to a running Chromium
//!   (`browser.endpoint(s)`), never closing it, heartbeat and reconnect.
//! - [`warm`]: every browser flow (`warm::ready`: `ready_when`, watched on page events;
//!   `warm_steps` journeys run by `warm::login`'s step runner), behind the [`warm::Warm`] trait the pool uses. Warming
//!   (context → fingerprint → event page → wait → capture); `warm::revisit`: a stored
//!   session's page loaded again in a fresh context (fetch, cookie refresh); `warm::account`:
//!   signing in and keeping a login account's context (check, sign in, capture);
//!   `warm::login`: declared login steps (typed, `config::StepAction`) and the signed-in
//!   check. [`warm::Capture`]: the one step from a captured context to a `Session`. What a
//!   warm failure blames (`WarmError::blame`).
//! - [`session`]: the `Session` record, its states, the health policy (pure) and why a
//!   session retires (`RetireReason`, with its metrics label).
//! - [`accounts`]: account files of login targets (one TOML per account), watched.
//! - [`store`]: the async `Store` trait (records: sessions, events, audit) and, beside it,
//!   [`store::Coordination`] (the pool's shared state: claims of warm work with fenced leases,
//!   scrapers' holds, usage counters, cluster heartbeats); backends chosen by `store.backend`:
//!   sled (embedded, one tree per entity, schema version, optional encryption at rest), memory
//!   (nothing persisted), redis (`store::redis`: several daemons are one pool, Lua scripts on
//!   Redis's clock). `tests/store_contract.rs` runs one contract suite on every backend.
//! - [`pool`]: the in-memory pool's primitives: take (serving order per target and event,
//!   leases, memoised answers), report, retire, upsert, list, stats; `pool::warming`: a warm
//!   into the pool and what a failed one backs off (`pool::backoff`: the event or the target,
//!   and for how long); `pool::fetch`: a stored session driven (fetch, cookie refresh);
//!   proxies; restore at start.
//! - [`schedule`]: the workers, one file each holding its own policy: `schedule::rotate`
//!   (make-before-break rotation), `schedule::expire`, `schedule::validate` (validation),
//!   `schedule::refresh` (cookie refresh), `schedule::topup`, `schedule::cleanup`,
//!   heartbeat, and the keep-alive's loop.
//! - [`keepalive`]: the login keep-alive: one live context per account, checked every
//!   `refresh_every`, signed in again when lapsed, with back-off and give-up;
//!   `keepalive::dropped`: sessions dropped as files in a target's `sessions_dir`, kept alive
//!   the same way (check only), reported when lapsed.
//! - [`dropped`]: reading those files (Playwright storageState, cookies.txt, warmer JSON),
//!   watching the folder, and writing refreshed cookies back atomically.
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
//! - [`ids`]: the one rule for ids in API paths and headers (event ids, session ids, target
//!   names), checked by the API and by every way of adding an event.
//! - [`stats`]: operators' figures over the pool (cookie stats, the `/metrics` gauges),
//!   computed in the domain so the API only serialises them.
//! - [`cli`]: the `warmer` command line (a thin edge over the above; shell completions;
//!   `warmer store copy` between backends).
//!
//! Where a behaviour lives (one hop): validation: [`schedule::validate`]; keep-alive:
//! [`keepalive`] (its browser side: [`warm::account`]); signing in: [`warm::account`];
//! rotation: [`schedule::rotate`]; expiry: [`schedule::expire`]; cookie refresh:
//! [`schedule::refresh`] (the page load: `warm::revisit`); top-up: [`schedule::topup`];
//! cleanup: [`schedule::cleanup`]; warming: [`warm`] (into the pool: `pool::warming`);
//! serving: [`pool`] (`Pool::take`); why a session retired: [`session::RetireReason`].
//!
//! Outside `src/`: `clients/python` (`session_warmer`: client, requests helper, Scrapy
//! middleware), `clients/node` (`WarmerClient`, Crawlee `createSessionFunction`),
//! `vendor/chromiumoxide` (chromiumoxide 0.9.1 with one patch, see its PATCHED.md).

#![warn(missing_docs)]

pub mod accounts;
pub mod api;
pub mod browser;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dropped;
pub mod export;
pub mod fingerprint;
pub mod ids;
pub mod keepalive;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod schedule;
pub mod session;
pub mod stats;
pub mod store;
pub mod warm;
