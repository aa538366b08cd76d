//! A network store's URL as messages show it: where the store is, never its credentials, and
//! the passwords the URL carries, scrubbed from every error a store reports. Redis and MongoDB
//! share it.

use std::sync::Arc;

use super::StoreError;

/// A network store's URL without credentials, query or options, for messages: Redis URLs
/// (which `url` parses) without userinfo, query or fragment, MongoDB ones (which may list
/// several hosts) as `mongodb://host:port[,host:port]/db`. Never holds a password; a URL that
/// does not parse is not shown at all.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme @ ("mongodb" | "mongodb+srv"), rest)) => {
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            let (hosts, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
            format!("{scheme}://{hosts}{path}")
        }
        _ => match url::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            }
            Err(_) => "<a store URL that does not parse>".into(),
        },
    }
}

/// The passwords a store URL carries, its userinfo's and any `pass`/`password` query
/// parameter's, each raw and (where it differs) percent-decoded, a query's also
/// form-decoded (`+` as a space, as URL parsers read a query), to scrub from error text.
fn passwords(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    let from_userinfo = userinfo.and_then(|u| u.split_once(':')).map(|(_, p)| p);
    let from_query = query
        .split('&')
        .filter_map(|pair| match pair.split_once('=') {
            Some(("pass" | "password", v)) => Some(v),
            _ => None,
        });
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let decoded = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()
            .map(std::borrow::Cow::into_owned)
    };
    if let Some(raw) = from_userinfo {
        add(raw.to_string());
        decoded(raw).map(&mut add);
    }
    for raw in from_query {
        add(raw.to_string());
        decoded(raw).map(&mut add);
        decoded(&raw.replace('+', " ")).map(&mut add);
    }
    out
}

/// Where a network store is, as its messages show it, and the passwords its URL carries.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Shown {
    /// The URL as [`redact`] shows it, the prefix, and whether a password was given.
    location: Arc<str>,
    /// Passwords in the URL (raw and percent-decoded), scrubbed from error text.
    secrets: Arc<[String]>,
}

impl Shown {
    /// The store at `url` under `prefix`: `<url without credentials> (prefix P, password
    /// set)`. Whether a password was given is worth knowing when a server refuses us; the
    /// password itself never shows.
    pub(crate) fn new(url: &str, prefix: &str) -> Self {
        let secrets: Arc<[String]> = passwords(url).into();
        let auth = if secrets.is_empty() {
            "no password"
        } else {
            "password set"
        };
        Shown {
            location: format!("{} (prefix {prefix}, {auth})", redact(url)).into(),
            secrets,
        }
    }

    /// Where the store is, for messages and logs.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// The store as errors name it: `store <location>`.
    pub(crate) fn named(&self) -> String {
        format!("store {}", self.location)
    }

    /// A [`StoreError::Unavailable`] naming `call`, with every password scrubbed from
    /// `reason`.
    pub(crate) fn unavailable(&self, call: &'static str, mut reason: String) -> StoreError {
        for s in self.secrets.iter() {
            reason = reason.replace(s.as_str(), "***");
        }
        StoreError::Unavailable {
            location: self.location.to_string(),
            call,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials_query_or_options() {
        for (url, shown) in [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://127.0.0.1:6379/0",
            ),
            (
                "redis://alice:hunter2@cache.internal/2",
                "redis://cache.internal/2",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock",
            ),
            (
                "mongodb://alice:hunter2@db.internal:27017/warmer?authSource=admin",
                "mongodb://db.internal:27017/warmer",
            ),
            (
                "mongodb+srv://u:p%40ss@cluster0.example.net/?retryWrites=true",
                "mongodb+srv://cluster0.example.net/",
            ),
            (
                "mongodb://h1:1,h2:2/db?replicaSet=rs0",
                "mongodb://h1:1,h2:2/db",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
        let bad = redact("hunter2 is not a url");
        assert!(!bad.contains("hunter2"), "{bad}");
    }

    #[test]
    fn passwords_are_found_raw_and_decoded() {
        assert_eq!(passwords("redis://:p%40ss@h/0"), ["p%40ss", "p@ss"]);
        assert_eq!(
            passwords("mongodb://u:p%40ss@h1:1,h2:2/db"),
            ["p%40ss", "p@ss"]
        );
        assert_eq!(passwords("redis+unix:///s.sock?db=1&pass=x1"), ["x1"]);
        // A query is form-decoded by URL parsers: `+` is a space there (not in userinfo).
        assert_eq!(
            passwords("redis+unix:///s.sock?password=a+b%2Bc"),
            ["a+b%2Bc", "a+b+c", "a b+c"]
        );
        assert_eq!(passwords("redis://:a+b@h/0"), ["a+b"]);
        for none in [
            "redis://h/0",
            "mongodb://h/db",
            "mongodb://user@h/db",
            "not a url",
        ] {
            assert!(passwords(none).is_empty(), "{none}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let shown = Shown::new("mongodb://u:p%40ss@h/db", "warmer");
        assert_eq!(
            shown.location(),
            "mongodb://h/db (prefix warmer, password set)"
        );
        let e = shown.unavailable("open", "auth failed for p@ss (p%40ss)".into());
        let text = e.to_string();
        assert!(text.contains("auth failed for *** (***)"), "{text}");
        assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");
        let plain = Shown::new("redis://127.0.0.1:6379/0", "w");
        assert_eq!(
            plain.location(),
            "redis://127.0.0.1:6379/0 (prefix w, no password)"
        );
    }
}
