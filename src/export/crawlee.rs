//! A Crawlee `SessionPool` state record (Crawlee 3 and 4 load it): one session or the pool's
//! ready ones, cookies as tough-cookie JSON, warmer's own fields under `userData.warmer`; the
//! shape is described in the module docs of [`crate::export`].

use serde_json::{json, Map, Value};

use crate::session::{Cookie, Session, UnixMillis};

/// An RFC 3339 time with milliseconds (`2026-12-02T04:20:48.126Z`), as JavaScript's
/// `Date.prototype.toJSON` writes it.
fn iso_millis(ms: UnixMillis) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// The key Crawlee 3 keeps its `SessionPool` state under in its key-value store.
pub const CRAWLEE_STATE_KEY: &str = "SDK_SESSION_POOL_STATE";

/// Crawlee's default `maxUsageCount` of a session.
const CRAWLEE_MAX_USAGE_COUNT: u32 = 50;

/// One cookie as tough-cookie's `Cookie.toJSON()` writes it.
fn tough_cookie(c: &Cookie, captured: &str) -> Value {
    let mut o = Map::new();
    o.insert("key".into(), json!(c.name));
    o.insert("value".into(), json!(c.value));
    if let Some(e) = c.expires.filter(|e| *e > 0.0) {
        o.insert(
            "expires".into(),
            json!(iso_millis((e * 1000.0) as UnixMillis)),
        );
    }
    o.insert("domain".into(), json!(c.domain.trim_start_matches('.')));
    o.insert(
        "path".into(),
        json!(if c.path.is_empty() { "/" } else { &c.path }),
    );
    o.insert("secure".into(), json!(c.secure));
    o.insert("httpOnly".into(), json!(c.http_only));
    o.insert("hostOnly".into(), json!(!c.domain.starts_with('.')));
    o.insert("creation".into(), json!(captured));
    o.insert("lastAccessed".into(), json!(captured));
    if let Some(v) = c.same_site.as_deref() {
        let v = v.to_ascii_lowercase();
        if matches!(v.as_str(), "strict" | "lax" | "none") {
            o.insert("sameSite".into(), json!(v));
        }
    }
    Value::Object(o)
}

/// One session in the shape of Crawlee's `Session.getState()`: only the keys Crawlee 3's
/// exact-shape check allows; warmer's own fields under `userData.warmer`. The error score and
/// its rules are warmer's (+1 a failure, -0.5 a success, retired at 3), which are Crawlee's
/// defaults too; `usageCount` starts at 0 (it counts uses in Crawlee).
pub fn crawlee_session(s: &Session, now: UnixMillis) -> Value {
    let captured = iso_millis(s.refreshed_at);
    let cookies: Vec<Value> = s
        .cookies
        .iter()
        .filter(|c| !c.is_expired(now))
        .map(|c| tough_cookie(c, &captured))
        .collect();
    let identity: Map<String, Value> = s
        .fingerprint
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let fingerprint = serde_json::to_value(&s.fingerprint).unwrap_or(Value::Null);
    json!({
        "id": s.id,
        "cookieJar": {
            "version": "tough-cookie@6.1.0",
            "storeType": "MemoryCookieStore",
            "rejectPublicSuffixes": true,
            "enableLooseMode": false,
            "allowSpecialUseDomain": true,
            "prefixSecurity": "silent",
            "cookies": cookies,
        },
        "userData": {
            "warmer": {
                "sessionId": s.id,
                "target": s.target,
                "event": s.event,
                "account": s.account,
                "url": s.url,
                "userAgent": s.fingerprint.user_agent,
                "headers": identity,
                "proxy": s.proxy,
                "fingerprint": fingerprint,
            }
        },
        "maxErrorScore": 3,
        "errorScoreDecrement": 0.5,
        "createdAt": iso_millis(s.created_at),
        "expiresAt": iso_millis(s.expires_at),
        "usageCount": 0,
        "maxUsageCount": CRAWLEE_MAX_USAGE_COUNT,
        "errorScore": s.health.error_score,
    })
}

/// Whether a pool-wide Crawlee export includes `s`: ready and not past its max age.
pub fn crawlee_exportable(s: &Session, now: UnixMillis) -> bool {
    s.state == crate::session::SessionState::Ready && s.expires_at > now
}

/// A Crawlee `SessionPool` state record of these sessions, all counted usable (the caller
/// picks them).
pub fn crawlee_pool<'a>(sessions: impl IntoIterator<Item = &'a Session>, now: UnixMillis) -> Value {
    let sessions: Vec<Value> = sessions
        .into_iter()
        .map(|s| crawlee_session(s, now))
        .collect();
    json!({
        "usableSessionsCount": sessions.len(),
        "retiredSessionsCount": 0,
        "sessions": sessions,
    })
}

/// [`crawlee_pool`] rendered as pretty JSON with a final newline.
pub fn render_crawlee_pool<'a>(
    sessions: impl IntoIterator<Item = &'a Session>,
    now: UnixMillis,
) -> String {
    let mut text = serde_json::to_string_pretty(&crawlee_pool(sessions, now)).unwrap_or_default();
    text.push('\n');
    text
}
