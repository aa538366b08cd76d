//! Where a session's browser may go: the origins of its own target. A caller who names a URL
//! (`POST /api/v1/fetch`) must not be able to point a session's browser at another host — a
//! cloud metadata service, a private address, another service on loopback — and read the
//! answer back. [`UrlPolicy`] is the allow-list; [`Interceptor`] enforces it inside the browser
//! through the CDP `Fetch` domain, so a redirect out of the list is stopped before its request
//! leaves the browser, and a page's scripts cannot reach an internal address either.

use chromiumoxide::cdp::browser_protocol::fetch::{
    AuthChallengeResponse, AuthChallengeResponseResponse, ContinueRequestParams,
    ContinueWithAuthParams, EnableParams, EventAuthRequired, EventRequestPaused, FailRequestParams,
    RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::Page;
use futures::StreamExt;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The origins (`scheme://host:port`) a session's browser may load documents from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    origins: Vec<String>,
}

/// The origin of `url` as `scheme://host:port` (default ports written out), for http(s) URLs.
pub fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    matches!(u.scheme(), "http" | "https")
        .then(|| web_origin(&u))
        .flatten()
}

/// The http(s) origin of `u`, a WebSocket URL counting as its http(s) counterpart.
fn web_origin(u: &url::Url) -> Option<String> {
    let scheme = match u.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => return None,
    };
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(format!("{scheme}://{}:{port}", host.to_ascii_lowercase()))
}

impl UrlPolicy {
    /// The policy allowing the origins of `urls` (URL templates with `{event}` are fine; what
    /// is not an http(s) URL is ignored).
    pub fn from_urls<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Self {
        let mut seen = HashSet::new();
        let origins = urls
            .into_iter()
            .filter_map(|u| origin_of(&u.as_ref().replace("{event}", "x")))
            .filter(|o| seen.insert(o.clone()))
            .collect();
        Self { origins }
    }

    /// The same policy, also allowing the origins of `more`.
    #[must_use]
    pub fn with<S: AsRef<str>>(&self, more: impl IntoIterator<Item = S>) -> Self {
        let mut urls = self.origins.clone();
        urls.extend(more.into_iter().map(|s| s.as_ref().to_string()));
        Self::from_urls(urls)
    }

    /// Whether a document at `url` may be loaded.
    pub fn allows(&self, url: &str) -> bool {
        origin_of(url).is_some_and(|o| self.origins.contains(&o))
    }

    /// Whether a page's subresource at `url` may be loaded: anything but an internal address
    /// (loopback, private, link-local, unspecified; `localhost` and cloud metadata names) of
    /// an origin not in the list.
    pub fn allows_subresource(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url) else {
            return true;
        };
        // Most subresources are not internal: no origin string is built for them.
        !is_internal(&u) || web_origin(&u).is_none_or(|o| self.origins.contains(&o))
    }

    /// The allowed origins, for error messages.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }
}

/// Whether `u`'s host is an internal address or name.
fn is_internal(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => internal_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => internal_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d == "metadata.google.internal"
                || d.ends_with(".internal")
        }
        None => false,
    }
}

/// Loopback, private, link-local, unique-local, unspecified or CGNAT.
pub fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal_ip(IpAddr::V4(v4)))
        }
    }
}

/// Enforces a [`UrlPolicy`] on one page: every request pauses in the browser and is let go or
/// failed (`BlockedByClient`) here; a proxy's credentials are answered here too (chromiumoxide's
/// own answering would let every paused request go). Stops when the page closes or when
/// dropped.
pub struct Interceptor {
    blocked: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Interceptor {
    /// Starts intercepting `page`'s requests. `cdp_timeout` bounds each answer.
    ///
    /// # Errors
    /// When a listener cannot be registered or `Fetch.enable` fails.
    pub(super) async fn start(
        page: &Page,
        policy: Arc<UrlPolicy>,
        credentials: Option<chromiumoxide::auth::Credentials>,
        cdp_timeout: Duration,
    ) -> Result<Self, chromiumoxide::error::CdpError> {
        let mut paused = page.event_listener::<EventRequestPaused>().await?;
        let mut auth = page.event_listener::<EventAuthRequired>().await?;
        let enable = EnableParams::builder()
            .pattern(
                RequestPattern::builder()
                    .url_pattern("*")
                    .request_stage(RequestStage::Request)
                    .build(),
            )
            .handle_auth_requests(credentials.is_some())
            .build();
        page.execute(enable).await?;
        let blocked = Arc::new(Mutex::new(None));
        let seen_blocked = blocked.clone();
        let page = page.clone();
        let task = tokio::spawn(async move {
            let mut answered: HashSet<String> = HashSet::new();
            loop {
                tokio::select! {
                    ev = paused.next() => {
                        let Some(ev) = ev else { break };
                        let url = &ev.request.url;
                        let ok = if ev.resource_type == ResourceType::Document {
                            policy.allows(url)
                        } else {
                            policy.allows_subresource(url)
                        };
                        let id = ev.request_id.clone();
                        let r = if ok {
                            tokio::time::timeout(cdp_timeout, page.execute(ContinueRequestParams::new(id))).await.map(|r| r.map(drop))
                        } else {
                            if ev.resource_type == ResourceType::Document {
                                let mut b = seen_blocked.lock().unwrap_or_else(|e| e.into_inner());
                                b.get_or_insert_with(|| url.clone());
                            }
                            tracing::info!(url = %super::context::redact_url(url), kind = ?ev.resource_type, "request refused: not one of the target's origins");
                            tokio::time::timeout(cdp_timeout, page.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient))).await.map(|r| r.map(drop))
                        };
                        if !matches!(r, Ok(Ok(()))) {
                            tracing::debug!("answering a paused request failed (page closing?)");
                        }
                    }
                    ev = auth.next() => {
                        let Some(ev) = ev else { break };
                        let first = answered.insert(ev.request_id.inner().clone());
                        let response = match (&credentials, first) {
                            (Some(c), true) => {
                                let mut r = AuthChallengeResponse::new(AuthChallengeResponseResponse::ProvideCredentials);
                                r.username = Some(c.username.clone());
                                r.password = Some(c.password.clone());
                                r
                            }
                            (Some(_), false) => AuthChallengeResponse::new(AuthChallengeResponseResponse::CancelAuth),
                            (None, _) => AuthChallengeResponse::new(AuthChallengeResponseResponse::Default),
                        };
                        let params = ContinueWithAuthParams::new(ev.request_id.clone(), response);
                        let _ = tokio::time::timeout(cdp_timeout, page.execute(params)).await;
                    }
                }
            }
        });
        Ok(Self { blocked, task })
    }

    /// The first document URL refused on this page, if any.
    pub fn blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_with_their_ports() {
        let p = UrlPolicy::from_urls([
            "http://127.0.0.1:8080/event/{event}",
            "https://Tickets.Example/login",
        ]);
        assert!(p.allows("http://127.0.0.1:8080/anything?x=1"));
        assert!(p.allows("https://tickets.example:443/api/me"));
        assert!(!p.allows("http://127.0.0.1:8081/"));
        assert!(!p.allows("http://tickets.example/"), "scheme differs");
        assert!(!p.allows("http://169.254.169.254/latest/meta-data/"));
        assert!(!p.allows("file:///etc/passwd"));
        assert_eq!(p.origins().len(), 2);
        let q = p.with(["https://sso.example/"]);
        assert!(q.allows("https://sso.example/auth"));
        assert_eq!(q.with(["https://sso.example/x"]).origins().len(), 3);
    }

    #[test]
    fn subresources_may_not_reach_internal_addresses() {
        let p = UrlPolicy::from_urls(["http://127.0.0.1:8080/"]);
        assert!(p.allows_subresource("https://cdn.example/app.js"));
        assert!(p.allows_subresource("http://127.0.0.1:8080/app.js"));
        for u in [
            "http://127.0.0.1:9999/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://localhost:8080/",
            "http://metadata.google.internal/",
            "http://100.64.0.1/",
            "ws://127.0.0.1:9222/devtools",
            "http://news.internal/",
        ] {
            assert!(!p.allows_subresource(u), "{u}");
        }
        assert!(p.allows_subresource("ws://127.0.0.1:8080/socket"));
        let q = UrlPolicy::from_urls(["http://news.internal/"]);
        assert!(q.allows_subresource("http://news.internal/app.js"));
    }
}
