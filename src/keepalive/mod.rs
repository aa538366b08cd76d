//! Login sessions kept alive: one live context per account (never two), checked every
//! `refresh_every` (jittered). Signed in → the visit refreshes it and the cookies are captured;
//! lapsed → log in again; a failed login backs off exponentially and, after
//! `max_login_attempts`, waits for the account file to change or an explicit refresh. After a
//! crash or restart, stored cookies go into a fresh context and are checked before any login.
//! This module owns the when (schedule, back-off, give-up, account files, statuses); the
//! browser flow (context, check, sign-in, capture into a `Session`) is `warm::account`'s, and
//! `schedule::keepalive` runs it. Sessions dropped as files into a target's `sessions_dir`
//! (seed 004) are kept alive by the same keep-alive, check only: `keepalive::dropped`.

use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::accounts::{self, Account};
use crate::browser::ParkedContext;
use crate::config::TargetConfig;
use crate::pool::{chain, Pool, ITEM_REST};
use crate::session::{now_ms, RetireReason, Session, SessionState, UnixMillis};
use crate::store::Work;
use crate::warm::account::{self, Outcome, SignIn};
use crate::warm::login::{Credentials, LoginError};
use crate::warm::{Warm, WarmError};

mod dropped;

pub use dropped::SkippedFile;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `GET /api/accounts/status` shows of one account.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The account's id (its file name without `.toml`; a dropped session's file stem).
    pub account: String,
    /// The login target it signs in to.
    pub target: String,
    /// The username it signs in as (never the password); empty (and left out) for a dropped
    /// session, which has no credentials.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Where the session comes from: an account file that signs in, or a session file
    /// dropped into the target's `sessions_dir` (kept alive, never signed in again).
    pub source: SessionSource,
    /// The dropped session's file (source `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its current session, when it has one.
    pub session_id: Option<String>,
    /// Whether the last check found it signed in.
    pub is_active: bool,
    /// Unix ms of the last successful refresh or login.
    pub last_refresh: Option<UnixMillis>,
    /// Checks that found it still signed in.
    pub refresh_count: u64,
    /// Successful sign-ins.
    pub login_count: u64,
    /// Failed sign-ins in a row.
    pub failed_attempts: u32,
    /// True after `max_login_attempts` failures: no retries until the file changes.
    pub gave_up: bool,
    /// The last failure, with its causes.
    pub last_error: Option<String>,
    /// Unix ms of the next check.
    pub next_check: UnixMillis,
}

impl AccountStatus {
    /// A newly registered account or file of `target`: not checked yet (due at once),
    /// inactive, with `session` when one was stored.
    fn new(account: &str, target: &str, source: SessionSource, session: Option<String>) -> Self {
        Self {
            account: account.to_string(),
            target: target.to_string(),
            username: String::new(),
            source,
            file: None,
            session_id: session,
            is_active: false,
            last_refresh: None,
            refresh_count: 0,
            login_count: 0,
            failed_attempts: 0,
            gave_up: false,
            last_error: None,
            next_check: 0,
        }
    }

    /// A check (or sign-in) that worked: active, failures forgotten, serving `session`, next
    /// due after a jittered `every`.
    fn succeeded(&mut self, now: UnixMillis, session: Option<String>, every: Duration) {
        self.last_refresh = Some(now);
        self.is_active = true;
        self.failed_attempts = 0;
        self.last_error = None;
        self.session_id = session;
        self.next_check = now + jittered(every).as_millis() as u64;
    }

    /// A check that failed with `error`: inactive. A `transient` failure (the browser is
    /// being replaced) is tried again in 2 s and not counted (`None`); otherwise the failures
    /// so far, the caller deciding when the next check is.
    fn failed(&mut self, now: UnixMillis, error: String, transient: bool) -> Option<u32> {
        self.is_active = false;
        self.last_error = Some(error);
        if transient {
            self.next_check = now + 2_000;
            return None;
        }
        self.failed_attempts += 1;
        Some(self.failed_attempts)
    }

    /// Another daemon refreshed its session (`session`) at `at`: active, serving it, next due
    /// a jittered `every` after that refresh.
    fn adopted(&mut self, session: Option<String>, at: UnixMillis, every: Duration) {
        self.session_id = session;
        self.is_active = true;
        self.last_error = None;
        self.next_check = at + jittered(every).as_millis() as u64;
    }

    /// Another daemon is checking it now (or the store is away): due again shortly.
    fn look_again(&mut self, every: Duration) {
        self.next_check = now_ms() + jittered(ITEM_REST.min(every)).as_millis() as u64;
    }
}

/// Where a keep-alive session comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionSource {
    /// An account file (`accounts_dir`): signed in with its credentials, and again when lapsed.
    Account,
    /// A session file dropped into `sessions_dir`: checked and refreshed, never signed in.
    File,
}

/// One account's browser state; locked for the whole of a check, so one check or sign-in per
/// account runs at a time.
struct Slot {
    /// The account file as last loaded.
    account: Account,
    /// The account's live context, parked between checks: its page closed, its cookies and
    /// storage kept in the browser, holding no renderer and no `browser.max_contexts` slot. So
    /// accounts cost little memory between checks, and any number of them leaves room for
    /// warms. A check or login takes it out and puts it back.
    ctx: Option<ParkedContext>,
    /// The identity applied to `ctx`; a new session is recorded with it.
    fingerprint: Option<crate::fingerprint::Fingerprint>,
    /// Id of its session in the pool.
    session: Option<String>,
}

/// An account: its slot, and the status the API shows (readable while a check runs).
struct Entry {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    status: AccountStatus,
}

/// The keep-alive of every login target's accounts: reads the account files, decides when
/// each account is checked and how a failure backs off, and keeps the statuses; the browser
/// work is `warm::account`'s.
pub struct KeepAlive {
    pool: Arc<Pool>,
    entries: Mutex<HashMap<String, Entry>>,
    /// Sessions dropped as files, and files skipped (`keepalive::dropped`).
    dropped: dropped::Files,
}

/// What an account's entry and a dropped session's have alike, so the keep-alive schedules,
/// forces, lists and closes both the same way: the status the API shows, and a slot locked for
/// the whole of a check that parks the context between checks.
trait Tracked {
    /// The browser state of one check.
    type Slot: Parked + Send + 'static;
    /// The status the API shows.
    fn status(&mut self) -> &mut AccountStatus;
    /// The slot, shared with a running check (which holds its lock for the whole check).
    fn slot(&self) -> &Arc<tokio::sync::Mutex<Self::Slot>>;
}

/// A slot's parked context.
trait Parked {
    fn ctx(&mut self) -> &mut Option<ParkedContext>;
}

/// Takes the slot of every due entry that is not busy (one check per entry at a time) and marks
/// it not due again until its check decides (`next_check` `u64::MAX`).
fn take_due<E: Tracked>(
    entries: &Mutex<HashMap<String, E>>,
) -> Vec<(String, tokio::sync::OwnedMutexGuard<E::Slot>)> {
    let now = now_ms();
    let mut entries = lock(entries);
    let mut due = Vec::new();
    for (id, e) in entries.iter_mut() {
        let s = e.status();
        if s.gave_up || s.next_check > now {
            continue;
        }
        let Ok(guard) = e.slot().clone().try_lock_owned() else {
            continue;
        };
        e.status().next_check = u64::MAX;
        due.push((id.clone(), guard));
    }
    due
}

/// Makes every entry due now, forgetting give-ups, with `also` on each status; how many.
fn force<E: Tracked>(
    entries: &Mutex<HashMap<String, E>>,
    also: impl Fn(&mut AccountStatus),
) -> usize {
    let mut entries = lock(entries);
    for e in entries.values_mut() {
        let s = e.status();
        s.next_check = 0;
        s.gave_up = false;
        also(s);
    }
    entries.len()
}

/// Every entry's status, in no particular order.
fn statuses_of<E: Tracked>(entries: &Mutex<HashMap<String, E>>) -> Vec<AccountStatus> {
    lock(entries)
        .values_mut()
        .map(|e| e.status().clone())
        .collect()
}

/// Disposes every entry's parked context (shutdown). A check still running gets 2 s; past that
/// its context is left to the browser's own shutdown rather than delaying the daemon's.
async fn close_all<E: Tracked>(entries: &Mutex<HashMap<String, E>>) {
    let slots: Vec<_> = lock(entries).values().map(|e| e.slot().clone()).collect();
    for s in slots {
        if let Ok(mut slot) = tokio::time::timeout(Duration::from_secs(2), s.lock()).await {
            if let Some(ctx) = slot.ctx().take() {
                ctx.dispose().await;
            }
        }
    }
}

impl Tracked for Entry {
    type Slot = Slot;
    fn status(&mut self) -> &mut AccountStatus {
        &mut self.status
    }
    fn slot(&self) -> &Arc<tokio::sync::Mutex<Slot>> {
        &self.slot
    }
}

impl Parked for Slot {
    fn ctx(&mut self) -> &mut Option<ParkedContext> {
        &mut self.ctx
    }
}

/// What a claimed check of an account or a dropped session did ([`KeepAlive::claimed_check`]).
enum Check<R> {
    /// Checked (and, for an account, signed in again if need be).
    Ran(R),
    /// Nothing: another daemon refreshed its session at `refreshed_at`, lately.
    Adopted { refreshed_at: UnixMillis },
}

/// Follows the newest stored session of a keep-alive entry (`latest`, maybe another daemon's):
/// when it is not the slot's, the parked context (holding the older cookies) is disposed and
/// the slot points at it. Then says whether to adopt it rather than check: another daemon
/// refreshed it since this one last did (`last_refresh`; never before this daemon's first
/// check: after a restart, stored cookies are checked before they are trusted) and within
/// half of `every`.
async fn follow_latest(
    latest: &Session,
    ctx: &mut Option<ParkedContext>,
    session: &mut Option<String>,
    last_refresh: Option<UnixMillis>,
    every: Duration,
) -> bool {
    if session.as_deref() != Some(latest.id.as_str()) {
        if let Some(ctx) = ctx.take() {
            ctx.dispose().await;
        }
        *session = Some(latest.id.clone());
    }
    let by_another = last_refresh.is_some_and(|l| latest.refreshed_at > l);
    by_another && now_ms().saturating_sub(latest.refreshed_at) < (every / 2).as_millis() as u64
}

/// `d` plus up to a tenth of it, so accounts do not all check at once.
fn jittered(d: Duration) -> Duration {
    let spread = d.as_millis() as u64 / 10;
    d + Duration::from_millis(rand::thread_rng().gen_range(0..=spread.max(1)))
}

impl KeepAlive {
    /// The keep-alive of `pool`'s login targets; no account is loaded until [`KeepAlive::sync`].
    pub fn new(pool: Arc<Pool>) -> Self {
        Self {
            pool,
            entries: Mutex::new(HashMap::new()),
            dropped: dropped::Files::default(),
        }
    }

    /// Login targets with an `accounts_dir`.
    fn login_targets(&self) -> Vec<TargetConfig> {
        self.login_targets_with(|t| t.accounts_dir.is_some())
    }

    /// Login targets (a `[targets.login]`) that `with` accepts.
    fn login_targets_with(&self, with: impl Fn(&TargetConfig) -> bool) -> Vec<TargetConfig> {
        self.pool
            .targets()
            .iter()
            .filter(|t| t.config.login.is_some() && with(&t.config))
            .map(|t| t.config.clone())
            .collect()
    }

    /// The account dirs to watch.
    pub fn dirs(&self) -> Vec<std::path::PathBuf> {
        self.login_targets()
            .into_iter()
            .filter_map(|t| t.accounts_dir)
            .collect()
    }

    /// Whether any target has logins (accounts or dropped session files).
    pub fn enabled(&self) -> bool {
        !self.login_targets().is_empty() || !self.dropped_specs().is_empty()
    }

    /// The shortest keep-alive interval (for the status answer).
    pub fn refresh_interval(&self) -> Duration {
        self.login_targets()
            .iter()
            .map(|t| t.refresh_every)
            .chain(self.dropped_refresh_every())
            .min()
            .unwrap_or(Duration::from_secs(300))
    }

    /// The newest ready session of account (or dropped file) `id` of `target` in the pool:
    /// what a restart adopts, and what another daemon keeping it alive wrote last.
    fn stored(&self, id: &str, target: &str) -> Option<Arc<Session>> {
        self.pool
            .list()
            .into_iter()
            .filter(|(s, _)| {
                s.account.as_deref() == Some(id)
                    && s.target == target
                    && s.state == SessionState::Ready
            })
            .max_by_key(|(s, _)| s.refreshed_at)
            .map(|(s, _)| s)
    }

    /// Attaches stored login sessions (after a restart) to their accounts.
    fn stored_session(&self, account: &Account) -> Option<String> {
        self.stored(&account.id, &account.target)
            .map(|s| s.id.clone())
    }

    /// Rescans the account dirs: new files are added (checked at once), changed ones reloaded,
    /// removed ones dropped (context disposed, session retired).
    pub async fn sync(&self) {
        let mut seen = Vec::new();
        for t in self.login_targets() {
            let dir = t.accounts_dir.clone().expect("login targets have a dir");
            let (found, bad) = accounts::load_dir(&dir, &t.name);
            for e in bad {
                tracing::warn!(error = %chain(&e), "skipping account file");
            }
            for a in found {
                seen.push(a.id.clone());
                self.add_or_reload(a).await;
            }
        }
        let gone: Vec<(String, Entry)> = {
            let mut entries = lock(&self.entries);
            let ids: Vec<String> = entries
                .keys()
                .filter(|k| !seen.contains(k))
                .cloned()
                .collect();
            ids.into_iter()
                .filter_map(|k| entries.remove(&k).map(|e| (k, e)))
                .collect()
        };
        for (id, e) in gone {
            let mut slot = e.slot.lock().await;
            self.sign_out(&mut slot, RetireReason::AccountRemoved).await;
            tracing::info!(account = %id, "account removed; its context was disposed");
        }
    }

    async fn add_or_reload(&self, a: Account) {
        let existing = lock(&self.entries).get(&a.id).map(|e| e.slot.clone());
        match existing {
            None => {
                let session = self.stored_session(&a);
                let status = AccountStatus {
                    username: a.username.clone(),
                    ..AccountStatus::new(&a.id, &a.target, SessionSource::Account, session.clone())
                };
                tracing::info!(account = %a.id, target = %a.target, "account added");
                lock(&self.entries).insert(
                    a.id.clone(),
                    Entry {
                        slot: Arc::new(tokio::sync::Mutex::new(Slot {
                            account: a,
                            ctx: None,
                            fingerprint: None,
                            session,
                        })),
                        status,
                    },
                );
            }
            Some(slot) => {
                let mut slot = slot.lock().await;
                if slot.account.same_as(&a) {
                    return;
                }
                let relogin = slot.account.username != a.username || slot.account.proxy != a.proxy;
                if relogin {
                    self.sign_out(&mut slot, RetireReason::AccountChanged).await;
                }
                tracing::info!(account = %a.id, "account file changed; reloaded");
                let id = a.id.clone();
                let username = a.username.clone();
                slot.account = a;
                drop(slot);
                self.update_status(&id, |s| {
                    s.username = username;
                    s.gave_up = false;
                    s.failed_attempts = 0;
                    s.next_check = 0;
                    if relogin {
                        s.session_id = None;
                        s.is_active = false;
                    }
                });
            }
        }
    }

    /// Forgets the account's browser state: its context disposed, its session retired.
    async fn sign_out(&self, slot: &mut Slot, reason: RetireReason) {
        if let Some(ctx) = slot.ctx.take() {
            ctx.dispose().await;
        }
        if let Some(sid) = slot.session.take() {
            let _ = self.pool.retire(&sid, reason, false).await;
        }
    }

    fn update_status(&self, id: &str, f: impl FnOnce(&mut AccountStatus)) {
        if let Some(e) = lock(&self.entries).get_mut(id) {
            f(&mut e.status);
        }
    }

    /// Statuses of every account.
    pub fn statuses(&self) -> Vec<AccountStatus> {
        let mut v = statuses_of(&self.entries);
        v.extend(statuses_of(&self.dropped.entries));
        v.sort_by(|a, b| a.account.cmp(&b.account));
        v
    }

    /// The account's live session, if signed in.
    pub fn session_of(&self, id: &str) -> Option<Result<Arc<Session>, AccountStatus>> {
        let status = match lock(&self.entries).get(id) {
            Some(e) => e.status.clone(),
            None => self.dropped_status(id)?,
        };
        match status.session_id.as_deref().and_then(|s| self.pool.get(s)) {
            Some(s) if status.is_active && s.state == SessionState::Ready => Some(Ok(s)),
            _ => Some(Err(status)),
        }
    }

    /// Makes every account due now (and forgets give-ups); returns how many.
    pub fn force_all(&self) -> usize {
        // A dropped session's failures count its grace: those are kept.
        force(&self.entries, |s| s.failed_attempts = 0) + force(&self.dropped.entries, |_| ())
    }

    /// Starts the check of every due account that is not busy.
    pub fn tick(self: &Arc<Self>, tracker: &tokio_util::task::TaskTracker) -> usize {
        let accounts = take_due(&self.entries);
        let dropped = take_due(&self.dropped.entries);
        let started = accounts.len() + dropped.len();
        for (id, mut slot) in accounts {
            let me = self.clone();
            tracker.spawn(async move { me.keep_alive(&id, &mut slot).await });
        }
        for (id, mut slot) in dropped {
            let me = self.clone();
            tracker.spawn(async move { me.keep_dropped_alive(&id, &mut slot).await });
        }
        started
    }

    async fn keep_alive(&self, id: &str, slot: &mut Slot) {
        let Ok(t) = self.pool.target(&slot.account.target).cloned() else {
            return;
        };
        let cfg = &t.config;
        let login_cfg = cfg.login.clone().expect("login target");
        let (account, proxy) = (slot.account.id.clone(), slot.account.proxy.clone());
        let who = SignIn {
            target: &cfg.name,
            login: &login_cfg,
            account: &account,
            proxy: proxy.as_deref(),
            navigation_timeout: cfg
                .navigation_timeout
                .unwrap_or(self.pool.warmer().navigation_timeout()),
            max_age: cfg.max_age,
        };
        let started = Instant::now();
        let last_refresh = lock(&self.entries)
            .get(id)
            .and_then(|e| e.status.last_refresh);
        // Claimed by name: of the daemons sharing a store, one keeps the account signed in.
        let work = Work::KeepAlive {
            account: account.clone(),
        };
        let claimed = self
            .pool
            .claimed(
                &cfg.name,
                work,
                cfg.refresh_every,
                self.claimed_check(&who, slot, last_refresh, cfg.refresh_every),
            )
            .await;
        let result = match claimed {
            Some(Check::Ran(result)) => result,
            // Another daemon kept it alive since this one last did: adopt its session.
            Some(Check::Adopted { refreshed_at: at }) => {
                let session = slot.session.clone();
                self.update_status(id, |s| s.adopted(session, at, cfg.refresh_every));
                return;
            }
            // Another daemon is at it now (or the store is away): look again shortly.
            None => {
                self.update_status(id, |s| s.look_again(cfg.refresh_every));
                return;
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        let now = now_ms();
        match result {
            Ok(outcome) => {
                let logged_in = outcome == Outcome::LoggedIn;
                let (event, label) = if logged_in {
                    ("account_login", "logged_in")
                } else {
                    ("account_refresh", "refreshed")
                };
                tracing::info!(account = %id, outcome = label, duration_ms = ms, "keep-alive");
                self.pool.metrics.event(event, "ok");
                self.update_status(id, |s| {
                    if logged_in {
                        s.login_count += 1;
                    } else {
                        s.refresh_count += 1;
                    }
                    s.succeeded(now, slot.session.clone(), cfg.refresh_every);
                });
            }
            Err(e) => {
                let transient = matches!(
                    e,
                    LoginError::Warm(WarmError::BrowserGone(_))
                        | LoginError::Warm(WarmError::Browser(_))
                );
                let kind = e.kind();
                self.pool.metrics.event("account_login", kind);
                let max = login_cfg.max_login_attempts;
                self.update_status(id, |s| {
                    // Transient: the browser is being replaced; tried again shortly from
                    // stored cookies.
                    let Some(n) = s.failed(now, chain(&e), transient) else {
                        return;
                    };
                    let backoff = (cfg.refresh_every * 2u32.pow((n - 1).min(6)))
                        .min(Duration::from_secs(3600));
                    s.next_check = now + jittered(backoff).as_millis() as u64;
                    s.gave_up = n >= max;
                });
                tracing::warn!(
                    account = %id,
                    outcome = kind,
                    duration_ms = ms,
                    error = %chain(&e),
                    "login failed"
                );
            }
        }
    }

    /// The check of an account once claimed. Adopted, doing nothing, when another daemon
    /// refreshed its session since this one last did (`last_refresh`; never before this
    /// daemon's first check) and within half of `every`. A slot whose session another daemon
    /// replaced follows it: its parked context (holding the older sign-in) is dropped and the
    /// newer session revived from its record.
    async fn claimed_check(
        &self,
        who: &SignIn<'_>,
        slot: &mut Slot,
        last_refresh: Option<UnixMillis>,
        every: Duration,
    ) -> Check<Result<Outcome, LoginError>> {
        if let Some(latest) = self.stored(&slot.account.id, &slot.account.target) {
            let adopt = follow_latest(
                &latest,
                &mut slot.ctx,
                &mut slot.session,
                last_refresh,
                every,
            )
            .await;
            if adopt {
                return Check::Adopted {
                    refreshed_at: latest.refreshed_at,
                };
            }
        }
        Check::Ran(self.check_or_sign_in(who, slot).await)
    }

    /// One check of the account, all in `warm::account`: its context (parked, or revived from
    /// the stored session), still signed in or signed in again, the capture; then the session
    /// record stored and the context parked again.
    async fn check_or_sign_in(
        &self,
        who: &SignIn<'_>,
        slot: &mut Slot,
    ) -> Result<Outcome, LoginError> {
        let stored = slot.session.as_deref().and_then(|s| self.pool.get(s));
        let ctx = self
            .pool
            .warmer()
            .account_context(
                who,
                slot.ctx.take(),
                &mut slot.fingerprint,
                stored.as_deref(),
            )
            .await?;
        let account = &slot.account;
        let result = account::keep_signed_in(&ctx, who, slot.session.is_some(), || {
            Ok(Credentials {
                username: account.username.clone(),
                password: account
                    .password()
                    .map_err(|e| LoginError::Credentials(e.to_string()))?,
            })
        })
        .await;
        let result = match result {
            Ok((outcome, capture)) => {
                // The record as it is now (a refresh may have changed it meanwhile).
                let previous = slot.session.as_deref().and_then(|s| self.pool.get(s));
                match who.session(capture, previous.as_deref(), slot.fingerprint.as_ref()) {
                    Ok(session) => match self.pool.upsert(session).await {
                        Ok(stored) => {
                            slot.session = Some(stored.id.clone());
                            Ok(outcome)
                        }
                        Err(e) => Err(LoginError::Store(e)),
                    },
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        slot.ctx = Some(ctx.park().await);
        result
    }

    /// Disposes every live context (shutdown).
    pub async fn close(&self) {
        close_all(&self.entries).await;
        close_all(&self.dropped.entries).await;
    }
}
