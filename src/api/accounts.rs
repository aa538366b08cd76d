//! Login keep-alive: account sessions, status, registration, removal, refresh. Passwords are
//! accepted on registration and written to the account file (0600); they never come back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::EventSession;
use super::extract::AppJson;
use super::{authorized, ApiError, AppState, ErrorBody};
use crate::accounts::{self, AccountFile};
use crate::keepalive::AccountStatus;
use crate::pool::Match;

/// Validates an account id (`^[A-Za-z0-9_-]{1,64}$`) before it is used as a file stem.
///
/// # Errors
///
/// 400 `bad_request` for any other id, so a path such as `../x` never reaches the filesystem.
fn check_account_id(id: &str) -> Result<(), ApiError> {
    accounts::check_id(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The account's live login session, ready to use (same shape as an event session).
#[utoipa::path(get, path = "/api/accounts/{id}/session",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = EventSession), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<EventSession>, ApiError> {
    check_account_id(&id)?;
    match state.accounts.session_of(&id) {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {id:?}"),
        )),
        Some(Err(status)) => {
            let why = status
                .last_error
                .map(|e| format!(": {e}"))
                .unwrap_or_else(|| ": not signed in yet".into());
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_signed_in",
                format!("account {id:?} is not signed in{why}"),
            ))
        }
        Some(Ok(s)) => {
            let creds = state.token.is_some() && authorized(&state, &headers);
            Ok(Json(EventSession::from(&s, Match::Target, None, creds)))
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusOut {
    is_running: bool,
    active_sessions: usize,
    /// Seconds between keep-alive checks (the shortest of the login targets).
    refresh_interval: u64,
    /// Accounts and dropped session files (`source`: `account` or `file`).
    sessions: Vec<AccountStatus>,
    /// Files of the `sessions_dir`s that were not loaded, by name, with the reason.
    skipped_files: Vec<crate::keepalive::SkippedFile>,
}

/// Keep-alive status of every account.
#[utoipa::path(get, path = "/api/accounts/status",
    responses((status = 200, body = StatusOut)), security(("bearer" = [])))]
pub async fn status(State(state): State<AppState>) -> Json<StatusOut> {
    let sessions = state.accounts.statuses();
    Json(StatusOut {
        is_running: state.accounts.enabled(),
        active_sessions: sessions.iter().filter(|s| s.is_active).count(),
        refresh_interval: state.accounts.refresh_interval().as_secs(),
        sessions,
        skipped_files: state.accounts.skipped_files(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    started: usize,
}

/// Checks every account now (and retries given-up ones).
#[utoipa::path(post, path = "/api/accounts/refresh",
    responses((status = 202, body = Started)), security(("bearer" = [])))]
pub async fn refresh(State(state): State<AppState>) -> (StatusCode, Json<Started>) {
    let started = state.accounts.force_all();
    (StatusCode::ACCEPTED, Json(Started { started }))
}

/// An account to register: written to the target's accounts_dir.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Login target (default: the only one with logins).
    target: Option<String>,
    /// Account id (file stem).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    username: String,
    /// Written to the 0600 account file; never returned.
    password: Option<String>,
    /// Or: the daemon's environment variable holding it.
    password_env: Option<String>,
    proxy: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    account: String,
    target: String,
}

/// Registers (or replaces) an account.
#[utoipa::path(post, path = "/api/accounts", request_body = RegisterBody,
    responses((status = 201, body = Registered), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(b): AppJson<RegisterBody>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    check_account_id(&b.id)?;
    let logins: Vec<_> = state
        .pool
        .targets()
        .iter()
        .filter(|t| t.config.login.is_some())
        .collect();
    let t = match &b.target {
        Some(name) => logins
            .iter()
            .find(|t| &t.config.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no login target {name:?}")))?,
        None => match logins.as_slice() {
            [one] => one,
            [] => return Err(ApiError::not_found("no login target configured")),
            _ => {
                return Err(ApiError::unprocessable(
                    "target: several login targets; name one",
                ))
            }
        },
    };
    if b.username.trim().is_empty() {
        return Err(ApiError::unprocessable("username: must not be empty"));
    }
    if b.password.is_some() == b.password_env.is_some() {
        return Err(ApiError::unprocessable(
            "password: give exactly one of password, password_env",
        ));
    }
    if let Some(p) = &b.proxy {
        crate::config::check_proxy(p)
            .map_err(|m| ApiError::unprocessable(format!("proxy: {m}")))?;
    }
    // Config validation guarantees every target with `login` also has an `accounts_dir`.
    let dir = t
        .config
        .accounts_dir
        .clone()
        .expect("login targets have an accounts_dir");
    let file = AccountFile {
        username: b.username,
        password: b.password,
        password_env: b.password_env,
        password_file: None,
        proxy: b.proxy,
    };
    let id = b.id.clone();
    super::error::blocking(move || accounts::write_file(&dir, &id, &file))
        .await?
        .map_err(|e| {
            tracing::error!(error = %crate::logging::chain(&e), "writing account file");
            ApiError::internal()
        })?;
    // Reload the account files so the keep-alive picks the new account up before we answer.
    state.accounts.sync().await;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            account: b.id,
            target: t.config.name.clone(),
        }),
    ))
}

/// Removes an account: its file is deleted, its context disposed, its session retired.
#[utoipa::path(delete, path = "/api/accounts/{id}",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_account_id(&id)?;
    // The same id may exist under several login targets' accounts_dirs: remove it from all.
    let mut removed = false;
    for t in state.pool.targets() {
        if let (Some(_), Some(dir)) = (&t.config.login, &t.config.accounts_dir) {
            removed |= accounts::remove_file(dir, &id).map_err(|e| {
                tracing::error!(error = %crate::logging::chain(&e), "removing account file");
                ApiError::internal()
            })?;
        }
    }
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {id:?}"),
        ));
    }
    state.accounts.sync().await;
    Ok(StatusCode::NO_CONTENT)
}
