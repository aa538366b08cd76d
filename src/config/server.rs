//! `[server]` (the HTTP API's listener, token and Host/Origin rules) and `[flaresolverr]`.

use super::duration::duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[flaresolverr]`: FlareSolverr's API (`POST /v1`) answered from the pool. `POST /v1` is
/// always on the main API (behind its token when there is one); `listen` adds a second
/// listener, without a token (FlareSolverr clients send none), that also answers `GET /` and
/// `GET /health`, so a client only changes its host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlareSolverrConfig {
    /// Address of the second listener, e.g. `127.0.0.1:8191` (FlareSolverr's port). Default:
    /// none.
    pub listen: Option<SocketAddr>,
    /// Whether `listen` may be a non-loopback address. The listener has no token: anyone who
    /// reaches it can use the pool's sessions (on configured targets only). Default: false —
    /// the daemon refuses to start with a non-loopback `listen`.
    pub allow_public: bool,
    /// A named session (`sessions.create`) not used for this long is destroyed and its pool
    /// session goes back to the pool. Default: 30 min.
    #[serde(deserialize_with = "duration")]
    pub session_idle: Duration,
}

impl Default for FlareSolverrConfig {
    fn default() -> Self {
        Self {
            listen: None,
            allow_public: false,
            session_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// `[server]`: the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the API listens on. Default: `127.0.0.1:3000`. Non-loopback requires a token.
    pub listen: SocketAddr,
    /// File holding the bearer token (`WARMER_TOKEN` overrides). Default: none.
    pub token_file: Option<PathBuf>,
    /// Without a token, `Host` names accepted besides loopback ones (`127.0.0.0/8`,
    /// `localhost`, `[::1]`): `name` (any port) or `name:port`. Default: none.
    pub allowed_hosts: Vec<String>,
    /// Origins (`http://dash.example:8080`) whose pages may call the API (they get CORS
    /// headers); any other foreign `Origin` gets 403. Default: none.
    pub allowed_origins: Vec<String>,
    /// Whether API callers may name their own proxy (`proxy` of `POST /api/v1/sessions`).
    /// Off by default: a caller-named proxy makes the browser connect wherever the caller
    /// says. When on, a proxy that cannot be used is reported only as "proxy unreachable".
    pub allow_custom_proxies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            token_file: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            allow_custom_proxies: false,
        }
    }
}
