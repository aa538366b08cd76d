//! The extractors every handler takes its input through, each turning a bad input into our
//! [`ApiError`] (a 4xx `{"error": {"code", "message"}}`) before the handler runs, as axum's
//! `error-handling` example does:
//!
//! - [`AppJson`] and [`AppQuery`]: axum's `Json` and `Query` with our errors (`415` for a body
//!   not sent as JSON, `413` for one too large, `422` for a JSON body of the wrong shape, `400`
//!   for the rest and for a bad query);
//! - [`EventIdPath`], [`SessionIdPath`] and [`SessionIdHeader`]: the id of the route,
//!   checked against the one id rule ([`crate::ids`]).
//!
//! axum runs extractors in argument order, so a handler lists the id first, then the query,
//! then the body: a request with a bad id is refused for its id, whatever else is wrong.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::ApiError;
use crate::ids::{self, InvalidId};

/// A JSON body; a rejection becomes an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// A query string; a rejection becomes a `400` [`ApiError`] saying what is wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(v) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e {
            JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ),
            JsonRejection::BytesRejection(e) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.body_text(),
            ),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(format!("query: {}", e.body_text()))
    }
}

impl From<InvalidId> for ApiError {
    /// A `400` that names the parameter and the rule, not the id (it may be long, and the
    /// caller has it).
    fn from(e: InvalidId) -> Self {
        ApiError::bad_request(format!("invalid {}: {}", e.kind, ids::RULE))
    }
}

/// The single path parameter of the route, checked against the id rule under the name
/// `kind`. A path axum cannot decode (not UTF-8) keeps axum's own rejection.
async fn path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    kind: &'static str,
) -> Result<String, Response> {
    let Path(id) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    ids::check(kind, &id).map_err(|e| ApiError::from(e).into_response())?;
    Ok(id)
}

/// The `{eventId}` of `/api/sessions/event/{eventId}`, a valid id.
#[derive(Debug, Clone)]
pub struct EventIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EventIdPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state, "eventId").await.map(Self)
    }
}

/// The `{id}` of a session route (`/api/sessions/{id}/usage`, `/api/v1/sessions/{id}`...),
/// a valid id.
#[derive(Debug, Clone)]
pub struct SessionIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_id(parts, state, "id").await.map(Self)
    }
}

/// The session named by the `X-Session-ID` header (`POST /api/v1/fetch`), a valid id.
#[derive(Debug, Clone)]
pub struct SessionIdHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get("x-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("X-Session-ID header is required"))?;
        ids::check("X-Session-ID", id)?;
        Ok(Self(id.to_string()))
    }
}
