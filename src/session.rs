//! The `Session` record: what a warm earned (cookies, storage, fingerprint, proxy) and its health.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fingerprint::Fingerprint;

/// Milliseconds since the Unix epoch; the one time unit stored on disk.
pub type UnixMillis = u64;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Earned and servable.
    Ready,
    /// No longer served; kept until cleanup for the audit trail.
    Retired,
}

/// One cookie as the browser holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cookie {
    /// The cookie's name.
    pub name: String,
    /// Its value (a secret: never logged).
    pub value: String,
    /// Its domain; a leading `.` matches subdomains too.
    pub domain: String,
    /// Its path.
    pub path: String,
    /// Expiry in seconds since the Unix epoch; `None` for a session cookie.
    pub expires: Option<f64>,
    /// Hidden from the page's scripts.
    pub http_only: bool,
    /// Sent over https only (and to 127.0.0.1).
    pub secure: bool,
    /// "Strict", "Lax" or "None" when the site set it.
    pub same_site: Option<String>,
}

impl Cookie {
    /// Whether this cookie would be sent to `url` (domain, path and secure rules of RFC 6265).
    pub fn matches(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let domain = self.domain.trim_start_matches('.');
        let host_ok = if self.domain.starts_with('.') {
            host == domain || host.ends_with(&format!(".{domain}"))
        } else {
            host == domain
        };
        let path = url.path();
        let path_ok = path == self.path
            || (path.starts_with(&self.path)
                && (self.path.ends_with('/') || path[self.path.len()..].starts_with('/')));
        let secure_ok = !self.secure || url.scheme() == "https" || host == "127.0.0.1";
        host_ok && path_ok && secure_ok
    }

    /// Whether the cookie has expired at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        self.expires
            .is_some_and(|e| e > 0.0 && (e * 1000.0) as u64 <= now)
    }
}

/// localStorage of one origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginStorage {
    /// Scheme, host and port, e.g. `https://tickets.example`.
    pub origin: String,
    /// Items in the order the page listed them.
    pub local_storage: Vec<(String, String)>,
}

/// What the warmed page itself reported about the browser, to prove the fingerprint took.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observed {
    /// `navigator.userAgent`.
    pub user_agent: String,
    /// `navigator.userAgentData.brands` as `brand/version` pairs.
    pub brands: Vec<(String, String)>,
    /// `navigator.platform`.
    pub platform: String,
    /// `navigator.userAgentData.platform`.
    pub ua_platform: String,
    /// The resolved time zone (`Intl`).
    pub timezone: String,
    /// `navigator.languages`.
    pub languages: Vec<String>,
    /// `screen.width` and `screen.height`.
    pub screen: (u32, u32),
    /// `navigator.hardwareConcurrency`.
    pub hardware_concurrency: u32,
    /// `innerWidth`/`innerHeight` (the viewport) and `outerWidth`/`outerHeight` (the
    /// window); absent in records older than these fields.
    #[serde(default)]
    pub inner: (u32, u32),
    #[serde(default)]
    /// `outerWidth`/`outerHeight`.
    pub outer: (u32, u32),
}

/// Health record: what scrapers and validators said of the session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Health {
    /// Times the session was handed out.
    pub uses: u64,
    /// Reported successes and failures.
    pub successes: u64,
    /// Reported failures.
    pub failures: u64,
    /// Failure score: +1 per failure, -0.5 per success, floored at 0.
    pub error_score: f64,
    /// Last HTTP status a scraper reported.
    pub last_status: Option<u16>,
    /// When the session last passed validation.
    pub last_validated_at: Option<UnixMillis>,
    /// Why it was retired, when it was.
    pub retired_reason: Option<String>,
}

/// A warm session: the unit the pool serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unique id (a UUID without dashes).
    pub id: String,
    /// Name of the configured target it belongs to.
    pub target: String,
    /// Event it was warmed on, for event sessions.
    pub event: Option<String>,
    /// Account it is signed in as, for login sessions.
    pub account: Option<String>,
    /// The page the warm visited; cookie headers are computed for this URL.
    pub url: String,
    /// Servable or retired.
    pub state: SessionState,
    /// The identity the cookies were earned with; must be sent with them.
    pub fingerprint: Fingerprint,
    /// Proxy the session was earned through and must keep using (may carry credentials).
    pub proxy: Option<String>,
    /// Every cookie the browser held at the last capture (HttpOnly ones too).
    pub cookies: Vec<Cookie>,
    /// localStorage of the page's origin at the last capture.
    pub origins: Vec<OriginStorage>,
    /// What the page reported about the browser when it was warmed.
    pub observed: Option<Observed>,
    /// When it was warmed.
    pub created_at: UnixMillis,
    /// When its cookies were last captured from a browser.
    pub refreshed_at: UnixMillis,
    /// When it stops being served (max age).
    pub expires_at: UnixMillis,
    /// What scrapers and validation said of it.
    pub health: Health,
}

impl Session {
    /// A new session id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Cookies that would be sent to `url`, unexpired, in browser order (longer paths first).
    pub fn cookies_for(&self, url: &url::Url, now: UnixMillis) -> Vec<&Cookie> {
        let mut v: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| c.matches(url) && !c.is_expired(now))
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        v
    }

    /// Age in milliseconds at `now`.
    pub fn age_ms(&self, now: UnixMillis) -> u64 {
        now.saturating_sub(self.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(domain: &str, path: &str, secure: bool) -> Cookie {
        Cookie {
            name: "a".into(),
            value: "b".into(),
            domain: domain.into(),
            path: path.into(),
            expires: None,
            http_only: false,
            secure,
            same_site: None,
        }
    }

    #[test]
    fn cookie_matching_follows_domain_path_and_secure_rules() {
        let u = url::Url::parse("https://www.example.com/api/x").unwrap();
        assert!(cookie(".example.com", "/", false).matches(&u));
        assert!(cookie("www.example.com", "/api", true).matches(&u));
        assert!(!cookie("example.com", "/", false).matches(&u));
        assert!(!cookie(".example.com", "/ap", false).matches(&u));
        assert!(!cookie(".other.com", "/", false).matches(&u));
        let plain = url::Url::parse("http://www.example.com/").unwrap();
        assert!(!cookie(".example.com", "/", true).matches(&plain));
    }

    fn report(success: bool, status: Option<u16>) -> UsageReport {
        UsageReport { success, status }
    }

    #[test]
    fn failures_add_one_successes_take_half_floored_at_zero() {
        let p = HealthPolicy::default();
        let mut h = Health::default();
        assert_eq!(p.apply(&mut h, report(true, Some(200))), Verdict::Keep);
        assert_eq!(h.error_score, 0.0);
        assert_eq!(p.apply(&mut h, report(false, Some(500))), Verdict::Keep);
        assert_eq!(p.apply(&mut h, report(false, None)), Verdict::Keep);
        assert_eq!(h.error_score, 2.0);
        assert_eq!(p.apply(&mut h, report(true, None)), Verdict::Keep);
        assert_eq!(h.error_score, 1.5);
        assert_eq!(p.apply(&mut h, report(false, None)), Verdict::Keep);
        assert!(matches!(
            p.apply(&mut h, report(false, None)),
            Verdict::Retire(_)
        ));
        assert_eq!(h.failures, 4);
        assert_eq!(h.successes, 2);
    }

    #[test]
    fn blocked_statuses_retire_and_429_backs_off() {
        let p = HealthPolicy::default();
        let mut h = Health::default();
        assert!(
            matches!(p.apply(&mut h, report(false, Some(403))), Verdict::Retire(r) if r.to_string().contains("403"))
        );
        let mut h = Health::default();
        assert!(matches!(
            p.apply(&mut h, report(false, Some(401))),
            Verdict::Retire(_)
        ));
        let mut h = Health::default();
        for _ in 0..10 {
            assert_eq!(
                p.apply(&mut h, report(false, Some(429))),
                Verdict::BackOff(p.backoff)
            );
        }
        assert_eq!(h.error_score, 0.0, "429 is not a failure");
    }

    #[test]
    fn check_retires_on_age_uses_and_required_cookies() {
        let mut s: Session =
            serde_json::from_str(include_str!("../tests/fixtures/session_v1.json")).unwrap();
        let now = s.created_at + 1000;
        s.expires_at = now + 1;
        let mut p = HealthPolicy::default();
        assert_eq!(p.check(&s, now), Verdict::Keep);
        assert!(
            matches!(p.check(&s, now + 1), Verdict::Retire(r) if r.to_string().contains("max age"))
        );
        p.max_uses = Some(2);
        s.health.uses = 2;
        assert!(matches!(p.check(&s, now), Verdict::Retire(r) if r.to_string().contains("used")));
        p.max_uses = None;
        p.required_cookies = vec!["nope".into()];
        assert!(
            matches!(p.check(&s, now), Verdict::Retire(r) if r.to_string().contains("missing"))
        );
        let name = s.cookies[0].name.clone();
        s.cookies[0].expires = Some((now / 1000) as f64 - 10.0);
        p.required_cookies = vec![name];
        assert!(
            matches!(p.check(&s, now), Verdict::Retire(r) if r.to_string().contains("expired"))
        );
    }

    #[test]
    fn retire_reasons_keep_their_prose_and_labels() {
        let cases = [
            (
                RetireReason::Blocked { status: 403 },
                "blocked: the target answered HTTP 403",
                "blocked",
            ),
            (
                RetireReason::ErrorScore {
                    score: 3.0,
                    max: 3.0,
                },
                "error score 3.0 reached 3",
                "error_score",
            ),
            (RetireReason::MaxAge, "max age reached", "max_age"),
            (RetireReason::MaxUses { max: 5 }, "used 5 times", "max_uses"),
            (
                RetireReason::CookieMissing { name: "a".into() },
                "required cookie \"a\" missing",
                "required_cookie",
            ),
            (RetireReason::Rotated, "rotated", "rotated"),
            (
                RetireReason::ValidationFailed(ValidationFailure::Status {
                    got: 500,
                    expected: 200,
                }),
                "validation failed: HTTP 500, expected 200",
                "validation_failed",
            ),
            (
                RetireReason::BlockedOnRefresh { status: 401 },
                "blocked: HTTP 401 on refresh",
                "blocked",
            ),
            (
                RetireReason::AccountRemoved,
                "account removed",
                "account_removed",
            ),
            (
                RetireReason::FlareSolverrEnded,
                "flaresolverr session ended",
                "flaresolverr_session",
            ),
        ];
        for (reason, prose, label) in cases {
            assert_eq!(reason.to_string(), prose);
            assert_eq!(reason.label(), label, "{prose}");
        }
    }

    #[test]
    fn expiry_is_in_seconds() {
        let mut c = cookie("a", "/", false);
        c.expires = Some(1000.0);
        assert!(c.is_expired(1_000_001));
        assert!(!c.is_expired(999_999));
        c.expires = None;
        assert!(!c.is_expired(u64::MAX));
    }
}

/// The pool's rules for retiring a session, from the target's config.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Error score at which a session retires. Default: 3.
    pub max_failures: f64,
    /// Hand a session out at most this often.
    pub max_uses: Option<u64>,
    /// Cookies that must be present and unexpired for the session to be servable.
    pub required_cookies: Vec<String>,
    /// How long a 429 report keeps a session out of rotation.
    pub backoff: std::time::Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            max_failures: 3.0,
            max_uses: None,
            required_cookies: Vec::new(),
            backoff: std::time::Duration::from_secs(60),
        }
    }
}

/// What a scraper reported after using a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    /// Whether the scraper's request with this session worked.
    pub success: bool,
    /// HTTP status the scraper saw, when it has one.
    pub status: Option<u16>,
}

/// What the pool should do with a session after a report or a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep serving it.
    Keep,
    /// Do not serve it for a while (rate limited), but keep it.
    BackOff(std::time::Duration),
    /// Stop serving it and replace it, for this reason.
    Retire(RetireReason),
}

/// Why a session was retired. Its `Display` is the prose kept in the record
/// (`Health::retired_reason`) and shown by the API; [`RetireReason::label`] is the short,
/// stable label of the `warmer_sessions_retired_total` metric.
#[derive(Debug, Clone, PartialEq)]
pub enum RetireReason {
    /// A scraper reported HTTP 401 or 403 with it.
    Blocked {
        /// The status the scraper saw.
        status: u16,
    },
    /// Reported failures brought its error score to the target's `max_failures`.
    ErrorScore {
        /// The score reached.
        score: f64,
        /// The target's `max_failures`.
        max: f64,
    },
    /// Past its max age (`expires_at`).
    MaxAge,
    /// Handed out the target's `max_uses` times.
    MaxUses {
        /// The target's `max_uses`.
        max: u64,
    },
    /// A cookie of the target's `validate.require_cookies` is missing.
    CookieMissing {
        /// The cookie's name.
        name: String,
    },
    /// A cookie of the target's `validate.require_cookies` has expired.
    CookieExpired {
        /// The cookie's name.
        name: String,
    },
    /// Replaced by a newer session of its target (make-before-break rotation).
    Rotated,
    /// The target's validate request (or the health policy, checked first) failed.
    ValidationFailed(ValidationFailure),
    /// A cookie refresh in the browser got HTTP 401 or 403.
    BlockedOnRefresh {
        /// The status of the event page.
        status: u16,
    },
    /// Its login account's file was removed.
    AccountRemoved,
    /// Its login account's username or proxy changed (it signs in again).
    AccountChanged,
    /// A FlareSolverr session that had changed it ended.
    FlareSolverrEnded,
}

impl RetireReason {
    /// The metrics label: one per kind of reason, the same as the first words of the prose
    /// said before reasons were typed (`max_age`, `blocked`, `validation_failed`, ...).
    /// `MaxUses` is `max_uses` whatever the limit (a label per limit would grow the metric's
    /// label set without bound).
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::Borrowed;
        match self {
            Self::Blocked { .. } | Self::BlockedOnRefresh { .. } => Borrowed("blocked"),
            Self::ErrorScore { .. } => Borrowed("error_score"),
            Self::MaxAge => Borrowed("max_age"),
            Self::MaxUses { .. } => Borrowed("max_uses"),
            Self::CookieMissing { .. } | Self::CookieExpired { .. } => Borrowed("required_cookie"),
            Self::Rotated => Borrowed("rotated"),
            Self::ValidationFailed(_) => Borrowed("validation_failed"),
            Self::AccountRemoved => Borrowed("account_removed"),
            Self::AccountChanged => Borrowed("account_changed"),
            Self::FlareSolverrEnded => Borrowed("flaresolverr_session"),
        }
    }
}

impl std::fmt::Display for RetireReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blocked { status } => write!(f, "blocked: the target answered HTTP {status}"),
            Self::ErrorScore { score, max } => write!(f, "error score {score:.1} reached {max:.0}"),
            Self::MaxAge => f.write_str("max age reached"),
            Self::MaxUses { max } => write!(f, "used {max} times"),
            Self::CookieMissing { name } => write!(f, "required cookie {name:?} missing"),
            Self::CookieExpired { name } => write!(f, "required cookie {name:?} expired"),
            Self::Rotated => f.write_str("rotated"),
            Self::ValidationFailed(why) => write!(f, "validation failed: {why}"),
            Self::BlockedOnRefresh { status } => write!(f, "blocked: HTTP {status} on refresh"),
            Self::AccountRemoved => f.write_str("account removed"),
            Self::AccountChanged => f.write_str("account changed"),
            Self::FlareSolverrEnded => f.write_str("flaresolverr session ended"),
        }
    }
}

/// Why a session failed validation (`schedule::validate`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationFailure {
    /// The health policy retires it (age, uses, required cookies): checked before any request.
    #[error("{0}")]
    Policy(Box<RetireReason>),
    /// Its target is no longer configured.
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    /// The validate URL (with the event filled in) is not a URL.
    #[error("{0}")]
    BadUrl(url::ParseError),
    /// The request got no answer (connection refused, timeout, ...); the message names no URL.
    #[error("request failed: {0}")]
    Request(String),
    /// The answer's status is not `validate.expect_status`.
    #[error("HTTP {got}, expected {expected}")]
    Status {
        /// The status the target answered.
        got: u16,
        /// `validate.expect_status`.
        expected: u16,
    },
}

impl HealthPolicy {
    /// Applies a scraper's report to `health` and decides: success −0.5 (floored at 0),
    /// failure +1; 401/403 retire at once (blocked); 429 backs off without counting as a
    /// failure; a score at `max_failures` retires.
    pub fn apply(&self, health: &mut Health, report: UsageReport) -> Verdict {
        health.last_status = report.status;
        if report.success {
            health.successes += 1;
            health.error_score = (health.error_score - 0.5).max(0.0);
            return Verdict::Keep;
        }
        match report.status {
            Some(429) => return Verdict::BackOff(self.backoff),
            Some(s @ (401 | 403)) => {
                health.failures += 1;
                health.error_score += 1.0;
                return Verdict::Retire(RetireReason::Blocked { status: s });
            }
            _ => {}
        }
        health.failures += 1;
        health.error_score += 1.0;
        if health.error_score >= self.max_failures {
            Verdict::Retire(RetireReason::ErrorScore {
                score: health.error_score,
                max: self.max_failures,
            })
        } else {
            Verdict::Keep
        }
    }

    /// Whether `s` may still be served at `now`: age, uses, required cookies.
    pub fn check(&self, s: &Session, now: UnixMillis) -> Verdict {
        if s.expires_at <= now {
            return Verdict::Retire(RetireReason::MaxAge);
        }
        if let Some(max) = self.max_uses {
            if s.health.uses >= max {
                return Verdict::Retire(RetireReason::MaxUses { max });
            }
        }
        for name in &self.required_cookies {
            match s.cookies.iter().find(|c| &c.name == name) {
                None => return Verdict::Retire(RetireReason::CookieMissing { name: name.clone() }),
                Some(c) if c.is_expired(now) => {
                    return Verdict::Retire(RetireReason::CookieExpired { name: name.clone() })
                }
                Some(_) => {}
            }
        }
        Verdict::Keep
    }
}
