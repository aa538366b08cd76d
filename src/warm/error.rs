//! Why a warm failed ([`WarmError`], each variant a metrics label) and whom it blames
//! ([`Blame`]): the event, the target, or the browser.

use std::time::Duration;

use super::{login, ready};
use crate::browser::BrowserError;

/// Why a warm failed. Each variant is also a metrics label (`WarmError::kind`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmError {
    /// One navigation did not load within the navigation timeout.
    #[error("navigation to {url} timed out after {after:?}")]
    NavigationTimeout {
        /// The page (redacted: no query string).
        url: String,
        /// The navigation timeout.
        after: Duration,
    },
    /// The whole warm (every step, the warm-up dwell included) overran the pool's bound on it.
    #[error("warm of {url} timed out after {after:?}")]
    WarmTimeout {
        /// The event page (redacted).
        url: String,
        /// The bound: twice the navigation timeout, plus the warm-up, plus 30 s.
        after: Duration,
    },
    /// A revisit's page redirected to an origin its session may not load (nothing was loaded
    /// there). The pool answers it as a URL outside the target.
    #[error("a redirect to {origin} was refused")]
    RedirectRefused {
        /// The refused origin (never its path or query).
        origin: String,
    },
    /// The browser died or its connection closed during the warm.
    #[error("browser gone: {0}")]
    BrowserGone(String),
    /// The page's document answered with an HTTP error status.
    #[error("target answered HTTP {status} for {url}")]
    TargetHttp {
        /// The status.
        status: u16,
        /// The page (redacted).
        url: String,
    },
    /// The page could not be loaded at all: DNS, refused or reset connection, TLS, proxy, a
    /// download instead of a page (Chromium's `net::ERR_*`).
    #[error("network error loading {url}: {message}")]
    Network {
        /// The page (redacted).
        url: String,
        /// Chromium's error code, and what it means here when that is not obvious.
        message: String,
    },
    /// Cookies, storage or what the page observed could not be read.
    #[error("capture failed: {0}")]
    CaptureFailed(String),
    /// The event page is larger than [`MAX_PAGE_BYTES`].
    #[error("page of {bytes} bytes is larger than the limit of {limit} bytes")]
    PageTooLarge {
        /// The page's HTML size.
        bytes: u64,
        /// [`MAX_PAGE_BYTES`].
        limit: u64,
    },
    /// Another browser failure (a CDP call timed out or failed, no browser could launch,
    /// shutdown).
    #[error(transparent)]
    Browser(BrowserError),
    /// The request itself is wrong (an event page URL that does not parse).
    #[error("invalid warm request: {0}")]
    Invalid(String),
    /// The page did not get ready (`ready_when`) within the warm-up: which conditions were
    /// still missing. Such a session is never stored or served.
    #[error("{0}")]
    NotReady(ready::NotReady),
    /// A step of the target's warm journey (`warm_steps`) failed or timed out.
    #[error("warm {0}")]
    Step(Box<login::StepFailed>),
}

impl WarmError {
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            WarmError::NavigationTimeout { .. } => "navigation_timeout",
            WarmError::WarmTimeout { .. } => "warm_timeout",
            WarmError::RedirectRefused { .. } => "redirect_refused",
            WarmError::BrowserGone(_) => "browser_gone",
            WarmError::TargetHttp { .. } => "target_http",
            WarmError::Network { .. } => "network",
            WarmError::CaptureFailed(_) => "capture_failed",
            WarmError::PageTooLarge { .. } => "page_too_large",
            WarmError::Browser(e) => e.kind(),
            WarmError::Invalid(_) => "invalid",
            WarmError::NotReady(_) => "not_ready",
            WarmError::Step(f) => match &f.failure {
                login::StepFailure::Timeout(_) => "step_timeout",
                login::StepFailure::Failed(_) => "step_failed",
                login::StepFailure::Page(e) => e.kind(),
            },
        }
    }

    /// Whom the failure blames: the event asked for, the target site (or its proxy), or the
    /// browser. The pool turns this into a back-off of the event or of the target.
    pub fn blame(&self) -> Blame {
        match self {
            // The site says this event does not exist (any more).
            WarmError::TargetHttp {
                status: 404 | 410, ..
            } => Blame::Event,
            // 425 Too Early: the event exists but is not published yet.
            WarmError::TargetHttp { status: 425, .. } => Blame::EventNotReady,
            // The event's URL could not be built or parsed: its id is the odd one out.
            WarmError::Invalid(_) => Blame::Event,
            // A journey's page load keeps its own classification (the event page's 404).
            WarmError::Step(f) => match &f.failure {
                login::StepFailure::Page(e) => e.blame(),
                _ => Blame::Target,
            },
            // A browser that died, could not launch or is shutting down says nothing about the
            // site.
            WarmError::BrowserGone(_)
            | WarmError::Browser(
                BrowserError::Gone(_) | BrowserError::Launch { .. } | BrowserError::ShuttingDown,
            ) => Blame::Browser,
            // 5xx and other statuses, network errors, timeouts, oversized pages, failed captures.
            _ => Blame::Target,
        }
    }

    /// Whether the failure says something about the target (or its proxy) whatever the event,
    /// so the target backs off.
    pub fn blames_target(&self) -> bool {
        self.blame() == Blame::Target
    }
}

/// Whom a failed warm blames (`WarmError::blame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The event: unknown to the site (404, 410) or its page URL is invalid. Only that event
    /// backs off; the target stays healthy.
    Event,
    /// The event is not published yet (425). The event's fault when it was asked for by name;
    /// on an event the pool picked from its store (which should hold published events only) it
    /// says the site is not serving its events.
    EventNotReady,
    /// The site or its proxy: 5xx and other error statuses, network errors, timeouts.
    Target,
    /// The browser died, could not launch or is shutting down: nobody's fault but ours.
    Browser,
}

impl From<BrowserError> for WarmError {
    fn from(e: BrowserError) -> Self {
        match e {
            BrowserError::Gone(m) => WarmError::BrowserGone(m),
            other => WarmError::Browser(other),
        }
    }
}
