//! Session files dropped into a login target's `sessions_dir` (seed 004): another process signs
//! in (with an SMS code no robot can type, say), writes `session-{mobile}.json`, and the daemon
//! keeps that session alive like an account's, with no credentials.
//!
//! A file is one of three formats ([`DroppedFormat`]): Playwright's `storageState` JSON, a
//! Netscape `cookies.txt` (curl's `#HttpOnly_` lines too), or warmer's own session record
//! (`warmer sessions export --format json`). Its id is the file stem (`session-0912.json` →
//! `session-0912`), checked like an account id. [`load_file`] reads and checks one:
//!
//! - a file that is not JSON (when it says `.json`), not a `cookies.txt`, or neither known JSON
//!   shape, is refused with the field or line at fault ([`DroppedError`]);
//! - expired cookies are dropped; a file with no unexpired cookie is refused (`no_cookies`);
//! - cookies that none of the target's origins would receive (its [`UrlPolicy`]) are kept
//!   aside for write-back only; a file with no cookie for the target is refused
//!   (`wrong_domain`), naming the domains it had and the origins expected;
//! - a file others may read or write is loaded with a warning (it holds a signed-in session).
//!
//! [`DroppedWatcher`] reports files added, changed and removed (within a second with inotify, 2 s
//! by rescanning without it). [`DroppedSession::write_back`] rewrites the file, atomically and
//! 0600, in the format it came in, with the session's refreshed cookies.

mod parse;
mod watch;

pub use watch::{Change, DirSpec, DroppedEvent, DroppedWatcher, WrittenNotes, RESCAN};

use serde::Serialize;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::browser::guard::UrlPolicy;
use crate::fingerprint::Fingerprint;
use crate::session::{Cookie, Health, OriginStorage, Session, SessionState, UnixMillis};

/// Largest session file read (a storageState with a big localStorage is well under this).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The format a dropped file came in; a write-back keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DroppedFormat {
    /// Playwright's `storageState` JSON: `{"cookies": [...], "origins": [...]}`.
    StorageState,
    /// A Netscape `cookies.txt` (curl, yt-dlp, Python's `MozillaCookieJar`).
    CookiesTxt,
    /// warmer's own session record (`warmer sessions export ID --format json`).
    WarmerJson,
}

impl DroppedFormat {
    /// The name used in logs and status answers (`storage-state`, `cookies-txt`, `json`:
    /// the names of the matching export formats).
    pub fn as_str(self) -> &'static str {
        match self {
            DroppedFormat::StorageState => "storage-state",
            DroppedFormat::CookiesTxt => "cookies-txt",
            DroppedFormat::WarmerJson => "json",
        }
    }
}

impl fmt::Display for DroppedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a dropped file was refused. Every variant names the file; none carries a cookie value.
#[derive(Debug, thiserror::Error)]
pub enum DroppedError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A symlink, a FIFO, a device: only regular files are read.
    #[error("{path}: not a regular file")]
    NotRegularFile {
        /// The file.
        path: String,
    },
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("{path}: {size} bytes, more than the {max} a session file may have")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// [`MAX_FILE_BYTES`].
        max: u64,
    },
    /// The stem is not a usable id (letters, digits, '-', '_'; at most 64).
    #[error("{path}: the file name {id:?} is not a valid id: use letters, digits, '-' or '_' (at most 64)")]
    BadId {
        /// The file.
        path: String,
        /// Its stem.
        id: String,
    },
    /// Another file of the same directory has the same stem (`a.json` and `a.txt`).
    #[error("{path}: id {id:?} is already taken by {other}; one file per id")]
    DuplicateId {
        /// The file left out.
        path: String,
        /// The shared stem.
        id: String,
        /// The file used for that id (the first in name order).
        other: String,
    },
    /// A `.json` file that does not parse as JSON.
    #[error("{path}: not JSON: {message}")]
    NotJson {
        /// The file.
        path: String,
        /// The parser's message (a position, never the text).
        message: String,
    },
    /// JSON of neither known shape, or a field of the wrong type.
    #[error("{path}: {message}")]
    Unrecognised {
        /// The file.
        path: String,
        /// The field at fault and why.
        message: String,
    },
    /// A `cookies.txt` line that is not a cookie.
    #[error("{path}: line {line}: {message}")]
    BadCookiesTxt {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it (never its contents).
        message: String,
    },
    /// No unexpired cookie at all.
    #[error("{path}: no cookies{}", if *expired > 0 { format!(" ({expired} expired ones)") } else { String::new() })]
    NoCookies {
        /// The file.
        path: String,
        /// How many expired cookies it had.
        expired: usize,
    },
    /// Cookies, but none that the target's origins would receive.
    #[error("{path}: no cookie for this target: the file has cookies of {} but the target's origins are {}",
        .domains.join(", "), if .origins.is_empty() { "none (set login.check.url or allowed_origins)".to_string() } else { .origins.join(", ") })]
    WrongDomain {
        /// The file.
        path: String,
        /// The cookie domains it had.
        domains: Vec<String>,
        /// The target's origins.
        origins: Vec<String>,
    },
    /// A warmer record whose proxy is not a proxy URL warmer can use.
    #[error("{path}: proxy: {message}")]
    BadProxy {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl DroppedError {
    /// A short, stable label of the reason, for status answers and metrics: `unreadable`,
    /// `not_regular_file`, `too_large`, `bad_id`, `duplicate_id`, `not_json`, `unrecognised`,
    /// `bad_cookies_txt`, `no_cookies`, `wrong_domain`, `bad_proxy`.
    pub fn reason(&self) -> &'static str {
        match self {
            DroppedError::Io { .. } => "unreadable",
            DroppedError::NotRegularFile { .. } => "not_regular_file",
            DroppedError::TooLarge { .. } => "too_large",
            DroppedError::BadId { .. } => "bad_id",
            DroppedError::DuplicateId { .. } => "duplicate_id",
            DroppedError::NotJson { .. } => "not_json",
            DroppedError::Unrecognised { .. } => "unrecognised",
            DroppedError::BadCookiesTxt { .. } => "bad_cookies_txt",
            DroppedError::NoCookies { .. } => "no_cookies",
            DroppedError::WrongDomain { .. } => "wrong_domain",
            DroppedError::BadProxy { .. } => "bad_proxy",
        }
    }
}

/// Something to tell the operator about a file that was loaded anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DroppedWarning {
    /// Others (not only its owner and group) may read or write it; it holds a signed-in session.
    WorldReadable {
        /// Its permission bits.
        mode: u32,
    },
    /// Cookies no origin of the target receives: not loaded into the browser, kept for
    /// write-back.
    ForeignCookies {
        /// Their domains.
        domains: Vec<String>,
    },
    /// Cookies already expired when the file was read: left out.
    ExpiredCookies {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for DroppedWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DroppedWarning::WorldReadable { mode } => write!(
                f,
                "readable or writable by others (mode {mode:04o}); it holds a signed-in session: chmod 600 it"
            ),
            DroppedWarning::ForeignCookies { domains } => write!(
                f,
                "cookies of other sites left out of the browser (kept in the file): {}",
                domains.join(", ")
            ),
            DroppedWarning::ExpiredCookies { count } => {
                write!(f, "{count} expired cookies left out")
            }
        }
    }
}

/// What one dropped file holds, checked against its target: ready to become a [`Session`]
/// ([`DroppedSession::to_session`]) and to be written back.
#[derive(Clone)]
pub struct DroppedSession {
    /// The file stem: the id it is listed and kept alive under.
    pub id: String,
    /// The target whose `sessions_dir` it is in.
    pub target: String,
    /// The file.
    pub file: PathBuf,
    /// The format it came in (a write-back keeps it).
    pub format: DroppedFormat,
    /// Its unexpired cookies that the target's origins receive.
    pub cookies: Vec<Cookie>,
    /// localStorage of the target's origins.
    pub origins: Vec<OriginStorage>,
    /// Unexpired cookies of other sites: not put into the browser, written back unchanged.
    pub foreign_cookies: Vec<Cookie>,
    /// localStorage of other origins, written back unchanged.
    pub foreign_origins: Vec<OriginStorage>,
    /// The fingerprint the session was earned with, for warmer's own format (the other two do
    /// not say; the keep-alive samples one and keeps it).
    pub fingerprint: Option<Fingerprint>,
    /// The proxy of warmer's own record (may carry credentials; never logged).
    pub proxy: Option<String>,
    /// The page of warmer's own record.
    pub url: Option<String>,
    /// What to tell the operator (world-readable, cookies left out).
    pub warnings: Vec<DroppedWarning>,
}

impl fmt::Debug for DroppedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cookie values and the proxy's credentials stay out of Debug.
        f.debug_struct("DroppedSession")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("file", &self.file)
            .field("format", &self.format)
            .field("cookies", &self.cookies.len())
            .field("origins", &self.origins.len())
            .field("foreign_cookies", &self.foreign_cookies.len())
            .field("fingerprint", &self.fingerprint.is_some())
            .field(
                "proxy",
                &self.proxy.as_deref().map(crate::browser::redact_url),
            )
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// The hosts of a policy's origins (`https://a.example:443` → `a.example`).
fn policy_hosts(policy: &UrlPolicy) -> Vec<String> {
    policy
        .origins()
        .iter()
        .filter_map(|o| url::Url::parse(o).ok())
        .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
        .collect()
}

/// Whether a browser would send `c` to `host` (RFC 6265 domain matching; a leading dot marks a
/// cookie for subdomains too).
fn sent_to_host(c: &Cookie, host: &str) -> bool {
    let domain = c.domain.trim_start_matches('.').to_ascii_lowercase();
    host == domain || (c.domain.starts_with('.') && host.ends_with(&format!(".{domain}")))
}

/// The id of a file: its stem, when it is a valid account id.
///
/// # Errors
/// [`DroppedError::BadId`].
pub fn file_id(path: &Path) -> Result<String, DroppedError> {
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::accounts::check_id(&id).map_err(|_| DroppedError::BadId {
        path: path.display().to_string(),
        id: id.clone(),
    })?;
    Ok(id)
}

/// Whether a directory entry is a candidate session file: `*.json` or `*.txt`, not hidden
/// (write-back's temporary files start with a dot).
pub fn is_candidate(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("txt"))
}

/// The warning for a file others may read or write (mode bits `0o007`), if it is one.
pub fn permission_warning(mode: u32) -> Option<DroppedWarning> {
    let mode = mode & 0o7777;
    (mode & 0o007 != 0).then_some(DroppedWarning::WorldReadable { mode })
}

/// Checks the contents of a dropped file (pure: `path` names it in errors and gives its id
/// and format, nothing is read). Cookies expired at `now` are dropped; cookies the target's
/// origins (`policy`) do not receive are kept apart as foreign.
///
/// # Errors
/// Any [`DroppedError`] but `Io`, `NotRegularFile` and `TooLarge`.
pub fn parse(
    path: &Path,
    text: &str,
    target: &str,
    policy: &UrlPolicy,
    now: UnixMillis,
) -> Result<DroppedSession, DroppedError> {
    let shown = path.display().to_string();
    let id = file_id(path)?;
    let json_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = parse::parse(&shown, text, json_ext)?;
    let total = parsed.cookies.len();
    let live: Vec<Cookie> = parsed
        .cookies
        .into_iter()
        .filter(|c| !c.is_expired(now))
        .collect();
    let expired = total - live.len();
    if live.is_empty() {
        return Err(DroppedError::NoCookies {
            path: shown,
            expired,
        });
    }
    let hosts = policy_hosts(policy);
    let (cookies, foreign_cookies): (Vec<Cookie>, Vec<Cookie>) = live
        .into_iter()
        .partition(|c| hosts.iter().any(|h| sent_to_host(c, h)));
    let mut foreign_domains: Vec<String> = foreign_cookies
        .iter()
        .map(|c| c.domain.to_ascii_lowercase())
        .collect();
    foreign_domains.sort();
    foreign_domains.dedup();
    if cookies.is_empty() {
        return Err(DroppedError::WrongDomain {
            path: shown,
            domains: foreign_domains,
            origins: policy.origins().to_vec(),
        });
    }
    let (origins, foreign_origins): (Vec<OriginStorage>, Vec<OriginStorage>) = parsed
        .origins
        .into_iter()
        .partition(|o| policy.allows(&o.origin));
    let mut warnings = Vec::new();
    if !foreign_domains.is_empty() {
        warnings.push(DroppedWarning::ForeignCookies {
            domains: foreign_domains,
        });
    }
    if expired > 0 {
        warnings.push(DroppedWarning::ExpiredCookies { count: expired });
    }
    let (fingerprint, proxy, url) = match parsed.record {
        Some(r) => (Some(r.fingerprint), r.proxy, Some(r.url)),
        None => (None, None, None),
    };
    if let Some(p) = &proxy {
        crate::config::check_proxy(p).map_err(|message| DroppedError::BadProxy {
            path: path.display().to_string(),
            message: message.to_string(),
        })?;
    }
    Ok(DroppedSession {
        id,
        target: target.to_string(),
        file: path.to_path_buf(),
        format: parsed.format,
        cookies,
        origins,
        foreign_cookies,
        foreign_origins,
        fingerprint,
        proxy,
        url,
        warnings,
    })
}

/// Reads and checks one dropped file: a regular file (opened without following a symlink and
/// without blocking on a FIFO) of at most [`MAX_FILE_BYTES`], then [`parse`]. A file others
/// may read gets a [`DroppedWarning::WorldReadable`].
///
/// # Errors
/// Any [`DroppedError`].
pub fn load_file(
    path: &Path,
    target: &str,
    policy: &UrlPolicy,
    now: UnixMillis,
) -> Result<DroppedSession, DroppedError> {
    let shown = || path.display().to_string();
    let io = |source| DroppedError::Io {
        path: shown(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW on a symlink fails with ELOOP.
            if e.raw_os_error() == Some(libc::ELOOP) {
                DroppedError::NotRegularFile { path: shown() }
            } else {
                io(e)
            }
        })?;
    // Checked on the open file, so a swap between check and read cannot slip through.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(DroppedError::NotRegularFile { path: shown() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DroppedError::TooLarge {
            path: shown(),
            size: meta.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| DroppedError::Unrecognised {
        path: shown(),
        message: "not UTF-8 text".into(),
    })?;
    let mut s = parse(path, &text, target, policy, now)?;
    if let Some(w) = permission_warning(meta.mode()) {
        s.warnings.insert(0, w);
    }
    Ok(s)
}

/// Cookies of `primary`, then those of `extra` that `primary` has no cookie of the same name,
/// domain and path for.
fn merge_cookies(primary: &[Cookie], extra: &[Cookie]) -> Vec<Cookie> {
    let mut out = primary.to_vec();
    for c in extra {
        if !out
            .iter()
            .any(|o| o.name == c.name && o.domain == c.domain && o.path == c.path)
        {
            out.push(c.clone());
        }
    }
    out
}

impl DroppedSession {
    /// The session record to keep alive: these cookies and storage, earned with
    /// `fingerprint` (the file's own when it has one: [`DroppedSession::fingerprint`]), served
    /// for `url` (the target's check URL, or the file's own), alive for `lifetime` from `now`.
    /// Its `account` is the file's id, so the keep-alive finds it after a restart.
    pub fn to_session(
        &self,
        fingerprint: Fingerprint,
        url: &str,
        now: UnixMillis,
        lifetime: Duration,
    ) -> Session {
        Session {
            id: Session::new_id(),
            target: self.target.clone(),
            event: None,
            account: Some(self.id.clone()),
            url: url.to_string(),
            state: SessionState::Ready,
            fingerprint,
            proxy: self.proxy.clone(),
            cookies: self.cookies.clone(),
            origins: self.origins.clone(),
            observed: None,
            created_at: now,
            refreshed_at: now,
            expires_at: now.saturating_add(lifetime.as_millis() as u64),
            health: Health::default(),
        }
    }

    /// Whether the file says nothing `record` (its stored session) does not: every cookie of
    /// the file is in the record with the same value (a write-back of the record, by this
    /// daemon or another sharing the folder), or the record was refreshed after the file was
    /// last written (a restart, a file not written back: the record's cookies are the newer).
    /// Loading such a file would only put older or equal cookies over the record's.
    pub fn adds_nothing_to(&self, record: &Session) -> bool {
        let same = |a: &Cookie, b: &Cookie| {
            a.name == b.name
                && a.value == b.value
                && a.path == b.path
                && a.domain.trim_start_matches('.') == b.domain.trim_start_matches('.')
        };
        let held = self
            .cookies
            .iter()
            .all(|c| record.cookies.iter().any(|r| same(c, r)));
        let written = std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        held || written.is_some_and(|w| record.refreshed_at > w)
    }

    /// The file's contents in its own format with `session`'s cookies and storage (those of
    /// other sites from the original file kept beside them).
    pub fn render(&self, session: &Session) -> String {
        let mut s = session.clone();
        s.cookies = merge_cookies(&session.cookies, &self.foreign_cookies);
        for o in &self.foreign_origins {
            if !s.origins.iter().any(|x| x.origin == o.origin) {
                s.origins.push(o.clone());
            }
        }
        let format = match self.format {
            DroppedFormat::StorageState => crate::export::ExportFormat::StorageState,
            DroppedFormat::CookiesTxt => crate::export::ExportFormat::CookiesTxt,
            DroppedFormat::WarmerJson => crate::export::ExportFormat::Json,
        };
        crate::export::render(&s, format, crate::session::now_ms())
    }

    /// `write_back = true`: rewrites the file, in the format it came in, with `session`'s
    /// refreshed cookies ([`DroppedSession::render`]): atomically (a hidden temporary file in
    /// the same directory, then a rename) and private (0600), so a reader never sees half a
    /// file. The watcher reports the rewrite as a change unless told
    /// ([`DroppedWatcher::note_written`]).
    ///
    /// # Errors
    /// [`DroppedError::Io`] when the directory cannot be written.
    pub fn write_back(&self, session: &Session) -> Result<(), DroppedError> {
        write_private_atomic(&self.file, self.render(session).as_bytes()).map_err(|source| {
            DroppedError::Io {
                path: self.file.display().to_string(),
                source,
            }
        })
    }
}

/// Writes `bytes` to `path` atomically and privately: a hidden temporary file beside it
/// (`.name.tmp-PID`), created 0600, written and synced, then renamed over `path`, and the
/// directory synced so the rename survives a crash.
///
/// # Errors
/// Any I/O error; the temporary file is removed when the write fails.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // An existing temporary file keeps its mode on open: make sure.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
