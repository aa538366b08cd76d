//! Response shapes of the API and their projections from `Session`. Cookie values and proxy
//! credentials appear only where the contract says so.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::browser::redact_url;
use crate::pool::{Match, Projection};
use crate::session::{now_ms, Cookie, Session, SessionState, UnixMillis};

/// A cookie in Playwright's shape (`expires` in seconds, -1 for a session cookie).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieOut {
    /// Cookie name.
    pub name: String,
    /// Omitted unless revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Domain as the browser holds it (a leading `.` for domain cookies).
    pub domain: String,
    /// Path.
    pub path: String,
    /// Expiry in Unix seconds; -1 for a session cookie.
    pub expires: f64,
    /// Whether scripts cannot read it.
    pub http_only: bool,
    /// Whether it is sent over HTTPS only.
    pub secure: bool,
    /// `Strict`, `Lax` (also when the browser said nothing) or `None`.
    pub same_site: String,
}

impl CookieOut {
    /// The cookie in this shape; its value only when `reveal`.
    pub fn from(c: &Cookie, reveal: bool) -> Self {
        Self {
            name: c.name.clone(),
            value: reveal.then(|| c.value.clone()),
            domain: c.domain.clone(),
            path: c.path.clone(),
            expires: c.expires.unwrap_or(-1.0),
            http_only: c.http_only,
            secure: c.secure,
            same_site: c.same_site.clone().unwrap_or_else(|| "Lax".into()),
        }
    }
}

/// The identity a session must be replayed with.
#[derive(Debug, Serialize, ToSchema)]
pub struct FingerprintOut {
    /// `User-Agent` (also `navigator.userAgent`).
    pub user_agent: String,
    /// `navigator.platform` (`Win32`, `MacIntel`, `Linux x86_64`).
    pub platform: String,
    /// `sec-ch-ua-platform` without quotes (`Windows`, `macOS`, `Linux`).
    pub ch_platform: String,
    /// The full Chrome version the session was warmed with.
    pub browser_version: String,
    /// Window inner size.
    pub viewport: Size,
    /// Screen size.
    pub screen: Size,
    /// `window.devicePixelRatio`.
    pub device_pixel_ratio: f64,
    /// Locale (`Accept-Language`'s first entry).
    pub locale: String,
    /// `navigator.languages`.
    pub languages: Vec<String>,
    /// IANA time zone the page saw.
    pub timezone: String,
    /// True when the session wears a caller's User-Agent that no client hints can back
    /// (`browser.userAgent` of `POST /api/v1/sessions` that is not a desktop Chrome UA of the
    /// running major): it is served without `sec-ch-ua*` headers.
    pub custom: bool,
}

/// A width and height in CSS pixels.
#[derive(Debug, Serialize, ToSchema)]
pub struct Size {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl FingerprintOut {
    /// The identity of `s`.
    pub fn from(s: &Session) -> Self {
        let f = &s.fingerprint;
        Self {
            user_agent: f.user_agent.clone(),
            platform: f.profile.platform.clone(),
            ch_platform: f.profile.ch_platform.clone(),
            browser_version: f.browser_version.clone(),
            viewport: Size {
                width: f.viewport.0,
                height: f.viewport.1,
            },
            screen: Size {
                width: f.profile.screen.width,
                height: f.profile.screen.height,
            },
            device_pixel_ratio: f.profile.screen.device_pixel_ratio,
            locale: f.locale.clone(),
            languages: f.languages.clone(),
            timezone: f.timezone.clone(),
            custom: crate::fingerprint::custom::is_custom(f),
        }
    }
}

/// A lease: the session is exclusive to the caller until then.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseOut {
    /// When the lease ends (RFC 3339).
    pub expires_at: String,
    /// Its length in seconds.
    pub seconds: u64,
}

/// A ready session, ready to use: `headers` go on every request to the target. One JSON
/// object made of two parts, each with its one list of fields: how this caller got it
/// ([`Served`]) and the session itself ([`ServedSession`], memoised per session; the hot path
/// writes the two parts side by side in [`EventSession::render`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSession {
    /// How the session was matched and leased.
    #[serde(flatten)]
    pub served: Served,
    /// The session.
    #[serde(flatten)]
    pub session: ServedSession,
}

/// How a caller got a session: the first fields of an [`EventSession`].
#[derive(Debug, Serialize, ToSchema)]
pub struct Served {
    /// `event` when warmed on the requested event, `target` when another event's session is
    /// reused.
    #[serde(rename = "match")]
    pub matched: Match,
    /// The caller's exclusive lease, when one was asked for.
    pub lease: Option<LeaseOut>,
}

/// The part of an [`EventSession`] that depends on the session alone (memoised per session).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServedSession {
    /// The session's id (report usage with it).
    pub session_id: String,
    /// The target it was warmed for.
    pub target: String,
    /// The event it was warmed on (none for a login session).
    pub event: Option<String>,
    /// Ready to send: Cookie (capped at 8000 bytes), User-Agent, sec-ch-ua*, Accept-Language.
    pub headers: BTreeMap<String, String>,
    /// Its unexpired cookies, values included.
    pub cookies: Vec<CookieOut>,
    /// Proxy the session must use; credentials only for callers with the token.
    pub proxy: Option<String>,
    /// The identity to replay it with.
    pub fingerprint: FingerprintOut,
    /// When the pool stops serving it (RFC 3339).
    pub expires_at: String,
}

pub use crate::stats::rfc3339;

/// The proxy as a caller may see it.
pub fn proxy_for(s: &Session, with_credentials: bool) -> Option<String> {
    s.proxy.as_ref().map(|p| {
        if with_credentials {
            p.clone()
        } else {
            let mut shown = redact_url(p);
            if shown.ends_with('/') && !p.ends_with('/') {
                shown.pop();
            }
            shown
        }
    })
}

impl ServedSession {
    /// The session's part of the answer at `now` (expired cookies left out); the proxy's
    /// credentials only `with_credentials`.
    pub fn from(s: &Session, with_credentials: bool, now: UnixMillis) -> Self {
        Self {
            session_id: s.id.clone(),
            target: s.target.clone(),
            event: s.event.clone(),
            headers: crate::export::headers(s, now).into_iter().collect(),
            cookies: s
                .cookies
                .iter()
                .filter(|c| !c.is_expired(now))
                .map(|c| CookieOut::from(c, true))
                .collect(),
            proxy: proxy_for(s, with_credentials),
            fingerprint: FingerprintOut::from(s),
            expires_at: rfc3339(s.expires_at),
        }
    }

    /// The memoisable projection: this object's JSON, valid until its first cookie expires.
    pub fn projection(s: &Session, with_credentials: bool, now: UnixMillis) -> Projection {
        let body = serde_json::to_string(&Self::from(s, with_credentials, now))
            .expect("plain data serialises");
        let valid_until = s
            .cookies
            .iter()
            .filter(|c| !c.is_expired(now))
            .filter_map(|c| c.expires.filter(|e| *e > 0.0))
            .map(|e| (e * 1000.0) as UnixMillis)
            .min()
            .unwrap_or(UnixMillis::MAX);
        Projection {
            body: body.into(),
            valid_until,
        }
    }
}

fn lease_out(lease: Option<std::time::Duration>, now: UnixMillis) -> Option<LeaseOut> {
    lease.map(|d| LeaseOut {
        expires_at: rfc3339(now + d.as_millis() as u64),
        seconds: d.as_secs(),
    })
}

impl EventSession {
    /// The whole answer for `s`, typed (the memoised hot path is [`EventSession::render`]).
    pub fn from(
        s: &Session,
        matched: Match,
        lease: Option<std::time::Duration>,
        with_credentials: bool,
    ) -> Self {
        let now = now_ms();
        Self {
            served: Served {
                matched,
                lease: lease_out(lease, now),
            },
            session: ServedSession::from(s, with_credentials, now),
        }
    }

    /// The same JSON as [`EventSession::from`] would serialise to, around a memoised
    /// [`ServedSession`] projection.
    pub fn render(
        served: &Projection,
        matched: Match,
        lease: Option<std::time::Duration>,
    ) -> String {
        let head = serde_json::to_string(&Served {
            matched,
            lease: lease_out(lease, now_ms()),
        })
        .expect("plain data serialises");
        // `{"match":…,"lease":…}` + `{"session_id":…}` → one object.
        let head = head.strip_suffix('}').expect("an object");
        let rest = served.body.strip_prefix('{').expect("an object");
        let mut out = String::with_capacity(head.len() + rest.len() + 1);
        out.push_str(head);
        if rest != "}" {
            out.push(',');
        }
        out.push_str(rest);
        out
    }
}

/// A session as a resource (no cookie values unless revealed).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Its id.
    pub session_id: String,
    /// The target it was warmed for.
    pub target: String,
    /// The event it was warmed on (none for a login session).
    pub event: Option<String>,
    /// The account it is signed in as (login targets).
    pub account: Option<String>,
    /// `ready` or `retired`.
    pub state: String,
    /// Whether a replacement is being warmed (make-before-break); it is served meanwhile.
    pub rotating: bool,
    /// The page it was warmed on (credentials in it redacted).
    pub url: String,
    /// When it was warmed (RFC 3339).
    pub created_at: String,
    /// When its cookies were last refreshed (RFC 3339).
    pub refreshed_at: String,
    /// When the pool stops serving it (RFC 3339).
    pub expires_at: String,
    /// Its age in minutes, to one decimal.
    pub age_minutes: f64,
    /// Times it was handed out.
    pub uses: u64,
    /// Reports of success.
    pub successes: u64,
    /// Reports of failure.
    pub failures: u64,
    /// The health policy's error score (retired at 1).
    pub error_score: f64,
    /// Why it was retired, when it was.
    pub retired_reason: Option<String>,
    /// Its cookies (values only when revealed).
    pub cookies: Vec<CookieOut>,
    /// The localStorage keys it holds, over every origin (never the values).
    pub local_storage_keys: Vec<String>,
    /// Its proxy (credentials only when revealed).
    pub proxy: Option<String>,
    /// The identity to replay it with.
    pub fingerprint: FingerprintOut,
}

impl SessionOut {
    /// `s` as a resource; cookie values and proxy credentials only when `reveal`.
    pub fn from(s: &Session, rotating: bool, reveal: bool) -> Self {
        let now = now_ms();
        Self {
            session_id: s.id.clone(),
            target: s.target.clone(),
            event: s.event.clone(),
            account: s.account.clone(),
            state: match s.state {
                SessionState::Ready => "ready",
                SessionState::Retired => "retired",
            }
            .into(),
            rotating,
            url: redact_url(&s.url),
            created_at: rfc3339(s.created_at),
            refreshed_at: rfc3339(s.refreshed_at),
            expires_at: rfc3339(s.expires_at),
            age_minutes: (s.age_ms(now) as f64 / 6000.0).round() / 10.0,
            uses: s.health.uses,
            successes: s.health.successes,
            failures: s.health.failures,
            error_score: s.health.error_score,
            retired_reason: s.health.retired_reason.clone(),
            cookies: s
                .cookies
                .iter()
                .map(|c| CookieOut::from(c, reveal))
                .collect(),
            local_storage_keys: s
                .origins
                .iter()
                .flat_map(|o| o.local_storage.iter().map(|(k, _)| k.clone()))
                .collect(),
            proxy: proxy_for(s, reveal),
            fingerprint: FingerprintOut::from(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let mut s: Session =
            serde_json::from_str(include_str!("../../tests/fixtures/session_v1.json")).unwrap();
        s.cookies[1].expires = Some(1_900_000_000.5);
        s
    }

    /// The memoised path answers byte for byte what the typed one would, in every shape.
    #[test]
    fn a_rendered_projection_is_the_typed_answer() {
        let s = session();
        for creds in [false, true] {
            for matched in [Match::Event, Match::Target] {
                let now = now_ms();
                let p = ServedSession::projection(&s, creds, now);
                let rendered = EventSession::render(&p, matched, None);
                let typed =
                    serde_json::to_string(&EventSession::from(&s, matched, None, creds)).unwrap();
                assert_eq!(rendered, typed);
                let lease = Some(std::time::Duration::from_secs(30));
                let rendered: serde_json::Value =
                    serde_json::from_str(&EventSession::render(&p, matched, lease)).unwrap();
                assert_eq!(rendered["lease"]["seconds"], 30);
                assert_eq!(rendered["session_id"], s.id.as_str());
            }
        }
    }

    #[test]
    fn a_projection_is_valid_until_its_first_cookie_expires() {
        let s = session();
        let first = s
            .cookies
            .iter()
            .filter_map(|c| c.expires)
            .filter(|e| *e > 0.0)
            .fold(f64::MAX, f64::min);
        let p = ServedSession::projection(&s, false, 1_000);
        assert_eq!(p.valid_until, (first * 1000.0) as UnixMillis);
        let mut no_expiry = s.clone();
        for c in &mut no_expiry.cookies {
            c.expires = None;
        }
        let p = ServedSession::projection(&no_expiry, false, 1_000);
        assert_eq!(p.valid_until, UnixMillis::MAX);
        // Past its time, the expired cookie is gone from the rebuilt one.
        let later = ServedSession::projection(&s, false, (first * 1000.0) as UnixMillis);
        assert!(!later.body.contains("visitor"), "{}", later.body);
        assert!(later.body.contains("\"sid\""), "{}", later.body);
    }
}
