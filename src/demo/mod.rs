//! The demo target site: a tiny ticketing site on loopback that behaves like the hard sites the
//! warmer exists for (JavaScript-set, User-Agent-bound cookies; logins that lapse; a protected
//! API; fault knobs). It is the zero-config target of `warmer demo` and every integration test's
//! fixture.
//!
//! # Routes
//! - `GET /` — index linking the event pages.
//! - `GET /event/{id}` — event page; sets HttpOnly `visitor`, embeds a per-visitor nonce
//!   (`<body data-nonce>`); after `js_delay` its script sets `challenge=<nonce>.<h>` with
//!   h = [`challenge_hash`]`(navigator.userAgent, nonce)`, localStorage `demo:last_event` and
//!   `demo:visits`, then `<body data-ready="1">` and the text "ready" in `#status`.
//!   `?fault=NAME` (see [`Fault`]) overrides the global fault for that request.
//!   `?token_delay=MS|LO-HI` delays the `challenge` cookie (the token) and adds
//!   `<div id="app-ready">` with it; `?token_http=1` fetches an HttpOnly `http_token` after the
//!   delay instead; `?assets=1` adds an image, a stylesheet, a font and a video (see
//!   `readiness`).
//! - `GET /api/event/{id}` — JSON, 200 only with a known visitor and a challenge earned with the
//!   request's User-Agent; else 403 `{"error": reason}`.
//! - `GET|POST /login`, `GET /account`, `GET /api/me` — sign-in with inactivity expiry.
//! - `GET|POST /__demo/fault`, `POST /__demo/revoke`, `GET /__demo/stats` — admin knobs;
//!   `GET /__demo/stall` never answers (used by `never-load`); `GET /__demo/asset/{name}` (the
//!   `assets=1` resources, counted), `GET /__demo/assets` (those counts), `POST /__demo/token`
//!   (sets the HttpOnly `http_token`).
//!
//! # Layout
//! - `mod.rs`: [`DemoConfig`], [`DemoSite`] (start, handle, knobs), [`DemoStats`]
//! - `catalog.rs`: the ten events
//! - `challenge.rs`: the FNV-1a hash shared with the page script, and its check
//! - `fault.rs`: [`Fault`] and its names
//! - `conn.rs`: a listener whose connections a handler can reset (for [`Fault::Reset`])
//! - `pages.rs`: HTML and the inline script
//! - `readiness.rs`: the delayed token, the HttpOnly token and the counted assets
//! - `routes.rs`: router and handlers
//! - `state.rs`: visitors, login sessions, accounts, counters

mod catalog;
mod challenge;
mod conn;
mod fault;
mod pages;
mod readiness;
mod routes;
mod state;

use std::{
    collections::HashMap,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use challenge::{challenge_hash, fnv1a32, ChallengeError};
pub use fault::{Fault, UnknownFault, FAULT_NAMES, SLOW_FAULT_DELAY};
pub use readiness::{epoch_ms, AssetHits, BadTokenDelay, TokenDelay, MAX_TOKEN_DELAY};

use conn::{ConnHandle, DemoListener};
use state::SiteState;

/// How the demo site behaves.
#[derive(Clone)]
pub struct DemoConfig {
    /// Inactivity after which a login session lapses. Default: 10 min.
    pub login_inactivity: Duration,
    /// Delay before the event page's JavaScript sets the UA-bound token cookie. Default: 300 ms.
    pub js_delay: Duration,
    /// Accounts that can sign in (username -> password). Default: alice/wonderland, bob/builder.
    pub users: HashMap<String, String>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            login_inactivity: Duration::from_secs(600),
            js_delay: Duration::from_millis(300),
            users: HashMap::from([
                ("alice".to_owned(), "wonderland".to_owned()),
                ("bob".to_owned(), "builder".to_owned()),
            ]),
        }
    }
}

// Hand-written so passwords never reach a log through `{:?}`.
impl fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("DemoConfig")
            .field("login_inactivity", &self.login_inactivity)
            .field("js_delay", &self.js_delay)
            .field("users", &users)
            .finish()
    }
}

/// Request counters, as served by `GET /__demo/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoStats {
    /// Requests to `/event/{id}`, faulted and unknown ids included.
    pub event_visits: u64,
    /// Successful sign-ins.
    pub logins: u64,
    /// Refused sign-ins.
    pub login_failures: u64,
    /// Requests to `/account`, signed in or not.
    pub account_hits: u64,
    /// `/api/event/{id}` requests answered 200.
    pub api_ok: u64,
    /// `/api/event/{id}` requests refused with 403.
    pub api_denied: u64,
}

/// The event ids the demo site serves: "1001" through "1010".
pub fn demo_events() -> Vec<String> {
    catalog::all().iter().map(|e| e.id.to_owned()).collect()
}

/// Handle to a running demo site; clones share the same site.
#[derive(Clone)]
pub struct DemoSite {
    /// State shared with the handlers.
    state: Arc<SiteState>,
    /// Where it listens (127.0.0.1 unless started with [`DemoSite::start_on`]).
    addr: SocketAddr,
}

impl fmt::Debug for DemoSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoSite")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DemoSite {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves in a spawned task until `shutdown`
    /// is cancelled; hanging and stalled responses end then too, so shutdown completes.
    ///
    /// # Errors
    /// The bind error, e.g. when the port is taken.
    pub async fn start(
        config: DemoConfig,
        port: u16,
        shutdown: CancellationToken,
    ) -> std::io::Result<DemoSite> {
        Self::start_on(
            config,
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            shutdown,
        )
        .await
    }

    /// Like [`DemoSite::start`] on any address: `warmer demo-site --listen 0.0.0.0:8080` in a
    /// container, where the warmer reaches it by its service name.
    ///
    /// # Errors
    /// The bind error, e.g. when the port is taken.
    pub async fn start_on(
        config: DemoConfig,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<DemoSite> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SiteState::new(config, shutdown.clone()));
        let app =
            routes::router(Arc::clone(&state)).into_make_service_with_connect_info::<ConnHandle>();
        tokio::spawn(async move {
            let served = axum::serve(DemoListener::new(listener), app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            match served {
                Ok(()) => tracing::debug!(%addr, "demo site stopped"),
                Err(e) => tracing::warn!(%addr, error = %e, "demo site failed"),
            }
        });
        tracing::info!(%addr, "demo site listening");
        Ok(DemoSite { state, addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/event/{event}`: a target's `event_url`.
    pub fn event_url_template(&self) -> String {
        format!("{}/event/{{event}}", self.base_url())
    }

    /// Sets (or with `None` clears) the fault applied to every `/event/{id}` page that has no
    /// `?fault=` of its own.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.set_fault(fault);
    }

    /// Forgets every visitor and login session: all issued cookies become invalid.
    pub fn revoke_all(&self) {
        self.state.revoke_all();
    }

    /// Sets (or adds) an account's password. Sessions already signed in stay signed in.
    pub fn set_password(&self, user: &str, pw: &str) {
        self.state.set_password(user, pw);
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> DemoStats {
        self.state.stats()
    }

    /// Requests received so far for the `assets=1` page's image, stylesheet, font and video.
    pub fn asset_hits(&self) -> AssetHits {
        self.state.readiness.hits()
    }

    /// When the site last issued an HttpOnly `http_token` (`POST /__demo/token`), in epoch
    /// milliseconds ([`epoch_ms`]'s clock).
    pub fn http_token_issued_at(&self) -> Option<f64> {
        self.state.readiness.http_token_at()
    }

    /// The nonce issued to `visitor` (a `visitor` cookie value), while it is known and unexpired.
    pub fn nonce_for(&self, visitor: &str) -> Option<String> {
        self.state.nonce_for(visitor, std::time::Instant::now())
    }
}
