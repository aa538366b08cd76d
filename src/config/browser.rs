//! `[browser]`: which Chromium (launched by the daemon, or remote ones it attaches to through
//! `endpoint`/`endpoints`), how many contexts, CDP timeouts, the remote heartbeat and the
//! memory guard.

use super::duration::duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Attach to this running browser instead of launching one: `ws://host:port/devtools/
    /// browser/<id>` used as given (a query string such as `?token=…` is kept), or
    /// `http://<host>:<port>` resolved through its `/json/version` by the daemon (a host name is
    /// looked up first: Chrome refuses a DNS `Host` header there). The daemon never closes or
    /// kills a browser it attached to; it disposes its own contexts and disconnects. Default:
    /// none (launch Chromium locally).
    pub endpoint: Option<Endpoint>,
    /// Several remote browsers, as `endpoint`: contexts are spread over the ones that are up,
    /// and the work of one that is lost moves to the others. Not together with `endpoint`.
    /// Default: none.
    pub endpoints: Vec<Endpoint>,
    /// How often a remote browser is asked `Browser.getVersion` to notice its loss (a clean
    /// close of the connection is otherwise silent until the next call). Default: 2 s.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_every: Duration,
    /// How long that heartbeat may take before the browser counts as lost. Loss is noticed
    /// within `heartbeat_every + heartbeat_timeout` at worst. Default: 2.5 s.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_timeout: Duration,
}

/// A remote browser's URL (`browser.endpoint`). It may carry a token in its query string or
/// credentials in its user info, so its `Debug` and `Display` show neither: only
/// `scheme://host:port/path` followed by `?…` when there was a query.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Endpoint(String);

impl Endpoint {
    /// Wraps a URL (not checked here: [`Config::load`](super::Config::load) validates it).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as configured, token included: give it only to the connection itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the URL: `ws://`, or `http://` (resolved through `/json/version`), with a host;
    /// a `ws://` URL must name the browser (`/devtools/browser/…`): a page's socket cannot
    /// create browser contexts.
    ///
    /// # Errors
    /// What is wrong, never quoting the query string or a password.
    pub fn check(&self) -> Result<(), String> {
        let u = url::Url::parse(&self.0).map_err(|e| format!("not a URL: {e}"))?;
        match u.scheme() {
            "ws" | "http" => {}
            "wss" | "https" => {
                return Err(format!(
                    "{}:// needs TLS in the DevTools websocket client, which this build does \
                     not have: use ws:// or http:// (through a TLS tunnel if the network needs \
                     one)",
                    u.scheme()
                ))
            }
            s => return Err(format!("scheme {s:?} is not ws or http")),
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err("has no host".into());
        }
        if u.scheme() == "ws" && !u.path().starts_with("/devtools/browser/") {
            return Err(format!(
                "{self}: a ws:// endpoint must be the browser's socket (/devtools/browser/<id>, \
                 from http://<host>:<port>/json/version); or give http://<host>:<port>"
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                let had_query = u.query().is_some();
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.set_query(None);
                u.set_fragment(None);
                write!(f, "{u}{}", if had_query { "?…" } else { "" })
            }
            Err(_) => f.write_str("<invalid url>"),
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({self})")
    }
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
            endpoint: None,
            endpoints: Vec::new(),
            heartbeat_every: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_millis(2500),
        }
    }
}

impl BrowserConfig {
    /// The remote browsers to attach to (`endpoint`, or `endpoints`); empty when Chromium is
    /// launched locally.
    pub fn remote_endpoints(&self) -> Vec<Endpoint> {
        match &self.endpoint {
            Some(e) => vec![e.clone()],
            None => self.endpoints.clone(),
        }
    }

    /// Whether the browsers are remote (attached to) rather than launched.
    pub fn is_remote(&self) -> bool {
        self.endpoint.is_some() || !self.endpoints.is_empty()
    }

    /// Checks the remote settings: `endpoint` and `endpoints` not both, each URL usable, none
    /// twice, no launch-only setting beside them, heartbeat durations above zero.
    ///
    /// # Errors
    /// `(field, message)`.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((format!("browser.{f}"), m));
        if self.heartbeat_every.is_zero() {
            return bad("heartbeat_every", "must be above 0".into());
        }
        if self.heartbeat_timeout.is_zero() {
            return bad("heartbeat_timeout", "must be above 0".into());
        }
        if self.endpoint.is_some() && !self.endpoints.is_empty() {
            return bad(
                "endpoints",
                "give either endpoint (one remote browser) or endpoints (several), not both".into(),
            );
        }
        if !self.is_remote() {
            return Ok(());
        }
        if let Some(exe) = &self.executable {
            return bad(
                "executable",
                format!(
                    "{} is launched only without a remote browser; remove it, or remove \
                     endpoint/endpoints to launch locally",
                    exe.display()
                ),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.remote_endpoints().iter().enumerate() {
            let field = match &self.endpoint {
                Some(_) => "endpoint".to_string(),
                None => format!("endpoints[{i}]"),
            };
            e.check().map_err(|m| (format!("browser.{field}"), m))?;
            if !seen.insert(e.expose()) {
                return bad(&field, format!("{e} is listed twice"));
            }
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(endpoints: &[&str]) -> BrowserConfig {
        BrowserConfig {
            endpoints: endpoints.iter().map(|e| Endpoint::new(*e)).collect(),
            ..BrowserConfig::default()
        }
    }

    #[test]
    fn endpoints_are_shown_without_their_token_or_password() {
        let e = Endpoint::new("ws://u:pw@10.0.0.5:9222/devtools/browser/abc?token=s3cret");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("pw"),
                "{shown}"
            );
            assert!(
                shown.contains("10.0.0.5:9222/devtools/browser/abc?…"),
                "{shown}"
            );
        }
        assert_eq!(Endpoint::new("http://h:1").to_string(), "http://h:1/");
    }

    #[test]
    fn remote_settings_are_checked() {
        let ok = [
            "ws://127.0.0.1:9222/devtools/browser/x?token=t",
            "http://chrome:9222",
        ];
        remote(&ok).validate().unwrap();
        assert!(remote(&ok).is_remote());
        assert!(!BrowserConfig::default().is_remote());
        let field = |c: BrowserConfig| c.validate().unwrap_err();
        let (f, m) = field(remote(&["ftp://h:1"]));
        assert_eq!(f, "browser.endpoints[0]");
        assert!(m.contains("not ws or http"), "{m}");
        let (_, m) = field(remote(&["wss://h:1/devtools/browser/x"]));
        assert!(m.contains("TLS"), "{m}");
        let (_, m) = field(remote(&["ws://h:1/devtools/page/x?token=zz"]));
        assert!(m.contains("/devtools/browser/") && !m.contains("zz"), "{m}");
        let (f, m) = field(remote(&["http://h:1", "http://h:1"]));
        assert_eq!(f, "browser.endpoints[1]");
        assert!(m.contains("twice"), "{m}");
        let mut both = remote(&["http://h:1"]);
        both.endpoint = Some(Endpoint::new("http://h:2"));
        assert!(field(both).1.contains("not both"));
        let mut exe = remote(&["http://h:1"]);
        exe.executable = Some("/usr/bin/chromium".into());
        assert_eq!(field(exe).0, "browser.executable");
        let one = BrowserConfig {
            endpoint: Some(Endpoint::new("http://h:1")),
            ..BrowserConfig::default()
        };
        assert_eq!(one.remote_endpoints().len(), 1);
        let hb = BrowserConfig {
            heartbeat_every: Duration::ZERO,
            ..BrowserConfig::default()
        };
        assert_eq!(field(hb).0, "browser.heartbeat_every");
    }
}
