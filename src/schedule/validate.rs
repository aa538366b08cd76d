//! Validation: every `validate_every`, each ready event session is checked against its
//! target's health policy, then its target's validate request is sent over plain HTTP with the
//! session's headers and cookies (no browser). A failure retires the session
//! (`validation failed: ...`) and the top-up replaces it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::TargetConfig;
use crate::export;
use crate::pool::Pool;
use crate::session::{now_ms, RetireReason, Session, ValidationFailure, Verdict};
use crate::store::Work;
use crate::warm::Warm;

/// The validation worker: [`run_once`] every `tick`.
pub async fn run(pool: Arc<Pool>, tick: Duration, token: CancellationToken) {
    super::every("validate", tick, Duration::from_secs(300), token, || {
        let pool = pool.clone();
        async move {
            let Checked { passed, retired } = run_once(&pool, false).await;
            if passed + retired > 0 {
                tracing::info!(passed, retired, "validation tick");
            }
        }
    })
    .await
}

/// What a validation round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Sessions that passed.
    pub passed: usize,
    /// Sessions that failed and were retired.
    pub retired: usize,
}

/// Validates the ready event sessions due for it (with `force`, every one not validated since:
/// `POST /api/sessions/validate`), one after the other, until shutdown; each claimed by name,
/// so of the daemons sharing a store one validates it.
pub async fn run_once<W: Warm>(pool: &Pool<W>, force: bool) -> Checked {
    // Forced: every session not validated since it was asked (by any daemon).
    let asked = now_ms();
    let every = |s: &Session, t: &TargetConfig| {
        let last = s.health.last_validated_at.unwrap_or(s.created_at);
        (force && last <= asked)
            || now_ms().saturating_sub(last) >= t.validate_every.as_millis() as u64
    };
    let work = |session| Work::Validate { session };
    let period = |t: &TargetConfig| t.validate_every;
    let passed = super::each_claimed(pool, work, period, every, |s| async move {
        match validate_one(pool, &s).await {
            Ok(()) => {
                pool.metrics.event("validate", "ok");
                pool.validated(&s.id).await;
                true
            }
            Err(why) => {
                pool.metrics.event("validate", "failed");
                let _ = pool
                    .retire(&s.id, RetireReason::ValidationFailed(why), true)
                    .await;
                false
            }
        }
    })
    .await;
    let ok = passed.iter().filter(|p| **p).count();
    Checked {
        passed: ok,
        retired: passed.len() - ok,
    }
}

/// The health policy, then the target's validate request (when it has one).
async fn validate_one<W: Warm>(pool: &Pool<W>, s: &Session) -> Result<(), ValidationFailure> {
    let t = pool
        .target(&s.target)
        .map_err(|_| ValidationFailure::UnknownTarget(s.target.clone()))?;
    if let Verdict::Retire(r) = t.policy.check(s, now_ms()) {
        return Err(ValidationFailure::Policy(Box::new(r)));
    }
    let Some(v) = &t.config.validate else {
        return Ok(());
    };
    let url = v
        .url
        .replace("{event}", s.event.as_deref().unwrap_or_default());
    let parsed = url::Url::parse(&url).map_err(ValidationFailure::BadUrl)?;
    let mut req = client(s.proxy.as_deref()).get(parsed.clone());
    for (k, val) in s.fingerprint.headers() {
        req = req.header(k, val);
    }
    let cookie = export::cookie_header(s, &parsed, now_ms());
    if !cookie.is_empty() {
        req = req.header("Cookie", cookie);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ValidationFailure::Request(e.without_url().to_string()))?;
    let got = resp.status().as_u16();
    if got != v.expect_status {
        return Err(ValidationFailure::Status {
            got,
            expected: v.expect_status,
        });
    }
    Ok(())
}

/// One HTTP client per proxy (no redirects followed, 15 s timeout), kept for the process:
/// a client holds no cookies, only pooled connections, so every pool may share it.
fn client(proxy: Option<&str>) -> reqwest::Client {
    static CLIENTS: OnceLock<Mutex<HashMap<Option<String>, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    clients
        .entry(proxy.map(str::to_string))
        .or_insert_with(|| {
            let mut b = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15));
            if let Some(p) = proxy.and_then(|p| reqwest::Proxy::all(p).ok()) {
                b = b.proxy(p);
            } else {
                b = b.no_proxy();
            }
            b.build().unwrap_or_default()
        })
        .clone()
}
