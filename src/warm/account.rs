//! Signing in, the one owner of a login account's browser flow: the account's context (its
//! parked one, or a fresh one revived from stored cookies), the signed-in check, the declared
//! login steps ([`super::login`]), and the capture into the account's [`Session`] record. The
//! keep-alive (`crate::keepalive`) and `warmer accounts login` call in here; neither drives
//! the browser itself.

use std::time::Duration;

use super::login::{self, Credentials, LoginError};
use super::{capture_page, Capture, SessionSeed, WarmError, Warmer};
use crate::browser::{BrowserContext, ParkedContext};
use crate::config::LoginConfig;
use crate::fingerprint::Fingerprint;
use crate::session::{Session, SessionState};

/// One account of a login target: what a sign-in needs besides the credentials.
#[derive(Debug, Clone, Copy)]
pub struct SignIn<'a> {
    /// The target's name.
    pub target: &'a str,
    /// The target's `[targets.login]`.
    pub login: &'a LoginConfig,
    /// The account's id (its file name without `.toml`).
    pub account: &'a str,
    /// The account's proxy, if any.
    pub proxy: Option<&'a str>,
    /// Bound of each navigation (the target's, else the browser's).
    pub navigation_timeout: Duration,
    /// The target's `max_age`: a signed-in session is served until now + this.
    pub max_age: Duration,
}

/// What [`keep_signed_in`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The context was still signed in; its cookies were captured again.
    Refreshed,
    /// The login steps ran and the check passed.
    LoggedIn,
}

impl SignIn<'_> {
    /// The account's session record after a capture: `previous` refreshed when it is still
    /// ready (same id, new cookies, new expiry), else a new record with `fingerprint`.
    ///
    /// # Errors
    /// `CaptureFailed` when a new record is needed but no fingerprint was applied.
    pub fn session(
        &self,
        capture: Capture,
        previous: Option<&Session>,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<Session, LoginError> {
        if let Some(p) = previous.filter(|p| p.state == SessionState::Ready) {
            let mut s = p.clone();
            capture.refresh(&mut s);
            s.expires_at = s.refreshed_at + self.max_age.as_millis() as u64;
            return Ok(s);
        }
        let fingerprint = fingerprint
            .cloned()
            .ok_or_else(|| WarmError::CaptureFailed("no fingerprint".into()))?;
        Ok(capture.into_session(SessionSeed {
            target: self.target.to_string(),
            event: None,
            account: Some(self.account.to_string()),
            url: self
                .login
                .check
                .url
                .clone()
                .unwrap_or_else(|| self.login.url.clone()),
            fingerprint,
            proxy: self.proxy.map(str::to_string),
            max_age: self.max_age,
        }))
    }
}

/// Runs the login steps in `ctx`, then the signed-in check. `progress` gets each step's line
/// (never a value), then "checking the session".
///
/// # Errors
/// The step that failed, the check page's error, or `StillSignedOut`.
pub async fn sign_in(
    ctx: &BrowserContext,
    who: &SignIn<'_>,
    creds: &Credentials,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), LoginError> {
    let nav = who.navigation_timeout;
    login::run_steps(ctx, who.login, creds, nav, progress).await?;
    progress("checking the session".into());
    if !login::check(ctx, &who.login.check, nav).await? {
        return Err(LoginError::StillSignedOut);
    }
    Ok(())
}

/// In the account's open context: when it had a session (`known`), checks it is still signed
/// in; else (or when it lapsed) signs in with `creds()`. Then captures the context.
///
/// # Errors
/// The credentials' error, a login step's, the check's, or the capture's.
pub async fn keep_signed_in(
    ctx: &BrowserContext,
    who: &SignIn<'_>,
    known: bool,
    creds: impl FnOnce() -> Result<Credentials, LoginError>,
) -> Result<(Outcome, Capture), LoginError> {
    let nav = who.navigation_timeout;
    if known && login::check(ctx, &who.login.check, nav).await? {
        return Ok((Outcome::Refreshed, capture_page(ctx).await?));
    }
    let creds = creds()?;
    sign_in(ctx, who, &creds, &|line| {
        tracing::debug!(step = %line, "login step");
    })
    .await?;
    Ok((Outcome::LoggedIn, capture_page(ctx).await?))
}

impl Warmer {
    /// The account's context with a page open: `parked` unparked (with `fingerprint`
    /// re-applied) while its browser lives, else a fresh context through `who.proxy` with
    /// `stored`'s fingerprint and cookies (checked before any login), or a new fingerprint.
    /// `fingerprint` is set to the identity applied.
    ///
    /// # Errors
    /// When no context can be opened or prepared.
    pub async fn account_context(
        &self,
        who: &SignIn<'_>,
        parked: Option<ParkedContext>,
        fingerprint: &mut Option<Fingerprint>,
        stored: Option<&Session>,
    ) -> Result<BrowserContext, LoginError> {
        let sup = self.supervisor();
        if let Some(parked) = parked {
            // Back in its context, unless its browser died or is being replaced: then the
            // stored cookies go into a fresh one, as after a crash.
            let current = sup.current().map(|b| b.generation);
            match fingerprint.as_ref() {
                Some(fp) if !parked.is_gone() && current == Some(parked.generation()) => {
                    let ctx = parked.unpark().await.map_err(WarmError::from)?;
                    ctx.apply_fingerprint(fp).await.map_err(WarmError::from)?;
                    tracing::debug!(account = %who.account, "account context unparked");
                    return Ok(ctx);
                }
                _ => parked.dispose().await,
            }
        }
        let ctx = sup.new_context(who.proxy).await.map_err(WarmError::from)?;
        let fp = match stored {
            Some(s) => s.fingerprint.clone(),
            None => self.sample_fingerprint().await?,
        };
        ctx.apply_fingerprint(&fp).await.map_err(WarmError::from)?;
        *fingerprint = Some(fp);
        if let Some(s) = stored {
            // Revive: the stored cookies go back in and are checked before any login.
            ctx.set_cookies(&s.cookies).await.map_err(WarmError::from)?;
        }
        Ok(ctx)
    }

    /// Signs `who` in from scratch (`warmer accounts login`): a fresh context, a new
    /// fingerprint, the login steps and check, the capture into a new session record; the
    /// context is disposed. `progress` gets one line per phase and step (never a value).
    ///
    /// # Errors
    /// As [`sign_in`], or when no context can be opened.
    pub async fn sign_in(
        &self,
        who: &SignIn<'_>,
        creds: &Credentials,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Session, LoginError> {
        progress("starting browser and opening a fresh context".into());
        let ctx = self
            .supervisor()
            .new_context(who.proxy)
            .await
            .map_err(WarmError::from)?;
        let out = async {
            let fp = self.sample_fingerprint().await?;
            ctx.apply_fingerprint(&fp).await.map_err(WarmError::from)?;
            progress(format!(
                "signing in as {} at {}",
                creds.username,
                crate::browser::redact_url(&who.login.url)
            ));
            sign_in(&ctx, who, creds, progress).await?;
            who.session(capture_page(&ctx).await?, None, Some(&fp))
        }
        .await;
        ctx.dispose().await;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::now_ms;

    fn fixture() -> Session {
        serde_json::from_str(include_str!("../../tests/fixtures/session_v1.json")).unwrap()
    }

    fn login() -> LoginConfig {
        toml::from_str(
            r##"
            url = "http://127.0.0.1:1/login"
            steps = [{ click = "button" }]
            check = { url = "http://127.0.0.1:1/me", selector = "#me" }
            "##,
        )
        .unwrap()
    }

    fn capture() -> Capture {
        let s = fixture();
        Capture {
            cookies: s.cookies[..1].to_vec(),
            origins: Vec::new(),
            observed: Default::default(),
        }
    }

    #[test]
    fn a_ready_previous_session_is_refreshed_else_a_new_one_is_made() {
        let login = login();
        let who = SignIn {
            target: "t",
            login: &login,
            account: "alice",
            proxy: None,
            navigation_timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(60),
        };
        let previous = fixture();
        let s = who.session(capture(), Some(&previous), None).unwrap();
        assert_eq!(s.id, previous.id);
        assert_eq!(s.cookies.len(), 1);
        assert_eq!(s.origins, previous.origins, "no storage captured: kept");
        assert_eq!(s.expires_at, s.refreshed_at + 60_000);

        let mut retired = previous.clone();
        retired.state = SessionState::Retired;
        let err = who.session(capture(), Some(&retired), None).unwrap_err();
        assert!(
            matches!(err, LoginError::Warm(WarmError::CaptureFailed(_))),
            "{err}"
        );
        let fp = previous.fingerprint.clone();
        let s = who.session(capture(), Some(&retired), Some(&fp)).unwrap();
        assert_ne!(s.id, previous.id);
        assert_eq!(s.account.as_deref(), Some("alice"));
        assert_eq!(s.url, "http://127.0.0.1:1/me");
        assert_eq!(s.state, SessionState::Ready);
        assert!(s.created_at >= now_ms() - 5_000);
    }
}
