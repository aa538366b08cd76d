//! Attaching to a browser the daemon did not start (`browser.endpoint`, `browser.endpoints`).
//!
//! - A `ws://…/devtools/browser/<id>` URL is used exactly as configured (a query string such as
//!   `?token=…` included).
//! - An `http://<host>:<port>` URL is resolved here, not by chromiumoxide: its own lookup
//!   appends `/json/version` after the query string and silently falls back to the http URL
//!   when the answer is not JSON. A host name is looked up first and the request goes to the
//!   address (Chrome answers `/json/*` only to an IP or `localhost` `Host` header), the answer
//!   is checked, and the websocket URL it names gets the contacted address and the endpoint's
//!   query string.
//!
//! What the supervisor does with the connection (heartbeat, reconnect, never `Browser.close`)
//! is in `supervisor.rs`; see also `../shared/notes/remote-browsers.md` of the project.

use std::net::SocketAddr;
use std::time::Duration;

use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::Browser;

use super::launch::{Owner, Running};
use super::BrowserError;
use crate::config::{BrowserConfig, Endpoint};
use crate::fingerprint::BrowserVersion;

/// The most of a `/json/version` answer that is read (Chrome's is about 500 bytes).
const VERSION_BODY_MAX: usize = 64 * 1024;

fn connect_err(endpoint: &Endpoint, message: impl Into<String>) -> BrowserError {
    BrowserError::Connect {
        endpoint: endpoint.to_string(),
        message: message.into(),
    }
}

/// The browser websocket URL of `endpoint`: a `ws://` URL as is, an `http://` one through its
/// `/json/version` (at most `within` for the lookup and the request together).
///
/// # Errors
/// [`BrowserError::Connect`] when the name does not resolve, the request fails, or the answer
/// is not a browser's `/json/version`.
pub(crate) async fn resolve(endpoint: &Endpoint, within: Duration) -> Result<String, BrowserError> {
    let url = url::Url::parse(endpoint.expose())
        .map_err(|e| connect_err(endpoint, format!("not a URL: {e}")))?;
    if matches!(url.scheme(), "ws" | "wss") {
        return Ok(endpoint.expose().to_string());
    }
    let found = tokio::time::timeout(within, async {
        let addr = address_of(&url).await?;
        let version_url = version_url(&url, addr);
        let client = reqwest::Client::builder()
            // Straight to the browser: no proxy from the environment, no redirect.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(within)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut res = client
            .get(version_url)
            .send()
            .await
            .map_err(|e| format!("GET /json/version: {}", e.without_url()))?;
        let status = res.status();
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| format!("reading /json/version: {}", e.without_url()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > VERSION_BODY_MAX {
                return Err("/json/version answer is too large".to_string());
            }
        }
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(format!(
                "GET /json/version answered {status}: {}",
                text.trim()
            ));
        }
        ws_from_version(&url, addr, &body)
    })
    .await;
    match found {
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(m)) => Err(connect_err(endpoint, m)),
        Err(_) => Err(connect_err(
            endpoint,
            format!("/json/version not answered within {within:?}"),
        )),
    }
}

/// The socket address an http endpoint names: its IP, or its host name looked up (an IPv4
/// address preferred).
async fn address_of(url: &url::Url) -> Result<SocketAddr, String> {
    let port = url.port_or_known_default().ok_or("no port")?;
    match url.host() {
        Some(url::Host::Ipv4(ip)) => Ok(SocketAddr::from((ip, port))),
        Some(url::Host::Ipv6(ip)) => Ok(SocketAddr::from((ip, port))),
        Some(url::Host::Domain(name)) => {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("looking up {name}: {e}"))?
                .collect();
            all.iter()
                .find(|a| a.is_ipv4())
                .or(all.first())
                .copied()
                .ok_or_else(|| format!("{name} has no address"))
        }
        None => Err("no host".into()),
    }
}

/// `url` with its host replaced by `addr` and `/json/version` appended to its path; the query
/// string is kept.
fn version_url(url: &url::Url, addr: SocketAddr) -> url::Url {
    let mut v = url.clone();
    let _ = v.set_ip_host(addr.ip());
    let _ = v.set_port(Some(addr.port()));
    let path = format!("{}/json/version", url.path().trim_end_matches('/'));
    v.set_path(&path);
    v.set_fragment(None);
    v
}

/// The browser websocket URL in a `/json/version` answer, pointed at `addr` (the address that
/// answered: Chrome echoes the `Host` it was sent, a port forwarder in front of it changes the
/// port) and carrying `endpoint`'s query string (browserless leaves its token out).
///
/// # Errors
/// When the body is not JSON, has no `webSocketDebuggerUrl`, or that URL is not a browser's
/// websocket.
pub(crate) fn ws_from_version(
    endpoint: &url::Url,
    addr: SocketAddr,
    body: &[u8],
) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "webSocketDebuggerUrl")]
        ws: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        let text: String = String::from_utf8_lossy(body).chars().take(120).collect();
        format!("/json/version is not JSON: {:?}", text.trim())
    })?;
    let ws = answer
        .ws
        .filter(|w| !w.is_empty())
        .ok_or("/json/version has no webSocketDebuggerUrl")?;
    let mut ws = url::Url::parse(&ws)
        .map_err(|e| format!("/json/version's webSocketDebuggerUrl is not a URL: {e}"))?;
    if !matches!(ws.scheme(), "ws" | "wss") || !ws.path().starts_with("/devtools/browser/") {
        return Err(format!(
            "/json/version's webSocketDebuggerUrl {} is not a browser websocket",
            super::redact_url(ws.as_str())
        ));
    }
    let _ = ws.set_ip_host(addr.ip());
    let _ = ws.set_port(Some(addr.port()));
    if endpoint.scheme() == "https" {
        let _ = ws.set_scheme("wss");
    }
    if let Some(q) = endpoint.query().filter(|q| !q.is_empty()) {
        let merged = match ws.query().filter(|own| !own.is_empty()) {
            Some(own) => format!("{own}&{q}"),
            None => q.to_string(),
        };
        ws.set_query(Some(&merged));
    }
    Ok(ws.to_string())
}

/// Connects to the remote browser at `endpoint` as browser `generation`: resolves its URL,
/// opens the websocket, starts the CDP handler task and reads its version. Bounded by
/// `launch_timeout` (and the version by `cdp_timeout`).
///
/// # Errors
/// [`BrowserError::Connect`] when it cannot be reached or is not a browser.
pub(super) async fn attach(
    cfg: &BrowserConfig,
    endpoint: &Endpoint,
    generation: u64,
) -> Result<Running, BrowserError> {
    let ws = resolve(endpoint, cfg.launch_timeout).await?;
    let handler_config = HandlerConfig {
        viewport: None,
        request_timeout: cfg.navigation_timeout,
        ..HandlerConfig::default()
    };
    let (browser, handler) = tokio::time::timeout(
        cfg.launch_timeout,
        Browser::connect_with_config(ws, handler_config),
    )
    .await
    .map_err(|_| {
        connect_err(
            endpoint,
            format!("websocket not open within {:?}", cfg.launch_timeout),
        )
    })?
    // A websocket error can quote the URL it could not open (and with it a token).
    .map_err(|e| {
        connect_err(
            endpoint,
            scrub(endpoint, format!("opening the websocket: {e}")),
        )
    })?;
    let owner = Owner::Remote {
        shown: endpoint.to_string(),
    };
    match Running::connect(browser, handler, owner, None, generation, cfg.cdp_timeout).await {
        Ok(running) => Ok(running),
        Err((running, e)) => {
            // Nothing of ours lives there yet: disconnecting is all there is to do.
            running.handler.abort();
            Err(connect_err(
                endpoint,
                format!("Browser.getVersion: {}", crate::logging::chain(&e)),
            ))
        }
    }
}

/// `message` with the endpoint's query string and password replaced by `…`: some connect
/// errors quote the URL they could not open.
fn scrub(endpoint: &Endpoint, message: String) -> String {
    let Ok(u) = url::Url::parse(endpoint.expose()) else {
        return message;
    };
    let mut out = message;
    for secret in [u.query(), u.password()].into_iter().flatten() {
        if !secret.is_empty() {
            out = out.replace(secret, "…");
        }
    }
    out
}

/// What `warmer check` says of a remote browser: its websocket URL answers and reports this
/// version. Connects, reads `Browser.getVersion` and disconnects (the browser is left running).
///
/// # Errors
/// As the daemon's connection would fail.
pub async fn probe(
    cfg: &BrowserConfig,
    endpoint: &Endpoint,
) -> Result<BrowserVersion, BrowserError> {
    let r = attach(cfg, endpoint, 0).await?;
    let version = r.version.clone();
    r.handler.abort();
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = r#"{
       "Browser": "Chrome/140.0.7339.185",
       "Protocol-Version": "1.3",
       "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) ...",
       "webSocketDebuggerUrl": "ws://localhost:9223/devtools/browser/0b5e-11"
    }"#;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_websocket_url_gets_the_contacted_address_and_the_endpoint_query() {
        let e = url::Url::parse("http://chrome.internal:9222/?token=T%20x&launch=1").unwrap();
        let ws = ws_from_version(&e, at("10.1.2.3:9222"), CHROME.as_bytes()).unwrap();
        assert_eq!(
            ws,
            "ws://10.1.2.3:9222/devtools/browser/0b5e-11?token=T%20x&launch=1"
        );
        let plain = url::Url::parse("http://127.0.0.1:9222").unwrap();
        let ws = ws_from_version(&plain, at("127.0.0.1:9222"), CHROME.as_bytes()).unwrap();
        assert_eq!(ws, "ws://127.0.0.1:9222/devtools/browser/0b5e-11");
        let own = CHROME.replace("0b5e-11", "0b5e-11?a=1");
        let ws = ws_from_version(&e, at("[::1]:9222"), own.as_bytes()).unwrap();
        assert_eq!(
            ws,
            "ws://[::1]:9222/devtools/browser/0b5e-11?a=1&token=T%20x&launch=1"
        );
    }

    #[test]
    fn answers_that_are_not_a_browser_are_refused_by_name() {
        let e = url::Url::parse("http://h:1?token=secret").unwrap();
        let a = at("127.0.0.1:1");
        let m = ws_from_version(&e, a, b"Host header is specified and is not an IP address")
            .unwrap_err();
        assert!(m.contains("not JSON"), "{m}");
        let m = ws_from_version(&e, a, br#"{"Browser":"x"}"#).unwrap_err();
        assert!(m.contains("no webSocketDebuggerUrl"), "{m}");
        let m = ws_from_version(&e, a, br#"{"webSocketDebuggerUrl":""}"#).unwrap_err();
        assert!(m.contains("no webSocketDebuggerUrl"), "{m}");
        let page = br#"{"webSocketDebuggerUrl":"ws://h:1/devtools/page/9?k=v"}"#;
        let m = ws_from_version(&e, a, page).unwrap_err();
        assert!(
            m.contains("not a browser websocket") && !m.contains("k=v"),
            "{m}"
        );
        assert!(!m.contains("secret"));
    }

    #[test]
    fn the_version_request_keeps_the_path_and_query_and_uses_the_address() {
        let u = url::Url::parse("http://chrome:9222/prefix/?token=t").unwrap();
        assert_eq!(
            version_url(&u, at("10.0.0.9:9222")).as_str(),
            "http://10.0.0.9:9222/prefix/json/version?token=t"
        );
        let u = url::Url::parse("http://127.0.0.1:9222").unwrap();
        assert_eq!(
            version_url(&u, at("127.0.0.1:9222")).as_str(),
            "http://127.0.0.1:9222/json/version"
        );
    }

    #[tokio::test]
    async fn a_ws_endpoint_is_used_as_given() {
        let e = Endpoint::new("ws://127.0.0.1:1/devtools/browser/x?token=t");
        assert_eq!(
            resolve(&e, Duration::from_secs(1)).await.unwrap(),
            e.expose()
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_fast_without_its_token() {
        // A port nothing listens on: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = Endpoint::new(format!("http://127.0.0.1:{port}?token=s3cret"));
        let err = resolve(&e, Duration::from_secs(2)).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, BrowserError::Connect { .. }), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn connect_errors_lose_the_token_and_password() {
        let e = Endpoint::new("ws://u:pw9@h:1/devtools/browser/x?token=s3cret");
        let m = scrub(
            &e,
            "Unable to connect to ws://u:pw9@h:1/devtools/browser/x?token=s3cret".into(),
        );
        assert!(!m.contains("s3cret") && !m.contains("pw9"), "{m}");
    }
}
