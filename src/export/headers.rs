//! Ready-to-send headers: the fingerprint's identity headers in Chrome's order and the
//! `Cookie` header the browser would send, capped at [`COOKIE_HEADER_CAP`] bytes.

use serde_json::{Map, Value};

use crate::session::{Session, UnixMillis};

/// Most bytes a `Cookie` header built here may hold; whole cookies that do not fit are dropped.
pub const COOKIE_HEADER_CAP: usize = 8000;

/// The `Cookie` header value (`a=1; b=2`) the browser would send to `url` at `now`, in browser
/// order, at most [`COOKIE_HEADER_CAP`] bytes: a cookie that would not fit is left out whole
/// and later (smaller) ones may still be included. Empty when no cookie applies.
pub fn cookie_header(s: &Session, url: &url::Url, now: UnixMillis) -> String {
    let mut out = String::new();
    for c in s.cookies_for(url, now) {
        let sep = if out.is_empty() { 0 } else { 2 };
        if out.len() + sep + c.name.len() + 1 + c.value.len() > COOKIE_HEADER_CAP {
            continue;
        }
        if sep > 0 {
            out.push_str("; ");
        }
        out.push_str(&c.name);
        out.push('=');
        out.push_str(&c.value);
    }
    out
}

/// The headers to send with the session: the fingerprint's identity headers in Chrome's order,
/// then `Cookie` for the session's URL when any cookie applies (none when its URL is invalid).
pub fn headers(s: &Session, now: UnixMillis) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .fingerprint
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Ok(url) = url::Url::parse(&s.url) {
        let cookie = cookie_header(s, &url, now);
        if !cookie.is_empty() {
            out.push(("Cookie".to_string(), cookie));
        }
    }
    out
}

/// [`headers`] as a JSON object of name to value.
pub fn headers_json(s: &Session, now: UnixMillis) -> Map<String, Value> {
    headers(s, now)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}
