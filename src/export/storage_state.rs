//! Playwright's `storageState`: cookies (with `expires` in seconds, -1 for session cookies) and
//! each origin's localStorage, loadable by `browser.newContext({ storageState })`.

use serde_json::{json, Value};

use crate::session::{Cookie, Session};

/// `Strict`, `Lax` or `None` in Playwright's spelling; `Lax` when unset or unrecognised.
fn same_site(c: &Cookie) -> &'static str {
    match c.same_site.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("strict") => "Strict",
        Some(v) if v.eq_ignore_ascii_case("none") => "None",
        _ => "Lax",
    }
}

/// The session as Playwright's `storageState`: `{"cookies": [...], "origins": [...]}`, with
/// `expires` in seconds (-1 for session cookies), loadable by
/// `browser.newContext({ storageState })`.
pub fn storage_state(s: &Session) -> Value {
    let cookies: Vec<Value> = s
        .cookies
        .iter()
        .map(|c| {
            let expires = match c.expires.filter(|e| *e > 0.0) {
                Some(e) => json!(e),
                None => json!(-1),
            };
            json!({
                "name": c.name,
                "value": c.value,
                "domain": c.domain,
                "path": c.path,
                "expires": expires,
                "httpOnly": c.http_only,
                "secure": c.secure,
                "sameSite": same_site(c),
            })
        })
        .collect();
    let origins: Vec<Value> = s
        .origins
        .iter()
        .map(|o| {
            let items: Vec<Value> = o
                .local_storage
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            json!({ "origin": o.origin, "localStorage": items })
        })
        .collect();
    json!({ "cookies": cookies, "origins": origins })
}
