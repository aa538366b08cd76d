//! Driving a stored session: `fetch` (API, FlareSolverr) and cookie refresh load a page in
//! a context revived from the session ([`crate::warm::Warmer::revisit`]) under the host's warm
//! slot, and store the cookies it ends with. Also where a session's browser may go.

use std::sync::Arc;

use super::{Pool, PoolError, TargetRuntime};
use crate::browser::guard::{origin_of, UrlPolicy};
use crate::session::{Session, SessionState};
use crate::warm::{FetchOptions, Revisit, Warm, WarmError};

/// Result of `fetch` in a session's live context.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FetchResult {
    /// The document's HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The URL the page ended on (after redirects).
    pub url: String,
    /// The document's HTML.
    pub body: String,
    /// The cookies the context ended with.
    #[schema(value_type = Vec<Object>)]
    pub cookies: Vec<crate::session::Cookie>,
}

impl<W: Warm> Pool<W> {
    /// Loads `url` in a live context revived from the session's stored cookies (and its
    /// fingerprint and proxy), then stores the updated cookies.
    ///
    /// # Errors
    /// `UnknownSession`, `Retired`, or the navigation's error.
    pub async fn fetch(&self, id: &str, url: &str) -> Result<FetchResult, PoolError> {
        self.fetch_with(id, url, &FetchOptions::default()).await
    }

    /// [`Pool::fetch`] with options: extra cookies, a dwell, media blocked, a form POST, or
    /// leaving the session's record untouched.
    ///
    /// # Errors
    /// As [`Pool::fetch`].
    pub async fn fetch_with(
        &self,
        id: &str,
        url: &str,
        opts: &FetchOptions,
    ) -> Result<FetchResult, PoolError> {
        let s = self
            .get(id)
            .ok_or_else(|| PoolError::UnknownSession(id.to_string()))?;
        if s.state == SessionState::Retired {
            return Err(PoolError::Retired(id.to_string()));
        }
        let policy = self.url_policy(&s)?;
        if !policy.allows(url) {
            return Err(PoolError::UrlNotAllowed {
                what: "url",
                origin: origin_of(url).unwrap_or_else(|| "(not an http(s) URL)".into()),
                target: s.target.clone(),
                allowed: policy.origins().to_vec(),
            });
        }
        // A scraper fetching a page wants its status, whatever it is.
        self.revisit(&s, url, false, opts).await
    }

    /// Where `s`'s browser may go: its target's origins and the origin it was warmed on.
    ///
    /// # Errors
    /// `UnknownTarget` when its target is no longer configured.
    pub fn url_policy(&self, s: &Session) -> Result<UrlPolicy, PoolError> {
        Ok(self.target(&s.target)?.urls.with([s.url.as_str()]))
    }

    /// The first target whose origins (see [`TargetRuntime::url_policy`]) include `url`'s.
    ///
    /// # Errors
    /// `UrlNotAllowed` naming every target's origins when none does.
    pub fn target_for_url(&self, url: &str) -> Result<&Arc<TargetRuntime>, PoolError> {
        self.targets
            .iter()
            .find(|t| t.urls.allows(url))
            .ok_or_else(|| {
                let mut allowed: Vec<String> = Vec::new();
                for t in &self.targets {
                    for o in t.urls.origins() {
                        if !allowed.contains(o) {
                            allowed.push(o.clone());
                        }
                    }
                }
                PoolError::UrlNotAllowed {
                    what: "url",
                    origin: origin_of(url).unwrap_or_else(|| "(not an http(s) URL)".into()),
                    target: "(any configured)".into(),
                    allowed,
                }
            })
    }

    /// Loads `url` in a context revived from `s` (see [`Revisit`]) under its host's warm
    /// slot; unless `opts.detached`, stores the cookies it ends with into `s`'s record
    /// (audited as a refresh). `strict`: an HTTP error status is an error (cookie refresh),
    /// else it is returned (fetch).
    ///
    /// # Errors
    /// `ShuttingDown`, `UrlNotAllowed` for a refused redirect, the revisit's `Warm` error, or
    /// the store's.
    pub async fn revisit(
        &self,
        s: &Session,
        url: &str,
        strict: bool,
        opts: &FetchOptions,
    ) -> Result<FetchResult, PoolError> {
        let t = self.target(&s.target)?.clone();
        let _slot = tokio::select! {
            p = t.host.slots().clone().acquire_owned() => p.map_err(|_| PoolError::ShuttingDown)?,
            _ = self.shutdown.cancelled() => return Err(PoolError::ShuttingDown),
        };
        let policy = Arc::new(self.url_policy(s)?);
        let visit = Revisit {
            url,
            strict,
            opts,
            policy: policy.clone(),
            navigation_timeout: self.nav_timeout(&t.config),
            shutdown: &self.shutdown,
        };
        let seen = match self.warmer.revisit(s, &visit).await {
            Ok(seen) => seen,
            Err(WarmError::RedirectRefused { origin }) => {
                return Err(PoolError::UrlNotAllowed {
                    what: "a redirect to",
                    origin,
                    target: s.target.clone(),
                    allowed: policy.origins().to_vec(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let result = FetchResult {
            status: seen.status,
            url: seen.url,
            body: seen.body,
            cookies: seen.capture.cookies.clone(),
        };
        if opts.detached {
            return Ok(result);
        }
        let updated = self
            .index()
            .update(&s.id, |sess| seen.capture.refresh(sess));
        if let Some(u) = updated {
            self.put_session(&u).await?;
            self.audit(Some(&u), "refresh", format!("{} cookies", u.cookies.len()))
                .await;
        }
        Ok(result)
    }
}
