//! FlareSolverr 3.5.0's wire shapes: the `POST /v1` request, its answer, the solution and
//! its cookies.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::session::Cookie;

/// `POST /v1` body (FlareSolverr's `V1RequestBase`). Unknown fields are ignored, as
/// FlareSolverr does.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct V1Request {
    /// `request.get`, `request.post`, `sessions.create`, `sessions.list` or
    /// `sessions.destroy`.
    pub(super) cmd: Option<String>,
    /// The page to load: it must be on a configured target.
    pub(super) url: Option<String>,
    /// `request.post`: the form fields, `application/x-www-form-urlencoded`.
    #[serde(rename = "postData")]
    pub(super) post_data: Option<String>,
    /// Milliseconds for the whole request (default 60000; at most 170000 are honoured).
    #[serde(rename = "maxTimeout")]
    #[schema(value_type = Option<u64>)]
    pub(super) max_timeout: Option<f64>,
    /// A named session (created on first use by `request.*`).
    pub(super) session: Option<String>,
    /// `request.*` with `session`: a pin older than this many minutes is replaced first.
    #[schema(value_type = Option<u64>)]
    pub(super) session_ttl_minutes: Option<f64>,
    /// `{url, username?, password?}`: only with `server.allow_custom_proxies`.
    #[schema(value_type = Option<Object>)]
    pub(super) proxy: Option<Value>,
    /// Cookies put into the page's context (`[{name, value, domain?, path?, …}]`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub(super) cookies: Option<Vec<Value>>,
    /// Answer only the cookies and user agent (GET: from the pool, without a browser).
    #[serde(rename = "returnOnlyCookies")]
    pub(super) return_only_cookies: Option<bool>,
    /// Not supported: accepted and ignored (no `screenshot` in the answer).
    #[serde(rename = "returnScreenshot")]
    #[schema(value_type = Option<bool>)]
    pub(super) return_screenshot: Option<Value>,
    /// Seconds to wait after the load before the page is read.
    #[serde(rename = "waitInSeconds")]
    #[schema(value_type = Option<f64>)]
    pub(super) wait_in_seconds: Option<f64>,
    /// Block images, stylesheets and fonts.
    #[serde(rename = "disableMedia")]
    pub(super) disable_media: Option<bool>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[schema(value_type = Option<Object>)]
    pub(super) headers: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored (the session's own user agent is used).
    #[serde(rename = "userAgent")]
    #[schema(value_type = Option<String>)]
    pub(super) user_agent: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[schema(value_type = Option<bool>)]
    pub(super) download: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[serde(rename = "returnRawHtml")]
    #[schema(value_type = Option<bool>)]
    pub(super) return_raw_html: Option<Value>,
    /// Turnstile clicking: not done (out of scope); accepted and ignored.
    #[schema(value_type = Option<u64>)]
    pub(super) tabs_till_verify: Option<Value>,
}

impl V1Request {
    /// The fields given that are accepted and ignored (deprecated or not supported).
    pub(super) fn ignored(&self) -> Vec<&'static str> {
        [
            ("headers", self.headers.is_some()),
            ("userAgent", self.user_agent.is_some()),
            ("download", self.download.is_some()),
            ("returnRawHtml", self.return_raw_html.is_some()),
            ("returnScreenshot", self.return_screenshot.is_some()),
            ("tabs_till_verify", self.tabs_till_verify.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect()
    }
}

/// `POST /v1` answer, keys in FlareSolverr's order; absent keys are left out, not null.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct V1Response {
    /// `ok` or `error`.
    pub(super) status: &'static str,
    /// `Challenge not detected!`, `Session created successfully.`, … or `Error: …`.
    pub(super) message: String,
    /// `sessions.create`: the session's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) session: Option<String>,
    /// `sessions.list`: the names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sessions: Option<Vec<String>>,
    /// `request.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) solution: Option<Solution>,
    /// Unix ms.
    pub(super) start_timestamp: u64,
    /// Unix ms.
    pub(super) end_timestamp: u64,
    /// [`VERSION`].
    pub(super) version: &'static str,
}

/// What a request produced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Solution {
    /// The final URL (the requested one with `returnOnlyCookies`).
    pub(super) url: String,
    /// The document's HTTP status (FlareSolverr always says 200).
    pub(super) status: u16,
    /// Cookies the page's URL would be sent.
    pub(super) cookies: Vec<CookieOut>,
    /// The session's User-Agent: send it with the cookies.
    pub(super) user_agent: String,
    /// Always null: no Turnstile is solved.
    #[serde(rename = "turnstile_token")]
    #[schema(value_type = Option<String>)]
    pub(super) turnstile_token: Option<()>,
    /// Always `{}` (as FlareSolverr); absent with `returnOnlyCookies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(super) headers: Option<serde_json::Map<String, Value>>,
    /// The page's HTML; absent with `returnOnlyCookies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response: Option<String>,
}

/// A cookie in Selenium's (W3C) shape plus Puppeteer's `expires`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieOut {
    pub(super) domain: String,
    /// Seconds since the epoch; -1 for a session cookie.
    pub(super) expires: f64,
    /// Whole seconds since the epoch; absent for a session cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expiry: Option<i64>,
    pub(super) http_only: bool,
    pub(super) name: String,
    pub(super) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) same_site: Option<String>,
    pub(super) secure: bool,
    pub(super) value: String,
}

impl From<&Cookie> for CookieOut {
    fn from(c: &Cookie) -> Self {
        let expiry = c.expires.filter(|e| *e > 0.0).map(|e| (e as i64).max(1));
        Self {
            domain: c.domain.clone(),
            expires: c.expires.filter(|e| *e > 0.0).unwrap_or(-1.0),
            expiry,
            http_only: c.http_only,
            name: c.name.clone(),
            path: c.path.clone(),
            same_site: c.same_site.clone(),
            secure: c.secure,
            value: c.value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_have_an_integer_expiry_only_when_persistent() {
        let mut c = Cookie {
            name: "a".into(),
            value: "1".into(),
            domain: "x".into(),
            path: "/".into(),
            expires: Some(1_767_225_600.75),
            http_only: true,
            secure: false,
            same_site: Some("Lax".into()),
        };
        let v = serde_json::to_value(CookieOut::from(&c)).unwrap();
        assert_eq!(v["expiry"], 1_767_225_600i64);
        assert_eq!(v["expires"], 1_767_225_600.75);
        c.expires = None;
        let v = serde_json::to_value(CookieOut::from(&c)).unwrap();
        assert!(v.get("expiry").is_none(), "{v}");
        assert_eq!(v["expires"], -1.0);
    }
}
