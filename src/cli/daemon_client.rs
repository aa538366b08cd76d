//! Talking to a running daemon over its HTTP API (when it holds the store).

use anyhow::{bail, Context as _, Result};

use crate::config::Config;

/// Sends a request to the daemon and returns its JSON answer.
///
/// # Errors
/// When the daemon cannot be reached or answers with an error (its message is kept).
pub(super) async fn daemon_call(
    base: &str,
    req: reqwest::RequestBuilder,
) -> Result<serde_json::Value> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("asking the daemon at {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the daemon answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

/// A POST to the running daemon at `path`, with its token when one is configured.
pub(super) fn daemon_post(
    config: &Config,
    path: &str,
) -> Result<(String, reqwest::RequestBuilder)> {
    daemon_request(config, reqwest::Method::POST, path)
}

/// A request to the running daemon at `path`, with its token when one is configured; also
/// returns the daemon's base URL.
pub(super) fn daemon_request(
    config: &Config,
    method: reqwest::Method,
    path: &str,
) -> Result<(String, reqwest::RequestBuilder)> {
    let addr = config.server.listen;
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let base = format!("http://{host}");
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = crate::daemon::load_token(config)? {
        req = req.bearer_auth(token);
    }
    Ok((base, req))
}
