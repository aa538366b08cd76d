//! [`Changes`]: what [`super::Store::changes`] answers, the cheap way for a daemon's in-memory
//! index to catch up with session records other daemons wrote (a shared backend), and
//! [`ChangeLog`], how the in-process backends (sled, memory) keep the same contract.
//!
//! Every session write, rewrite and delete bumps its target's revision (`rev`) and tags the
//! session with it, in the same atomic step as the write (Redis: the same Lua script), so a
//! caller that remembers the `rev` of its last answer asks for exactly what changed since:
//! nothing at all costs one small round trip. Deletions are remembered for
//! [`DELETIONS_KEPT`]; a caller further behind than that (or holding a revision from before the
//! store was reset) is told to list everything instead ([`Changes::reset`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::session::Session;

/// How long a deletion is remembered for [`super::Store::changes`]: a caller whose `since` is
/// older than the oldest deletion forgotten gets [`Changes::reset`]. One hour.
pub const DELETIONS_KEPT: Duration = Duration::from_secs(3600);

/// What changed among one target's session records after revision `since`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// The target's revision now: pass it as `since` next time. Revisions of one store only
    /// grow; for sled and memory they count from 0 each time the store is opened (the daemon
    /// that opened it is the only writer), for Redis they are shared by every daemon.
    pub rev: u64,
    /// `since` cannot be answered: it is older than the deletions still remembered
    /// ([`DELETIONS_KEPT`]), or newer than `rev` (the store was emptied or replaced). `written`
    /// and `deleted` are then empty: list every session ([`super::Store::list_sessions`]) and
    /// continue from `rev`.
    pub reset: bool,
    /// Sessions of the target written after `since` (any state; retired ones too), as stored
    /// now, oldest change first.
    pub written: Vec<Session>,
    /// Ids of the target's sessions deleted after `since` (or written since under another
    /// target). An id written again after its deletion is in `written` instead.
    pub deleted: Vec<String>,
}

impl Changes {
    /// The answer for a `since` that cannot be answered (see [`Changes::reset`]).
    pub fn reset_to(rev: u64) -> Self {
        Self {
            rev,
            reset: true,
            ..Self::default()
        }
    }
}

/// One target's change log.
#[derive(Debug, Default)]
struct TargetLog {
    /// The target's revision: bumped by every change.
    rev: u64,
    /// Session id → (revision of its last change, whether that change was a deletion).
    changed: HashMap<String, (u64, bool)>,
    /// Deletions still remembered, oldest first: when, which id, at which revision.
    deletions: VecDeque<(Instant, String, u64)>,
    /// Highest revision of a forgotten deletion: `since` below it cannot be answered.
    floor: u64,
}

impl TargetLog {
    /// Records a change of `id`.
    fn bump(&mut self, id: &str, deleted: bool, now: Instant) {
        self.rev += 1;
        self.changed.insert(id.to_string(), (self.rev, deleted));
        if deleted {
            self.deletions.push_back((now, id.to_string(), self.rev));
        }
        self.forget_old(now);
    }

    /// Forgets deletions older than [`DELETIONS_KEPT`], raising the floor past them.
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.deletions.front() {
            if now.duration_since(*at) < DELETIONS_KEPT {
                break;
            }
            let Some((_, id, rev)) = self.deletions.pop_front() else {
                break;
            };
            // Only if it is still that deletion (not written again since).
            if self.changed.get(&id) == Some(&(rev, true)) {
                self.changed.remove(&id);
            }
            self.floor = self.floor.max(rev);
        }
    }
}

/// What [`ChangeLog::since`] found: the revision now and the ids changed, oldest change first,
/// each with whether it was deleted; or `None` when `since` cannot be answered.
pub(crate) type Since = (u64, Option<Vec<(String, bool)>>);

/// The change log of an in-process backend: per target, a revision and the last change of
/// each session. The backend calls [`ChangeLog::written`] and [`ChangeLog::deleted`] after
/// each successful write, and answers [`super::Store::changes`] from [`ChangeLog::since`] plus
/// its records.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// Logs by target.
    targets: Mutex<HashMap<String, TargetLog>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChangeLog {
    /// Session `id` of `target` was written.
    pub(crate) fn written(&self, target: &str, id: &str) {
        let mut t = lock(&self.targets);
        t.entry(target.to_string())
            .or_default()
            .bump(id, false, Instant::now());
    }

    /// Session `id` of `target` was deleted (or moved to another target).
    pub(crate) fn deleted(&self, target: &str, id: &str) {
        let mut t = lock(&self.targets);
        t.entry(target.to_string())
            .or_default()
            .bump(id, true, Instant::now());
    }

    /// A session was deleted whose target could not be read (an unreadable record): every
    /// target's callers must list everything again.
    pub(crate) fn deleted_somewhere(&self) {
        for log in lock(&self.targets).values_mut() {
            log.rev += 1;
            log.floor = log.rev;
        }
    }

    /// The changes of `target` after `since`.
    pub(crate) fn since(&self, target: &str, since: u64) -> Since {
        let mut targets = lock(&self.targets);
        let Some(log) = targets.get_mut(target) else {
            // Nothing written yet: revision 0, and any later `since` is from another store.
            return (0, (since == 0).then(Vec::new));
        };
        log.forget_old(Instant::now());
        if since > log.rev || since < log.floor {
            return (log.rev, None);
        }
        let mut ids: Vec<(u64, &String, bool)> = (log.changed.iter())
            .filter(|(_, (rev, _))| *rev > since)
            .map(|(id, (rev, deleted))| (*rev, id, *deleted))
            .collect();
        ids.sort_unstable();
        let ids = ids
            .into_iter()
            .map(|(_, id, deleted)| (id.clone(), deleted))
            .collect();
        (log.rev, Some(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_come_once_in_revision_order_and_deletions_win() {
        let log = ChangeLog::default();
        assert_eq!(log.since("t", 0), (0, Some(Vec::new())));
        assert_eq!(log.since("t", 3), (0, None), "a revision from elsewhere");
        log.written("t", "a");
        log.written("t", "b");
        log.written("u", "c");
        log.deleted("t", "a");
        let (rev, got) = log.since("t", 0);
        assert_eq!(rev, 3);
        assert_eq!(
            got.unwrap(),
            [("b".to_string(), false), ("a".to_string(), true)]
        );
        assert_eq!(log.since("t", 3), (3, Some(Vec::new())));
        log.written("t", "a");
        assert_eq!(log.since("t", 3).1.unwrap(), [("a".to_string(), false)]);
        assert_eq!(log.since("u", 0).1.unwrap(), [("c".to_string(), false)]);
        log.deleted_somewhere();
        assert_eq!(log.since("t", 4), (5, None));
        assert_eq!(log.since("t", 5), (5, Some(Vec::new())));
    }

    #[test]
    fn deletions_older_than_kept_are_forgotten_and_raise_the_floor() {
        let mut log = TargetLog::default();
        let t0 = Instant::now();
        log.bump("a", false, t0);
        log.bump("a", true, t0);
        log.bump("b", true, t0 + Duration::from_secs(10));
        log.forget_old(t0 + DELETIONS_KEPT);
        assert_eq!(log.floor, 2);
        assert!(!log.changed.contains_key("a"));
        assert!(log.changed.contains_key("b"));
    }
}
