//! `[store]`: where sessions are kept, and the key that encrypts them at rest; `[cluster]`:
//! how daemons sharing one store (Redis) divide the work.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable that gives (and overrides) `store.url`, so a URL with a password need
/// not be written into the config file.
pub const STORE_URL_ENV: &str = "WARMER_STORE_URL";

/// Where sessions, events and accounts are kept (`store.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// An embedded sled database at `store.path`: survives restarts and `kill -9`. The default.
    #[default]
    Sled,
    /// In memory only: nothing is persisted, everything is lost when the daemon stops (for
    /// development and tests; the daemon says so at start). `path` and `key_file` are unused.
    Memory,
    /// A Redis server at `store.url` (or `$WARMER_STORE_URL`), shared by every daemon with the
    /// same `store.prefix`: records, work claims, holds and usage counters live there.
    Redis,
    /// A MongoDB database at `store.url` (or `$WARMER_STORE_URL`), shared like Redis by every
    /// daemon with the same `store.prefix` (collections `<prefix>_…`). Needs the `mongodb`
    /// cargo feature (on by default).
    Mongodb,
}

impl StoreBackend {
    /// The name as written in the config (`sled`, `memory`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Sled => "sled",
            StoreBackend::Memory => "memory",
            StoreBackend::Redis => "redis",
            StoreBackend::Mongodb => "mongodb",
        }
    }
}

/// `[store]`: which backend keeps the records, and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Which backend: `"sled"`, `"memory"` or `"redis"`. Default: `"sled"`.
    pub backend: StoreBackend,
    /// sled directory (used by the `sled` backend). Default: `data/warmer.sled`.
    pub path: PathBuf,
    /// File holding the 32-byte key that encrypts session records at rest (64 hex characters
    /// or base64; the file must be 0600 or 0400). `WARMER_KEY` overrides it. Relative to the
    /// working directory, like `path`. Default: none — records are stored unencrypted and the
    /// daemon warns at start.
    pub key_file: Option<PathBuf>,
    /// Where a network backend is (`redis://[:password@]host:port/db`, `rediss://…`,
    /// `redis+unix:///path.sock`); required with `backend = "redis"` unless `WARMER_STORE_URL`
    /// gives it (the variable wins). It may hold a password, so it is never logged or shown.
    pub url: Option<SecretUrl>,
    /// Namespace of every key the backend writes (`<prefix>:…`), so deployments can share one
    /// Redis; daemons of one pool use the same prefix. Default: `sw`.
    pub prefix: String,
    /// How long any one call to a network store (Redis) may take, connecting included, before
    /// it fails as unavailable: the bound on how long a request can wait on the store when it
    /// is down or unreachable. Half of it bounds one connection attempt. Unused by sled and
    /// memory. Default: 2 s.
    #[serde(deserialize_with = "super::duration::duration")]
    pub timeout: Duration,
}

/// A store URL, which may carry a password: its `Debug` shows only the scheme, so a config
/// printed with `{:?}` leaks nothing.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl {
    /// The URL, credentials included.
    url: String,
    /// Named explicitly (on the command line): [`StoreConfig::effective_url`] keeps it even
    /// while `WARMER_STORE_URL` is set. Never from a config file.
    #[serde(skip)]
    explicit: bool,
}

impl SecretUrl {
    /// Wraps a URL (`WARMER_STORE_URL`, when set, is used instead of it).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            explicit: false,
        }
    }

    /// Wraps a URL named explicitly, e.g. `warmer store copy --to redis://…`: the store opened
    /// is this one even while `WARMER_STORE_URL` names another.
    pub fn explicit(url: impl Into<String>) -> Self {
        Self {
            explicit: true,
            ..Self::new(url)
        }
    }

    /// The URL itself, credentials included: give it only to the client that connects.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.url.split_once("://").map_or("?", |(s, _)| s);
        write!(f, "SecretUrl({scheme}://…)")
    }
}

/// `[cluster]`: how daemons sharing one store divide the work (used with a shared backend).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// How long a daemon's claim on a warm, refresh, validation or keep-alive lasts unless
    /// renewed (it renews every third of it while working); a dead daemon's work is taken over
    /// once it lapses. Default: 30 s.
    #[serde(deserialize_with = "super::duration::duration")]
    pub lease_ttl: Duration,
    /// This daemon's name, carried by its claims and shown in the status. Default:
    /// `hostname:pid` ([`ClusterConfig::node_name`]).
    pub node: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            node: None,
        }
    }
}

impl ClusterConfig {
    /// `cluster.node`, else `hostname:pid`.
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node {
            return n.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", std::process::id())
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sled,
            path: PathBuf::from("data/warmer.sled"),
            key_file: None,
            url: None,
            prefix: "sw".into(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// URL schemes the MongoDB backend accepts.
const MONGODB_SCHEMES: [&str; 2] = ["mongodb", "mongodb+srv"];

/// URL schemes the Redis backend accepts.
const REDIS_SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

impl StoreConfig {
    /// The URL the backend connects to: `WARMER_STORE_URL` when set, else `store.url`; an
    /// [explicit](SecretUrl::explicit) `store.url` always.
    pub fn effective_url(&self) -> Option<SecretUrl> {
        let env = std::env::var(STORE_URL_ENV).ok();
        self.url_given(env.as_deref())
    }

    /// `env` (the value of `WARMER_STORE_URL`) when set and non-empty, else `store.url`; an
    /// explicit `store.url` whatever `env` says.
    fn url_given(&self, env: Option<&str>) -> Option<SecretUrl> {
        if self.url.as_ref().is_some_and(|u| u.explicit) {
            return self.url.clone();
        }
        match env.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => Some(SecretUrl::new(e)),
            None => self.url.clone(),
        }
    }

    /// The checks of `[store]` serde cannot make, as `(field, message)`; messages never quote
    /// the URL (it may hold a password).
    pub(super) fn validate_url(&self) -> Result<(), (String, String)> {
        self.validate_with_env(std::env::var(STORE_URL_ENV).ok().as_deref())
    }

    fn validate_with_env(&self, env: Option<&str>) -> Result<(), (String, String)> {
        let ok_prefix = !self.prefix.is_empty()
            && self.prefix.len() <= 64
            && (self.prefix.chars()).all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !ok_prefix {
            return Err((
                "store.prefix".into(),
                format!(
                    "{:?} must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
                    self.prefix
                ),
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Err((
                "store.timeout".into(),
                "must be above 0 and at most 60s".into(),
            ));
        }
        let example = match self.backend {
            StoreBackend::Redis => "redis://127.0.0.1:6379/0",
            StoreBackend::Mongodb => "mongodb://127.0.0.1:27017/warmer",
            StoreBackend::Sled | StoreBackend::Memory => return Ok(()),
        };
        let Some(url) = self.url_given(env) else {
            return Err((
                "store.url".into(),
                format!(
                    "is required with store.backend = \"{}\" (e.g. \"{example}\"), or set \
                     {STORE_URL_ENV}",
                    self.backend.as_str()
                ),
            ));
        };
        let field = if env.is_some_and(|e| !e.trim().is_empty()) {
            STORE_URL_ENV
        } else {
            "store.url"
        };
        let scheme = url.expose().split_once("://").map(|(s, _)| s);
        if self.backend == StoreBackend::Mongodb {
            if !scheme.is_some_and(|s| MONGODB_SCHEMES.contains(&s)) {
                return Err((
                    field.into(),
                    "must be a MongoDB URL: mongodb://[user:password@]host[:port][,host…]/db or \
                     mongodb+srv://…"
                        .into(),
                ));
            }
            return Ok(());
        }
        if !scheme.is_some_and(|s| REDIS_SCHEMES.contains(&s)) {
            return Err((
                field.into(),
                "must be a Redis URL: redis://[:password@]host[:port][/db], rediss://… (TLS is \
                 not built in yet) or redis+unix:///path/to/redis.sock"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: Option<&str>) -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Redis,
            url: url.map(SecretUrl::new),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn redis_needs_a_url_from_the_config_or_the_environment() {
        let (field, message) = redis(None).validate_with_env(None).unwrap_err();
        assert_eq!(field, "store.url");
        assert!(message.contains("required") && message.contains(STORE_URL_ENV));
        assert!(redis(None)
            .validate_with_env(Some("redis://127.0.0.1/0"))
            .is_ok());
        assert!(redis(Some("redis://:pw@127.0.0.1:6379/0"))
            .validate_with_env(None)
            .is_ok());
        assert!(redis(Some("redis+unix:///tmp/r.sock"))
            .validate_with_env(None)
            .is_ok());
        // The environment wins, and is named when it is the one that is wrong.
        let (field, message) = redis(Some("redis://h/0"))
            .validate_with_env(Some("http://:hunter2@h/"))
            .unwrap_err();
        assert_eq!(field, STORE_URL_ENV);
        assert!(!message.contains("hunter2"), "{message}");
        let (field, message) = redis(Some("mysql://u:hunter2@h/"))
            .validate_with_env(None)
            .unwrap_err();
        assert_eq!(field, "store.url");
        assert!(!message.contains("hunter2"), "{message}");
        // A URL named on the command line is kept whatever the environment says.
        let explicit = StoreConfig {
            url: Some(SecretUrl::explicit("redis://127.0.0.1:7000/0")),
            ..redis(None)
        };
        let given = explicit.url_given(Some("redis://10.0.0.9:6379/0")).unwrap();
        assert_eq!(given.expose(), "redis://127.0.0.1:7000/0");
        // Other backends need no URL.
        assert!(StoreConfig::default().validate_with_env(None).is_ok());
    }

    #[test]
    fn the_prefix_is_a_plain_name_and_the_url_never_shows_in_debug() {
        let mut c = redis(Some("redis://:hunter2@127.0.0.1:6379/0"));
        assert_eq!(c.prefix, "sw");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redis://"),
            "{shown}"
        );
        c.prefix = "a b".into();
        assert_eq!(c.validate_with_env(None).unwrap_err().0, "store.prefix");
        c.prefix = String::new();
        assert_eq!(c.validate_with_env(None).unwrap_err().0, "store.prefix");
        c.prefix = "prod:eu-1".into();
        assert!(c.validate_with_env(None).is_ok());
    }

    #[test]
    fn the_store_timeout_defaults_to_2s_and_is_bounded() {
        let mut c = redis(Some("redis://127.0.0.1/0"));
        assert_eq!(c.timeout, Duration::from_secs(2));
        let parsed: StoreConfig = toml::from_str("timeout = \"500ms\"").unwrap();
        assert_eq!(parsed.timeout, Duration::from_millis(500));
        c.timeout = Duration::ZERO;
        assert_eq!(c.validate_with_env(None).unwrap_err().0, "store.timeout");
        c.timeout = Duration::from_secs(61);
        assert_eq!(c.validate_with_env(None).unwrap_err().0, "store.timeout");
    }

    #[test]
    fn cluster_defaults_and_node_name() {
        let c = ClusterConfig::default();
        assert_eq!(c.lease_ttl, Duration::from_secs(30));
        assert!(c.node_name().ends_with(&format!(":{}", std::process::id())));
        let named = ClusterConfig {
            node: Some("warmer-1".into()),
            ..c
        };
        assert_eq!(named.node_name(), "warmer-1");
    }
}
