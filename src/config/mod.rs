//! TOML configuration: serde defaults, then validation into a `Config` whose every field is
//! usable. Errors name the field (`targets[0].warmup: invalid duration "5x"`).

//!
//! One file per section: [`server`](ServerConfig) and `[flaresolverr]` in `server.rs`,
//! `[browser]` in `browser.rs`, `[store]` in `store.rs`, `[schedule]` in `schedule.rs`,
//! `[[targets]]` in `target.rs`, its login flow in `login.rs`, durations in `duration.rs`, and
//! the checks serde cannot make in `validate.rs`. This file loads: lookup order, size limit,
//! parse errors that name the field or the line.

mod browser;
mod duration;
mod login;
mod schedule;
mod server;
mod store;
mod target;
mod validate;

pub use browser::{BrowserConfig, Endpoint, Flavor};
pub use login::{CheckConfig, LoginConfig, LoginStep, ScrollTo, StepAction};
pub use schedule::ScheduleConfig;
pub use server::{FlareSolverrConfig, ServerConfig};
pub use store::{ClusterConfig, SecretUrl, StoreBackend, StoreConfig, STORE_URL_ENV};
pub use target::{NoEventUrl, TargetConfig, ValidateConfig};
pub use validate::{check_proxy, ProxyError};

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest config file read: a config is a few KiB; a bigger one is a mistake (a 50 MB file
/// used to be parsed, at 1.3 GB of memory).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration that could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the cause is the I/O error, shown by `{:#}`).
    #[error("reading config {path}")]
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
        /// The field's path (`targets[0].warmup`, followed by `(line L, column C)` when the
        /// parser knows where it is), or the location of a TOML syntax error.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the HTTP API.
    pub server: ServerConfig,
    /// `[browser]`: the Chromium supervisor.
    pub browser: BrowserConfig,
    /// `[store]`: where sessions, events and accounts are kept.
    pub store: StoreConfig,
    /// `[schedule]`: daemon-wide worker intervals.
    pub schedule: ScheduleConfig,
    /// `[[targets]]`: the sites to keep sessions for. Default: none.
    pub targets: Vec<TargetConfig>,
    /// `[flaresolverr]`: the FlareSolverr-compatible listener.
    pub flaresolverr: FlareSolverrConfig,
    /// `[cluster]`: how daemons sharing a store divide the work.
    pub cluster: ClusterConfig,
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
                if let Some(a) = &t.sessions_dir {
                    if a.is_relative() {
                        t.sessions_dir = Some(dir.join(a));
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
                // A field's error also says where it is, so a long file is quick to fix.
                (_, Some(span)) => {
                    let (line, column) = line_column(text, span.start);
                    format!("{field} (line {line}, column {column})")
                }
                (_, None) => field,
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
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn store_backend_is_sled_memory_or_a_clear_error() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.store.backend, StoreBackend::Sled);
        assert_eq!(c.store.path, PathBuf::from("data/warmer.sled"));
        let c = Config::parse("[store]\nbackend = 'memory'", "t").unwrap();
        assert_eq!(c.store.backend, StoreBackend::Memory);
        assert_eq!(c.store.backend.as_str(), "memory");
        let c = Config::parse("[store]\nbackend = \"sled\"\npath = 'x'", "t").unwrap();
        assert_eq!(c.store.backend, StoreBackend::Sled);
        let e = err("[store]\nbackend = 'postgres'\n");
        assert!(
            e.starts_with("config t.toml: store.backend (line 2, column 11): ")
                && e.contains("redis")
                && e.contains("sled")
                && e.contains("memory")
                && e.contains("mongodb"),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e:?}");
        let e = err("[store]\nbackend = 'Sled'\n");
        assert!(e.contains("store.backend"), "{e}");
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
        assert_eq!(e, ProxyError::Scheme("ftp".into()));
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn event_page_escapes_the_id() {
        let t = TargetConfig::ad_hoc("a", "http://x/e/{event}");
        assert_eq!(t.event_page("1 2/3").unwrap(), "http://x/e/1+2%2F3");
        let mut t = t;
        t.event_url = None;
        assert_eq!(
            t.event_page("1").unwrap_err().to_string(),
            "target \"a\" has no event_url"
        );
    }
}
