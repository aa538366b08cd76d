//! Accounts of login targets: one TOML file per account in the target's `accounts_dir`
//! (id = file stem). Passwords come inline, from an environment variable or from a file and
//! never reach logs: `Secret` prints as `***`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Errors of account files.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The file was read but is not a valid account.
    #[error("{path}: {message}")]
    Invalid {
        /// The account file.
        path: String,
        /// What is wrong (never a credential).
        message: String,
    },
    /// The file (or its directory) could not be read, written or removed.
    #[error("account file {path}")]
    Io {
        /// The account file or directory.
        path: String,
        /// Why (shown by `{:#}` and [`crate::logging::chain`], not in this message).
        source: std::io::Error,
    },
    /// An id that cannot be a file stem.
    #[error("invalid account id {0:?}: use letters, digits, '-' or '_' (at most 64)")]
    BadId(String),
}

/// The file format (`accounts/alice.toml`).
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    /// What the login steps type as `{username}`.
    pub username: String,
    /// The password itself (exactly one of `password`, `password_env`, `password_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An environment variable holding the password, read at each login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file holding the password (one trailing newline ignored), read at each login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The proxy this account always signs in and browses through. Default: the target's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

impl fmt::Debug for AccountFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountFile")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field(
                "proxy",
                &self.proxy.as_deref().map(crate::browser::redact_url),
            )
            .finish()
    }
}

/// Where an account's password comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordSource {
    /// Written in the account file.
    Inline(Secret),
    /// This environment variable.
    Env(String),
    /// This file.
    File(PathBuf),
}

/// Why [`Account::password`] could not resolve a password. The messages name the variable
/// or file, never a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// `password_env` names a variable that is not set (or not valid UTF-8).
    #[error("password_env {var} is not set")]
    EnvUnset {
        /// The variable's name.
        var: String,
    },
    /// `password_file` could not be read.
    #[error("password_file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why it could not be read (said in the message, so not a `source` as well).
        reason: std::io::Error,
    },
}

/// One account of a login target.
#[derive(Clone, Debug)]
pub struct Account {
    /// The file stem (`alice` for `accounts/alice.toml`).
    pub id: String,
    /// The login target whose `accounts_dir` holds the file.
    pub target: String,
    /// What the login steps type as `{username}`.
    pub username: String,
    /// Where the password comes from (resolved at each login by [`Account::password`]).
    pub password: PasswordSource,
    /// The account's own proxy, if any.
    pub proxy: Option<String>,
    /// Its file (a change reloads it).
    pub file: PathBuf,
    /// When the file was last modified, as read (compared to notice a change).
    pub modified: Option<SystemTime>,
}

impl Account {
    /// Resolves the password now (environment and files are read on each login).
    ///
    /// # Errors
    /// [`PasswordError`] when the variable is unset or the file unreadable.
    pub fn password(&self) -> Result<Secret, PasswordError> {
        match &self.password {
            PasswordSource::Inline(s) => Ok(s.clone()),
            PasswordSource::Env(var) => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| PasswordError::EnvUnset { var: var.clone() }),
            PasswordSource::File(p) => std::fs::read_to_string(p)
                .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                .map_err(|reason| PasswordError::File {
                    path: p.clone(),
                    reason,
                }),
        }
    }

    /// Whether the file changed in a way that matters (credentials, proxy).
    pub fn same_as(&self, other: &Account) -> bool {
        self.username == other.username
            && self.password == other.password
            && self.proxy == other.proxy
            && self.modified == other.modified
    }
}

/// Checks an account id (also a file stem).
///
/// # Errors
/// `BadId`.
pub fn check_id(id: &str) -> Result<(), AccountError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadId(id.to_string()))
    }
}

/// Parses one account file.
///
/// # Errors
/// When it cannot be read or is invalid (the error names the file and the field).
pub fn load_file(path: &Path, target: &str) -> Result<Account, AccountError> {
    let shown = path.display().to_string();
    let invalid = |message: String| AccountError::Invalid {
        path: shown.clone(),
        message,
    };
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| invalid("no file name".into()))?
        .to_string();
    check_id(&id).map_err(|e| invalid(e.to_string()))?;
    let text = std::fs::read_to_string(path).map_err(|source| AccountError::Io {
        path: shown.clone(),
        source,
    })?;
    let file: AccountFile = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
    if file.username.trim().is_empty() {
        return Err(invalid("username: must not be empty".into()));
    }
    let password = match (file.password, file.password_env, file.password_file) {
        (Some(p), None, None) => PasswordSource::Inline(Secret::new(p)),
        (None, Some(v), None) => PasswordSource::Env(v),
        (None, None, Some(f)) => PasswordSource::File(if f.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(f)
        } else {
            f
        }),
        _ => {
            return Err(invalid(
                "password: set exactly one of password, password_env, password_file".into(),
            ))
        }
    };
    if let Some(p) = &file.proxy {
        crate::config::check_proxy(p).map_err(|m| invalid(format!("proxy: {m}")))?;
    }
    Ok(Account {
        id,
        target: target.to_string(),
        username: file.username,
        password,
        proxy: file.proxy,
        file: path.to_path_buf(),
        modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
    })
}

/// Loads every `*.toml` in `dir`; bad files are returned apart so one does not hide the others.
pub fn load_dir(dir: &Path, target: &str) -> (Vec<Account>, Vec<AccountError>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (ok, bad),
        Err(source) => {
            bad.push(AccountError::Io {
                path: dir.display().to_string(),
                source,
            });
            return (ok, bad);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        match load_file(&p, target) {
            Ok(a) => ok.push(a),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

/// Writes an account file (0600, atomically).
///
/// # Errors
/// A bad id or an I/O error.
pub fn write_file(dir: &Path, id: &str, file: &AccountFile) -> Result<PathBuf, AccountError> {
    check_id(id)?;
    let io = |source| AccountError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = toml::to_string(file).map_err(|e| AccountError::Invalid {
        path: id.to_string(),
        message: e.to_string(),
    })?;
    let path = dir.join(format!("{id}.toml"));
    let tmp = dir.join(format!(".{id}.toml.tmp"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Removes an account file; `false` when there was none.
///
/// # Errors
/// A bad id or an I/O error.
pub fn remove_file(dir: &Path, id: &str) -> Result<bool, AccountError> {
    check_id(id)?;
    match std::fs::remove_file(dir.join(format!("{id}.toml"))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(AccountError::Io {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// Watches `dirs` for changes; each change sends on the returned channel. The watcher stops
/// when dropped. `None` when watching is not possible (the periodic rescan still works).
pub fn watch(
    dirs: &[PathBuf],
) -> Option<(notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>)> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %crate::logging::chain(&e), "cannot watch account dirs; rescanning only"))
    .ok()?;
    for d in dirs {
        let _ = std::fs::create_dir_all(d);
        if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %crate::logging::chain(&e), "cannot watch account dir; rescanning only");
        }
    }
    Some((watcher, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alice.toml"),
            "username='alice'\npassword='pw1'\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bob.toml"),
            "username='bob'\npassword_env='BOB_PW_TEST'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("carol.toml"), "username='carol'\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let (ok, bad) = load_dir(dir.path(), "portal");
        assert_eq!(
            ok.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("carol.toml"));
        assert_eq!(ok[0].password().unwrap().expose(), "pw1");
        assert!(ok[1]
            .password()
            .unwrap_err()
            .to_string()
            .contains("BOB_PW_TEST"));
        assert!(
            !format!("{:?}", ok[0]).contains("pw1"),
            "Debug hides the password"
        );
    }

    #[test]
    fn writes_private_files_and_rejects_traversal() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = AccountFile {
            username: "u".into(),
            password: Some("secret".into()),
            ..Default::default()
        };
        let p = write_file(dir.path(), "dave", &f).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_file(dir.path(), "../evil", &f).is_err());
        assert!(remove_file(dir.path(), "../../etc/passwd").is_err());
        assert!(remove_file(dir.path(), "dave").unwrap());
        assert!(!remove_file(dir.path(), "dave").unwrap());
    }
}
