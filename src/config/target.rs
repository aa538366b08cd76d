//! `[[targets]]`: one site to keep sessions for — its event page, intervals, pool size,
//! proxies, validation request and (for portals) login flow.

use super::duration::{duration, opt_duration};
use super::login::{LoginConfig, LoginStep, StepAction};
use crate::browser::guard::BlockedResource;
use crate::warm::login::EVENT_URL;
use crate::warm::ready::ReadyWhen;
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
    /// Time spent on the page after load before capturing; with `ready_when`, the most to
    /// wait for it. Default: 5 s.
    #[serde(default = "d_warmup", deserialize_with = "duration")]
    pub warmup: Duration,
    /// `ready_when = { cookies = [...], selector = "...", url = "...", js = "..." }`: a warm
    /// is done as soon as all of these hold (checked as the page changes), and fails
    /// `not_ready` when they do not within `warmup`; such a session is never served.
    /// Default: none (the warm dwells `warmup` after load).
    #[serde(default, deserialize_with = "ready_when")]
    pub ready_when: Option<ReadyWhen>,
    /// A journey instead of the single visit of the event page, in the login step language
    /// (`goto` takes `"{event_url}"` for the event page; `click`, `scroll`, `sleep = "1s-3s"`,
    /// `wait_for`, ...), e.g. home → listing → event. Each step is timed and named in errors
    /// and logs. Default: none (the event page is visited).
    #[serde(default, deserialize_with = "journey")]
    pub warm_steps: Vec<LoginStep>,
    /// Resource types not loaded while warming (`image`, `media`, `font`, `stylesheet`):
    /// failed inside the browser before their request leaves. Default: none.
    #[serde(default)]
    pub block: Vec<BlockedResource>,
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
    /// Politeness between one host's consecutive warms: each warm starts after a random pause
    /// of up to this long once it has the host's slot. While the pool is below its size the
    /// next warm is already waiting for the slot, so this is also the most a host sits idle
    /// between warms. `"0s"`: none. Default: 250 ms.
    #[serde(default = "d_jitter", deserialize_with = "duration_or_zero")]
    pub warm_jitter: Duration,
    /// Proxy URLs sessions are spread over. Default: none (direct).
    #[serde(default)]
    pub proxies: Vec<String>,
    /// `[targets.validate]`: a cheap request proving a session still works. Default: none
    /// (a session is then valid while its cookies are).
    pub validate: Option<ValidateConfig>,
    /// Directory with one account file per login (`<id>.toml`).
    pub accounts_dir: Option<PathBuf>,
    /// Directory of captured sessions dropped by another process (seed 004): a Playwright
    /// `storageState` JSON, a `cookies.txt` or warmer's session JSON, one per file, id = file
    /// stem. Each is kept alive every `refresh_every` with `[targets.login] check` (it has no
    /// credentials, so it cannot sign in again); a lapsed one is reported, never deleted.
    /// Relative to the config file. Default: none.
    pub sessions_dir: Option<PathBuf>,
    /// Rewrite a dropped session's file (atomically, 0600, in its own format) with the
    /// refreshed cookies after each keep-alive check. Default: false (the file is only read).
    #[serde(default)]
    pub write_back: bool,
    /// How long a lapsed dropped session stays listed (inactive, with the reason) and checked
    /// again before its session is retired; its file is never deleted. Default: 1 h.
    #[serde(default = "d_grace", deserialize_with = "duration")]
    pub sessions_grace: Duration,
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
fn d_grace() -> Duration {
    Duration::from_secs(3600)
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
fn d_jitter() -> Duration {
    Duration::from_millis(250)
}

/// A duration that may be zero (`"0s"`).
fn duration_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
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
            ready_when: None,
            warm_steps: Vec::new(),
            block: Vec::new(),
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
            warm_jitter: d_jitter(),
            proxies: Vec::new(),
            validate: None,
            accounts_dir: None,
            sessions_dir: None,
            write_back: false,
            sessions_grace: d_grace(),
            login: None,
            navigation_timeout: None,
            allowed_origins: Vec::new(),
        }
    }

    /// The most a warm journey (`warm_steps`) may take besides its first navigation: each
    /// step's timeout (default `nav`) plus its longest `sleep`. Zero without a journey.
    pub fn journey_bound(&self, nav: Duration) -> Duration {
        self.warm_steps
            .iter()
            .map(|s| s.timeout.unwrap_or(nav) + s.action.sleeps_up_to())
            .sum()
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

/// `ready_when`: at least one condition, none of them empty (checked while parsing, so the
/// error says the line).
fn ready_when<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ReadyWhen>, D::Error> {
    let r = ReadyWhen::deserialize(d)?;
    if r.is_empty() {
        return Err(serde::de::Error::custom(
            "needs at least one condition: cookies, selector, url or js",
        ));
    }
    r.validate().map_err(serde::de::Error::custom)?;
    Ok(Some(r))
}

/// `warm_steps`: login steps without credentials; a `goto` is `"{event_url}"` (the event page)
/// or an http(s) URL (checked while parsing, so the error says the line and the step).
fn journey<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LoginStep>, D::Error> {
    let steps = Vec::<LoginStep>::deserialize(d)?;
    for (i, step) in steps.iter().enumerate() {
        check_journey_step(&step.action).map_err(|m| {
            serde::de::Error::custom(format!("step {} ({}): {m}", i + 1, step.action.name()))
        })?;
    }
    Ok(steps)
}

/// One `warm_steps` step: no credentials to type, and `{event_url}` only as a whole `goto`.
fn check_journey_step(action: &StepAction) -> Result<(), String> {
    let values: Vec<&str> = match action {
        StepAction::Goto { url } if url.trim() == EVENT_URL => return Ok(()),
        StepAction::Goto { url } => {
            if url.contains(EVENT_URL) {
                return Err(format!(
                    "{url:?}: {EVENT_URL} stands for the whole URL (goto = \"{EVENT_URL}\")"
                ));
            }
            let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "{url:?}: scheme {:?} is not http or https",
                    parsed.scheme()
                ));
            }
            return Ok(());
        }
        StepAction::Fill { value, .. } | StepAction::Select { value, .. } => vec![value],
        _ => Vec::new(),
    };
    for v in values {
        if v.contains("{username}") || v.contains("{password}") {
            return Err(
                "a warm has no account: {username} and {password} are for login steps".into(),
            );
        }
    }
    Ok(())
}
