//! Sessions dropped as files into a login target's `sessions_dir` (seed 004): another process
//! signs in (with an SMS code no robot can type, say) and writes the session; the keep-alive
//! keeps it alive like an account's, but check only: it has no credentials, so it can never
//! sign in again.
//!
//! - A file added or changed ([`crate::dropped::DroppedWatcher`]) is registered or reloaded:
//!   its cookies become the session record at its next check (due at once), with the file's
//!   own fingerprint (warmer's JSON) or one sampled once and then kept.
//! - Every `refresh_every` the session is checked in its browser context
//!   (`Warmer::account_context`, the same as accounts': parked between checks, revived from
//!   the stored record after a crash) with `[targets.login] check`; its refreshed cookies go
//!   to the store, and with `write_back = true` to the file (atomically, 0600).
//! - A failed check marks it inactive with the reason; it stays listed and stored and is
//!   checked again, for `sessions_grace`; after that its session is retired and it stays listed
//!   (inactive, with the reason) until its file changes or goes. The file is never deleted.
//! - A file that cannot be loaded is listed as skipped, by name, with the reason; when a
//!   loaded file changes into a bad one, its last good session is kept (with `last_error`).
//! - A removed file unregisters its session: context disposed, session retired.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{follow_latest, jittered, lock, AccountStatus, Check, KeepAlive, SessionSource};
use crate::browser::ParkedContext;
use crate::config::TargetConfig;
use crate::dropped::{Change, DirSpec, DroppedEvent, DroppedSession, WrittenNotes};
use crate::fingerprint::Fingerprint;
use crate::pool::{chain, TargetRuntime};
use crate::session::{now_ms, RetireReason, Session, SessionState, UnixMillis, ValidationFailure};
use crate::store::Work;
use crate::warm::account::SignIn;
use crate::warm::login::{self, LoginError};
use crate::warm::{capture_page, Warm, WarmError};

/// A file of a `sessions_dir` that was not loaded, and why; listed by
/// `GET /api/accounts/status` (`skippedFiles`) and `warmer accounts list` until it is fixed or
/// removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedFile {
    /// The target whose `sessions_dir` it is in.
    pub target: String,
    /// The file.
    pub file: String,
    /// A stable label of the reason (`not_json`, `no_cookies`, `wrong_domain`, ...).
    pub reason: String,
    /// What is wrong with it (never a cookie value).
    pub error: String,
}

/// Why a check of a dropped session failed.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// The check found it signed out.
    #[error("lapsed: the check found it signed out; a dropped session cannot sign in again (drop a fresh file)")]
    Lapsed,
    /// The context, the check page, the capture or the store failed.
    #[error(transparent)]
    Login(#[from] LoginError),
}

impl From<WarmError> for CheckError {
    fn from(e: WarmError) -> Self {
        CheckError::Login(LoginError::Warm(e))
    }
}

impl CheckError {
    /// The metrics label.
    fn kind(&self) -> &'static str {
        match self {
            CheckError::Lapsed => "lapsed",
            CheckError::Login(e) => e.kind(),
        }
    }

    /// A dying or relaunching browser says nothing about the session: checked again soon.
    fn transient(&self) -> bool {
        matches!(
            self,
            CheckError::Login(LoginError::Warm(
                WarmError::BrowserGone(_) | WarmError::Browser(_)
            ))
        )
    }
}

/// One dropped session's browser state; locked for the whole of a check.
pub(super) struct Slot {
    /// The file as last loaded successfully.
    file: DroppedSession,
    /// Records write-backs so the watcher does not report them as changes.
    notes: WrittenNotes,
    /// True until the file's cookies are in the session record (after a load or reload).
    pending_load: bool,
    /// The context, parked between checks.
    ctx: Option<ParkedContext>,
    /// The identity applied (the file's, the stored record's, or one sampled and kept).
    fingerprint: Option<Fingerprint>,
    /// Id of its session in the pool.
    session: Option<String>,
}

/// A dropped session: its slot, and the status the API shows.
pub(super) struct Entry {
    /// Shared with a running check, which holds its lock for the whole check; a tick
    /// skips a slot it cannot lock at once, so one session is never checked twice at a time.
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// What the API lists; `next_check` is `u64::MAX` while a check is running, so the
    /// next tick does not start it again.
    status: AccountStatus,
    /// When the current run of failed checks began (none while it is active).
    lapsed_since: Option<UnixMillis>,
}

impl super::Tracked for Entry {
    type Slot = Slot;
    fn status(&mut self) -> &mut AccountStatus {
        &mut self.status
    }
    fn slot(&self) -> &Arc<tokio::sync::Mutex<Slot>> {
        &self.slot
    }
}

impl super::Parked for Slot {
    fn ctx(&mut self) -> &mut Option<ParkedContext> {
        &mut self.ctx
    }
}

/// The keep-alive's dropped sessions (by id) and skipped files (by path).
#[derive(Default)]
pub(super) struct Files {
    /// Registered files by session id (the file's stem), unique across targets and
    /// accounts; a std mutex, never held across an await.
    pub(super) entries: Mutex<HashMap<String, Entry>>,
    /// Files that failed to load, by path (sorted, so listings are stable); an entry goes
    /// when the file loads or is removed.
    skipped: Mutex<BTreeMap<PathBuf, SkippedFile>>,
}

impl KeepAlive {
    /// Targets whose sessions may be dropped as files (`sessions_dir` with a login check).
    fn dropped_targets(&self) -> Vec<TargetConfig> {
        self.login_targets_with(|t| t.sessions_dir.is_some())
    }

    /// The `sessions_dir`s to watch, each with its target's origins.
    pub fn dropped_specs(&self) -> Vec<DirSpec> {
        self.dropped_targets()
            .into_iter()
            .filter_map(|t| {
                Some(DirSpec {
                    dir: t.sessions_dir.clone()?,
                    policy: TargetRuntime::url_policy(&t),
                    target: t.name,
                })
            })
            .collect()
    }

    /// Each dropped target's `refresh_every`, from which the keep-alive picks how often to
    /// tick.
    pub(super) fn dropped_refresh_every(&self) -> Vec<Duration> {
        self.dropped_targets()
            .iter()
            .map(|t| t.refresh_every)
            .collect()
    }

    /// Files of the `sessions_dir`s that were not loaded, by name.
    pub fn skipped_files(&self) -> Vec<SkippedFile> {
        lock(&self.dropped.skipped).values().cloned().collect()
    }

    /// The status of dropped id `id`, if such a file is registered.
    pub(super) fn dropped_status(&self, id: &str) -> Option<AccountStatus> {
        lock(&self.dropped.entries)
            .get(id)
            .map(|e| e.status.clone())
    }

    /// Runs `f` on the entry of `id` under the entries lock; nothing if it was unregistered
    /// meanwhile (a check finishing after its file was removed).
    fn update_dropped(&self, id: &str, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = lock(&self.dropped.entries).get_mut(id) {
            f(e);
        }
    }

    /// Applies the watcher's changes: registers, reloads, unregisters and skips files. Never
    /// fails: a bad file is reported and skipped.
    pub async fn apply_dropped(&self, events: Vec<DroppedEvent>, notes: &WrittenNotes) {
        for event in events {
            event.log();
            let DroppedEvent {
                target,
                id,
                path,
                change,
            } = event;
            match change {
                Change::Added(Ok(s)) | Change::Changed(Ok(s)) => {
                    lock(&self.dropped.skipped).remove(&path);
                    let taken = if lock(&self.entries).contains_key(&s.id) {
                        Some("an account file".to_string())
                    } else {
                        lock(&self.dropped.entries)
                            .get(&s.id)
                            .filter(|e| e.status.target != s.target)
                            .map(|e| format!("a session file of target {:?}", e.status.target))
                    };
                    if let Some(other) = taken {
                        let error = format!(
                            "{}: id {:?} is taken by {other}; rename one",
                            path.display(),
                            s.id
                        );
                        tracing::warn!(target_name = %target, %id, %error, "skipping session file");
                        self.skip(&target, path, "duplicate_id", error);
                        continue;
                    }
                    self.register_or_reload(s, notes).await;
                }
                Change::Added(Err(e)) | Change::Changed(Err(e)) => {
                    let error = e.to_string();
                    // A loaded file that turned bad keeps its last good session.
                    self.update_dropped(&id, |entry| {
                        if entry.status.file.as_deref() == Some(&*path.to_string_lossy())
                            && entry.status.target == target
                        {
                            entry.status.last_error =
                                Some(format!("{error} (the last good version is kept)"));
                        }
                    });
                    self.skip(&target, path, e.reason(), error);
                }
                Change::Removed => {
                    lock(&self.dropped.skipped).remove(&path);
                    let gone = {
                        let mut entries = lock(&self.dropped.entries);
                        match entries.get(&id) {
                            Some(e) if e.status.target == target => entries.remove(&id),
                            _ => None,
                        }
                    };
                    if let Some(e) = gone {
                        let mut slot = e.slot.lock().await;
                        if let Some(ctx) = slot.ctx.take() {
                            ctx.dispose().await;
                        }
                        if let Some(sid) = slot.session.take() {
                            let _ = self
                                .pool
                                .retire(&sid, RetireReason::AccountRemoved, false)
                                .await;
                        }
                        tracing::info!(target_name = %target, %id, "session file removed; its session was retired");
                    }
                }
            }
        }
    }

    /// Lists `path` as skipped with a stable `reason` label and the message (replacing any
    /// earlier entry for it).
    fn skip(&self, target: &str, path: PathBuf, reason: &str, error: String) {
        let file = path.display().to_string();
        lock(&self.dropped.skipped).insert(
            path,
            SkippedFile {
                target: target.to_string(),
                file,
                reason: reason.to_string(),
                error,
            },
        );
    }

    /// Registers a new file (adopting its stored session and fingerprint after a restart,
    /// inactive until its first check) or reloads a known one: its context is disposed, as it
    /// holds the old cookies, and it is due at once with its failures forgotten. A reload waits
    /// for a running check of the same session to finish.
    async fn register_or_reload(&self, s: DroppedSession, notes: &WrittenNotes) {
        let existing = lock(&self.dropped.entries)
            .get(&s.id)
            .map(|e| e.slot.clone());
        let id = s.id.clone();
        let file = s.file.display().to_string();
        match existing {
            None => {
                let stored = self.stored(&s.id, &s.target);
                let stored_id = stored.as_ref().map(|x| x.id.clone());
                // After a restart, or when another daemon sharing the folder registered it
                // first: a record that already holds the file (or is newer) is kept as it is.
                let pending_load = !stored.as_ref().is_some_and(|x| s.adds_nothing_to(x));
                let status = AccountStatus {
                    file: Some(file),
                    ..AccountStatus::new(&s.id, &s.target, SessionSource::File, stored_id)
                };
                let fingerprint = s
                    .fingerprint
                    .clone()
                    .or_else(|| stored.as_ref().map(|x| x.fingerprint.clone()));
                tracing::info!(target_name = %s.target, id = %s.id, "session file registered");
                lock(&self.dropped.entries).insert(
                    id,
                    Entry {
                        slot: Arc::new(tokio::sync::Mutex::new(Slot {
                            file: s,
                            notes: notes.clone(),
                            pending_load,
                            ctx: None,
                            fingerprint,
                            session: stored.map(|x| x.id.clone()),
                        })),
                        status,
                        lapsed_since: None,
                    },
                );
            }
            Some(slot) => {
                let mut slot = slot.lock().await;
                // The file now says what the stored session already holds: written back by
                // another daemon sharing the folder (this one's own write-backs are not
                // reported). Reloading it would check it again at once, and that check's
                // write-back would be the other daemon's change: they would take turns forever.
                if self
                    .stored(&id, &s.target)
                    .is_some_and(|x| s.adds_nothing_to(&x))
                {
                    slot.file = s;
                    return;
                }
                // The context holds the old file's cookies: the new ones go into a fresh one.
                if let Some(ctx) = slot.ctx.take() {
                    ctx.dispose().await;
                }
                if let Some(fp) = &s.fingerprint {
                    slot.fingerprint = Some(fp.clone());
                }
                slot.file = s;
                slot.pending_load = true;
                drop(slot);
                self.update_dropped(&id, |e| {
                    e.status.file = Some(file);
                    e.status.next_check = 0;
                    e.status.gave_up = false;
                    e.status.last_error = None;
                    e.lapsed_since = None;
                });
            }
        }
    }

    /// Runs one check and records its outcome. On success: written back to the file if
    /// `write_back` (noted, so the watcher ignores the write), next check after a jittered
    /// `refresh_every`. On a transient browser failure: retried in 2 s without counting. On
    /// any other failure: inactive, retried within what is left of `sessions_grace`; once
    /// failing for longer, given up and its session retired, the file kept.
    pub(super) async fn keep_dropped_alive(&self, id: &str, slot: &mut Slot) {
        let Ok(t) = self.pool.target(&slot.file.target).cloned() else {
            return;
        };
        let cfg = &t.config;
        let Some(login_cfg) = cfg.login.clone() else {
            return;
        };
        let started = Instant::now();
        let every = cfg.refresh_every;
        let last_refresh = self.dropped_status(id).and_then(|s| s.last_refresh);
        // Claimed by name, as an account: of the daemons sharing a store (and the folder),
        // one checks it each time; the others adopt what it stored.
        let work = Work::KeepAlive {
            account: id.to_string(),
        };
        let claimed = self
            .pool
            .claimed(
                &cfg.name,
                work,
                every,
                self.claimed_dropped(id, cfg, &login_cfg, slot, last_refresh),
            )
            .await;
        let result = match claimed {
            Some(Check::Ran(result)) => result,
            Some(Check::Adopted { refreshed_at: at }) => {
                let session = slot.session.clone();
                self.update_dropped(id, |e| {
                    e.status.adopted(session, at, every);
                    e.lapsed_since = None;
                });
                return;
            }
            None => {
                self.update_dropped(id, |e| e.status.look_again(every));
                return;
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        let now = now_ms();
        match result {
            Ok(session) => {
                if cfg.write_back {
                    let file = slot.file.clone();
                    let s = session.clone();
                    match tokio::task::spawn_blocking(move || file.write_back(&s)).await {
                        Ok(Ok(())) => slot.notes.note_written(&cfg.name, &slot.file.file),
                        Ok(Err(e)) => {
                            tracing::warn!(target_name = %cfg.name, %id, error = %chain(&e), "writing the session file back failed")
                        }
                        Err(e) => {
                            tracing::warn!(target_name = %cfg.name, %id, error = %e, "writing the session file back failed")
                        }
                    }
                }
                tracing::info!(target_name = %cfg.name, %id, duration_ms = ms, "dropped session refreshed");
                self.pool.metrics.event("dropped_refresh", "ok");
                self.update_dropped(id, |e| {
                    e.status.refresh_count += 1;
                    e.status
                        .succeeded(now, Some(session.id.clone()), cfg.refresh_every);
                    e.lapsed_since = None;
                });
            }
            Err(e) => {
                self.pool.metrics.event("dropped_refresh", e.kind());
                let transient = e.transient();
                let grace = cfg.sessions_grace;
                let mut retire = None;
                self.update_dropped(id, |entry| {
                    let s = &mut entry.status;
                    if s.failed(now, chain(&e), transient).is_none() {
                        return;
                    }
                    let since = *entry.lapsed_since.get_or_insert(now);
                    if now.saturating_sub(since) >= grace.as_millis() as u64 {
                        s.gave_up = true;
                        s.last_error = Some(format!(
                            "{}; failing for longer than sessions_grace ({}): its session was retired, the file is kept",
                            chain(&e),
                            humantime::format_duration(grace)
                        ));
                        retire = slot.session.clone();
                    } else {
                        let left = grace.saturating_sub(Duration::from_millis(now - since));
                        s.next_check = now
                            + jittered(cfg.refresh_every)
                                .min(left.max(Duration::from_secs(1)))
                                .as_millis() as u64;
                    }
                });
                if let Some(sid) = retire {
                    if let Some(ctx) = slot.ctx.take() {
                        ctx.dispose().await;
                    }
                    let why = ValidationFailure::Request(format!(
                        "dropped session {id} failed its keep-alive checks for longer than sessions_grace"
                    ));
                    let _ = self
                        .pool
                        .retire(&sid, RetireReason::ValidationFailed(why), false)
                        .await;
                    tracing::warn!(target_name = %cfg.name, %id, error = %chain(&e),
                        "dropped session lapsed past its grace period; its session was retired (the file is kept)");
                } else {
                    tracing::warn!(target_name = %cfg.name, %id, outcome = e.kind(), duration_ms = ms,
                        error = %chain(&e), "dropped session check failed");
                }
            }
        }
    }

    /// The check of a dropped session once claimed: it follows the newest stored session of
    /// the file (another daemon's, when one sharing the folder stored it first), with that
    /// session's fingerprint, and adopts it, doing nothing, when that daemon refreshed it
    /// lately (as for accounts: [`follow_latest`]) and the file has nothing newer.
    async fn claimed_dropped(
        &self,
        id: &str,
        cfg: &TargetConfig,
        login_cfg: &crate::config::LoginConfig,
        slot: &mut Slot,
        last_refresh: Option<UnixMillis>,
    ) -> Check<Result<Arc<Session>, CheckError>> {
        if let Some(latest) = self.stored(id, &slot.file.target) {
            if slot.pending_load && slot.file.adds_nothing_to(&latest) {
                slot.pending_load = false;
            }
            if slot.session.as_deref() != Some(latest.id.as_str()) {
                // The identity the cookies were earned with, unless the file about to be
                // loaded brings its own.
                slot.fingerprint = Some(match &slot.file.fingerprint {
                    Some(own) if slot.pending_load => own.clone(),
                    _ => latest.fingerprint.clone(),
                });
            }
            let adopt = follow_latest(
                &latest,
                &mut slot.ctx,
                &mut slot.session,
                last_refresh,
                cfg.refresh_every,
            )
            .await;
            if adopt && !slot.pending_load {
                return Check::Adopted {
                    refreshed_at: latest.refreshed_at,
                };
            }
        }
        Check::Ran(self.check_dropped(id, cfg, login_cfg, slot).await)
    }

    /// One check: the file's cookies into the session record when newly loaded, the context
    /// (parked, or revived from the record), the login check, the capture, the record stored.
    async fn check_dropped(
        &self,
        id: &str,
        cfg: &TargetConfig,
        login_cfg: &crate::config::LoginConfig,
        slot: &mut Slot,
    ) -> Result<Arc<Session>, CheckError> {
        let nav = cfg
            .navigation_timeout
            .unwrap_or(self.pool.warmer().navigation_timeout());
        let who = SignIn {
            target: &cfg.name,
            login: login_cfg,
            account: id,
            proxy: slot.file.proxy.as_deref(),
            navigation_timeout: nav,
            max_age: cfg.max_age,
        };
        let previous = slot
            .session
            .as_deref()
            .and_then(|s| self.pool.get(s))
            .filter(|s| s.state == SessionState::Ready);
        // A newly loaded file (or no ready record) becomes the record first, keeping the old
        // record's id, creation time and health so the pool sees the same session refreshed.
        if slot.pending_load || previous.is_none() {
            let fp = match slot.fingerprint.clone() {
                Some(fp) => fp,
                None => self.pool.warmer().sample_fingerprint().await?,
            };
            let url = login_cfg.check.url.clone().unwrap_or_default();
            let mut record = slot
                .file
                .to_session(fp.clone(), &url, now_ms(), cfg.max_age);
            if let Some(p) = &previous {
                record.id = p.id.clone();
                record.created_at = p.created_at;
                record.health = p.health.clone();
            }
            let stored = self.pool.upsert(record).await.map_err(LoginError::Store)?;
            slot.session = Some(stored.id.clone());
            slot.fingerprint = Some(fp);
            slot.pending_load = false;
            if let Some(ctx) = slot.ctx.take() {
                ctx.dispose().await;
            }
        }
        let stored = slot.session.as_deref().and_then(|s| self.pool.get(s));
        let ctx = self
            .pool
            .warmer()
            .account_context(
                &who,
                slot.ctx.take(),
                &mut slot.fingerprint,
                stored.as_deref(),
            )
            .await?;
        let result = async {
            if !login::check(&ctx, &login_cfg.check, nav).await? {
                return Err(CheckError::Lapsed);
            }
            let capture = capture_page(&ctx).await?;
            let previous = slot.session.as_deref().and_then(|s| self.pool.get(s));
            let session = who.session(capture, previous.as_deref(), slot.fingerprint.as_ref())?;
            Ok(self.pool.upsert(session).await.map_err(LoginError::Store)?)
        }
        .await;
        // Parked even after a failed check: the next check reuses it rather than reviving.
        slot.ctx = Some(ctx.park().await);
        if let Ok(s) = &result {
            slot.session = Some(s.id.clone());
        }
        result
    }
}
