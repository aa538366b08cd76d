//! `warmer store copy --from STORE --to STORE`: moves sessions (signed-in account sessions
//! among them), events and the audit trail from one backend to another (sled ⇄ Redis), so a
//! single daemon's sled store can become the shared store of a pool of daemons, and back.
//!
//! - **Idempotent**: a session already at the destination with the same content is left
//!   alone, one the destination has refreshed later is kept (never rolled back), anything else
//!   is written; events are added unless present; audit entries the destination already holds
//!   (same time, session, target, action and detail) are not appended again. A second run
//!   writes nothing.
//! - **Keys**: records are decrypted with the source's key and written with the destination's
//!   (`--from-key-file`/`--to-key-file`, else the configured key for both; `--from-no-key`,
//!   `--to-no-key`); a wrong key is refused at open, naming both key ids.
//! - **Progress**: a line on stderr every [`PROGRESS_EVERY`] during a long copy, and the
//!   counts per kind on stdout at the end.
//! - A copy onto itself is refused (same sled directory, or same Redis host, port, database
//!   and prefix).

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::store_spec::{self, StoreSpec};
use crate::config::{StoreBackend, StoreConfig};
use crate::session::Session;
use crate::store::{self, AtRest, AuditEntry, Backend, StoreError, StoreKey, AUDIT_CAP};

/// How often a long copy prints where it is.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Events written per call (one round trip to Redis, one flush for sled).
const EVENT_BATCH: usize = 500;

/// `warmer store copy`'s options.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy from: sled:PATH, redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=P],
    /// redis+unix:///PATH.sock[?prefix=P], `config` (the config's [store]) or memory.
    /// A Redis prefix defaults to the config's store.prefix.
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to copy into (same forms as --from). A sled directory is created if missing.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Key file of the source (64 hex characters or base64, mode 0600/0400). Default: the
    /// configured key (WARMER_KEY, else store.key_file). Not needed for a plaintext source.
    #[arg(long, value_name = "FILE", conflicts_with = "from_no_key")]
    pub from_key_file: Option<PathBuf>,
    /// The source is not encrypted: do not use the configured key for it.
    #[arg(long)]
    pub from_no_key: bool,
    /// Key file the destination is written with. Default: the configured key (WARMER_KEY, else
    /// store.key_file). A destination that already has a key must be given that key.
    #[arg(long, value_name = "FILE", conflicts_with = "to_no_key")]
    pub to_key_file: Option<PathBuf>,
    /// Write the destination unencrypted, even when a key is configured.
    #[arg(long)]
    pub to_no_key: bool,
}

/// The `after_help` of `warmer store copy`.
pub const COPY_HELP: &str = "\
What is copied: sessions (signed-in account sessions among them; with a Redis source their
usage counters are folded in), events, and the audit trail (Redis keeps its newest 100000
entries). Account files live in accounts_dir, not in the store: copy that directory yourself.
Nothing at the destination is deleted, and a session the destination refreshed later than the
source is kept. Running it again writes nothing new.

Keys: records are decrypted with the source's key and written with the destination's. Without
--from-key-file/--to-key-file both use the configured key (WARMER_KEY, else store.key_file); a
plaintext source needs none. A wrong key is refused, naming the key ids.

sled is single-process: stop the daemon that uses a sled store first. Redis can be copied to
and from while daemons run. A password in a URL is never printed, but other local users can
see command lines: prefer `config` with WARMER_STORE_URL for a store that has one. Only
`config` follows WARMER_STORE_URL: a URL given to --from or --to is the store opened even while
the variable names another.

Example:
  warmer store copy --from sled:data/warmer.sled --to redis://127.0.0.1:6379/0
  warmer store copy --from config --to sled:backup.sled --to-key-file backup.key
  WARMER_STORE_URL=redis://:PASSWORD@redis:6379/0 warmer store copy --from sled:data/warmer.sled --to config";

/// Which key to use for one side.
#[derive(Debug, Clone)]
enum KeyChoice {
    /// The configured key (`WARMER_KEY`, else `store.key_file`), if any.
    Configured,
    /// A key file given on the command line.
    File(PathBuf, &'static str),
    /// No key.
    None,
}

impl KeyChoice {
    /// From a side's `--*-key-file` and `--*-no-key`.
    fn of(file: Option<PathBuf>, no_key: bool, flag: &'static str) -> Self {
        match (file, no_key) {
            (Some(f), _) => Self::File(f, flag),
            (None, true) => Self::None,
            (None, false) => Self::Configured,
        }
    }

    /// Loads the key.
    fn load(&self, configured: &StoreConfig) -> Result<Option<StoreKey>, StoreError> {
        match self {
            Self::Configured => StoreKey::from_env_or_file(configured),
            Self::File(path, flag) => StoreKey::read_file(path, flag).map(Some),
            Self::None => Ok(None),
        }
    }

    /// Where to give the key, for a message.
    fn hint(&self, side: &str) -> String {
        match self {
            Self::File(_, flag) => format!("check {flag}"),
            _ => {
                format!("give its key with --{side}-key-file FILE (or WARMER_KEY / store.key_file)")
            }
        }
    }
}

/// How many records of one kind a copy wrote and left alone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Written to the destination.
    pub written: usize,
    /// Already at the destination as they are.
    pub unchanged: usize,
    /// Sessions only: newer at the destination (refreshed later), so kept there.
    pub kept_newer: usize,
}

/// Prints `copying KIND: DONE/TOTAL` on stderr at most every [`PROGRESS_EVERY`].
struct Progress {
    /// What is being copied.
    kind: &'static str,
    /// How many there are.
    total: usize,
    /// When the last line was printed (or the copy of this kind began).
    last: Instant,
}

impl Progress {
    fn new(kind: &'static str, total: usize) -> Self {
        Self {
            kind,
            total,
            last: Instant::now(),
        }
    }

    fn tick(&mut self, done: usize) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            eprintln!("copying {}: {done}/{}", self.kind, self.total);
        }
    }
}

/// Runs `warmer store copy`.
///
/// # Errors
/// A spec that does not parse, a copy onto itself, a store that cannot be opened (missing
/// sled directory, locked by a daemon, Redis unreachable, a missing or wrong key), or a failed
/// read or write (what was written before it stays written; running again continues).
pub(super) async fn copy_cmd(configured: &StoreConfig, args: CopyArgs) -> Result<ExitCode> {
    let from_key = KeyChoice::of(args.from_key_file, args.from_no_key, "--from-key-file");
    let to_key = KeyChoice::of(args.to_key_file, args.to_no_key, "--to-key-file");
    let from = Side::new("from", &args.from, from_key, configured)?;
    let to = Side::new("to", &args.to, to_key, configured)?;
    let (from_name, to_name) = (&from.name, &to.name);
    if let (Some(a), Some(b)) = (
        store_spec::identity(&from.store),
        store_spec::identity(&to.store),
    ) {
        if a == b {
            bail!("--from and --to are the same store ({from_name}): nothing to copy");
        }
    }
    let holder = format!("warmer-store-copy:{}", std::process::id());

    let src = open_source(&from, configured, &holder).await?;
    let dst = open_destination(&to, configured, &holder).await?;
    if to.store.backend == StoreBackend::Memory {
        eprintln!("note: --to memory keeps nothing once this command ends");
    }
    eprintln!(
        "copying from {from_name} ({}) to {to_name} ({})",
        at_rest(&src),
        at_rest(&dst)
    );

    let (sessions, accounts) = copy_sessions(&src, &dst).await?;
    let events = copy_events(&src, &dst).await?;
    let audit = copy_audit(&src, &dst).await?;
    dst.records
        .flush()
        .await
        .with_context(|| format!("flushing {to_name}"))?;

    println!(
        "sessions: {} written, {} unchanged, {} newer at the destination kept ({accounts} of \
         them signed-in account sessions)",
        sessions.written, sessions.unchanged, sessions.kept_newer
    );
    println!(
        "events: {} written, {} already there",
        events.written, events.unchanged
    );
    println!(
        "audit: {} written, {} already there",
        audit.written, audit.unchanged
    );
    Ok(ExitCode::SUCCESS)
}

/// What a store keeps at rest, for the opening line.
fn at_rest(b: &Backend) -> String {
    match b.info().at_rest {
        AtRest::Encrypted(id) => format!("encrypted, key id {id}"),
        AtRest::Plaintext => "not encrypted".into(),
        AtRest::NotPersisted => "in memory".into(),
    }
}

/// One side of a copy: the store its spec names, how it is shown, and its key.
struct Side {
    /// `from` or `to`, as in the flags.
    flag: &'static str,
    /// The store as resolved.
    store: StoreConfig,
    /// How it is shown (never with a password).
    name: String,
    /// Which key opens it.
    key: KeyChoice,
}

impl Side {
    /// The side `--<flag> spec` names.
    fn new(
        flag: &'static str,
        spec: &str,
        key: KeyChoice,
        configured: &StoreConfig,
    ) -> Result<Self> {
        let spec: StoreSpec = spec.parse().map_err(|e| anyhow!("--{flag}: {e}"))?;
        let store = spec.resolve(configured);
        let name = store_spec::describe(&store);
        Ok(Self {
            flag,
            store,
            name,
            key,
        })
    }

    /// The context of an opening error.
    fn opening(&self) -> String {
        format!("--{}: opening {}", self.flag, self.name)
    }

    /// Opens the store with `key`: a wrong or missing key says where to give it, a sled store
    /// in use to stop its daemon.
    async fn open_with(&self, key: Option<StoreKey>, holder: &str) -> Result<Backend> {
        store::open_as(&self.store, key, holder)
            .await
            .map_err(|e| match e {
                e @ (StoreError::KeyMismatch { .. } | StoreError::KeyRequired { .. }) => {
                    anyhow::Error::new(e).context(self.key.hint(self.flag))
                }
                e => locked_hint(e),
            })
            .with_context(|| self.opening())
    }
}

/// Opens the source. It is first opened without a key, so a plaintext source is never marked
/// encrypted by the copy; an encrypted one is then opened with its key.
async fn open_source(side: &Side, configured: &StoreConfig, holder: &str) -> Result<Backend> {
    let store = &side.store;
    if store.backend == StoreBackend::Sled && !store.path.is_dir() {
        bail!("--from: no sled store at {}", store.path.display());
    }
    match store::open_as(store, None, holder).await {
        Ok(b) => return Ok(b),
        Err(StoreError::KeyRequired { .. }) => {}
        Err(e) => return Err(locked_hint(e)).with_context(|| side.opening()),
    }
    let Some(k) = side.key.load(configured).with_context(|| side.opening())? else {
        bail!(
            "--from: {} is encrypted; {}",
            side.name,
            side.key.hint("from")
        );
    };
    side.open_with(Some(k), holder).await
}

/// Opens the destination with its key (created if missing).
async fn open_destination(side: &Side, configured: &StoreConfig, holder: &str) -> Result<Backend> {
    let k = side.key.load(configured).with_context(|| side.opening())?;
    side.open_with(k, holder).await
}

/// A store error, with what to do when a daemon holds a sled store.
fn locked_hint(e: StoreError) -> anyhow::Error {
    match e {
        e @ StoreError::Locked { .. } => {
            anyhow::Error::new(e).context("stop the daemon using it first (sled is single-process)")
        }
        e => e.into(),
    }
}

/// Copies every session; returns the counts and how many are signed-in account sessions.
async fn copy_sessions(src: &Backend, dst: &Backend) -> Result<(Counts, usize)> {
    let sessions = src
        .records
        .list_sessions()
        .await
        .context("reading the source's sessions")?;
    let existing: HashMap<String, Session> = dst
        .records
        .list_sessions()
        .await
        .context("reading the destination's sessions")?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut counts = Counts::default();
    let mut accounts = 0;
    let mut progress = Progress::new("sessions", sessions.len());
    for (i, mut s) in sessions.into_iter().enumerate() {
        // A shared backend counts usage apart from the record (every daemon adds to it):
        // carry the totals into the copy's health.
        if let Some(u) = src
            .coordination
            .usage(&s.target, &s.id)
            .await
            .with_context(|| format!("reading session {}'s usage counters", s.id))?
        {
            u.fold_into(&mut s.health);
        }
        if s.account.is_some() {
            accounts += 1;
        }
        match existing.get(&s.id) {
            Some(d) if same_session(d, &s) => counts.unchanged += 1,
            Some(d) if d.refreshed_at > s.refreshed_at => counts.kept_newer += 1,
            _ => {
                dst.records
                    .put_session(&s)
                    .await
                    .with_context(|| format!("writing session {}", s.id))?;
                counts.written += 1;
            }
        }
        progress.tick(i + 1);
    }
    Ok((counts, accounts))
}

/// Whether two records are the same session as stored (compared as values, and as their JSON
/// should a float not survive a round trip bit for bit).
fn same_session(a: &Session, b: &Session) -> bool {
    a == b
        || matches!(
            (serde_json::to_string(a), serde_json::to_string(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Copies every event (the destination keeps an event it already has).
async fn copy_events(src: &Backend, dst: &Backend) -> Result<Counts> {
    let events = src
        .records
        .list_events(None)
        .await
        .context("reading the source's events")?;
    let mut counts = Counts::default();
    let mut progress = Progress::new("events", events.len());
    let mut done = 0;
    for batch in events.chunks(EVENT_BATCH) {
        let added = dst
            .records
            .put_events(batch)
            .await
            .context("writing events")?;
        counts.written += added;
        counts.unchanged += batch.len() - added;
        done += batch.len();
        progress.tick(done);
    }
    Ok(counts)
}

/// Appends the source's audit entries the destination does not hold yet, oldest first (a
/// Redis destination keeps only its newest [`AUDIT_CAP`], so no older ones are sent).
async fn copy_audit(src: &Backend, dst: &Backend) -> Result<Counts> {
    let mut entries = src
        .records
        .recent_audit(usize::MAX)
        .await
        .context("reading the source's audit trail")?;
    if dst.info().backend == StoreBackend::Redis {
        entries.truncate(AUDIT_CAP);
    }
    // Entries carry no id: the destination's are counted by content, so an entry that occurs
    // twice at the source and once at the destination is appended once.
    let mut there: HashMap<String, usize> = HashMap::new();
    for e in dst
        .records
        .recent_audit(usize::MAX)
        .await
        .context("reading the destination's audit trail")?
    {
        *there.entry(audit_key(&e)).or_default() += 1;
    }
    let mut counts = Counts::default();
    let mut progress = Progress::new("audit entries", entries.len());
    for (i, e) in entries.iter().rev().enumerate() {
        match there.get_mut(&audit_key(e)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                counts.unchanged += 1;
            }
            _ => {
                dst.records
                    .append_audit(e)
                    .await
                    .context("writing the audit trail")?;
                counts.written += 1;
            }
        }
        progress.tick(i + 1);
    }
    Ok(counts)
}

/// An audit entry's content, as a key for [`copy_audit`]'s count.
fn audit_key(e: &AuditEntry) -> String {
    format!(
        "{}\0{}\0{}\0{}\0{}",
        e.at,
        e.session.as_deref().unwrap_or(""),
        e.target.as_deref().unwrap_or(""),
        e.action,
        e.detail
    )
}
