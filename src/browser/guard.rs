//! Where a session's browser may go: the origins of its own target. A caller who names a URL
//! (`POST /api/v1/fetch`) must not be able to point a session's browser at another host — a
//! cloud metadata service, a private address, another service on loopback — and read the
//! answer back. [`UrlPolicy`] is the allow-list; [`Interceptor`] enforces it inside the browser
//! through the CDP `Fetch` domain, so a redirect out of the list is stopped before its request
//! leaves the browser, and a page's scripts cannot reach an internal address either.
//!
//! The same interceptor also leaves resource types unloaded (`block = ["image", "media",
//! "font", "stylesheet"]` while warming, [`BlockedResource`]): their requests are failed with
//! `BlockedByClient` before they leave the browser. A context with no URL policy and no proxy
//! credentials pauses only requests of the blocked types (one `Fetch` pattern per type), so
//! everything else loads without a round trip through CDP.

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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{cdp_call, BrowserContext, BrowserError};

/// A resource type a warm may leave unloaded (`block = [...]` of a target): what a page shows
/// but a session's cookies do not depend on. Names as in the config: `image`, `media`,
/// `font`, `stylesheet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedResource {
    /// Images (`<img>`, CSS backgrounds, favicons).
    Image,
    /// Audio and video.
    Media,
    /// Web fonts.
    Font,
    /// Stylesheets. Layout-dependent scripts may behave differently without them.
    Stylesheet,
}

impl BlockedResource {
    /// Every blockable type.
    pub const ALL: [BlockedResource; 4] = [
        BlockedResource::Image,
        BlockedResource::Media,
        BlockedResource::Font,
        BlockedResource::Stylesheet,
    ];

    /// Its name in the config.
    pub fn name(self) -> &'static str {
        match self {
            BlockedResource::Image => "image",
            BlockedResource::Media => "media",
            BlockedResource::Font => "font",
            BlockedResource::Stylesheet => "stylesheet",
        }
    }

    /// The CDP resource type it stands for.
    pub fn resource_type(self) -> ResourceType {
        match self {
            BlockedResource::Image => ResourceType::Image,
            BlockedResource::Media => ResourceType::Media,
            BlockedResource::Font => ResourceType::Font,
            BlockedResource::Stylesheet => ResourceType::Stylesheet,
        }
    }
}

/// What an [`Interceptor`] enforces on a page: a URL policy, blocked resource types, or both.
#[derive(Debug, Clone, Default)]
pub struct InterceptRules {
    /// Where the page may go (guarded contexts); `None`: anywhere.
    pub policy: Option<Arc<UrlPolicy>>,
    /// Resource types failed with `BlockedByClient`.
    pub block: Vec<BlockedResource>,
}

impl InterceptRules {
    /// Whether there is nothing to enforce.
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.block.is_empty()
    }

    /// Whether requests of type `t` are blocked.
    fn blocks_type(&self, t: &ResourceType) -> bool {
        self.block.iter().any(|b| b.resource_type() == *t)
    }

    /// The `Fetch` patterns to pause: everything when a policy (or a proxy's challenge, which
    /// any request may meet) must be answered here, else only the blocked types.
    fn patterns(&self, answers_auth: bool) -> Vec<RequestPattern> {
        if self.policy.is_some() || answers_auth {
            return vec![RequestPattern::builder()
                .url_pattern("*")
                .request_stage(RequestStage::Request)
                .build()];
        }
        self.block
            .iter()
            .map(|b| RequestPattern {
                url_pattern: Some("*".into()),
                resource_type: Some(b.resource_type()),
                request_stage: Some(RequestStage::Request),
            })
            .collect()
    }
}

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

/// Enforces [`InterceptRules`] on one page (a [`UrlPolicy`], blocked resource types): requests
/// pause in the browser and are let go or failed (`BlockedByClient`) here; a proxy's
/// credentials are answered here too (chromiumoxide's own answering would let every paused
/// request go). Stops when the page closes or when dropped.
pub struct Interceptor {
    blocked: Arc<Mutex<Option<String>>>,
    /// Requests failed because of their resource type.
    blocked_resources: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Interceptor {
    /// Starts enforcing `rules` on `page` (answering the proxy's challenges with
    /// `credentials`). The page must have no other `Fetch` interception: one interceptor per
    /// page, carrying every rule. `cdp_timeout` bounds each answer; the caller bounds this
    /// call.
    ///
    /// # Errors
    /// When a listener cannot be registered or `Fetch.enable` fails.
    pub async fn start_with(
        page: &Page,
        rules: InterceptRules,
        credentials: Option<chromiumoxide::auth::Credentials>,
        cdp_timeout: Duration,
    ) -> Result<Self, chromiumoxide::error::CdpError> {
        let mut paused = page.event_listener::<EventRequestPaused>().await?;
        let mut auth = page.event_listener::<EventAuthRequired>().await?;
        let enable = EnableParams::builder()
            .patterns(rules.patterns(credentials.is_some()))
            .handle_auth_requests(credentials.is_some())
            .build();
        page.execute(enable).await?;
        let blocked = Arc::new(Mutex::new(None));
        let seen_blocked = blocked.clone();
        let blocked_resources = Arc::new(AtomicU64::new(0));
        let seen_blocked_resources = blocked_resources.clone();
        let page = page.clone();
        let task = tokio::spawn(async move {
            let mut answered: HashSet<String> = HashSet::new();
            loop {
                tokio::select! {
                    ev = paused.next() => {
                        let Some(ev) = ev else { break };
                        let url = &ev.request.url;
                        let id = ev.request_id.clone();
                        if rules.blocks_type(&ev.resource_type) {
                            seen_blocked_resources.fetch_add(1, Ordering::Relaxed);
                            let r = tokio::time::timeout(cdp_timeout, page.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient))).await;
                            if !matches!(r, Ok(Ok(_))) {
                                tracing::debug!("failing a blocked resource failed (page closing?)");
                            }
                            continue;
                        }
                        let ok = match &rules.policy {
                            None => true,
                            Some(policy) if ev.resource_type == ResourceType::Document => policy.allows(url),
                            Some(policy) => policy.allows_subresource(url),
                        };
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
        Ok(Self {
            blocked,
            blocked_resources,
            task,
        })
    }

    /// Requests failed so far because their resource type is blocked.
    pub fn blocked_resources(&self) -> u64 {
        self.blocked_resources.load(Ordering::Relaxed)
    }

    /// The first document URL refused on this page, if any.
    pub fn blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Blocks `block`'s resource types on an *unguarded* context opened without proxy credentials
/// ([`super::Supervisor::new_context`] with no proxy, or a proxy without user info): such a page
/// has no `Fetch` interception of its own. Keep the returned interceptor as long as the page
/// is used; `None` when there is nothing to block. (A guarded context, or one whose proxy needs
/// credentials, already has an interceptor: the rules must go into that one when the context
/// is opened.)
///
/// `cdp_timeout` (`browser.cdp_timeout`) bounds each answer to a paused request.
///
/// # Errors
/// When `Fetch.enable` fails or times out (the CDP timeout), or the browser is gone.
pub async fn block_resources(
    ctx: &BrowserContext,
    block: &[BlockedResource],
    cdp_timeout: Duration,
) -> Result<Option<Interceptor>, BrowserError> {
    if block.is_empty() {
        return Ok(None);
    }
    let rules = InterceptRules {
        policy: None,
        block: block.to_vec(),
    };
    let interceptor = cdp_call(
        ctx,
        "Fetch.enable (blocked resources)",
        Interceptor::start_with(ctx.page(), rules, None, cdp_timeout),
    )
    .await?;
    Ok(Some(interceptor))
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

    #[test]
    fn blocked_types_deserialise_by_name_and_pick_their_patterns() {
        #[derive(serde::Deserialize)]
        struct T {
            block: Vec<BlockedResource>,
        }
        let t: T = toml::from_str(r#"block = ["image", "media", "font", "stylesheet"]"#).unwrap();
        assert_eq!(t.block, BlockedResource::ALL.to_vec());
        for b in BlockedResource::ALL {
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.name())
            );
        }
        let e = toml::from_str::<T>(r#"block = ["script"]"#).err().unwrap();
        assert!(e.to_string().contains("script"), "{e}");

        let rules = InterceptRules {
            policy: None,
            block: vec![BlockedResource::Image, BlockedResource::Font],
        };
        assert!(rules.blocks_type(&ResourceType::Image));
        assert!(!rules.blocks_type(&ResourceType::Script));
        assert!(!rules.blocks_type(&ResourceType::Document));
        // Only the blocked types pause...
        let p = rules.patterns(false);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].resource_type, Some(ResourceType::Image));
        assert_eq!(p[1].resource_type, Some(ResourceType::Font));
        // ...unless every request must be seen (a proxy's challenge, a URL policy).
        let all = rules.patterns(true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].resource_type, None);
        let guarded = InterceptRules {
            policy: Some(Arc::new(UrlPolicy::from_urls(["http://127.0.0.1:1/"]))),
            block: Vec::new(),
        };
        assert_eq!(guarded.patterns(false).len(), 1);
        assert!(InterceptRules::default().is_empty() && !guarded.is_empty());
    }
}
