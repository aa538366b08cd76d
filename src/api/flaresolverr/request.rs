//! `request.get` and `request.post`: the URL loaded in a context restored from a ready pool
//! session of its target (or answered from the pool alone with `returnOnlyCookies`), answered
//! in FlareSolverr's shape; the caller's proxy and cookies as FlareSolverr takes them.

use serde_json::Value;
use std::time::{Duration, Instant};

use super::sessions::{anonymous, pinned};
use super::wire::{CookieOut, Solution, V1Request, V1Response};
use super::{ok, timeout_text, AppState, Failure, DEFAULT_MAX_TIMEOUT, MAX_TIMEOUT_CAP};
use crate::browser::redact_url;
use crate::pool::{FetchOptions, Pool, PoolError};
use crate::session::{now_ms, Cookie, Session};

/// The caller's `proxy` as a proxy URL (credentials percent-encoded into it), refused unless
/// `server.allow_custom_proxies`.
pub(super) fn caller_proxy(pool: &Pool, proxy: Option<&Value>) -> Result<Option<String>, Failure> {
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
pub(super) fn caller_cookie(v: &Value, url: &url::Url) -> Result<Cookie, Failure> {
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

/// Runs a FlareSolverr `request.get` / `request.post` command (`cmd`) on a warmed session.
///
/// Validates `url` and `postData` as FlareSolverr does (same error texts, so its clients
/// recognise them), picks a session within `maxTimeout`, loads the page in it and answers
/// with its cookies (longest path first) and, unless `returnOnlyCookies`, the body.
///
/// # Errors
///
/// A [`Failure`] carrying FlareSolverr's message: bad parameters, no ready session before the
/// deadline, or a failed page load. The caller turns it into an `error` response.
pub(super) async fn load(
    state: &AppState,
    cmd: &str,
    req: V1Request,
) -> Result<V1Response, Failure> {
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

/// Builds a successful FlareSolverr answer for session `s`.
///
/// `headers` is an empty object exactly when a `body` is returned (as FlareSolverr does);
/// `turnstileToken` is never set, since sessions are warmed ahead of time, not solved here.
pub(super) fn solution(
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
