//! Exports of a session for other tools: a ready-to-send header set, a Netscape `cookies.txt`
//! (curl, yt-dlp, Python's `http.cookiejar`; wget through its own variant), Playwright's
//! `storageState`, a Crawlee `SessionPool` state record, and the raw JSON record.
//!
//! # cookies.txt readers disagree
//!
//! - **HttpOnly.** curl, yt-dlp and Python read curl's `#HttpOnly_` domain prefix; wget 1.21
//!   takes such a line for a comment and drops the cookie. [`ExportFormat::CookiesTxtWget`] is
//!   the same file without the prefix (the flag is lost, which no client needs to send it).
//! - **Session cookies.** curl and wget read expiry `0` as "session cookie" and skip a line
//!   whose expiry is empty; Python's `MozillaCookieJar` reads an empty expiry as a session
//!   cookie (kept by `load(ignore_discard=True)`) and `0` as expired in 1970, never sent even
//!   with `ignore_expires=True` (bpo-17164). So a session cookie is written twice, first with
//!   `0`, then with an empty expiry: each reader keeps the line it understands and skips the
//!   other (with `ignore_expires=True` Python loads both; the later one, a session cookie,
//!   replaces the first in its jar).
//!
//! # Crawlee's `SessionPool` state
//!
//! [`ExportFormat::Crawlee`] is the record Crawlee keeps under `SDK_SESSION_POOL_STATE` in a
//! key-value store: `{usableSessionsCount, retiredSessionsCount, sessions: [...]}`, one session
//! ([`crawlee`]) or the pool's ready ones ([`crawlee_pool`]). Crawlee 3 validates each session
//! with an exact shape, so only its keys are written (`id, cookieJar, userData, maxErrorScore,
//! errorScoreDecrement, createdAt, expiresAt, usageCount, maxUsageCount, errorScore`); Crawlee 4
//! accepts the same set. What Crawlee has no key for (user agent, identity headers, fingerprint,
//! proxy, target, event) is under `userData.warmer`. Cookies are tough-cookie JSON: the domain
//! without a leading dot plus `hostOnly` (tough-cookie matches a dotted domain against no
//! host), `expires` as an ISO time and omitted for session cookies, `sameSite` lower-case.
//!
//! # Files
//!
//! `headers.rs` (the header set and its `Cookie` header), `cookies_txt.rs`, `storage_state.rs`,
//! `crawlee.rs`; this file holds the format names ([`ExportFormat`]) and [`render`].

mod cookies_txt;
mod crawlee;
mod headers;
mod storage_state;

pub use cookies_txt::{cookies_txt, cookies_txt_wget};
pub use crawlee::{
    crawlee_exportable, crawlee_pool, crawlee_session, render_crawlee_pool, CRAWLEE_STATE_KEY,
};
pub use headers::{cookie_header, headers, headers_json, COOKIE_HEADER_CAP};
pub use storage_state::storage_state;

use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

use crate::session::{Session, UnixMillis};

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// An export format name that is not one of [`ExportFormat::ALL`].
    #[error(
        "unknown export format {given:?}; expected one of: {}",
        ExportFormat::names()
    )]
    UnknownFormat {
        /// What was asked for.
        given: String,
    },
}

/// The ways a session can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Netscape `cookies.txt` as curl `-b`, yt-dlp `--cookies` and Python's
    /// `MozillaCookieJar.load(ignore_discard=True)` read it; HttpOnly cookies carry curl's
    /// `#HttpOnly_` prefix (see the module docs).
    CookiesTxt,
    /// The same `cookies.txt` without the `#HttpOnly_` prefix, for wget `--load-cookies`
    /// (which skips prefixed lines as comments).
    CookiesTxtWget,
    /// Playwright's `storageState` JSON (cookies and localStorage).
    StorageState,
    /// The ready-to-send headers (identity headers and `Cookie`) as a JSON object.
    Headers,
    /// The whole session record as JSON (cookie values and proxy included).
    Json,
    /// A Crawlee `SessionPool` state record (`SDK_SESSION_POOL_STATE`) that Crawlee 3 and 4
    /// load; see the module docs.
    Crawlee,
}

impl ExportFormat {
    /// Every format, in the order they are listed to users.
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::CookiesTxt,
        ExportFormat::CookiesTxtWget,
        ExportFormat::StorageState,
        ExportFormat::Headers,
        ExportFormat::Json,
        ExportFormat::Crawlee,
    ];

    /// The name used on the command line and in `?format=`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::CookiesTxt => "cookies-txt",
            ExportFormat::CookiesTxtWget => "cookies-txt-wget",
            ExportFormat::StorageState => "storage-state",
            ExportFormat::Headers => "headers",
            ExportFormat::Json => "json",
            ExportFormat::Crawlee => "crawlee",
        }
    }

    /// The media type of [`render`]'s output in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::CookiesTxt | ExportFormat::CookiesTxtWget => "text/plain; charset=utf-8",
            _ => "application/json",
        }
    }
}

impl ExportFormat {
    /// Every format's name, comma-separated, for messages.
    pub fn names() -> String {
        let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = ExportError;

    /// Parses one of the names of [`ExportFormat::ALL`] (`cookies-txt`, `json`, ...).
    ///
    /// # Errors
    /// [`ExportError::UnknownFormat`], listing the valid names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| ExportError::UnknownFormat {
                given: s.to_string(),
            })
    }
}

/// The keys of one session of the `crawlee` export: exactly the shape Crawlee 3's `Session`
/// constructor accepts (it throws on any other key).
pub const CRAWLEE_SESSION_KEYS: [&str; 11] = [
    "id",
    "cookieJar",
    "maxAgeSecs",
    "userData",
    "maxErrorScore",
    "errorScoreDecrement",
    "createdAt",
    "expiresAt",
    "usageCount",
    "errorScore",
    "maxUsageCount",
];

/// The session in `format`; JSON formats are pretty-printed. `now` decides which cookies
/// have expired for the `Cookie` header.
pub fn render(s: &Session, format: ExportFormat, now: UnixMillis) -> String {
    let value = match format {
        ExportFormat::CookiesTxt => return cookies_txt(s),
        ExportFormat::CookiesTxtWget => return cookies_txt_wget(s),
        ExportFormat::StorageState => storage_state(s),
        ExportFormat::Headers => Value::Object(headers_json(s, now)),
        ExportFormat::Crawlee => crawlee_pool([s], now),
        // A Session has no maps with non-string keys, the one thing serde_json refuses; keep
        // the output JSON even if that ever changes.
        ExportFormat::Json => serde_json::to_value(s)
            .unwrap_or_else(|e| json!({ "error": format!("session not serializable: {e}") })),
    };
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{BrowserVersion, FingerprintSource};
    use crate::session::{Cookie, Health, OriginStorage, SessionState};
    use rand::SeedableRng;

    const NOW: UnixMillis = 1_700_000_000_000;

    fn cookie(name: &str, value: &str, domain: &str, path: &str) -> Cookie {
        Cookie {
            name: name.into(),
            value: value.into(),
            domain: domain.into(),
            path: path.into(),
            expires: None,
            http_only: false,
            secure: false,
            same_site: None,
        }
    }

    fn session(cookies: Vec<Cookie>) -> Session {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let version = BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap();
        Session {
            id: "0123456789abcdef0123456789abcdef".into(),
            target: "tickets".into(),
            event: Some("123".into()),
            account: None,
            url: "https://www.tickets.example/event/123".into(),
            state: SessionState::Ready,
            fingerprint: FingerprintSource::embedded().sample(&mut rng, &version),
            proxy: None,
            cookies,
            origins: vec![OriginStorage {
                origin: "https://www.tickets.example".into(),
                local_storage: vec![("token".into(), "abc".into()), ("n".into(), "1".into())],
            }],
            observed: None,
            created_at: NOW - 1000,
            refreshed_at: NOW - 1000,
            expires_at: NOW + 3_600_000,
            health: Health::default(),
        }
    }

    #[test]
    fn format_names_round_trip_and_unknown_lists_valid_ones() {
        for f in ExportFormat::ALL {
            assert_eq!(f.to_string().parse::<ExportFormat>().unwrap(), f);
        }
        assert_eq!(
            "storage-state".parse::<ExportFormat>(),
            Ok(ExportFormat::StorageState)
        );
        let err = "har".parse::<ExportFormat>().unwrap_err().to_string();
        assert!(err.contains("\"har\""), "{err}");
        for f in ExportFormat::ALL {
            assert!(err.contains(f.as_str()), "{err}");
        }
    }

    #[test]
    fn cookie_header_only_sends_cookies_matching_the_url() {
        let mut secure = cookie("s", "3", ".tickets.example", "/");
        secure.secure = true;
        let mut expired = cookie("old", "x", ".tickets.example", "/");
        expired.expires = Some((NOW / 1000 - 10) as f64);
        let s = session(vec![
            cookie("a", "1", ".tickets.example", "/"),
            cookie("b", "2", "www.tickets.example", "/event"),
            cookie("c", "9", "api.tickets.example", "/"),
            cookie("d", "9", ".other.example", "/"),
            cookie("e", "9", ".tickets.example", "/account"),
            secure,
            expired,
        ]);
        let https = url::Url::parse("https://www.tickets.example/event/123").unwrap();
        // Longer paths first, as the browser sends them.
        assert_eq!(cookie_header(&s, &https, NOW), "b=2; a=1; s=3");
        let http = url::Url::parse("http://www.tickets.example/").unwrap();
        assert_eq!(cookie_header(&s, &http, NOW), "a=1");
        let api = url::Url::parse("https://api.tickets.example/x").unwrap();
        assert_eq!(cookie_header(&s, &api, NOW), "a=1; c=9; s=3");
        let none = url::Url::parse("https://elsewhere.example/").unwrap();
        assert_eq!(cookie_header(&s, &none, NOW), "");
    }

    #[test]
    fn cookie_header_is_capped_by_dropping_whole_cookies() {
        let big = "v".repeat(COOKIE_HEADER_CAP - 10);
        let s = session(vec![
            cookie("first", "1", ".tickets.example", "/"),
            cookie("big", &big, ".tickets.example", "/"),
            cookie("last", "2", ".tickets.example", "/"),
        ]);
        let url = url::Url::parse(&s.url).unwrap();
        // "first=1" (7) + "; big=" + big would pass the cap; big is dropped, order kept.
        assert_eq!(cookie_header(&s, &url, NOW), "first=1; last=2");

        // Exactly at the cap still fits.
        let exact = "v".repeat(COOKIE_HEADER_CAP - "first=1; big=".len());
        let s = session(vec![
            cookie("first", "1", ".tickets.example", "/"),
            cookie("big", &exact, ".tickets.example", "/"),
            cookie("last", "2", ".tickets.example", "/"),
        ]);
        let h = cookie_header(&s, &url, NOW);
        assert_eq!(h.len(), COOKIE_HEADER_CAP);
        assert!(h.starts_with("first=1; big=vvv"));
        assert!(!h.contains("last="));
    }

    #[test]
    fn headers_are_the_fingerprint_then_cookie() {
        let s = session(vec![cookie("a", "1", ".tickets.example", "/")]);
        let h = headers(&s, NOW);
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "sec-ch-ua",
                "sec-ch-ua-mobile",
                "sec-ch-ua-platform",
                "User-Agent",
                "Accept-Language",
                "Cookie"
            ]
        );
        assert_eq!(h[3].1, s.fingerprint.user_agent);
        assert_eq!(h[5].1, "a=1");
        let map = headers_json(&s, NOW);
        assert_eq!(map["Cookie"], "a=1");
        assert_eq!(map["User-Agent"], s.fingerprint.user_agent.as_str());

        let bare = session(vec![cookie("a", "1", ".other.example", "/")]);
        assert!(headers(&bare, NOW).iter().all(|(k, _)| k != "Cookie"));
    }

    /// The cookie lines of a cookies.txt (comments and blank lines left out).
    fn cookie_lines(txt: &str) -> Vec<&str> {
        txt.lines()
            .filter(|l| !l.is_empty() && (!l.starts_with('#') || l.starts_with("#HttpOnly_")))
            .collect()
    }

    fn cookies_txt_session() -> Session {
        let mut http_only = cookie("sid", "secret", "www.tickets.example", "/app");
        http_only.http_only = true;
        http_only.secure = true;
        http_only.expires = Some(1_800_000_000.75);
        let mut cdp_session = cookie("cdp", "x", ".tickets.example", "/");
        cdp_session.expires = Some(-1.0);
        let mut login = cookie("login", "l", "www.tickets.example", "/");
        login.http_only = true;
        let mut ancient = cookie("old", "o", "www.tickets.example", "/");
        ancient.expires = Some(0.5);
        session(vec![
            cookie("a", "1", ".tickets.example", "/"),
            http_only,
            cdp_session,
            login,
            ancient,
        ])
    }

    #[test]
    fn cookies_txt_is_netscape_format_with_httponly_prefix() {
        let txt = cookies_txt(&cookies_txt_session());
        assert!(txt.starts_with("# Netscape HTTP Cookie File\n"));
        // Session cookies twice: expiry 0 (curl, wget), then empty (Python's http.cookiejar).
        assert_eq!(
            cookie_lines(&txt),
            [
                ".tickets.example\tTRUE\t/\tFALSE\t0\ta\t1",
                ".tickets.example\tTRUE\t/\tFALSE\t\ta\t1",
                "#HttpOnly_www.tickets.example\tFALSE\t/app\tTRUE\t1800000000\tsid\tsecret",
                ".tickets.example\tTRUE\t/\tFALSE\t0\tcdp\tx",
                ".tickets.example\tTRUE\t/\tFALSE\t\tcdp\tx",
                "#HttpOnly_www.tickets.example\tFALSE\t/\tFALSE\t0\tlogin\tl",
                "#HttpOnly_www.tickets.example\tFALSE\t/\tFALSE\t\tlogin\tl",
                // Expired before 1970-01-01T00:00:01 is still expired, not a session cookie.
                "www.tickets.example\tFALSE\t/\tFALSE\t1\told\to",
            ]
        );
        assert!(txt.ends_with('\n'));
    }

    #[test]
    fn cookies_txt_wget_is_the_same_file_without_the_httponly_prefix() {
        let s = cookies_txt_session();
        let wget = cookies_txt_wget(&s);
        assert!(!wget.contains("#HttpOnly_"), "{wget}");
        assert_eq!(wget, cookies_txt(&s).replace("#HttpOnly_", ""));
        assert_eq!(render(&s, ExportFormat::CookiesTxtWget, NOW), wget);
        assert_eq!(
            "cookies-txt-wget".parse::<ExportFormat>(),
            Ok(ExportFormat::CookiesTxtWget)
        );
        assert!(ExportFormat::CookiesTxtWget
            .content_type()
            .starts_with("text/plain"));
    }

    #[test]
    fn storage_state_matches_playwright_shape() {
        let mut strict = cookie("sid", "secret", "www.tickets.example", "/");
        strict.http_only = true;
        strict.secure = true;
        strict.expires = Some(1_800_000_000.5);
        strict.same_site = Some("Strict".into());
        let mut none = cookie("n", "v", ".tickets.example", "/");
        none.same_site = Some("none".into());
        let s = session(vec![
            cookie("a", "1", ".tickets.example", "/"),
            strict,
            none,
        ]);
        let v = storage_state(&s);
        assert_eq!(
            v["cookies"][0],
            json!({"name": "a", "value": "1", "domain": ".tickets.example", "path": "/",
                   "expires": -1, "httpOnly": false, "secure": false, "sameSite": "Lax"})
        );
        assert_eq!(
            v["cookies"][1],
            json!({"name": "sid", "value": "secret", "domain": "www.tickets.example",
                   "path": "/", "expires": 1_800_000_000.5, "httpOnly": true, "secure": true,
                   "sameSite": "Strict"})
        );
        assert_eq!(v["cookies"][2]["sameSite"], "None");
        assert_eq!(
            v["origins"],
            json!([{"origin": "https://www.tickets.example",
                    "localStorage": [{"name": "token", "value": "abc"},
                                     {"name": "n", "value": "1"}]}])
        );
    }

    #[test]
    fn render_produces_each_format() {
        let s = session(vec![cookie("a", "1", ".tickets.example", "/")]);
        assert_eq!(render(&s, ExportFormat::CookiesTxt, NOW), cookies_txt(&s));
        let parse = |f| serde_json::from_str::<Value>(&render(&s, f, NOW)).unwrap();
        assert_eq!(parse(ExportFormat::StorageState), storage_state(&s));
        assert_eq!(parse(ExportFormat::Headers)["Cookie"], "a=1");
        let back: Session = serde_json::from_value(parse(ExportFormat::Json)).unwrap();
        assert_eq!(back, s);
        assert!(render(&s, ExportFormat::Json, NOW).contains("\n  \"id\""));
    }

    #[test]
    fn crawlee_record_has_only_crawlee_3_keys_and_tough_cookie_domains() {
        let mut domain = cookie("visitor", "v1", ".tickets.example", "/");
        domain.http_only = true;
        domain.secure = true;
        domain.expires = Some(1_800_000_000.5);
        domain.same_site = Some("None".into());
        let mut host = cookie("challenge", "c1", "www.tickets.example", "");
        host.same_site = Some("Lax".into());
        let mut expired = cookie("old", "x", ".tickets.example", "/");
        expired.expires = Some((NOW / 1000 - 10) as f64);
        let mut s = session(vec![domain, host, expired]);
        s.proxy = Some("http://u:p@proxy.example:8080".into());
        s.health.error_score = 1.0;
        let v: Value = serde_json::from_str(&render(&s, ExportFormat::Crawlee, NOW)).unwrap();
        assert_eq!(v["usableSessionsCount"], 1);
        assert_eq!(v["retiredSessionsCount"], 0);
        let rec = &v["sessions"][0];
        // Crawlee 3's Session constructor checks an exact shape: any other key throws.
        for k in rec.as_object().unwrap().keys() {
            assert!(
                CRAWLEE_SESSION_KEYS.contains(&k.as_str()),
                "key {k} is not in Crawlee 3's shape"
            );
        }
        assert_eq!(rec["id"], s.id);
        assert_eq!(rec["createdAt"], "2023-11-14T22:13:19.000Z");
        assert_eq!(rec["expiresAt"], "2023-11-14T23:13:20.000Z");
        assert_eq!(rec["errorScore"], 1.0);
        assert_eq!(rec["maxErrorScore"], 3);
        assert_eq!(rec["usageCount"], 0);
        let cookies = rec["cookieJar"]["cookies"].as_array().unwrap();
        assert_eq!(
            cookies.len(),
            2,
            "the expired cookie is left out: {cookies:?}"
        );
        assert_eq!(
            cookies[0],
            json!({"key": "visitor", "value": "v1", "expires": "2027-01-15T08:00:00.500Z",
                   "domain": "tickets.example", "path": "/", "secure": true, "httpOnly": true,
                   "hostOnly": false, "creation": "2023-11-14T22:13:19.000Z",
                   "lastAccessed": "2023-11-14T22:13:19.000Z", "sameSite": "none"})
        );
        // A host-only session cookie: no expires (tough-cookie's "Infinity"), a path always.
        assert_eq!(cookies[1]["domain"], "www.tickets.example");
        assert_eq!(cookies[1]["hostOnly"], true);
        assert_eq!(cookies[1]["path"], "/");
        assert_eq!(cookies[1]["sameSite"], "lax");
        assert!(cookies[1].get("expires").is_none());
        let w = &rec["userData"]["warmer"];
        assert_eq!(w["userAgent"], s.fingerprint.user_agent);
        assert_eq!(w["headers"]["User-Agent"], s.fingerprint.user_agent);
        assert!(
            w["headers"].get("Cookie").is_none(),
            "cookies live in the jar"
        );
        assert_eq!(w["proxy"], "http://u:p@proxy.example:8080");
        assert_eq!(w["target"], "tickets");
        assert_eq!(w["event"], "123");
        assert_eq!(w["fingerprint"]["user_agent"], s.fingerprint.user_agent);
        assert_eq!(ExportFormat::Crawlee.content_type(), "application/json");
        assert_eq!("crawlee".parse::<ExportFormat>(), Ok(ExportFormat::Crawlee));
    }

    #[test]
    fn crawlee_pool_lists_every_given_session() {
        let a = session(vec![cookie("a", "1", ".tickets.example", "/")]);
        let mut b = a.clone();
        b.id = "fedcba9876543210fedcba9876543210".into();
        let v: Value = serde_json::from_str(&render_crawlee_pool([&a, &b], NOW)).unwrap();
        assert_eq!(v["usableSessionsCount"], 2);
        assert_eq!(v["sessions"][1]["id"], b.id);
        let none: Value = serde_json::from_str(&render_crawlee_pool([], NOW)).unwrap();
        assert_eq!(
            none,
            json!({"usableSessionsCount": 0, "retiredSessionsCount": 0, "sessions": []})
        );
    }
}
