//! [`StoreSpec`]: a store named on the command line (`--from`/`--to` of `warmer store copy`),
//! and how it becomes a `[store]` section to open.
//!
//! | Spec | Store |
//! |---|---|
//! | `config` | the config's `[store]` (with `WARMER_STORE_URL`) |
//! | `sled:PATH` | the sled directory `PATH` |
//! | `redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P]` | Redis (also `rediss://`, `redis+unix:///PATH.sock`, `unix://`); prefix default `store.prefix` |
//! | `mongodb://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=P]` | MongoDB (also `mongodb+srv://`); prefix default `store.prefix` |
//! | `memory` | a new, empty in-process store (kept nowhere: pointless, but harmless) |
//!
//! A spec may carry a password; it is never printed: [`StoreSpec`]'s `Debug` and every message
//! use the URL without credentials or query ([`crate::store::redact`]).

use std::path::{Path, PathBuf};

use crate::config::{SecretUrl, StoreBackend, StoreConfig};

/// URL schemes a Redis spec may use (the same the config accepts).
const REDIS_SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

/// What `--from`/`--to` accept, for error messages and `--help`.
pub(super) const SPEC_FORMS: &str = "sled:PATH, redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P], \
     redis+unix:///PATH.sock[?prefix=P], mongodb://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=P], config (the config's [store]) or memory";

/// A store named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The config's own `[store]` (backend, path or URL, prefix; `WARMER_STORE_URL` applies).
    Configured,
    /// A sled directory.
    Sled(PathBuf),
    /// A Redis server and the key prefix under it.
    Redis {
        /// The URL as the client takes it (the `prefix` parameter removed); may hold a
        /// password, so it is never shown (its `Debug` shows only the scheme).
        url: SecretUrl,
        /// `?prefix=` when given; else the config's `store.prefix`.
        prefix: Option<String>,
    },
    /// A MongoDB database and the collection prefix in it.
    Mongodb {
        /// The URL as the driver takes it (the `prefix` option removed); never shown.
        url: SecretUrl,
        /// `?prefix=` when given; else the config's `store.prefix`.
        prefix: Option<String>,
    },
    /// A new, empty memory store.
    Memory,
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    /// Parses a spec; the error never quotes a URL (it may hold a password).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "config" {
            return Ok(Self::Configured);
        }
        if s == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = s.strip_prefix("sled:") {
            if path.is_empty() {
                return Err("sled: needs a directory, e.g. sled:data/warmer.sled".into());
            }
            return Ok(Self::Sled(PathBuf::from(path)));
        }
        let scheme = s.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_some_and(|sc| REDIS_SCHEMES.contains(&sc)) {
            return parse_redis(s);
        }
        if scheme.is_some_and(|sc| sc == "mongodb" || sc == "mongodb+srv") {
            return parse_mongodb(s);
        }
        Err(format!("expected {SPEC_FORMS}"))
    }
}

/// A Redis spec: the URL without its `prefix` parameter, and the prefix.
fn parse_redis(s: &str) -> Result<StoreSpec, String> {
    let Ok(mut url) = url::Url::parse(s) else {
        return Err(format!(
            "not a valid Redis URL (not shown: it may hold a password); expected {SPEC_FORMS}"
        ));
    };
    let mut prefix = None;
    let rest: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "prefix" {
                prefix = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(rest);
    }
    if let Some(p) = &prefix {
        check_prefix(p)?;
    }
    Ok(StoreSpec::Redis {
        url: SecretUrl::explicit(url.to_string()),
        prefix,
    })
}

/// A MongoDB spec: the URL without its `prefix` option (kept as text: a MongoDB URL may list
/// several hosts, which a generic URL parser refuses), and the prefix.
fn parse_mongodb(s: &str) -> Result<StoreSpec, String> {
    let (base, query) = s.split_once('?').unwrap_or((s, ""));
    let mut prefix = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| match kv.strip_prefix("prefix=") {
            Some(p) => {
                prefix = Some(p.to_string());
                false
            }
            None => true,
        })
        .collect();
    if let Some(p) = &prefix {
        check_prefix(p)?;
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(StoreSpec::Mongodb {
        url: SecretUrl::explicit(url),
        prefix,
    })
}

/// The rule `store.prefix` follows: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
fn check_prefix(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "prefix {p:?} must be 1 to 64 letters, digits, '-', '_', '.' or ':'"
        ))
    }
}

impl StoreSpec {
    /// The `[store]` section this spec names, on top of the config's (`configured`): the
    /// backend and where it is; `key_file` is left out (keys are chosen separately). A URL
    /// given on the command line is [explicit](SecretUrl::explicit): it is the store opened
    /// even while `WARMER_STORE_URL` (which `config` follows) names another.
    pub(super) fn resolve(&self, configured: &StoreConfig) -> StoreConfig {
        let base = StoreConfig {
            key_file: None,
            ..StoreConfig::default()
        };
        match self {
            Self::Configured => StoreConfig {
                key_file: None,
                ..configured.clone()
            },
            Self::Sled(path) => StoreConfig {
                backend: StoreBackend::Sled,
                path: path.clone(),
                ..base
            },
            Self::Memory => StoreConfig {
                backend: StoreBackend::Memory,
                ..base
            },
            Self::Redis { url, prefix } | Self::Mongodb { url, prefix } => {
                let backend = match self {
                    Self::Mongodb { .. } => StoreBackend::Mongodb,
                    _ => StoreBackend::Redis,
                };
                StoreConfig {
                    backend,
                    url: Some(url.clone()),
                    prefix: prefix.clone().unwrap_or_else(|| configured.prefix.clone()),
                    ..base
                }
            }
        }
    }
}

/// How a resolved store is shown: `sled:PATH`, `memory`, or the Redis URL without credentials
/// or query and its prefix. Never holds a password.
pub(super) fn describe(store: &StoreConfig) -> String {
    match store.backend {
        StoreBackend::Sled => format!("sled:{}", store.path.display()),
        StoreBackend::Memory => "memory".into(),
        StoreBackend::Redis | StoreBackend::Mongodb => match store.effective_url() {
            Some(u) => format!(
                "{} (prefix {})",
                crate::store::redact(u.expose()),
                store.prefix
            ),
            None => format!(
                "{} without a URL (prefix {})",
                store.backend.as_str(),
                store.prefix
            ),
        },
    }
}

/// What makes two resolved stores the same one, for refusing a copy onto itself: sled's
/// directory (made absolute, links resolved when it exists), or Redis's host, port, database
/// and prefix (default port 6379, database 0). `None` for memory: every memory store is new.
pub(super) fn identity(store: &StoreConfig) -> Option<String> {
    identity_at(store, store.effective_url().as_ref())
}

/// [`identity`] with the URL the backend connects to given.
fn identity_at(store: &StoreConfig, url: Option<&SecretUrl>) -> Option<String> {
    match store.backend {
        StoreBackend::Memory => None,
        StoreBackend::Sled => Some(format!("sled:{}", absolute(&store.path).display())),
        StoreBackend::Redis => {
            let u = url::Url::parse(url?.expose()).ok()?;
            let place = if u.scheme().contains("unix") {
                format!("unix:{}", absolute(Path::new(u.path())).display())
            } else {
                let db = u.path().trim_matches('/');
                format!(
                    "tcp:{}:{}/{}",
                    u.host_str().unwrap_or("").to_ascii_lowercase(),
                    u.port().unwrap_or(6379),
                    if db.is_empty() { "0" } else { db }
                )
            };
            Some(format!("redis:{place} prefix {}", store.prefix))
        }
        // Hosts and database as written (credentials and options left out).
        StoreBackend::Mongodb => Some(format!(
            "{} prefix {}",
            crate::store::redact(url?.expose()).to_ascii_lowercase(),
            store.prefix
        )),
    }
}

/// `path` made absolute, with links resolved when it exists, else with `.` and `..` taken
/// out by hand.
fn absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let joined = std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> StoreSpec {
        s.parse().unwrap()
    }

    #[test]
    fn specs_parse_and_the_prefix_leaves_the_url() {
        assert_eq!(parse("config"), StoreSpec::Configured);
        assert_eq!(parse("memory"), StoreSpec::Memory);
        assert_eq!(
            parse("sled:data/warmer.sled"),
            StoreSpec::Sled("data/warmer.sled".into())
        );
        let StoreSpec::Redis { url, prefix } = parse("redis://:pw@127.0.0.1:6379/2?prefix=prod")
        else {
            panic!("redis")
        };
        assert_eq!(url.expose(), "redis://:pw@127.0.0.1:6379/2");
        assert_eq!(prefix.as_deref(), Some("prod"));
        let StoreSpec::Redis { url, prefix } = parse("redis+unix:///run/r.sock?db=1&prefix=a:b")
        else {
            panic!("unix")
        };
        assert_eq!(url.expose(), "redis+unix:///run/r.sock?db=1");
        assert_eq!(prefix.as_deref(), Some("a:b"));
    }

    #[test]
    fn bad_specs_are_refused_without_quoting_a_password() {
        for bad in ["", "sled:", "data/warmer.sled", "postgres://x/y", "redis"] {
            let e = bad.parse::<StoreSpec>().unwrap_err();
            assert!(e.contains("expected") || e.contains("sled:"), "{bad}: {e}");
        }
        let e = "redis://:hunter2@h/0?prefix=a b"
            .parse::<StoreSpec>()
            .unwrap_err();
        assert!(e.contains("prefix") && !e.contains("hunter2"), "{e}");
        let e = "redis://:hunter2@[bad/0".parse::<StoreSpec>().unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let spec = parse("redis://:hunter2@h/0");
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[test]
    fn identity_tells_the_same_redis_apart_from_another() {
        let configured = StoreConfig::default();
        let id = |s: &str| {
            let store = parse(s).resolve(&configured);
            identity_at(&store, store.url.as_ref())
        };
        assert_eq!(id("redis://127.0.0.1/"), id("redis://:pw@127.0.0.1:6379/0"));
        assert_ne!(
            id("redis://127.0.0.1:6379/0"),
            id("redis://127.0.0.1:6379/1")
        );
        assert_ne!(
            id("redis://127.0.0.1/0?prefix=a"),
            id("redis://127.0.0.1/0?prefix=b")
        );
        assert_eq!(id("sled:nowhere/../nowhere/./s"), id("sled:nowhere/s"));
        assert_eq!(id("memory"), None);
    }

    #[test]
    fn a_url_spec_is_explicit_and_config_is_not() {
        let configured = StoreConfig {
            url: Some(SecretUrl::new("redis://10.0.0.9:6379/0")),
            ..StoreConfig::default()
        };
        let spec = parse("redis://:hunter2@127.0.0.1:6379/0").resolve(&configured);
        assert_eq!(
            spec.url,
            Some(SecretUrl::explicit("redis://:hunter2@127.0.0.1:6379/0"))
        );
        assert_eq!(spec.prefix, "sw");
        let config = StoreSpec::Configured.resolve(&configured);
        assert_eq!(config.url, Some(SecretUrl::new("redis://10.0.0.9:6379/0")));
    }
}
