//! FlareSolverr's API answered from the warm pool, so FlareSolverr clients (Jackett, Prowlarr,
//! FlareSolverrSharp, fspy, scrapy-flaresolverr, …) only change their host.
//!
//! - `POST /v1` on the main API (behind its token, when it has one) and, when
//!   `[flaresolverr] listen` is set, on a second listener without a token that also answers
//!   `GET /` and `GET /health` ([`router`]).
//! - `request.get` / `request.post`: a ready session of the target the URL belongs to (or the
//!   named `session`'s), the URL loaded in a context restored from it ([`Pool::fetch_with`]),
//!   answered in FlareSolverr's shape. `returnOnlyCookies` (GET) answers from the pool without a
//!   browser. A URL of no configured target is refused and never loaded: this is no open proxy.
//! - `sessions.create` / `sessions.list` / `sessions.destroy`: a named session pins one pool
//!   session per target it is used on (leased to it, pinned on first use), until destroyed or
//!   idle for `flaresolverr.session_idle`; `session_ttl_minutes` re-pins an older one.
//! - Errors as FlareSolverr's: HTTP 500 with `{"status": "error", "message": "Error: …"}`.
//!
//! The contract followed is FlareSolverr 3.5.0's ([`VERSION`]); what differs is said in the
//! README ("FlareSolverr clients").

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use super::{AppState, BODY_LIMIT};
use crate::browser::redact_url;
use crate::pool::{CreateOptions, FetchOptions, Pool, PoolError};
use crate::session::{now_ms, Cookie, Session, SessionState};
use crate::warm::WarmError;

/// The FlareSolverr version whose contract `/v1` follows (reported as `version`).
pub const VERSION: &str = "3.5.0";

/// `maxTimeout` when absent or below 1 ms (FlareSolverr's default).
const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest `maxTimeout` honoured: the API's own request timeout is 180 s, and an answer must
/// leave before it.
const MAX_TIMEOUT_CAP: Duration = Duration::from_secs(170);

/// How often a request waiting for a ready session looks again.
const POLL: Duration = Duration::from_millis(100);

/// Named sessions (`sessions.create`): each pins at most one pool session per target.
pub struct NamedSessions {
    /// A named session idle this long is destroyed (`flaresolverr.session_idle`).
    idle: Duration,
    named: Mutex<HashMap<String, Named>>,
    /// Creation order, for `sessions.list`.
    serial: std::sync::atomic::AtomicU64,
}

/// One named session.
struct Named {
    /// Its place in `sessions.list`.
    serial: u64,
    /// Last use; it is destroyed `idle` after it.
    last_used: Instant,
    /// Pool session pinned per target name.
    pins: HashMap<String, Pin>,
    /// The caller's proxy (`sessions.create` with `proxy`): its pins are warmed through it.
    proxy: Option<String>,
}

/// A pool session leased to a named session.
#[derive(Clone)]
struct Pin {
    session: String,
    pinned_at: Instant,
    /// A caller's cookies or a form POST changed it: retired when unpinned, not handed back to
    /// the pool.
    dirty: bool,
}

impl NamedSessions {
    /// No named sessions yet; one idle for `idle` is destroyed.
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            named: Mutex::new(HashMap::new()),
            serial: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Named>> {
        self.named.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `name` unless it exists; whether it was created.
    fn create(&self, name: &str, proxy: Option<String>) -> bool {
        let mut m = self.lock();
        if m.contains_key(name) {
            return false;
        }
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.insert(
            name.to_string(),
            Named {
                serial,
                last_used: Instant::now(),
                pins: HashMap::new(),
                proxy,
            },
        );
        true
    }

    /// Names in creation order.
    fn names(&self) -> Vec<String> {
        let m = self.lock();
        let mut v: Vec<(&String, u64)> = m.iter().map(|(k, n)| (k, n.serial)).collect();
        v.sort_by_key(|(_, s)| *s);
        v.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// Removes `name`; its pins, or `None` when there was no such session.
    fn remove(&self, name: &str) -> Option<Vec<Pin>> {
        self.lock()
            .remove(name)
            .map(|n| n.pins.into_values().collect())
    }

    /// Removes the sessions idle for longer than `idle`; their pins.
    fn expire(&self) -> Vec<Pin> {
        let now = Instant::now();
        let mut m = self.lock();
        let gone: Vec<String> = m
            .iter()
            .filter(|(_, n)| now.duration_since(n.last_used) >= self.idle)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| m.remove(&k))
            .flat_map(|n| n.pins.into_values())
            .collect()
    }
}

/// Gives a pin's pool session back (its lease ends), or retires it when the caller changed it.
async fn unpin(pool: &Pool, pin: &Pin) {
    if pin.dirty {
        let _ = pool
            .retire(
                &pin.session,
                crate::session::RetireReason::FlareSolverrEnded,
                false,
            )
            .await;
    } else {
        let _ = pool.lease_session(&pin.session, None);
    }
}

/// `POST /v1` body (FlareSolverr's `V1RequestBase`). Unknown fields are ignored, as
/// FlareSolverr does.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct V1Request {
    /// `request.get`, `request.post`, `sessions.create`, `sessions.list` or
    /// `sessions.destroy`.
    cmd: Option<String>,
    /// The page to load: it must be on a configured target.
    url: Option<String>,
    /// `request.post`: the form fields, `application/x-www-form-urlencoded`.
    #[serde(rename = "postData")]
    post_data: Option<String>,
    /// Milliseconds for the whole request (default 60000; at most 170000 are honoured).
    #[serde(rename = "maxTimeout")]
    #[schema(value_type = Option<u64>)]
    max_timeout: Option<f64>,
    /// A named session (created on first use by `request.*`).
    session: Option<String>,
    /// `request.*` with `session`: a pin older than this many minutes is replaced first.
    #[schema(value_type = Option<u64>)]
    session_ttl_minutes: Option<f64>,
    /// `{url, username?, password?}`: only with `server.allow_custom_proxies`.
    #[schema(value_type = Option<Object>)]
    proxy: Option<Value>,
    /// Cookies put into the page's context (`[{name, value, domain?, path?, …}]`).
    #[schema(value_type = Option<Vec<Object>>)]
    cookies: Option<Vec<Value>>,
    /// Answer only the cookies and user agent (GET: from the pool, without a browser).
    #[serde(rename = "returnOnlyCookies")]
    return_only_cookies: Option<bool>,
    /// Not supported: accepted and ignored (no `screenshot` in the answer).
    #[serde(rename = "returnScreenshot")]
    #[schema(value_type = Option<bool>)]
    return_screenshot: Option<Value>,
    /// Seconds to wait after the load before the page is read.
    #[serde(rename = "waitInSeconds")]
    #[schema(value_type = Option<f64>)]
    wait_in_seconds: Option<f64>,
    /// Block images, stylesheets and fonts.
    #[serde(rename = "disableMedia")]
    disable_media: Option<bool>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[schema(value_type = Option<Object>)]
    headers: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored (the session's own user agent is used).
    #[serde(rename = "userAgent")]
    #[schema(value_type = Option<String>)]
    user_agent: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[schema(value_type = Option<bool>)]
    download: Option<Value>,
    /// Deprecated in FlareSolverr: accepted and ignored.
    #[serde(rename = "returnRawHtml")]
    #[schema(value_type = Option<bool>)]
    return_raw_html: Option<Value>,
    /// Turnstile clicking: not done (out of scope); accepted and ignored.
    #[schema(value_type = Option<u64>)]
    tabs_till_verify: Option<Value>,
}

impl V1Request {
    /// The fields given that are accepted and ignored (deprecated or not supported).
    fn ignored(&self) -> Vec<&'static str> {
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
    status: &'static str,
    /// `Challenge not detected!`, `Session created successfully.`, … or `Error: …`.
    message: String,
    /// `sessions.create`: the session's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    /// `sessions.list`: the names.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<String>>,
    /// `request.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    solution: Option<Solution>,
    /// Unix ms.
    start_timestamp: u64,
    /// Unix ms.
    end_timestamp: u64,
    /// [`VERSION`].
    version: &'static str,
}

/// What a request produced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Solution {
    /// The final URL (the requested one with `returnOnlyCookies`).
    url: String,
    /// The document's HTTP status (FlareSolverr always says 200).
    status: u16,
    /// Cookies the page's URL would be sent.
    cookies: Vec<CookieOut>,
    /// The session's User-Agent: send it with the cookies.
    user_agent: String,
    /// Always null: no Turnstile is solved.
    #[serde(rename = "turnstile_token")]
    #[schema(value_type = Option<String>)]
    turnstile_token: Option<()>,
    /// Always `{}` (as FlareSolverr); absent with `returnOnlyCookies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    headers: Option<serde_json::Map<String, Value>>,
    /// The page's HTML; absent with `returnOnlyCookies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
}

/// A cookie in Selenium's (W3C) shape plus Puppeteer's `expires`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieOut {
    domain: String,
    /// Seconds since the epoch; -1 for a session cookie.
    expires: f64,
    /// Whole seconds since the epoch; absent for a session cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    expiry: Option<i64>,
    http_only: bool,
    name: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    same_site: Option<String>,
    secure: bool,
    value: String,
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

/// A failed command: its text, said as FlareSolverr says it (`Error: ` is added).
struct Failure(String);

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure(solving(&e))
    }
}

/// FlareSolverr's wording for a failure while loading the page.
fn solving(e: &PoolError) -> String {
    match e {
        PoolError::Warm(WarmError::Network { message, .. }) => {
            format!("Error solving the challenge. Message: unknown error: {message}")
        }
        PoolError::Store(_) => {
            tracing::error!(error = %e, "store error in a FlareSolverr request");
            "Error solving the challenge. Internal error.".into()
        }
        e => format!("Error solving the challenge. {e}"),
    }
}

/// FlareSolverr's timeout text: seconds as Python prints a float (`60.0`, `0.01`).
fn timeout_text(limit: Duration) -> String {
    let secs = limit.as_millis() as f64 / 1000.0;
    let secs = if secs.fract() == 0.0 {
        format!("{secs:.1}")
    } else {
        format!("{secs}")
    };
    format!("Error solving the challenge. Timeout after {secs} seconds.")
}

/// FlareSolverr's router error shape (Bottle's): `{"error", "status_code"}`.
fn router_error(status: StatusCode, error: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": error, "status_code": status.as_u16() })),
    )
        .into_response()
}

/// Runs a FlareSolverr command.
#[utoipa::path(post, path = "/v1", request_body = V1Request,
    responses((status = 200, body = V1Response),
              (status = 400, description = "Invalid JSON (`{\"error\", \"status_code\"}`)"),
              (status = 500, body = V1Response, description = "`status: error`, `message: Error: …`")),
    security(("bearer" = [])))]
pub async fn v1(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let start = now_ms();
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    // Like FlareSolverr: invalid JSON sent as JSON is a 400; any other body has no `cmd`.
    let req = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => serde_json::from_value::<V1Request>(v),
        Ok(_) => Ok(V1Request::default()),
        Err(_) if json_type => {
            return router_error(StatusCode::BAD_REQUEST, "Invalid JSON".into());
        }
        Err(_) => Ok(V1Request::default()),
    };
    let out = match req {
        Ok(req) => run(&state, req).await,
        Err(e) => Err(Failure(format!("Request parameters are invalid: {e}"))),
    };
    let (status, resp) = match out {
        Ok(mut r) => {
            r.start_timestamp = start;
            r.end_timestamp = now_ms();
            (StatusCode::OK, r)
        }
        Err(Failure(m)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            V1Response {
                status: "error",
                message: format!("Error: {m}"),
                session: None,
                sessions: None,
                solution: None,
                start_timestamp: start,
                end_timestamp: now_ms(),
                version: VERSION,
            },
        ),
    };
    (status, Json(resp)).into_response()
}

fn ok(message: impl Into<String>) -> V1Response {
    V1Response {
        status: "ok",
        message: message.into(),
        session: None,
        sessions: None,
        solution: None,
        start_timestamp: 0,
        end_timestamp: 0,
        version: VERSION,
    }
}

async fn run(state: &AppState, req: V1Request) -> Result<V1Response, Failure> {
    let named = &state.flaresolverr;
    for pin in named.expire() {
        unpin(&state.pool, &pin).await;
    }
    let ignored = req.ignored();
    if !ignored.is_empty() {
        tracing::info!(fields = ?ignored, "FlareSolverr request: fields accepted and ignored");
    }
    let Some(cmd) = req.cmd.clone() else {
        return Err(Failure("Request parameter 'cmd' is mandatory.".into()));
    };
    if req.session.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(Failure(
            "Request parameter 'session' is too long (at most 200 characters).".into(),
        ));
    }
    match cmd.as_str() {
        "sessions.create" => {
            let proxy = caller_proxy(&state.pool, req.proxy.as_ref())?;
            let name = req
                .session
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let message = if named.create(&name, proxy) {
                "Session created successfully."
            } else {
                "Session already exists."
            };
            Ok(V1Response {
                session: Some(name),
                ..ok(message)
            })
        }
        "sessions.list" => Ok(V1Response {
            sessions: Some(named.names()),
            ..ok("")
        }),
        "sessions.destroy" => {
            let pins = req
                .session
                .as_deref()
                .and_then(|n| named.remove(n))
                .ok_or_else(|| Failure("The session doesn't exist.".into()))?;
            for pin in &pins {
                unpin(&state.pool, pin).await;
            }
            Ok(ok("The session has been removed."))
        }
        "request.get" | "request.post" => request(state, &cmd, req).await,
        other => Err(Failure(format!(
            "Request parameter 'cmd' = '{other}' is invalid."
        ))),
    }
}

/// The caller's `proxy` as a proxy URL (credentials percent-encoded into it), refused unless
/// `server.allow_custom_proxies`.
fn caller_proxy(pool: &Pool, proxy: Option<&Value>) -> Result<Option<String>, Failure> {
    let Some(p) = proxy.filter(|p| !p.is_null()) else {
        return Ok(None);
    };
    let Some(url) = p
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    if !pool.allows_custom_proxies() {
        return Err(Failure(PoolError::CustomProxyRefused.to_string()));
    }
    let mut parsed = url::Url::parse(url)
        .map_err(|e| Failure(format!("Request parameter 'proxy.url' is invalid: {e}")))?;
    let field = |k: &str| p.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    if let Some(u) = field("username") {
        let _ = parsed.set_username(u);
        let _ = parsed.set_password(field("password"));
    }
    let out = parsed.to_string();
    crate::config::check_proxy(&out)
        .map_err(|m| Failure(format!("Request parameter 'proxy' is invalid: {m}")))?;
    Ok(Some(out))
}

/// A caller's cookie (`{name, value, domain?, path?, secure?, httpOnly?, expiry?|expires?,
/// sameSite?}`) for `url`: domain defaults to its host, path to `/`.
fn caller_cookie(v: &Value, url: &url::Url) -> Result<Cookie, Failure> {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let (Some(name), Some(value)) = (s("name"), s("value")) else {
        return Err(Failure(
            "Request parameter 'cookies' is invalid: each needs a 'name' and a 'value'.".into(),
        ));
    };
    let expires = ["expiry", "expires"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_f64))
        .filter(|e| *e > 0.0);
    Ok(Cookie {
        name: name.to_string(),
        value: value.to_string(),
        domain: s("domain")
            .map(str::to_string)
            .or_else(|| url.host_str().map(str::to_string))
            .unwrap_or_default(),
        path: s("path").unwrap_or("/").to_string(),
        expires,
        http_only: b("httpOnly"),
        secure: b("secure"),
        same_site: s("sameSite").map(str::to_string),
    })
}

async fn request(state: &AppState, cmd: &str, req: V1Request) -> Result<V1Response, Failure> {
    let started = Instant::now();
    let post = cmd == "request.post";
    let Some(url) = req.url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(Failure(format!(
            "Request parameter 'url' is mandatory in '{cmd}' command."
        )));
    };
    let fields = match (&req.post_data, post) {
        (Some(_), false) => {
            return Err(Failure(
                "Cannot use 'postBody' when sending a GET request.".into(),
            ))
        }
        (None, true) => {
            return Err(Failure(
                "Request parameter 'postData' is mandatory in 'request.post' command.".into(),
            ))
        }
        (Some(d), true) => Some(
            url::form_urlencoded::parse(d.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect::<Vec<_>>(),
        ),
        (None, false) => None,
    };
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| Failure("Request parameter 'url' must be an http(s) URL.".into()))?;
    let url = parsed.as_str();
    // Only URLs of configured targets: refused before any browser or network is involved.
    let target = match state.pool.target_for_url(url) {
        Ok(t) => t.config.name.clone(),
        Err(PoolError::UrlNotAllowed {
            origin, allowed, ..
        }) => {
            return Err(Failure(format!(
                "Request parameter 'url' is not on a configured target: {origin} is not one of \
                 the origins {} (this is not an open proxy).",
                allowed.join(", ")
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let limit = match req.max_timeout {
        Some(ms) if ms >= 1.0 => Duration::from_millis(ms as u64).min(MAX_TIMEOUT_CAP),
        _ => DEFAULT_MAX_TIMEOUT,
    };
    let deadline = started + limit;
    let cookies = req
        .cookies
        .iter()
        .flatten()
        .map(|c| caller_cookie(c, &parsed))
        .collect::<Result<Vec<_>, _>>()?;
    // With a named session the proxy is its own (as FlareSolverr ignores `proxy` then).
    let proxy = match &req.session {
        Some(_) => None,
        None => caller_proxy(&state.pool, req.proxy.as_ref())?,
    };
    let changes = !cookies.is_empty() || post;
    let ttl = req
        .session_ttl_minutes
        .filter(|m| *m > 0.0)
        .map(|m| Duration::from_secs_f64(m * 60.0));
    let session = tokio::time::timeout_at(deadline.into(), async {
        match &req.session {
            Some(name) => pinned(state, name, &target, ttl, changes).await,
            None => anonymous(state, &target, proxy).await,
        }
    })
    .await
    .map_err(|_| {
        tracing::info!(target = %target, "FlareSolverr request: no ready session within maxTimeout");
        Failure(timeout_text(limit))
    })??;
    let only_cookies = req.return_only_cookies == Some(true);
    tracing::info!(
        cmd,
        url = %redact_url(url),
        session = %session.id,
        named = req.session.is_some(),
        only_cookies,
        "FlareSolverr request"
    );
    if only_cookies && !post {
        // Straight from the pool: no browser.
        let mut out: Vec<Cookie> = session
            .cookies_for(&parsed, now_ms())
            .into_iter()
            .cloned()
            .collect();
        for c in cookies {
            out.retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
            out.push(c);
        }
        return Ok(solution(&session, url.to_string(), 200, &out, None));
    }
    let opts = FetchOptions {
        cookies,
        wait: req
            .wait_in_seconds
            .filter(|w| *w > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_default(),
        disable_media: req.disable_media == Some(true),
        form: fields,
        // A shared pool session keeps what it had; a named one carries its changes on.
        detached: req.session.is_none() && changes,
    };
    let fetched = tokio::time::timeout_at(
        deadline.into(),
        state.pool.fetch_with(&session.id, url, &opts),
    )
    .await
    .map_err(|_| Failure(timeout_text(limit)))??;
    let final_url = url::Url::parse(&fetched.url).unwrap_or(parsed.clone());
    let mut out: Vec<Cookie> = fetched
        .cookies
        .iter()
        .filter(|c| c.matches(&final_url) && !c.is_expired(now_ms()))
        .cloned()
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
    let body = (!only_cookies).then_some(fetched.body);
    Ok(solution(
        &session,
        fetched.url,
        fetched.status.unwrap_or(200),
        &out,
        body,
    ))
}

fn solution(
    s: &Session,
    url: String,
    status: u16,
    cookies: &[Cookie],
    body: Option<String>,
) -> V1Response {
    let has_body = body.is_some();
    V1Response {
        solution: Some(Solution {
            url,
            status,
            cookies: cookies.iter().map(CookieOut::from).collect(),
            user_agent: s.fingerprint.user_agent.clone(),
            turnstile_token: None,
            headers: has_body.then(serde_json::Map::new),
            response: body,
        }),
        ..ok("Challenge not detected!")
    }
}

/// A ready session of `target` for a request without `session`: taken from the pool (a use is
/// counted), or with a caller's proxy warmed through it now. Waits while none is ready.
async fn anonymous(
    state: &AppState,
    target: &str,
    proxy: Option<String>,
) -> Result<Arc<Session>, Failure> {
    if let Some(p) = proxy {
        let s = state
            .pool
            .warm_now(
                target,
                CreateOptions {
                    proxy: Some(p),
                    ..Default::default()
                },
            )
            .await?;
        return Ok(s);
    }
    take(&state.pool, target, None).await
}

/// Takes a ready session of `target`, waiting (the caller bounds it) while none is free.
async fn take(pool: &Pool, target: &str, lease: Option<Duration>) -> Result<Arc<Session>, Failure> {
    loop {
        match pool.take_session(target, lease) {
            Ok(s) => return Ok(s),
            Err(PoolError::NoneReady(_) | PoolError::AllBusy(_)) => tokio::time::sleep(POLL).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The pool session named session `name` holds on `target`: its pin while that is still ready
/// and younger than `ttl`, else a new one taken (or warmed through the session's proxy) and
/// leased to it. Creates `name` when unknown (as FlareSolverr does). `changes`: the request
/// brings cookies or a POST, so the pin is retired rather than handed back at the end.
async fn pinned(
    state: &AppState,
    name: &str,
    target: &str,
    ttl: Option<Duration>,
    changes: bool,
) -> Result<Arc<Session>, Failure> {
    let named = &state.flaresolverr;
    let pool = &state.pool;
    named.create(name, None);
    let (current, proxy) = {
        let mut m = named.lock();
        let n = m.get_mut(name).expect("just created");
        n.last_used = Instant::now();
        (n.pins.get(target).cloned(), n.proxy.clone())
    };
    if let Some(pin) = current {
        let live = pool
            .get(&pin.session)
            .filter(|s| s.state == SessionState::Ready);
        let fresh = ttl.is_none_or(|t| pin.pinned_at.elapsed() < t);
        match live {
            Some(s) if fresh => {
                pool.lease_session(&s.id, Some(named.idle))?;
                let mut m = named.lock();
                if let Some(p) = m.get_mut(name).and_then(|n| n.pins.get_mut(target)) {
                    p.dirty |= changes;
                }
                return Ok(s);
            }
            _ => unpin(pool, &pin).await,
        }
    }
    let s = match proxy {
        Some(p) => {
            let s = pool
                .warm_now(
                    target,
                    CreateOptions {
                        proxy: Some(p),
                        ..Default::default()
                    },
                )
                .await?;
            pool.lease_session(&s.id, Some(named.idle))?;
            s
        }
        None => take(pool, target, Some(named.idle)).await?,
    };
    let pin = Pin {
        session: s.id.clone(),
        pinned_at: Instant::now(),
        dirty: changes,
    };
    // Destroyed meanwhile, or pinned by a concurrent request: give this one back.
    let replaced = {
        let mut m = named.lock();
        match m.get_mut(name) {
            Some(n) => n.pins.insert(target.to_string(), pin.clone()),
            None => Some(pin.clone()),
        }
    };
    if let Some(old) = replaced.filter(|o| o.session != s.id) {
        unpin(pool, &old).await;
    }
    Ok(s)
}

/// `GET /` of the FlareSolverr listener.
async fn index(State(state): State<AppState>) -> Json<Value> {
    let ua = match state
        .pool
        .list()
        .into_iter()
        .find(|(s, _)| s.state == SessionState::Ready)
    {
        Some((s, _)) => s.fingerprint.user_agent.clone(),
        None => tokio::time::timeout(
            Duration::from_secs(5),
            state.pool.warmer().sample_fingerprint(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|f| f.user_agent)
        .unwrap_or_default(),
    };
    Json(serde_json::json!({
        "msg": "FlareSolverr is ready!",
        "version": VERSION,
        "userAgent": ua,
    }))
}

/// `GET /health` of the FlareSolverr listener.
async fn health() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(uri: Uri) -> Response {
    router_error(
        StatusCode::NOT_FOUND,
        format!("Not found: '{}'", uri.path()),
    )
}

async fn method_not_allowed() -> Response {
    router_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.".into())
}

/// The edge rules of the main API, with the `Host` rule always (this listener has no token),
/// then the request, counted like the main API's.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let resp = match state.edge.check(true, &req) {
        super::edge::Verdict::Pass => next.run(req).await,
        super::edge::Verdict::Cors(origin) => {
            let mut resp = next.run(req).await;
            super::edge::add_cors(resp.headers_mut(), origin);
            resp
        }
        super::edge::Verdict::Answer(refused) => refused,
    };
    state
        .pool
        .metrics
        .api(&format!("flaresolverr:{route}"), resp.status().as_u16());
    resp
}

/// The FlareSolverr listener (`[flaresolverr] listen`): `POST /v1`, `GET /`, `GET /health`,
/// with FlareSolverr's router errors, no token, and the main API's `Host`/`Origin` rules.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/v1", post(v1))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(180),
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_python_prints_seconds() {
        assert_eq!(
            timeout_text(Duration::from_millis(10)),
            "Error solving the challenge. Timeout after 0.01 seconds."
        );
        assert_eq!(
            timeout_text(Duration::from_secs(60)),
            "Error solving the challenge. Timeout after 60.0 seconds."
        );
        assert_eq!(
            timeout_text(Duration::from_millis(1500)),
            "Error solving the challenge. Timeout after 1.5 seconds."
        );
    }

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
