//! `[[targets]]`: one site to keep sessions for — its event page, intervals, pool size,
//! proxies, validation request and (for portals) login flow.

use super::duration::{duration, opt_duration};
use super::login::LoginConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[targets.validate]`: a cheap request proving a session still works.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    /// URL requested with the session's headers; `{event}` is replaced by its event.
    pub url: String,
    /// Default: 200.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Cookies that must be present and unexpired. Default: none.
    #[serde(default)]
    pub require_cookies: Vec<String>,
}

/// The status a validation or login check expects by default.
pub(super) fn default_status() -> u16 {
    200
}

/// `[[targets]]`: one site to keep sessions for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name (letters, digits, `-`, `_`): in the API, metrics and session records.
    pub name: String,
    /// Event page URL with an `{event}` placeholder.
    pub event_url: Option<String>,
    /// Event ids seeding the event store. Default: none.
    #[serde(default)]
    pub events: Vec<String>,
    /// File with one event id per line, seeding the event store.
    pub events_file: Option<PathBuf>,
    /// Time spent on the page after load before capturing. Default: 5 s.
    #[serde(default = "d_warmup", deserialize_with = "duration")]
    pub warmup: Duration,
    /// Default: 30 min.
    #[serde(default = "d_rotate", deserialize_with = "duration")]
    pub rotate_every: Duration,
    /// Default: 2 h.
    #[serde(default = "d_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
    /// Default: 5 min.
    #[serde(default = "d_validate", deserialize_with = "duration")]
    pub validate_every: Duration,
    /// Revisit an event page to refresh cookies. Default: 30 min.
    #[serde(default = "d_rotate", deserialize_with = "duration")]
    pub cookie_refresh_every: Duration,
    /// A full re-warm (a replacement session) at least this often, whatever `rotate_every`
    /// says. Default: 24 h.
    #[serde(default = "d_full", deserialize_with = "duration")]
    pub full_rewarm_every: Duration,
    /// Keep-alive interval of login sessions. Default: 5 min.
    #[serde(default = "d_validate", deserialize_with = "duration")]
    pub refresh_every: Duration,
    /// Ready sessions to keep. Default: 10.
    #[serde(default = "d_pool")]
    pub pool_size: usize,
    /// Error score at which a session retires. Default: 3.
    #[serde(default = "d_failures")]
    pub max_failures: u32,
    /// Hand a session out at most this often. Default: unlimited.
    pub max_uses: Option<u64>,
    /// Warms at once against this target's host. Default: 1.
    #[serde(default = "d_one")]
    pub max_concurrent_warms: usize,
    /// Proxy URLs sessions are spread over. Default: none (direct).
    #[serde(default)]
    pub proxies: Vec<String>,
    /// `[targets.validate]`: a cheap request proving a session still works. Default: none
    /// (a session is then valid while its cookies are).
    pub validate: Option<ValidateConfig>,
    /// Directory with one account file per login (`<id>.toml`).
    pub accounts_dir: Option<PathBuf>,
    /// The declared login flow of a portal target.
    pub login: Option<LoginConfig>,
    /// Optional timeout override for this target's navigations.
    #[serde(default, deserialize_with = "opt_duration")]
    pub navigation_timeout: Option<Duration>,
    /// Origins besides the target's own (those of `event_url`, its events, login, check and
    /// validate URLs) that its sessions' browsers may load, e.g. a sign-on provider's
    /// `https://sso.example`. Default: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

fn d_warmup() -> Duration {
    Duration::from_secs(5)
}
fn d_rotate() -> Duration {
    Duration::from_secs(30 * 60)
}
fn d_full() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_max_age() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn d_validate() -> Duration {
    Duration::from_secs(5 * 60)
}
fn d_pool() -> usize {
    10
}
fn d_failures() -> u32 {
    3
}
fn d_one() -> usize {
    1
}

impl TargetConfig {
    /// A target for a bare URL template (used by `warmer warm --url`).
    pub fn ad_hoc(name: &str, event_url: &str) -> Self {
        Self {
            name: name.to_string(),
            event_url: Some(event_url.to_string()),
            events: Vec::new(),
            events_file: None,
            warmup: d_warmup(),
            rotate_every: d_rotate(),
            max_age: d_max_age(),
            validate_every: d_validate(),
            cookie_refresh_every: d_rotate(),
            full_rewarm_every: d_full(),
            refresh_every: d_validate(),
            pool_size: d_pool(),
            max_failures: d_failures(),
            max_uses: None,
            max_concurrent_warms: d_one(),
            proxies: Vec::new(),
            validate: None,
            accounts_dir: None,
            login: None,
            navigation_timeout: None,
            allowed_origins: Vec::new(),
        }
    }

    /// The event page URL for `event`: `event_url` with `{event}` replaced by the
    /// form-encoded id.
    ///
    /// # Errors
    /// [`NoEventUrl`] when the target has no `event_url` (a login-only target).
    pub fn event_page(&self, event: &str) -> Result<String, NoEventUrl> {
        let t = self.event_url.as_deref().ok_or_else(|| NoEventUrl {
            target: self.name.clone(),
        })?;
        Ok(t.replace("{event}", &url_escape(event)))
    }
}

/// [`TargetConfig::event_page`] on a target without `event_url`: there is no page to warm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {target:?} has no event_url")]
pub struct NoEventUrl {
    /// The target's name.
    pub target: String,
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
