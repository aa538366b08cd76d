//! Watching `sessions_dir`s: which ids were added, changed or removed since the last look.
//!
//! The same approach as the account keep-alive: [`crate::accounts::watch`]'s inotify watcher
//! only says "something changed", then the directories are rescanned (also every [`RESCAN`],
//! in case the watcher missed a change or could not start). A scan stats every candidate file
//! and reads only those whose stamp (size, mtime, ctime, inode) changed, so a rescan of an
//! unchanged directory reads nothing.
//!
//! Events are per id (the file stem) of a target: one file stands for one id. When two files
//! share a stem (`a.json`, `a.txt`), the first in name order is the id's file and the other is
//! reported once as [`DroppedError::DuplicateId`].

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{file_id, is_candidate, load_file, DroppedError, DroppedSession};
use crate::browser::guard::UrlPolicy;
use crate::session::now_ms;

/// How often directories are rescanned when no change was reported (the fallback when the
/// watcher misses one or cannot run).
pub const RESCAN: Duration = Duration::from_secs(2);

/// Time a writer gets to finish after a change is reported, before the directory is read.
const SETTLE: Duration = Duration::from_millis(100);

/// One watched directory: a target's `sessions_dir` and the origins its cookies must be for.
#[derive(Debug, Clone)]
pub struct DirSpec {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// The login target it belongs to.
    pub target: String,
    /// The target's origins (`TargetRuntime::url_policy`).
    pub policy: UrlPolicy,
}

/// What happened to an id's file. A load error is reported, never fatal: the daemon skips the
/// file (and keeps a session already loaded from it when a change made it unreadable, e.g. a
/// writer that does not write atomically, until it is fixed or removed).
#[derive(Debug)]
pub enum Change {
    /// A new file, loaded or refused.
    Added(Result<DroppedSession, DroppedError>),
    /// The id's file changed (or another file now stands for it), loaded again or refused.
    Changed(Result<DroppedSession, DroppedError>),
    /// The id's file is gone: unregister it.
    Removed,
}

/// One change of one id of one target.
#[derive(Debug)]
pub struct DroppedEvent {
    /// The target whose `sessions_dir` the file is in.
    pub target: String,
    /// The file stem (for a refused file, what the stem would have been).
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub change: Change,
}

impl DroppedEvent {
    /// Logs the event for the operator: added and removed files at info, refused files and
    /// warnings (world-readable, cookies left out) at warn. Never a cookie value.
    pub fn log(&self) {
        let file = self.path.display();
        let (what, loaded) = match &self.change {
            Change::Added(r) => ("session file added", r),
            Change::Changed(r) => ("session file changed", r),
            Change::Removed => {
                tracing::info!(target_name = %self.target, id = %self.id, %file, "session file removed");
                return;
            }
        };
        match loaded {
            Ok(s) => {
                tracing::info!(target_name = %self.target, id = %self.id, %file,
                    format = %s.format, cookies = s.cookies.len(), "{what}");
                for w in &s.warnings {
                    tracing::warn!(target_name = %self.target, id = %self.id, %file, "{w}");
                }
            }
            Err(e) => {
                tracing::warn!(target_name = %self.target, id = %self.id, reason = e.reason(),
                    error = %e, "skipping session file");
            }
        }
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::symlink_metadata(path).ok()?;
        if m.is_dir() {
            return None;
        }
        Some(Self {
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        })
    }
}

/// The file standing for an id, and the version of it last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    stamp: Stamp,
}

/// The scanning state: what each id's file was at the last scan, and events not yet taken.
#[derive(Default)]
struct Scanner {
    specs: Vec<DirSpec>,
    /// (target, id) → its file at the last scan.
    known: BTreeMap<(String, String), Seen>,
    /// Files reported as duplicates, so each version is reported once.
    duplicates: HashSet<(PathBuf, Stamp)>,
    /// Events found by a scan and not yet handed out (a scan finishes even when the caller
    /// stopped waiting, so nothing found is lost).
    pending: Vec<DroppedEvent>,
}

impl Scanner {
    /// Lists every directory and queues an event for each id whose file appeared, changed or
    /// went.
    fn scan(&mut self) {
        let now = now_ms();
        let mut seen_ids: HashSet<(String, String)> = HashSet::new();
        for spec in &self.specs {
            let Ok(entries) = std::fs::read_dir(&spec.dir) else {
                // A missing or unreadable dir has no files; its ids are removed below.
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_candidate(p))
                .collect();
            paths.sort();
            for path in paths {
                let Some(stamp) = Stamp::of(&path) else {
                    continue;
                };
                let id = match file_id(&path) {
                    Ok(id) => id,
                    Err(e) => {
                        // No id to key it by: report each version of it once.
                        if self.duplicates.insert((path.clone(), stamp)) {
                            self.pending.push(DroppedEvent {
                                target: spec.target.clone(),
                                id: path
                                    .file_stem()
                                    .map(|s| s.to_string_lossy().into_owned())
                                    .unwrap_or_default(),
                                path,
                                change: Change::Added(Err(e)),
                            });
                        }
                        continue;
                    }
                };
                let key = (spec.target.clone(), id.clone());
                if !seen_ids.insert(key.clone()) {
                    if self.duplicates.insert((path.clone(), stamp)) {
                        let other = self
                            .known
                            .get(&key)
                            .map(|s| s.path.display().to_string())
                            .unwrap_or_default();
                        self.pending.push(DroppedEvent {
                            target: spec.target.clone(),
                            id: id.clone(),
                            path: path.clone(),
                            change: Change::Added(Err(DroppedError::DuplicateId {
                                path: path.display().to_string(),
                                id,
                                other,
                            })),
                        });
                    }
                    continue;
                }
                let now_seen = Seen {
                    path: path.clone(),
                    stamp,
                };
                let previous = self.known.get(&key);
                if previous == Some(&now_seen) {
                    continue;
                }
                let loaded = load_file(&path, &spec.target, &spec.policy, now);
                let change = if previous.is_some() {
                    Change::Changed(loaded)
                } else {
                    Change::Added(loaded)
                };
                self.known.insert(key, now_seen);
                self.pending.push(DroppedEvent {
                    target: spec.target.clone(),
                    id,
                    path,
                    change,
                });
            }
        }
        let gone: Vec<(String, String)> = self
            .known
            .keys()
            .filter(|k| !seen_ids.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(seen) = self.known.remove(&key) {
                self.pending.push(DroppedEvent {
                    target: key.0,
                    id: key.1,
                    path: seen.path,
                    change: Change::Removed,
                });
            }
        }
        // Forget duplicates whose file is gone or changed, so the set stays small.
        self.duplicates
            .retain(|(p, s)| Stamp::of(p).as_ref() == Some(s));
    }
}

/// Reports the files of `sessions_dir`s as they are added, changed and removed.
///
/// ```no_run
/// # async fn demo(specs: Vec<session_warmer::dropped::DirSpec>) {
/// let mut watcher = session_warmer::dropped::DroppedWatcher::new(specs);
/// loop {
///     for event in watcher.next().await {
///         event.log();
///         // register, reload or unregister event.id of event.target
///     }
/// }
/// # }
/// ```
pub struct DroppedWatcher {
    /// Shared with the blocking task of a scan in progress.
    scanner: Arc<Mutex<Scanner>>,
    /// The inotify watcher (dropped with this) and its "something changed" signals; `None`
    /// when watching is not possible (rescanning still works).
    pub(super) watch: Option<(notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>)>,
    /// When the directories were last scanned.
    last_scan: Option<tokio::time::Instant>,
}

impl DroppedWatcher {
    /// Starts watching `specs`' directories (created when missing). The first [`next`] reports
    /// every file already there as added.
    ///
    /// [`next`]: DroppedWatcher::next
    pub fn new(specs: Vec<DirSpec>) -> Self {
        let dirs: Vec<PathBuf> = specs.iter().map(|s| s.dir.clone()).collect();
        Self {
            scanner: Arc::new(Mutex::new(Scanner {
                specs,
                ..Scanner::default()
            })),
            watch: crate::accounts::watch(&dirs),
            last_scan: None,
        }
    }

    /// Scans now, off the async threads, queueing what changed.
    async fn scan(&mut self) {
        let scanner = self.scanner.clone();
        let done = tokio::task::spawn_blocking(move || {
            scanner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .scan()
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "scanning session dirs failed");
        }
        self.last_scan = Some(tokio::time::Instant::now());
    }

    fn take_pending(&self) -> Vec<DroppedEvent> {
        std::mem::take(
            &mut self
                .scanner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pending,
        )
    }

    /// Waits for the next changes and returns them (never empty): at once on the first call
    /// (every file there), then within [`SETTLE`] of a change the watcher reports, or at the
    /// next rescan ([`RESCAN`]). Cancel-safe: changes found while the caller stopped waiting
    /// are returned by the next call.
    pub async fn next(&mut self) -> Vec<DroppedEvent> {
        loop {
            let pending = self.take_pending();
            if !pending.is_empty() {
                return pending;
            }
            let Some(last) = self.last_scan else {
                self.scan().await;
                continue;
            };
            let changed = async {
                match self.watch.as_mut() {
                    Some((_, rx)) => {
                        if rx.recv().await.is_none() {
                            futures::future::pending::<()>().await;
                        }
                    }
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = changed => {
                    // Let the writer finish, then take every queued signal at once.
                    tokio::time::sleep(SETTLE).await;
                    if let Some((_, rx)) = self.watch.as_mut() {
                        while rx.try_recv().is_ok() {}
                    }
                }
                _ = tokio::time::sleep_until(last + RESCAN) => {}
            }
            self.scan().await;
        }
    }

    /// Records `path` (of `target`) as it is now, so a write-back of its own is not reported
    /// as a change. A change by someone else in between is missed until the next one.
    pub fn note_written(&self, target: &str, path: &Path) {
        self.notes().note_written(target, path);
    }

    /// A handle that records write-backs ([`WrittenNotes::note_written`]) from other tasks
    /// while this watcher waits in [`DroppedWatcher::next`].
    pub fn notes(&self) -> WrittenNotes {
        WrittenNotes(self.scanner.clone())
    }
}

/// Records the daemon's own write-backs for a [`DroppedWatcher`], from any task, so they are
/// not reported as changes. Cheap to clone.
#[derive(Clone)]
pub struct WrittenNotes(Arc<Mutex<Scanner>>);

impl std::fmt::Debug for WrittenNotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrittenNotes")
    }
}

impl WrittenNotes {
    /// Records `path` (of `target`) as it is now (see [`DroppedWatcher::note_written`]).
    pub fn note_written(&self, target: &str, path: &Path) {
        let (Ok(id), Some(stamp)) = (file_id(path), Stamp::of(path)) else {
            return;
        };
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(seen) = s.known.get_mut(&(target.to_string(), id)) {
            if seen.path == path {
                seen.stamp = stamp;
            }
        }
    }
}
