//! session-warmer keeps browser sessions warm for scrapers.
//!
//! # Layout
//!
//! - [`config`]: TOML config with serde defaults, validated; errors name the field.
//! - [`fingerprint`]: desktop Chrome profiles + locales (`fingerprints/`), sampling, version
//!   fields from the running browser, projection to CDP overrides and HTTP headers.
//! - [`browser`]: the Chromium supervisor (launch, handler task, crash detection, relaunch,
//!   reap) and browser contexts (proxy, fingerprint, navigation, cookies, dispose).
//! - [`warm`]: the warming procedure: context → fingerprint → event page → wait → capture.
//! - [`session`]: the `Session` record, its states and health.
//! - [`store`]: the `Store` trait and its sled implementation (one tree per entity).
//! - [`export`]: cookies.txt, Playwright storageState, ready-to-send headers.
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
