//! Validation after parsing: what serde cannot check (names, URLs, proxies, login flows).
//! Every error names the field (`targets[0].event_url`).

use super::{Config, ConfigError, ServerConfig, StepAction};
use std::collections::HashSet;

impl ServerConfig {
    /// Checks every `allowed_hosts` entry is a bare `Host` value and every `allowed_origins`
    /// entry a bare origin.
    ///
    /// # Errors
    /// `(field, message)` for the first bad entry, e.g. `server.allowed_hosts[1]`; the caller
    /// wraps it in [`ConfigError::Invalid`] with the file's path.
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

impl Config {
    /// Checks the whole parsed config; `origin` (the file's path) only names it in errors.
    /// Stops at the first problem: server, browser and store sections first, then each target
    /// in order (name unique, `event_url` with its `{event}`, pool sizes, proxies, login).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field, e.g. `targets[0].event_url`.
    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            field,
            message,
        };
        self.server.validate().map_err(|(f, m)| bad(f, m))?;
        self.browser.validate().map_err(|(f, m)| bad(f, m))?;
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
        self.store.validate_url().map_err(|(f, m)| bad(f, m))?;
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
            if !t.warm_steps.is_empty() && t.event_url.is_none() {
                return Err(bad(
                    f("warm_steps"),
                    "a warm journey needs the target's event_url (its {event_url})".into(),
                ));
            }
            if t.pool_size == 0 {
                return Err(bad(f("pool_size"), "must be at least 1".into()));
            }
            if t.warm_jitter > std::time::Duration::from_secs(60) {
                return Err(bad(
                    f("warm_jitter"),
                    "must be at most 1 min: it is the pause before each warm".into(),
                ));
            }
            if t.max_concurrent_warms == 0 {
                return Err(bad(f("max_concurrent_warms"), "must be at least 1".into()));
            }
            for (j, p) in t.proxies.iter().enumerate() {
                check_proxy(p)
                    .map_err(|m| bad(format!("targets[{i}].proxies[{j}]"), m.to_string()))?;
            }
            if t.sessions_dir.is_some() && t.login.is_none() {
                return Err(bad(
                    f("login.check"),
                    "a sessions_dir needs [targets.login] check = { url, expect_status }: dropped sessions are kept alive by that check".into(),
                ));
            }
            if let Some(l) = &t.login {
                // A sessions_dir-only target never signs in: it needs no login page or steps.
                // Sign-in needs the login page and at least one step; it is implied by accounts
                // (they must be signed in) or by steps/url being configured at all.
                let signs_in = t.accounts_dir.is_some() || l.can_sign_in() || !l.steps.is_empty();
                if signs_in && !l.can_sign_in() {
                    return Err(bad(
                        f("login.url"),
                        "the login page is needed to sign accounts in (leave out accounts_dir and login.steps for a sessions_dir-only target)".into(),
                    ));
                }
                if signs_in {
                    check_url(&l.url)
                        .map_err(|m| bad(f("login.url"), format!("{:?}: {m}", l.url)))?;
                }
                if signs_in && l.steps.is_empty() {
                    return Err(bad(f("login.steps"), "at least one step is needed".into()));
                }
                if t.sessions_dir.is_some() && l.check.url.is_none() {
                    return Err(bad(
                        f("login.check.url"),
                        "a sessions_dir needs a check url: a dropped session is kept alive by loading it".into(),
                    ));
                }
                for (j, step) in l.steps.iter().enumerate() {
                    if let StepAction::Goto { url } = &step.action {
                        let field = || format!("targets[{i}].login.steps[{j}].goto");
                        if url.contains("{event_url}") {
                            return Err(bad(
                                field(),
                                "{event_url} is for warm_steps: a login has no event".into(),
                            ));
                        }
                        check_url(url).map_err(|m| bad(field(), m))?;
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
                if t.accounts_dir.is_none() && t.sessions_dir.is_none() {
                    return Err(bad(
                        f("accounts_dir"),
                        "a login target needs an accounts_dir (or a sessions_dir of dropped sessions)".into(),
                    ));
                }
                if l.can_sign_in() && t.accounts_dir.is_none() {
                    return Err(bad(
                        f("accounts_dir"),
                        "login.url and login.steps sign accounts in: they need an accounts_dir"
                            .into(),
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
}

/// An absolute `http(s)` URL; any path or query is allowed. Callers with a placeholder
/// (`{event}`) substitute it first, since braces would not survive parsing.
///
/// # Errors
/// The URL parser's reason, or the refused scheme.
fn check_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| e.to_string())?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        s => Err(format!("scheme {s:?} is not http or https")),
    }
}

/// Why a proxy URL was refused by [`check_proxy`]. The messages never contain the URL, so a
/// password in it cannot leak through an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The text is not a URL at all (the parser's reason, which never quotes the input).
    #[error("invalid proxy URL: {0}")]
    Invalid(url::ParseError),
    /// A scheme Chromium cannot use as a proxy (`ftp`, `ws`, ...).
    #[error("proxy scheme {0:?} is not http, https, socks4 or socks5")]
    Scheme(String),
    /// A URL without a host (`http:///`).
    #[error("proxy URL has no host")]
    NoHost,
    /// A SOCKS proxy with a user name: Chromium has no way to authenticate to it.
    #[error("Chromium cannot authenticate to a SOCKS proxy: use an http(s) proxy for credentials")]
    SocksCredentials,
}

/// Checks a proxy URL (`http://`, `https://`, `socks4://`, `socks5://`); never echoes
/// credentials.
///
/// # Errors
/// A [`ProxyError`] saying what is wrong, without the URL's password.
pub fn check_proxy(p: &str) -> Result<(), ProxyError> {
    let parsed = url::Url::parse(p).map_err(ProxyError::Invalid)?;
    match parsed.scheme() {
        "http" | "https" | "socks4" | "socks5" => {}
        s => return Err(ProxyError::Scheme(s.to_string())),
    }
    if parsed.host_str().is_none() {
        return Err(ProxyError::NoHost);
    }
    if parsed.scheme().starts_with("socks") && !parsed.username().is_empty() {
        return Err(ProxyError::SocksCredentials);
    }
    Ok(())
}
