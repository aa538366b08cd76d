//! Why a browser operation failed ([`BrowserError`]), and [`cdp`]: the one wrapper that bounds
//! every CDP call by a timeout and fails it at once when the browser is gone (chromiumoxide
//! would otherwise wait forever on a dead browser).

use chromiumoxide::error::CdpError;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a browser operation failed. Callers and metrics tell these apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    /// The browser process died or its connection closed during the call.
    #[error("browser gone: {0}")]
    Gone(String),
    /// The call did not finish within its timeout.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The call (`Page.navigate`, `navigating to https://x/…`).
        what: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The browser could not be launched.
    #[error("launching {executable}: {message}")]
    Launch {
        /// The Chromium binary.
        executable: String,
        /// Why (not found, spawn failed, no DevTools URL, with its last stderr lines).
        message: String,
    },
    /// A remote browser (`browser.endpoint`) could not be reached or is not a browser.
    #[error("connecting to {endpoint}: {message}")]
    Connect {
        /// Its URL as it may be shown (no token, no password).
        endpoint: String,
        /// Why (lookup, `/json/version`, websocket, `Browser.getVersion`).
        message: String,
    },
    /// Chromium answered with an error.
    #[error("{what}: {message}")]
    Protocol {
        /// The call.
        what: String,
        /// Chromium's (or chromiumoxide's) error text.
        message: String,
    },
    /// A navigation failed with one of Chromium's network errors: the page could not be
    /// loaded at all (DNS, refused or reset connection, TLS, a proxy that cannot be reached, an
    /// empty error page, a download instead of a page).
    #[error("{what}: {code}{}", detail.map(|d| format!(" ({d})")).unwrap_or_default())]
    Net {
        /// What was being done, with the URL redacted (`navigating to https://x/…`).
        what: String,
        /// Chromium's error code as it reports it, e.g. `net::ERR_CONNECTION_REFUSED`.
        code: String,
        /// What the code means here when Chromium's own code is misleading (a download
        /// reported as `net::ERR_ABORTED`).
        detail: Option<&'static str>,
    },
    /// The supervisor is shutting down.
    #[error("browser supervisor is shutting down")]
    ShuttingDown,
}

impl BrowserError {
    pub(super) fn from_cdp(what: &str, e: CdpError) -> Self {
        match e {
            CdpError::Ws(_) | CdpError::ChannelSendError(_) | CdpError::NoResponse => {
                BrowserError::Gone(format!("{what}: {e}"))
            }
            CdpError::Io(ref io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                BrowserError::Gone(format!("{what}: {e}"))
            }
            other => BrowserError::Protocol {
                what: what.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BrowserError::Gone(_) => "browser_gone",
            BrowserError::Timeout { .. } => "timeout",
            BrowserError::Launch { .. } => "launch_failed",
            BrowserError::Connect { .. } => "connect_failed",
            BrowserError::Protocol { .. } => "protocol",
            BrowserError::Net { .. } => "network",
            BrowserError::ShuttingDown => "shutting_down",
        }
    }
}

/// Runs one CDP future under `after`, mapping errors; `gone` cuts it short when the browser dies.
pub(crate) async fn cdp<T>(
    what: &str,
    after: Duration,
    gone: &CancellationToken,
    fut: impl Future<Output = Result<T, CdpError>>,
) -> Result<T, BrowserError> {
    tokio::select! {
        biased;
        r = tokio::time::timeout(after, fut) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BrowserError::from_cdp(what, e)),
            Err(_) => {
                if gone.is_cancelled() {
                    Err(BrowserError::Gone(what.to_string()))
                } else {
                    Err(BrowserError::Timeout { what: what.to_string(), after })
                }
            }
        },
        _ = gone.cancelled() => Err(BrowserError::Gone(format!("{what}: connection closed"))),
    }
}

/// The kind of a CDP error, for logs that must not quote CDP traffic.
pub(super) fn cdp_error_kind(e: &CdpError) -> &'static str {
    match e {
        CdpError::Ws(_) => "websocket",
        CdpError::Io(_) => "io",
        CdpError::Serde(_) => "unparsable message",
        CdpError::Chrome(_) | CdpError::ChromeMessage(_) => "chrome error",
        CdpError::Timeout => "timeout",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cdp_timeout_fires_on_a_call_that_never_completes() {
        let gone = CancellationToken::new();
        let r: Result<(), _> = cdp(
            "never",
            Duration::from_millis(20),
            &gone,
            futures::future::pending(),
        )
        .await;
        assert!(matches!(r, Err(BrowserError::Timeout { .. })));
    }

    #[tokio::test]
    async fn cdp_fails_at_once_when_the_browser_is_gone() {
        let gone = CancellationToken::new();
        gone.cancel();
        let r: Result<(), _> = cdp(
            "never",
            Duration::from_secs(60),
            &gone,
            futures::future::pending(),
        )
        .await;
        assert!(matches!(r, Err(BrowserError::Gone(_))));
    }
}
