//! The Redis backend (`store.backend = "redis"`): records ([`RedisStore`]) and pool
//! coordination ([`RedisCoordination`]) on one Redis, shared by every daemon with the same
//! `store.url` and `store.prefix`, so N daemons are one pool.
//!
//! - **One connection per process**: a [`redis::aio::ConnectionManager`] (multiplexed, cheap to
//!   clone, reconnects with back-off after Redis comes back).
//! - **Every call is bounded** by `store.timeout` (default [`CALL_TIMEOUT`]); a call that fails
//!   or times out is [`StoreError::Unavailable`], never a hang. After Redis returns, calls work
//!   again within a second or two (the first call after an outage starts the reconnect).
//!   [`Store::ping`] is the cheap check `/readyz` makes (one `PING`, same bound).
//! - **Round trips**: every records call is one (one script, command or pipeline); serving a
//!   session from a daemon's index costs none, and the resync that keeps that index in line
//!   with other daemons' writes is one `changes` call per target (see [`Store::changes`]).
//! - **Atomic**: every multi-key change, and every read-then-decide, is one Lua script
//!   (`scripts.rs`) using Redis's clock; key layout in `keys.rs`.
//! - **Encryption at rest**: with a key, a session's `blob` is the same envelope sled writes
//!   (ChaCha20-Poly1305, bound to `sessions/<id>`). `P:meta` records the key id the first time
//!   a daemon with a key opens the store; a daemon with another key (or none) is refused at
//!   open ([`StoreError::KeyMismatch`] naming both key ids, [`StoreError::KeyRequired`]), so
//!   every daemon of a pool shares one key.
//! - **Secrets**: the URL (which may carry a password) is never logged or shown; messages use
//!   it without credentials or query (`redis://127.0.0.1:6379/0 (prefix sw)`) and any password
//!   is scrubbed from the client's error text.
//! - **Durability** is Redis's: run it with `appendonly yes` and `appendfsync everysec` (at
//!   most about a second of acknowledged writes lost if Redis itself crashes); `flush` has
//!   nothing to add.

mod coordination;
mod keys;
mod scripts;

pub use self::coordination::RedisCoordination;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisResult, Script, ToRedisArgs};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use self::keys::Keys;
use self::scripts::Scripts;
use super::changes::Changes;
use super::envelope::{self, Sealer};
use super::key::StoreKey;
use super::location::Shown;
use super::records::{Store, StoreInfo};
use super::{AuditEntry, Event, StoreError, SCHEMA_VERSION};
use crate::config::{StoreBackend, StoreConfig, STORE_URL_ENV};
use crate::session::Session;

/// The default of `store.timeout`: the most any one Redis call may take, connecting included;
/// then it fails with [`StoreError::Unavailable`]. A connection attempt may take half of it
/// (the client retries once more within the call's bound).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a session record outlives the later of its `expires_at` and its last write
/// (`PEXPIREAT`): 30 days, so Redis's memory stays bounded even with no daemon left, and the
/// pool retires and deletes records long before. The Lua scripts hold the same number.
pub const GRACE_MS: u64 = 30 * 24 * 3600 * 1000;

/// Most audit entries kept: each append trims the list to this length.
pub const AUDIT_CAP: usize = 100_000;

/// Name of the sessions "tree", bound into every envelope as sled binds it.
const SESSIONS: &str = "sessions";

/// The connection and what every call needs: key names, scripts, and how to describe the
/// store without its credentials. Cheap to clone (shared by the records and coordination).
#[derive(Clone)]
pub(crate) struct Conn {
    /// The multiplexed, self-reconnecting connection.
    manager: ConnectionManager,
    /// Key names under `store.prefix`.
    keys: Keys,
    /// Every Lua script, hashed once.
    scripts: Arc<Scripts>,
    /// Where the store is, for messages, and the passwords to scrub from them.
    shown: Shown,
    /// The bound of every call (`store.timeout`).
    timeout: Duration,
}

impl Conn {
    /// `fut` (one Redis round trip) bounded by `store.timeout`, its error as
    /// [`StoreError::Unavailable`] naming `call`.
    async fn bounded<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let no_answer = || {
            format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            // The client's own response timeout (the same bound) says only "timed out".
            Ok(Err(e)) if e.is_timeout() => Err(self.unavailable(call, no_answer())),
            Ok(Err(e)) => Err(self.unavailable(call, e.to_string())),
            Err(_) => Err(self.unavailable(call, no_answer())),
        }
    }

    /// A [`StoreError::Unavailable`] with any password scrubbed from `reason`.
    fn unavailable(&self, call: &'static str, reason: String) -> StoreError {
        self.shown.unavailable(call, reason)
    }

    /// Sends `request` (one round trip) on the shared connection, bounded like every call.
    async fn run<T: FromRedisValue + Send>(
        &self,
        call: &'static str,
        request: &impl Request,
    ) -> Result<T, StoreError> {
        let mut c = self.manager.clone();
        self.bounded(call, request.send(&mut c)).await
    }

    /// Runs `script` with `keys` as its `KEYS` and `args` as its `ARGV` (each a value, or a
    /// tuple, slice or `Vec` of them, flattened in order).
    async fn eval<T: FromRedisValue + Send>(
        &self,
        call: &'static str,
        script: &Script,
        keys: impl ToRedisArgs + Send,
        args: impl ToRedisArgs + Send,
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(keys).arg(args);
        self.run(call, &invocation).await
    }
}

/// One round trip to Redis: a command, a pipeline, or a script invocation (`EVALSHA`, loading
/// the script on `NOSCRIPT`).
trait Request: Sync {
    /// Sends it on `c` and decodes the reply.
    fn send<T: FromRedisValue + Send>(
        &self,
        c: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

impl Request for redis::Cmd {
    async fn send<T: FromRedisValue + Send>(&self, c: &mut ConnectionManager) -> RedisResult<T> {
        self.query_async(c).await
    }
}

impl Request for redis::Pipeline {
    async fn send<T: FromRedisValue + Send>(&self, c: &mut ConnectionManager) -> RedisResult<T> {
        self.query_async(c).await
    }
}

impl Request for redis::ScriptInvocation<'_> {
    async fn send<T: FromRedisValue + Send>(&self, c: &mut ConnectionManager) -> RedisResult<T> {
        self.invoke_async(c).await
    }
}

/// How session records are written and read: JSON, sealed when the store has a key. Shared by
/// [`RedisStore`] and [`RedisCoordination`] (whose commit writes a record).
pub(crate) struct Codec {
    /// Encrypts session blobs; `None` for a plaintext store.
    sealer: Option<Sealer>,
}

impl Codec {
    /// The script arguments of one session record ([`scripts::SESSION_ARGS`]): id, target,
    /// blob, state, created_at, expires_at.
    fn session_args(&self, s: &Session) -> Result<Vec<Vec<u8>>, StoreError> {
        let name = format!("{SESSIONS}/{}", s.id);
        let json = serde_json::to_vec(s).map_err(|source| StoreError::Encode {
            key: name.clone(),
            source,
        })?;
        let blob = match &self.sealer {
            Some(sealer) => sealer.seal(SESSIONS, s.id.as_bytes(), &json)?,
            None => json,
        };
        let state = serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Ok(vec![
            s.id.clone().into_bytes(),
            s.target.clone().into_bytes(),
            blob,
            state.into_bytes(),
            s.created_at.to_string().into_bytes(),
            s.expires_at.to_string().into_bytes(),
        ])
    }

    /// A session from its stored blob.
    fn decode_session(&self, id: &str, blob: &[u8]) -> Result<Session, StoreError> {
        let name = format!("{SESSIONS}/{id}");
        let plain = envelope::open(self.sealer.as_ref(), SESSIONS, id.as_bytes(), &name, blob)?;
        serde_json::from_slice(&plain).map_err(|source| StoreError::Corrupt { key: name, source })
    }
}

/// Sessions, events and the audit trail in Redis (see the module docs for the layout).
pub struct RedisStore {
    /// The shared connection.
    conn: Conn,
    /// Session encoding, shared with the coordination's commits.
    codec: Arc<Codec>,
    /// What this store is, computed at open.
    info: StoreInfo,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Opens the Redis store `config` names (URL from `WARMER_STORE_URL`, else `store.url`) with
/// `key`, and its coordination with `holder` as the name its tokens carry.
///
/// Checks the schema version and the key: the first daemon with a key records its id; a later
/// one with another key, or with none, is refused.
///
/// # Errors
/// [`StoreError::NotSupported`] without a URL; [`StoreError::Unavailable`] when Redis cannot
/// be reached within `store.timeout` or the URL is invalid; [`StoreError::NewerSchema`],
/// [`StoreError::KeyMismatch`], [`StoreError::KeyRequired`] as for sled.
pub async fn open(
    config: &StoreConfig,
    key: Option<StoreKey>,
    holder: &str,
) -> Result<(Arc<RedisStore>, Arc<RedisCoordination>), StoreError> {
    let Some(url) = config.effective_url() else {
        return Err(StoreError::NotSupported {
            what: format!(
                "store.backend = \"redis\" needs store.url (or {STORE_URL_ENV}), e.g. \
                 redis://127.0.0.1:6379/0"
            ),
        });
    };
    let keys = Keys::new(&config.prefix);
    let shown = Shown::new(url.expose(), &config.prefix);
    let timeout = config.timeout;
    let scrub = |call: &'static str, reason: String| shown.unavailable(call, reason);
    let client = redis::Client::open(url.expose()).map_err(|e| scrub("open", e.to_string()))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout / 2))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(500));
    let manager = match tokio::time::timeout(
        timeout,
        ConnectionManager::new_with_config(client, manager_config),
    )
    .await
    {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(scrub("open", e.to_string())),
        Err(_) => {
            return Err(scrub(
                "open",
                format!("no answer within {}", humantime::format_duration(timeout)),
            ))
        }
    };
    let conn = Conn {
        manager,
        keys,
        scripts: Arc::new(Scripts::new()),
        shown: shown.clone(),
        timeout,
    };

    let sealer = key.as_ref().map(Sealer::new);
    drop(key);
    let given = sealer.as_ref().map(|s| s.key_id().to_string());
    let version = (SCHEMA_VERSION, given.as_deref().unwrap_or(""));
    let (schema, stored): (String, String) = conn
        .eval("open", &conn.scripts.open, conn.keys.meta(), version)
        .await?;
    let found: u32 = schema.parse().unwrap_or(u32::MAX);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let at_rest = envelope::at_rest(&shown.named(), sealer.as_ref(), &stored)?;
    let codec = Arc::new(Codec { sealer });
    let info = StoreInfo {
        backend: StoreBackend::Redis,
        location: shown.location().to_string(),
        at_rest,
    };
    let store = Arc::new(RedisStore {
        conn: conn.clone(),
        codec: codec.clone(),
        info,
    });
    let coordination = Arc::new(RedisCoordination::new(conn, codec, holder));
    Ok((store, coordination))
}

impl RedisStore {
    /// The field of an event in `P:events`: `<target>\0<id>`.
    fn event_field(target: &str, id: &str) -> Vec<u8> {
        let mut f = Vec::with_capacity(target.len() + 1 + id.len());
        f.extend_from_slice(target.as_bytes());
        f.push(0);
        f.extend_from_slice(id.as_bytes());
        f
    }

    /// Runs a record script: `KEYS[1]` is the index, `ARGV` the prefix and then `args`.
    async fn on_index<T: FromRedisValue + Send>(
        &self,
        call: &'static str,
        script: &Script,
        args: impl ToRedisArgs + Send,
    ) -> Result<T, StoreError> {
        let c = &self.conn;
        c.eval(call, script, c.keys.index(), (c.keys.prefix(), args))
            .await
    }

    /// An event's JSON.
    fn encode_event(e: &Event) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(e).map_err(|source| StoreError::Encode {
            key: format!("events/{}/{}", e.target, e.id),
            source,
        })
    }
}

#[async_trait]
impl Store for RedisStore {
    fn info(&self) -> StoreInfo {
        self.info.clone()
    }

    async fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let args = self.codec.session_args(s)?;
        let script = &self.conn.scripts.put_session;
        self.on_index::<i64>("put_session", script, args)
            .await
            .map(drop)
    }

    async fn update_sessions(&self, sessions: &[Arc<Session>]) -> Result<usize, StoreError> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let mut args = Vec::with_capacity(sessions.len() * scripts::SESSION_ARGS);
        for s in sessions {
            args.extend(self.codec.session_args(s)?);
        }
        let script = &self.conn.scripts.update_sessions;
        let n: i64 = self.on_index("update_sessions", script, args).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let script = &self.conn.scripts.get_session;
        let blob: Option<Vec<u8>> = self.on_index("get_session", script, id).await?;
        blob.map(|b| self.codec.decode_session(id, &b)).transpose()
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let script = &self.conn.scripts.delete_session;
        let n: i64 = self.on_index("delete_session", script, id).await?;
        Ok(n > 0)
    }

    async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
        let c = &self.conn;
        let flat: Vec<Vec<u8>> = c
            .eval(
                "list_sessions",
                &c.scripts.list_sessions,
                c.keys.index(),
                c.keys.prefix(),
            )
            .await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let id = String::from_utf8_lossy(&pair[0]);
            out.push(self.codec.decode_session(&id, &pair[1])?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn changes(&self, target: &str, since: u64) -> Result<Changes, StoreError> {
        let c = &self.conn;
        let keys = ["rev", "changed", "floor"].map(|name| c.keys.of(target, name));
        let args = (c.keys.prefix(), target, since);
        let flat: Vec<Vec<u8>> = c.eval("changes", &c.scripts.changes, &keys, args).await?;
        let number = |b: Option<&Vec<u8>>| {
            b.and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| t.parse::<u64>().ok())
        };
        let (Some(rev), Some(reset)) = (number(flat.first()), number(flat.get(1))) else {
            return Err(c.unavailable("changes", "unexpected reply".into()));
        };
        if reset == 1 {
            return Ok(Changes::reset_to(rev));
        }
        let mut out = Changes {
            rev,
            ..Changes::default()
        };
        for pair in flat[2..].chunks_exact(2) {
            let id = String::from_utf8_lossy(&pair[0]).into_owned();
            if pair[1].is_empty() {
                out.deleted.push(id);
            } else {
                out.written.push(self.codec.decode_session(&id, &pair[1])?);
            }
        }
        Ok(out)
    }

    async fn put_event(&self, e: &Event) -> Result<bool, StoreError> {
        let value = Self::encode_event(e)?;
        let mut cmd = redis::cmd("HSETNX");
        cmd.arg(self.conn.keys.events())
            .arg(Self::event_field(&e.target, &e.id))
            .arg(value);
        let n: i64 = self.conn.run("put_event", &cmd).await?;
        Ok(n == 1)
    }

    async fn put_events(&self, events: &[Event]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let key = self.conn.keys.events();
        let mut pipe = redis::pipe();
        for e in events {
            pipe.cmd("HSETNX")
                .arg(&key)
                .arg(Self::event_field(&e.target, &e.id))
                .arg(Self::encode_event(e)?);
        }
        let added: Vec<i64> = self.conn.run("put_events", &pipe).await?;
        Ok(added.iter().filter(|&&n| n == 1).count())
    }

    async fn list_events(&self, target: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(self.conn.keys.events());
        let values: Vec<Vec<u8>> = self.conn.run("list_events", &cmd).await?;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let e: Event = serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt {
                key: "events/<one event>".into(),
                source,
            })?;
            if target.is_none_or(|t| t == e.target) {
                out.push(e);
            }
        }
        out.sort_by(|a, b| (&a.target, &a.id).cmp(&(&b.target, &b.id)));
        Ok(out)
    }

    async fn delete_event(&self, target: &str, id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.conn.keys.events())
            .arg(Self::event_field(target, id));
        let n: i64 = self.conn.run("delete_event", &cmd).await?;
        Ok(n == 1)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let value = serde_json::to_vec(e).map_err(|source| StoreError::Encode {
            key: "audit/<new>".into(),
            source,
        })?;
        let key = self.conn.keys.audit();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("LPUSH")
            .arg(&key)
            .arg(value)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(AUDIT_CAP - 1)
            .ignore();
        self.conn.run::<()>("append_audit", &pipe).await
    }

    async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(self.conn.keys.audit())
            .arg(0)
            .arg(i64::try_from(limit).unwrap_or(i64::MAX) - 1);
        let values: Vec<Vec<u8>> = self.conn.run("recent_audit", &cmd).await?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_slice(v).map_err(|source| StoreError::Corrupt {
                    key: format!("audit/<newest - {i}>"),
                    source,
                })
            })
            .collect()
    }

    async fn trim_audit(&self, keep: usize) -> Result<usize, StoreError> {
        let c = &self.conn;
        let n: i64 = c
            .eval("trim_audit", &c.scripts.trim_audit, c.keys.audit(), keep)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let reply: String = self.conn.run("ping", &redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(self
                .conn
                .unavailable("ping", format!("unexpected reply {reply:?} to PING")))
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Durability is Redis's own (appendonly, appendfsync everysec): every write above was
        // acknowledged by Redis already, and no command makes it fsync on demand (WAITAOF is
        // Redis 7.2+).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_hold_the_documented_grace_and_deletions_kept() {
        let grace = GRACE_MS.to_string();
        assert!(scripts::LUA_COMMON.contains(&grace));
        let kept = crate::store::DELETIONS_KEPT.as_millis().to_string();
        assert!(scripts::LUA_COMMON.contains(&format!("now - {kept}")));
    }
}
