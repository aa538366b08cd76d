//! The one API error type: every failure becomes `{"error": {"code", "message"}}` with the
//! right status. 5xx bodies stay generic; the real error is logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

use crate::pool::PoolError;
use crate::store::StoreError;
use crate::warm::WarmError;

/// `Retry-After` of a [`ApiError::store_unavailable`]: a store that comes back is used again
/// within a second or two (the next call reconnects).
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`no_session`, `invalid_body`, ...).
    pub code: &'static str,
    /// What a person reads; never secrets, and nothing internal on a 5xx.
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1) when set.
    pub retry_after: Option<Duration>,
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an [`ErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code.
    pub code: String,
    /// What a person reads.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A `400 bad_request`: the request is malformed (a bad id, query or value).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A `422 invalid_body`: well-formed JSON of the wrong shape or with a bad value.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
    }

    /// A `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 500 whose cause was logged; the body says nothing more.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// A `503 store_unavailable` with `Retry-After`: the shared store (Redis) cannot be
    /// reached and this request needs it. The body names no host or credential (the cause is
    /// logged; `/readyz` says it).
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the shared store cannot be reached right now and this request needs it; \
             retry shortly (sessions without a lease are still served)",
        )
        .retry(STORE_RETRY_AFTER)
    }

    fn retry(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        let msg = e.to_string();
        match e {
            PoolError::UnknownTarget(_) => Self::new(StatusCode::NOT_FOUND, "unknown_target", msg),
            PoolError::UnknownSession(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_session", msg)
            }
            PoolError::Retired(_) => Self::new(StatusCode::GONE, "session_retired", msg),
            PoolError::NoneReady(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "no_session", msg)
                    .retry(Duration::from_secs(5))
            }
            PoolError::AllBusy(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "all_sessions_busy", msg)
                    .retry(Duration::from_secs(2))
            }
            PoolError::Busy { retry_after, .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "warm_capacity_full", msg)
                    .retry(retry_after)
            }
            PoolError::NoEvents(_) => Self::new(StatusCode::CONFLICT, "no_events", msg),
            // The target says the event does not exist: the caller's input, not a retryable
            // failure of ours.
            PoolError::Warm(WarmError::TargetHttp {
                status: 404 | 410, ..
            }) => Self::new(StatusCode::NOT_FOUND, "event_not_found", msg),
            PoolError::Warm(w) => {
                let status = match w {
                    WarmError::NavigationTimeout { .. } | WarmError::WarmTimeout { .. } => {
                        StatusCode::GATEWAY_TIMEOUT
                    }
                    WarmError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    WarmError::BrowserGone(_) | WarmError::Browser(_) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    _ => StatusCode::BAD_GATEWAY,
                };
                Self::new(status, warm_code(&w), w.to_string())
            }
            PoolError::UrlNotAllowed { .. } | PoolError::CustomProxyRefused => {
                let code = if matches!(e, PoolError::CustomProxyRefused) {
                    "custom_proxy_not_allowed"
                } else {
                    "url_not_allowed"
                };
                Self::new(StatusCode::FORBIDDEN, code, msg)
            }
            PoolError::ProxyUnreachable => {
                Self::new(StatusCode::BAD_GATEWAY, "proxy_unreachable", msg)
            }
            PoolError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            // A shared store (Redis) that cannot be reached: what this request needs from it
            // (a hold across daemons, a write) waits until it is back. Not the daemon's fault
            // and soon over: 503 with Retry-After, never a 500.
            PoolError::Store(StoreError::Unavailable { .. }) => {
                tracing::warn!(error = %crate::logging::chain(&e), "store unavailable in API request");
                Self::store_unavailable()
            }
            PoolError::Store(_) => {
                tracing::error!(error = %msg, "store error in API request");
                Self::internal()
            }
        }
    }
}

fn warm_code(w: &WarmError) -> &'static str {
    w.kind()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Runs blocking I/O (store, files) off the async workers.
///
/// # Errors
/// `internal` when the blocking task panicked.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::internal()
    })
}
