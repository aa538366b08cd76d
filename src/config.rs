//! TOML configuration: serde defaults, then validation into a `Config` whose every field is
//! usable. Errors name the field (`targets[0].warmup: invalid duration "5x"`).

use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest config file read: a config is a few KiB; a bigger one is a mistake (a 50 MB file
/// used to be parsed, at 1.3 GB of memory).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration that could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`]; it is not parsed.
    #[error(
        "config {path}: the file is {size} bytes; a config file may be at most 1 MiB \
         ({MAX_CONFIG_BYTES} bytes): is it the right file?"
    )]
    TooLarge {
        /// The file.
        path: String,
        /// Its size (at least this much was there).
        size: u64,
    },
    /// A field (or, for a TOML syntax error, `line L, column C`) is invalid.
    #[error("config {path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The field's path (`targets[0].warmup`), or the location of a TOML syntax error.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Durations in config are strings like `"30m"`, `"5s"`, `"2h"`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let v = humantime::parse_duration(s.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))?;
    if v.is_zero() {
        return Err(serde::de::Error::custom(format!(
            "duration {s:?} must be greater than zero"
        )));
    }
    Ok(v)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub browser: BrowserConfig,
    pub store: StoreConfig,
    pub schedule: ScheduleConfig,
    pub targets: Vec<TargetConfig>,
    /// `[flaresolverr]`: the FlareSolverr-compatible listener.
    pub flaresolverr: FlareSolverrConfig,
}

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

impl ServerConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            check_host(h)
                .map_err(|m| (format!("server.allowed_hosts[{i}]"), format!("{h:?}: {m}")))?;
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            check_origin(o).map_err(|m| {
                (
                    format!("server.allowed_origins[{i}]"),
                    format!("{o:?}: {m}"),
                )
            })?;
        }
        Ok(())
    }
}

/// A `Host` value: a name, an IPv4 address or a bracketed IPv6 one, optionally `:port`.
fn check_host(h: &str) -> Result<(), String> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && (!n.contains(':') || n.ends_with(']')) => (n, Some(p)),
        _ => (h, None),
    };
    if let Some(p) = port {
        p.parse::<u16>()
            .map_err(|_| format!("port {p:?} is not a number up to 65535"))?;
    }
    let ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    if ok {
        Ok(())
    } else {
        Err("must be a host name or address, optionally with :port (no scheme or path)".into())
    }
}

/// An origin: `scheme://host[:port]`, nothing after it.
fn check_origin(o: &str) -> Result<(), String> {
    let u = url::Url::parse(o).map_err(|e| e.to_string())?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", u.scheme()));
    }
    if u.host_str().is_none()
        || !u.username().is_empty()
        || u.password().is_some()
        || u.path() != "/"
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return Err("must be an origin: scheme://host[:port], no path".into());
    }
    Ok(())
}

/// Which Chromium build to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Debian's full `chromium` in headless mode.
    Chromium,
    /// Debian's `chromium-headless-shell`: about 3x cheaper per context.
    HeadlessShell,
}

/// `[browser]`: the Chromium supervisor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserConfig {
    /// Chromium binary. Default: auto-detected for the flavour.
    pub executable: Option<PathBuf>,
    /// Default: `chromium`.
    pub flavor: Flavor,
    /// Contexts with their page open at once per browser: warms, account checks and logins.
    /// An account's context between checks is parked (page closed) and takes no slot.
    /// Default: 10.
    pub max_contexts: usize,
    /// Timeout of one navigation. Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub navigation_timeout: Duration,
    /// Timeout of any other CDP call. Default: 10 s.
    #[serde(deserialize_with = "duration")]
    pub cdp_timeout: Duration,
    /// Timeout of a browser launch. Default: 20 s.
    #[serde(deserialize_with = "duration")]
    pub launch_timeout: Duration,
    /// Directory with `profiles.json` and `locales.json`. Default: the embedded data.
    pub fingerprints_dir: Option<PathBuf>,
    /// Memory guard: the browser (whole process tree, PSS) is recycled above this, make-before-
    /// break. 0 turns it off. Default: 2048 MiB.
    pub max_pss_mib: u64,
    /// How often the memory guard looks. Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub memory_check_every: Duration,
    /// Keep one context (with its blank page) open ahead of the next warm, so opening it is off
    /// that warm's critical path (it is opened while the current warm dwells). Made only after
    /// two warms in a row with the same proxy, only while no other warm is under way, only
    /// while at least one other context slot stays free, and counted against `max_contexts`;
    /// disposed when unused for 10 s. Default: true.
    pub spare_context: bool,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            executable: None,
            flavor: Flavor::Chromium,
            max_contexts: 10,
            navigation_timeout: Duration::from_secs(30),
            cdp_timeout: Duration::from_secs(10),
            launch_timeout: Duration::from_secs(20),
            fingerprints_dir: None,
            max_pss_mib: 2048,
            memory_check_every: Duration::from_secs(30),
            spare_context: true,
        }
    }
}

impl BrowserConfig {
    /// The executable to launch: the configured one, else the flavour's Debian path.
    /// The headless shell is launched directly: the `/usr/bin` wrapper does not `exec`.
    pub fn resolved_executable(&self) -> PathBuf {
        if let Some(p) = &self.executable {
            return p.clone();
        }
        match self.flavor {
            Flavor::Chromium => {
                let direct = Path::new("/usr/lib/chromium/chromium");
                if direct.exists() {
                    direct.to_path_buf()
                } else {
                    PathBuf::from("/usr/bin/chromium")
                }
            }
            Flavor::HeadlessShell => PathBuf::from("/usr/lib/chromium/chromium-headless-shell"),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled directory. Default: `data/warmer.sled`.
    pub path: PathBuf,
    /// File holding the 32-byte key that encrypts session records at rest (64 hex characters
    /// or base64; the file must be 0600 or 0400). `WARMER_KEY` overrides it. Relative to the
    /// working directory, like `path`. Default: none — records are stored unencrypted and the
    /// daemon warns at start.
    pub key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/warmer.sled"),
            key_file: None,
        }
    }
}

/// `[schedule]`: daemon-wide worker intervals (per-target ones live on the target).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// How often the top-up checks pool sizes (it is also woken on every retire). Default: 2 s.
    #[serde(deserialize_with = "duration")]
    pub top_up_every: Duration,
    /// How often in-memory use counts and health are written. Default: 2 s.
    #[serde(deserialize_with = "duration")]
    pub persist_every: Duration,
    /// How often retired sessions are cleaned up. Default: 10 min.
    #[serde(deserialize_with = "duration")]
    pub cleanup_every: Duration,
    /// How long a retired session is kept for inspection. Default: 1 h.
    #[serde(deserialize_with = "duration")]
    pub retired_retention: Duration,
    /// Audit entries kept. Default: 10000.
    pub audit_keep: usize,
    /// Heartbeat log line. Default: 1 min.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_every: Duration,
    /// Status report (counts per state per target). Default: 10 min.
    #[serde(deserialize_with = "duration")]
    pub status_every: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            top_up_every: Duration::from_secs(2),
            persist_every: Duration::from_secs(2),
            cleanup_every: Duration::from_secs(600),
            retired_retention: Duration::from_secs(3600),
            audit_keep: 10_000,
            heartbeat_every: Duration::from_secs(60),
            status_every: Duration::from_secs(600),
        }
    }
}

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

fn default_status() -> u16 {
    200
}

/// One declared login step. Exactly one action key per step; `{username}` and `{password}`
/// in `value` are replaced by the account's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct LoginStep {
    /// What the step does.
    pub action: StepAction,
    /// Timeout of this step. Default: the navigation timeout.
    pub timeout: Option<Duration>,
}

/// One action of a login flow. `{username}` and `{password}` in a value are replaced by the
/// account's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Navigate to a URL.
    Goto { url: String },
    /// Type `value` into the element matching `selector`.
    Fill { selector: String, value: String },
    /// Click the element matching `selector` (waits for a navigation it starts).
    Click { selector: String },
    /// Press `key` (default Enter) in the element matching `selector`.
    Press { selector: String, key: String },
    /// Choose `value` in the `<select>` matching `selector`.
    Select { selector: String, value: String },
    /// Wait until an element matches `selector`.
    WaitFor { selector: String },
    /// Wait until the URL contains `pattern` (or matches it, written `/regex/`).
    WaitForUrl { pattern: String },
    /// Wait this long.
    Sleep { duration: Duration },
}

impl StepAction {
    /// The action's name as written in the config (`goto`, `fill`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StepAction::Goto { .. } => "goto",
            StepAction::Fill { .. } => "fill",
            StepAction::Click { .. } => "click",
            StepAction::Press { .. } => "press",
            StepAction::Select { .. } => "select",
            StepAction::WaitFor { .. } => "wait_for",
            StepAction::WaitForUrl { .. } => "wait_for_url",
            StepAction::Sleep { .. } => "sleep",
        }
    }
}

impl LoginStep {
    /// A step without its own timeout.
    pub fn new(action: StepAction) -> Self {
        Self {
            action,
            timeout: None,
        }
    }
}

/// A login step as written in TOML: one action key, plus `value`/`key` where the action takes
/// them, plus an optional `timeout`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(skip_serializing_if = "Option::is_none")]
    goto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fill: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    press: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    select: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_for_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    sleep: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    timeout: Option<Duration>,
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        None => s.serialize_none(),
    }
}

impl TryFrom<RawStep> for LoginStep {
    type Error = String;

    fn try_from(r: RawStep) -> Result<Self, String> {
        let mut actions = Vec::new();
        let mut value = r.value;
        let mut key = r.key;
        let mut need_value =
            |what: &str| value.take().ok_or_else(|| format!("{what} needs a value"));
        if let Some(url) = r.goto {
            actions.push(StepAction::Goto { url });
        }
        if let Some(selector) = r.fill {
            let value = need_value("fill")?;
            actions.push(StepAction::Fill { selector, value });
        }
        if let Some(selector) = r.select {
            let value = need_value("select")?;
            actions.push(StepAction::Select { selector, value });
        }
        if let Some(selector) = r.click {
            actions.push(StepAction::Click { selector });
        }
        if let Some(selector) = r.press {
            let key = key.take().unwrap_or_else(|| "Enter".into());
            actions.push(StepAction::Press { selector, key });
        }
        if let Some(selector) = r.wait_for {
            actions.push(StepAction::WaitFor { selector });
        }
        if let Some(pattern) = r.wait_for_url {
            actions.push(StepAction::WaitForUrl { pattern });
        }
        if let Some(duration) = r.sleep {
            actions.push(StepAction::Sleep { duration });
        }
        if actions.len() > 1 {
            let names: Vec<&str> = actions.iter().map(StepAction::name).collect();
            return Err(format!(
                "several actions ({}) in one step",
                names.join(", ")
            ));
        }
        let action = actions.pop().ok_or(
            "no action: use one of goto, fill, click, press, select, wait_for, wait_for_url, sleep",
        )?;
        if value.is_some() {
            return Err(format!("{} takes no value", action.name()));
        }
        if key.is_some() {
            return Err(format!("{} takes no key (only press does)", action.name()));
        }
        Ok(Self {
            action,
            timeout: r.timeout,
        })
    }
}

impl From<LoginStep> for RawStep {
    fn from(s: LoginStep) -> Self {
        let mut r = RawStep {
            timeout: s.timeout,
            ..RawStep::default()
        };
        match s.action {
            StepAction::Goto { url } => r.goto = Some(url),
            StepAction::Fill { selector, value } => {
                (r.fill, r.value) = (Some(selector), Some(value))
            }
            StepAction::Click { selector } => r.click = Some(selector),
            StepAction::Press { selector, key } => (r.press, r.key) = (Some(selector), Some(key)),
            StepAction::Select { selector, value } => {
                (r.select, r.value) = (Some(selector), Some(value))
            }
            StepAction::WaitFor { selector } => r.wait_for = Some(selector),
            StepAction::WaitForUrl { pattern } => r.wait_for_url = Some(pattern),
            StepAction::Sleep { duration } => r.sleep = Some(duration),
        }
        r
    }
}

/// How to tell whether a login session is alive.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Visited in the live context; its own response (redirects not followed) must have
    /// `expect_status`.
    pub url: Option<String>,
    /// Default: 200.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// An element that proves being signed in.
    pub selector: Option<String>,
    /// An element that proves being signed out.
    pub signed_out: Option<String>,
}

/// `[targets.login]`: a declared login flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The login page.
    pub url: String,
    pub steps: Vec<LoginStep>,
    pub check: CheckConfig,
    /// Failed logins in a row before the account is marked failed (it is then retried only
    /// when its file changes or on an explicit refresh). Default: 5.
    #[serde(default = "d_attempts")]
    pub max_login_attempts: u32,
}

fn d_attempts() -> u32 {
    5
}

/// `[[targets]]`: one site to keep sessions for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
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

    /// The event page URL for `event`.
    ///
    /// # Errors
    /// When the target has no `event_url`.
    pub fn event_page(&self, event: &str) -> Result<String, String> {
        let t = self
            .event_url
            .as_deref()
            .ok_or_else(|| format!("target {:?} has no event_url", self.name))?;
        Ok(t.replace("{event}", &url_escape(event)))
    }
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Config {
    /// Finds the config: `explicit`, then `WARMER_CONFIG`, then `./warmer.toml`, then defaults.
    ///
    /// # Errors
    /// When the chosen file cannot be read or is invalid.
    pub fn discover(explicit: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let env = std::env::var_os("WARMER_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(env).or_else(|| {
            let local = PathBuf::from("warmer.toml");
            local.exists().then_some(local)
        });
        match path {
            Some(p) => Ok((Self::load(&p)?, Some(p))),
            None => Ok((Self::default(), None)),
        }
    }

    /// Loads and validates `path`.
    ///
    /// # Errors
    /// When the file cannot be read or a field is invalid (the error names it).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_limited(path)?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        // Relative paths in a config file are relative to the file.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            for t in &mut cfg.targets {
                if let Some(a) = &t.accounts_dir {
                    if a.is_relative() {
                        t.accounts_dir = Some(dir.join(a));
                    }
                }
                if let Some(f) = &t.events_file {
                    if f.is_relative() {
                        t.events_file = Some(dir.join(f));
                    }
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    ///
    /// # Errors
    /// When a field is unknown, of the wrong type, or invalid (the error names it).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            // One line: toml's messages may span several ("invalid table header\nduplicate
            // key ...").
            let message = inner
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            // Syntax, duplicate-key and number-overflow errors belong to no field: name where
            // they are in the file instead.
            let field = match (field.as_str(), inner.span()) {
                (".", Some(span)) => {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}")
                }
                (".", None) => "(top level)".into(),
                _ => field,
            };
            ConfigError::Invalid {
                path: origin.to_string(),
                field,
                message,
            }
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            field,
            message,
        };
        self.server.validate().map_err(|(f, m)| bad(f, m))?;
        if self.browser.max_contexts == 0 {
            return Err(bad(
                "browser.max_contexts".into(),
                "must be at least 1".into(),
            ));
        }
        if (self.store.key_file.as_ref()).is_some_and(|f| f.as_os_str().is_empty()) {
            return Err(bad(
                "store.key_file".into(),
                "is empty: give the key file's path".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let f = |name: &str| format!("targets[{i}].{name}");
            if t.name.trim().is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(
                    f("name"),
                    format!("{:?} must be non-empty letters, digits, - or _", t.name),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(bad(
                    f("name"),
                    format!("duplicate target name {:?}", t.name),
                ));
            }
            if let Some(u) = &t.event_url {
                check_url(&u.replace("{event}", "x"))
                    .map_err(|m| bad(f("event_url"), format!("{u:?}: {m}")))?;
                if !u.contains("{event}") {
                    return Err(bad(
                        f("event_url"),
                        format!("{u:?} has no {{event}} placeholder"),
                    ));
                }
            }
            if t.pool_size == 0 {
                return Err(bad(f("pool_size"), "must be at least 1".into()));
            }
            if t.max_concurrent_warms == 0 {
                return Err(bad(f("max_concurrent_warms"), "must be at least 1".into()));
            }
            for (j, p) in t.proxies.iter().enumerate() {
                check_proxy(p).map_err(|m| bad(format!("targets[{i}].proxies[{j}]"), m))?;
            }
            if let Some(l) = &t.login {
                check_url(&l.url).map_err(|m| bad(f("login.url"), format!("{:?}: {m}", l.url)))?;
                if l.steps.is_empty() {
                    return Err(bad(f("login.steps"), "at least one step is needed".into()));
                }
                for (j, step) in l.steps.iter().enumerate() {
                    if let StepAction::Goto { url } = &step.action {
                        check_url(url)
                            .map_err(|m| bad(format!("targets[{i}].login.steps[{j}].goto"), m))?;
                    }
                }
                if let Some(u) = &l.check.url {
                    check_url(u).map_err(|m| bad(f("login.check.url"), m))?;
                }
                if l.check.url.is_none()
                    && l.check.selector.is_none()
                    && l.check.signed_out.is_none()
                {
                    return Err(bad(
                        f("login.check"),
                        "needs a url, a selector or a signed_out marker".into(),
                    ));
                }
                if l.max_login_attempts == 0 {
                    return Err(bad(
                        f("login.max_login_attempts"),
                        "must be at least 1".into(),
                    ));
                }
                if t.accounts_dir.is_none() {
                    return Err(bad(
                        f("accounts_dir"),
                        "a login target needs an accounts_dir".into(),
                    ));
                }
            }
            if let Some(v) = &t.validate {
                check_url(&v.url.replace("{event}", "x"))
                    .map_err(|m| bad(f("validate.url"), format!("{:?}: {m}", v.url)))?;
            }
            for (j, o) in t.allowed_origins.iter().enumerate() {
                check_url(o).map_err(|m| {
                    bad(
                        format!("targets[{i}].allowed_origins[{j}]"),
                        format!("{o:?}: {m}"),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// Reads a config file of at most [`MAX_CONFIG_BYTES`] (checked before and while reading, so
/// neither a huge file nor an endless one like `/dev/zero` is read in).
fn read_limited(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let shown = || path.display().to_string();
    let read_err = |source| ConfigError::Read {
        path: shown(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: shown(),
            size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: shown(),
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn check_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| e.to_string())?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        s => Err(format!("scheme {s:?} is not http or https")),
    }
}

/// Checks a proxy URL (`http://`, `https://`, `socks5://`); never echoes credentials.
///
/// # Errors
/// A message without the URL's password.
pub fn check_proxy(p: &str) -> Result<(), String> {
    let parsed = url::Url::parse(p).map_err(|e| format!("invalid proxy URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" | "socks4" | "socks5" => {}
        s => {
            return Err(format!(
                "proxy scheme {s:?} is not http, https, socks4 or socks5"
            ))
        }
    }
    if parsed.host_str().is_none() {
        return Err("proxy URL has no host".into());
    }
    if parsed.scheme().starts_with("socks") && !parsed.username().is_empty() {
        return Err(
            "Chromium cannot authenticate to a SOCKS proxy: use an http(s) proxy for credentials"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_the_design() {
        let c =
            Config::parse("[[targets]]\nname='a'\nevent_url='http://x/e/{event}'", "t").unwrap();
        let t = &c.targets[0];
        assert_eq!(t.rotate_every, Duration::from_secs(1800));
        assert_eq!(t.max_age, Duration::from_secs(7200));
        assert_eq!(t.validate_every, Duration::from_secs(300));
        assert_eq!(t.pool_size, 10);
        assert_eq!(t.warmup, Duration::from_secs(5));
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.browser.max_contexts, 10);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("[browser]\nbogus = 1").contains("browser"));
        assert!(err("[browser]\nbogus = 1").contains("bogus"));
        let e = err("[[targets]]\nname='a'\nwarmup='5x'");
        assert!(e.contains("targets[0].warmup") && e.contains("5x"), "{e}");
        let e = err("[[targets]]\nname='a'\nwarmup='0s'");
        assert!(e.contains("targets[0].warmup"), "{e}");
        let e = err("[[targets]]\nname='a'\n[[targets]]\nname='a'");
        assert!(
            e.contains("targets[1].name") && e.contains("duplicate"),
            "{e}"
        );
        let e = err("[[targets]]\nname='a'\nevent_url='ftp://x/{event}'");
        assert!(e.contains("targets[0].event_url"), "{e}");
        let e = err("[[targets]]\nname='a'\npool_size='ten'");
        assert!(e.contains("targets[0].pool_size"), "{e}");
        let e = err("[[targets]]\nname='a'\nproxies=['nope']");
        assert!(e.contains("targets[0].proxies[0]"), "{e}");
        let e = err("[[targets]]\nname='a'\nproxies=['socks5://u:p@h:1080']");
        assert!(
            e.contains("targets[0].proxies[0]") && e.contains("SOCKS"),
            "{e}"
        );
        let e = err("[server]\nlisten='nowhere'");
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn login_steps_are_checked() {
        let base = "[[targets]]\nname='p'\naccounts_dir='a'\n[targets.login]\nurl='http://x/login'\ncheck={url='http://x/account'}\n";
        let ok = format!("{base}steps=[{{fill='#u', value='{{username}}'}}, {{click='button'}}, {{wait_for_url='/account'}}, {{sleep='1s'}}]");
        let c = Config::parse(&ok, "t").unwrap();
        let steps = &c.targets[0].login.as_ref().unwrap().steps;
        assert_eq!(
            steps.iter().map(|s| s.action.clone()).collect::<Vec<_>>(),
            [
                StepAction::Fill {
                    selector: "#u".into(),
                    value: "{username}".into()
                },
                StepAction::Click {
                    selector: "button".into()
                },
                StepAction::WaitForUrl {
                    pattern: "/account".into()
                },
                StepAction::Sleep {
                    duration: Duration::from_secs(1)
                },
            ]
        );
        let e = err(&format!("{base}steps=[{{fill='#u'}}, {{click='b'}}]"));
        assert!(
            e.contains("targets[0].login.steps[0]") && e.contains("fill needs a value"),
            "{e}"
        );
        let e = err(&format!("{base}steps=[{{click='b'}}, {{}}]"));
        assert!(
            e.contains("targets[0].login.steps[1]") && e.contains("no action"),
            "{e}"
        );
        let e = err(&format!("{base}steps=[{{click='b', value='x'}}]"));
        assert!(e.contains("click takes no value"), "{e}");
        let e = err(&format!("{base}steps=[{{click='b', key='Tab'}}]"));
        assert!(e.contains("only press"), "{e}");
        let c = Config::parse(&format!("{base}steps=[{{press='#q'}}]"), "t").unwrap();
        assert_eq!(
            c.targets[0].login.as_ref().unwrap().steps[0].action,
            StepAction::Press {
                selector: "#q".into(),
                key: "Enter".into()
            }
        );
        let e = err(&format!("{base}steps=[{{click='a', fill='b', value='c'}}]"));
        assert!(
            e.contains("targets[0].login.steps[0]") && e.contains("several"),
            "{e}"
        );
        let e = err(&format!("{base}steps=[{{hover='a'}}]"));
        assert!(e.contains("hover"), "{e}");
        let e = err(&format!("{base}steps=[{{sleep='x'}}]"));
        assert!(e.contains("steps[0].sleep"), "{e}");
    }

    #[test]
    fn syntax_duplicate_and_overflow_errors_name_line_and_column() {
        let cases = [
            // TOML syntax: a value missing.
            (
                "[server]\nlisten = '127.0.0.1:1'\ntoken_file = \n",
                "line 3, column 14",
            ),
            // A key given twice in one table.
            (
                "[browser]\nmax_contexts = 2\nmax_contexts = 3\n",
                "line 3, column 1",
            ),
            // An integer beyond i64.
            (
                "[[targets]]\nname = 'a'\npool_size = 99999999999999999999\n",
                "line 3, column 13",
            ),
            // A table given twice.
            ("[server]\n[browser]\n[server]\n", "line 3, column 1"),
        ];
        for (text, at) in cases {
            let e = err(text);
            assert!(
                e.starts_with(&format!("config t.toml: {at}: ")),
                "{text:?}: {e}"
            );
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
        assert!(err("[browser]\nmax_contexts = 2\nmax_contexts = 3\n").contains("duplicate"));
        assert_eq!(line_column("ab\néx = 1", 6), (2, 3));
        assert_eq!(line_column("a", 99), (1, 2));
    }

    #[test]
    fn a_config_over_1_mib_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let mut text = String::from("[server]\n");
        while text.len() as u64 <= MAX_CONFIG_BYTES {
            text.push_str("# padding padding padding padding padding padding padding padding\n");
        }
        std::fs::write(&big, &text).unwrap();
        let e = Config::load(&big).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("big.toml") && e.contains("at most 1 MiB"), "{e}");
        // Exactly 1 MiB is still read.
        text.truncate(MAX_CONFIG_BYTES as usize);
        let cut = text.rfind('\n').unwrap() + 1;
        text.truncate(cut);
        text.push_str(&"#".repeat(MAX_CONFIG_BYTES as usize - text.len()));
        std::fs::write(&big, &text).unwrap();
        Config::load(&big).unwrap();
        // An endless file is not read to its end.
        let e = Config::load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn proxy_errors_never_echo_passwords() {
        let e = check_proxy("ftp://user:hunter2@host:1").unwrap_err();
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn event_page_escapes_the_id() {
        let t = TargetConfig::ad_hoc("a", "http://x/e/{event}");
        assert_eq!(t.event_page("1 2/3").unwrap(), "http://x/e/1+2%2F3");
    }
}
